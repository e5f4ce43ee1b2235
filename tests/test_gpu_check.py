"""tools/gpu_check.sh, the script to run when a GPU is lent, runs its benchmark steps on the CPU
(DEVICE=cpu) and writes both result files with a figure for every model and mode."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_check(tmp_path, **env):
    full = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), **env)
    return subprocess.run(['bash', osp.join(ROOT, 'tools', 'gpu_check.sh')], env=full,
                          capture_output=True, text=True, cwd=ROOT)


def test_refuses_cuda_without_a_gpu(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a CUDA device is visible: the refusal is for machines without one')
    proc = run_check(tmp_path, DEVICE='cuda')
    assert proc.returncode == 2
    assert 'no CUDA device' in proc.stderr and 'DEVICE=cpu' in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_cpu_dry_run_writes_every_row(tmp_path):
    proc = run_check(tmp_path, DEVICE='cpu', SHAPE='1 3 64 96', ITERS='1', MODELS='uninet_b0')
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    train = json.load(open(tmp_path / 'gpu_amp.json'))
    deploy = json.load(open(tmp_path / 'gpu_amp_deploy.json'))
    text = json.dumps(train) + json.dumps(deploy)
    assert 'uninet_b0' in text and 'error' not in text
    assert 'forward_backward' in json.dumps(train) and 'forward_backward' not in json.dumps(deploy)
