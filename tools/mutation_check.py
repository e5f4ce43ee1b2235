"""Focused mutation check: apply known one-line bugs to a temporary copy of the repository and
run the tests meant to catch them; a mutation is *killed* when those tests fail.

The table :data:`MUTATIONS` holds the mutations of issue 18 (which the suite missed before) and
further ones; each is an exact textual patch of one source file, so a patch that no longer
applies (the code moved) is reported as ``STALE`` instead of silently passing. The working tree
is never touched: the copy lives in a temporary directory that is removed afterwards.

Usage (from the repository root; ``--tests`` replaces each mutation's own tests)::

    python tools/mutation_check.py                      # all mutations, their focused tests
    python tools/mutation_check.py --only lsa_mask_none g_dsm_front_padding
    python tools/mutation_check.py --issue-only --tests tests/test_backbone.py tests/test_search.py
    python tools/mutation_check.py --list

Exit status 0 when every applicable mutation was killed and none is stale, else 1. The full
mutmut run over the packages is configured in setup.cfg (``[mutmut]``), see docs/DEVELOPING.md.
"""
import argparse
import os
import os.path as osp
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFS = 'tests/test_references.py'
SEARCH = 'tests/test_search_logic.py'

#: id, file, exact old text, new text, focused tests, from the issue's table?, what it breaks
MUTATIONS = [
    dict(id='lsa_mask_none', file='uninet_mm/models/gops.py',
         old='out = self.attend(windows, attn_mask=mask)',
         new='out = self.attend(windows, attn_mask=None)',
         tests=[REFS], issue=True, what="LSA's padding mask dropped"),
    dict(id='window_no_transpose', file='uninet_mm/models/gops.py',
         old='x = x.view(B, Hp // w, w, Wp // w, w, C).transpose(2, 3).reshape(-1, w * w, C)',
         new='x = x.view(B, Hp // w, w, Wp // w, w, C).reshape(-1, w * w, C)',
         tests=[REFS], issue=True, what='windows built without transpose(2, 3)'),
    dict(id='g_dsm_front_padding', file='uninet_mm/models/dsms.py',
         old='seq = F.pad(seq, (0, pad))', new='seq = F.pad(seq, (pad, 0))',
         tests=[REFS], issue=True, what='G-DSM pads the token sequence at the front'),
    dict(id='drop_path_constant', file='uninet_mm/models/uninet.py',
         old='drop_path=dpr[k]', new='drop_path=drop_path_rate',
         tests=[REFS], issue=True, what='one drop-path rate for every block'),
    dict(id='evolution_worst_parent', file='uninet_mm/search/strategies.py',
         old='parent = max(contenders, key=lambda m: m[1])[0]',
         new='parent = min(contenders, key=lambda m: m[1])[0]',
         tests=[SEARCH], issue=True, what='evolution picks the worst tournament member'),
    dict(id='naswot_sign', file='uninet_mm/search/zero_cost.py',
         old="score = float(logdet) if sign > 0 else float('-inf')",
         new="score = -float(logdet) if sign > 0 else float('-inf')",
         tests=[SEARCH], issue=True, what="the NASWOT score's sign flipped"),
    dict(id='loop_candidate_flops_as_target', file='uninet_mm/search/loop.py',
         old="rec['accuracy'], rec['flops'], self.target_flops, self.alpha))",
         new="rec['accuracy'], rec['flops'], rec['flops'], self.alpha))",
         tests=[SEARCH], issue=True,
         what="the loop passes the candidate's FLOPs as the target"),
    # ---- further mutations
    dict(id='padding_mask_no_transpose', file='uninet_mm/models/gops.py',
         old='valid = valid.view(Hp // w, w, Wp // w, w).transpose(1, 2).reshape(-1, 1, 1, '
             'w * w)',
         new='valid = valid.view(Hp // w, w, Wp // w, w).reshape(-1, 1, 1, w * w)',
         tests=[REFS], what='padding mask in the wrong window order'),
    dict(id='window_reverse_no_transpose', file='uninet_mm/models/gops.py',
         old='x = windows.view(-1, Hp // w, Wp // w, w, w, C).transpose(2, 3).reshape(-1, Hp, '
             'Wp, C)',
         new='x = windows.view(-1, Hp // w, Wp // w, w, w, C).reshape(-1, Hp, Wp, C)',
         tests=[REFS], what='window_reverse without its transpose'),
    dict(id='se_sigmoid', file='uninet_mm/models/layers.py',
         old='return F.hardsigmoid(self.fc2(self.act(self.fc1(s))))',
         new='return torch.sigmoid(self.fc2(self.act(self.fc1(s))))',
         tests=[REFS], what='SE gate with a sigmoid instead of the hard sigmoid'),
    dict(id='drop_path_no_rescale', file='uninet_mm/models/layers.py',
         old='return x * mask / keep', new='return x * mask',
         tests=[REFS], what='drop path without the 1 / keep_prob scaling'),
    dict(id='ffn_with_gamma1', file='uninet_mm/models/gops.py',
         old='t = t + self.drop_path(self.gamma2 * self.ffn(self.norm2(t)))',
         new='t = t + self.drop_path(self.gamma1 * self.ffn(self.norm2(t)))',
         tests=[REFS], what='the FFN scaled by the mixer layer scale'),
    dict(id='dsm_kv_without_norm', file='uninet_mm/models/dsms.py',
         old='kv = self.kv(self.kv_norm(map_to_tokens(x)))',
         new='kv = self.kv(map_to_tokens(x))',
         tests=[REFS], what='DSM keys/values without their LayerNorm'),
    dict(id='conv_shortcut_avgpool', file='uninet_mm/models/gops.py',
         old='pool=nn.MaxPool2d(3, 1, 1),', new='pool=nn.AvgPool2d(3, 1, 1),',
         tests=[REFS], what='Conv GOP shortcut average- instead of max-pooled'),
    dict(id='evolution_same_choice', file='uninet_mm/search/strategies.py',
         old='if k != child[i]])', new='])',
         tests=[SEARCH], what='evolution mutation may keep the same choice'),
    dict(id='evolution_youngest_dies', file='uninet_mm/search/strategies.py',
         old='self.population.pop(0)', new='self.population.pop()',
         tests=[SEARCH], what='the newest member dies instead of the oldest'),
    dict(id='naswot_codes_ge', file='uninet_mm/search/zero_cost.py',
         old='codes.append((inputs[0] > 0)', new='codes.append((inputs[0] >= 0)',
         tests=[SEARCH], what='NASWOT codes x >= 0 instead of x > 0'),
    dict(id='reward_target_zero_allowed', file='uninet_mm/search/reward.py',
         old='if target <= 0:', new='if target < 0:',
         tests=[SEARCH, 'tests/test_search.py::test_reward_equals_accuracy_at_target_and_falls'
                '_with_flops'],
         what='a zero FLOPs target is not refused with the one-line error'),
]


