"""The allocator setting of the training tools (issue 14): freed memory kept in the process by
default, ``mallopt`` at start equal in effect to ``GLIBC_TUNABLES`` at exec, opt-outs."""
import os
import subprocess
import sys

import pytest
import torch

from uninet_mm.apis import load_tool
from uninet_mm.utils import malloc

# a training-like loop over 64 MB maps (above glibc's largest dynamic mmap threshold, 32 MB):
# page faults summed over the last 10 of 20 iterations, once the heap has settled (glibc's
# tcache fills in ~8), and the RSS growth over them
_FAULTS = r'''
import resource, sys, torch
if sys.argv[1] == 'mallopt':
    from uninet_mm.utils.malloc import keep_freed_memory
    assert keep_freed_memory()
x = torch.ones(16 << 20)
faults, rss_mb = [], []
for _ in range(20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = (x * 2).relu_()
    z = y + x
    del y, z
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    rss_mb.append(int(open('/proc/self/statm').read().split()[1]) * 4096 >> 20)
print(sum(faults[-10:]), rss_mb[-1] - rss_mb[-11])
'''


def _settled_faults_and_rss(mode):
    env = dict(os.environ, PYTHONPATH=os.getcwd(), OMP_NUM_THREADS='1')
    env.pop('GLIBC_TUNABLES', None)
    if mode == 'env':
        env['GLIBC_TUNABLES'] = load_tool('benchmark_backbones').MALLOC_TUNABLES
    out = subprocess.run([sys.executable, '-c', _FAULTS, mode], env=env, capture_output=True,
                         text=True, check=True).stdout
    return tuple(int(v) for v in out.split()[-2:])  # faults, RSS growth (MB)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc only')
def test_mallopt_at_start_equals_glibc_tunables():
    pages = (64 << 20) // os.sysconf('SC_PAGE_SIZE')   # one 64 MB map
    faults, _ = _settled_faults_and_rss('default')
    assert faults >= 10 * pages     # glibc unmaps each freed map: faulted in again every time
    for mode in ('mallopt', 'env'):
        # kept: the maps are served from the heap again; a rare step may still grow the heap
        # by one map (its layout depends on what the imports left), not every step
        faults, growth_mb = _settled_faults_and_rss(mode)
        assert faults < 2 * pages, mode
        assert growth_mb < 2 * 64 + 16, mode   # settled: at most a map's growth now and then


def test_apply_malloc_choices(monkeypatch):
    calls = []
    monkeypatch.setattr(malloc, 'keep_freed_memory', lambda: calls.append(1) or True)
    monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
    assert 'kept' in malloc.apply_malloc('keep') and calls == [1]
    assert "glibc's default" in malloc.apply_malloc('glibc') and calls == [1]
    monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.arena_max=2')
    assert 'GLIBC_TUNABLES' in malloc.apply_malloc('keep') and calls == [1]  # the user's wins
    with pytest.raises(ValueError, match='choose one of'):
        malloc.apply_malloc('jemalloc')


def test_train_tool_malloc_default_and_opt_out(monkeypatch):
    train = load_tool('train')
    monkeypatch.delenv(malloc.MALLOC_ENV, raising=False)
    assert train.parse_args(['cfg.py']).malloc == 'keep'
    assert train.parse_args(['cfg.py', '--malloc', 'glibc']).malloc == 'glibc'
    monkeypatch.setenv(malloc.MALLOC_ENV, 'glibc')
    assert train.parse_args(['cfg.py']).malloc == 'glibc'
    assert train.parse_args(['cfg.py', '--malloc', 'keep']).malloc == 'keep'
    monkeypatch.setenv(malloc.MALLOC_ENV, 'tcmalloc')
    with pytest.raises(SystemExit):
        train.parse_args(['cfg.py'])


def test_benchmark_workers_get_the_setting(monkeypatch):
    bench = load_tool('benchmark_backbones')
    seen = {}

    def fake_run(argv, env=None, **kwargs):
        seen.update(argv=argv, env=env)
        return subprocess.CompletedProcess(argv, 1, '', 'stopped by the test')

    monkeypatch.setattr(subprocess, 'run', fake_run)
    monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
    args = bench.parse_args(['--models', 'swin_t', '--malloc', 'env', '--plain-train'])
    bench.run_subprocess(args, 'swin_t')
    assert seen['env']['GLIBC_TUNABLES'] == bench.MALLOC_TUNABLES
    assert '--plain-train' in seen['argv'] and 'env' in seen['argv']
    bench.run_subprocess(bench.parse_args(['--models', 'swin_t', '--malloc', 'keep']), 'swin_t')
    assert 'GLIBC_TUNABLES' not in seen['env'] and 'keep' in seen['argv']


def test_search_worker_applies_the_setting_once_per_process(monkeypatch):
    from uninet_mm.search import executor
    calls = []
    monkeypatch.setattr(malloc, 'keep_freed_memory', lambda: calls.append(1) or True)
    monkeypatch.delenv('GLIBC_TUNABLES', raising=False)
    monkeypatch.delenv(malloc.MALLOC_ENV, raising=False)
    executor._setup_worker_process.cache_clear()
    threads = torch.get_num_threads()
    try:
        assert [executor._worker_call(lambda job: job * 2, j, 1) for j in (1, 2, 3)] == [2, 4, 6]
    finally:
        torch.set_num_threads(threads)
        executor._setup_worker_process.cache_clear()
    assert calls == [1]   # three candidates, one allocator setting
