"""One measurement per fresh process: the benchmarks run each model or config in a worker
subprocess (no allocator state shared between them), which prints its result as one line."""
import json
import subprocess

__all__ = ['print_result', 'run_worker']

_PREFIX = 'RESULT '


def print_result(result):
    """What a worker prints last: ``result`` (JSON-able) on one line."""
    print(_PREFIX + json.dumps(result), flush=True)


def run_worker(argv, cwd=None, env=None):
    """Run the worker command ``argv``; its result, or ``{'error': ...}`` with the exit status
    and the last line it wrote when it printed none."""
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith(_PREFIX):
            return json.loads(line[len(_PREFIX):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ['no output']
    return dict(error=f'worker exit {proc.returncode}: {tail[0][:300]}')