def copy_repo(dst):
    """The files a test run needs, without .git, virtual envs and outputs."""
    skip = {'.git', '.venv', 'work_dirs', 'outputs', 'data', 'checkpoints', '__pycache__',
            '.hypothesis', '.pytest_cache'}
    for name in os.listdir(ROOT):
        if name in skip:
            continue
        src = osp.join(ROOT, name)
        if osp.isdir(src):
            shutil.copytree(src, osp.join(dst, name),
                            ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copy2(src, osp.join(dst, name))


PYTEST_ARGS = ['-x', '-q', '-p', 'no:cacheprovider', '-m', 'not slow']
#: third-party imports that take most of a test run's start-up (uninet_mm imports them all)
HEAVY = ('torch', 'mmengine', 'mmcv', 'mmdet.models', 'mmseg.models', 'mmpretrain.models',
         'pycocotools.coco', 'pytest', 'hypothesis')


def preload():
    """Import the libraries once; each mutant then runs in a fork of this process, which has
    not imported uninet_mm (the mutated copy is imported fresh in the child)."""
    import importlib
    for name in HEAVY:
        importlib.import_module(name)
    assert not any(m == 'uninet_mm' or m.startswith('uninet_mm.') for m in sys.modules)


def run_forked(repo, tests, timeout):
    """pytest in a forked child (cwd and sys.path at the copy); returns (exit code, '')."""
    out = osp.join(repo, '.mutation_log')
    pid = os.fork()
    if pid == 0:  # child
        code = 3
        try:
            os.chdir(repo)
            sys.path.insert(0, repo)
            os.environ['PYTHONPATH'] = repo
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            import pytest
            code = int(pytest.main([*PYTEST_ARGS, *tests]))
        finally:
            os._exit(code)
    t0 = time.time()
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.time() - t0 > timeout:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return 'timeout', ''
        time.sleep(0.2)
    with open(out, errors='replace') as f:
        lines = f.read().strip().splitlines()
    return os.waitstatus_to_exitcode(status), lines[-1] if lines else ''


def run_tests(repo, tests, timeout, fork=False):
    if fork:
        return run_forked(repo, tests, timeout)
    env = dict(os.environ, PYTHONPATH=repo, OMP_NUM_THREADS='1', PYTHONDONTWRITEBYTECODE='1')
    cmd = [sys.executable, '-m', 'pytest', *PYTEST_ARGS, *tests]
    try:
        proc = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return 'timeout', ''
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode, tail[-1] if tail else ''


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--only', nargs='+', help='mutation ids to run')
    parser.add_argument('--issue-only', action='store_true', help="only the issue's table")
    parser.add_argument('--tests', nargs='+', help="tests for every mutation (instead of "
                        "each mutation's focused tests)")
    parser.add_argument('--timeout', type=float, default=900, help='seconds per test run')
    parser.add_argument('--no-baseline', action='store_true',
                        help='skip checking that the tests pass without a mutation')
    parser.add_argument('--no-fork', action='store_true',
                        help='a fresh interpreter per mutant (slower: every run imports torch '
                        'and the OpenMMLab libraries again)')
    parser.add_argument('--list', action='store_true')
    args = parser.parse_args(argv)
    todo = [m for m in MUTATIONS if (not args.only or m['id'] in args.only)
            and (not args.issue_only or m.get('issue'))]
    if args.only and len(todo) != len(args.only):
        known = [m['id'] for m in MUTATIONS]
        parser.error(f'unknown mutation ids {sorted(set(args.only) - set(known))}; '
                     f'known: {known}')
    if args.list:
        for m in todo:
            print(f"{m['id']:32s} {m['file']:36s} {m['what']}")
        return 0
    rows, stale = [], []
    fork = not args.no_fork and hasattr(os, 'fork')
    if fork:
        os.environ.setdefault('OMP_NUM_THREADS', '1')
        sys.dont_write_bytecode = True
        preload()
    with tempfile.TemporaryDirectory(prefix='uninet-mutants-') as repo:
        copy_repo(repo)
        if not args.no_baseline:
            tests = sorted({t for m in todo for t in (args.tests or m['tests'])})
            rc, tail = run_tests(repo, tests, args.timeout, fork)
            print(f'baseline (no mutation): exit {rc}: {tail}', flush=True)
            if rc != 0:
                print('!! the tests fail without any mutation: fix them first', file=sys.stderr)
                return 1
        for m in todo:
            path = osp.join(repo, m['file'])
            with open(path) as f:
                original = f.read()
            if original.count(m['old']) != 1:
                stale.append(m['id'])
                print(f"STALE   {m['id']}: the patch's text occurs {original.count(m['old'])}"
                      f" times in {m['file']}", flush=True)
                continue
            t0 = time.time()
            try:
                with open(path, 'w') as f:
                    f.write(original.replace(m['old'], m['new']))
                rc, tail = run_tests(repo, args.tests or m['tests'], args.timeout, fork)
            finally:
                with open(path, 'w') as f:
                    f.write(original)
            killed = rc != 0
            rows.append((m, killed))
            print(f"{'KILLED ' if killed else 'SURVIVED'} {m['id']:32s} "
                  f"{time.time() - t0:5.1f}s  {tail[:90]}", flush=True)
    killed = sum(k for _, k in rows)
    issue = [(m, k) for m, k in rows if m.get('issue')]
    print(f'\nkilled {killed}/{len(rows)} (issue table: {sum(k for _, k in issue)}/'
          f'{len(issue)}){"; stale: " + ", ".join(stale) if stale else ""}')
    for m, k in rows:
        if not k:
            print(f"  survivor: {m['id']} ({m['file']}): {m['what']}")
    return 0 if killed == len(rows) and not stale else 1


if __name__ == '__main__':
    sys.exit(main())
