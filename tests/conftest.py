"""Shared test setup.

- ``@pytest.mark.slow`` marks tests that take more than ~10 s; ``make test`` deselects them
  (``-m "not slow"``), ``make test-all`` runs everything.
- Fixtures: ``small_arch`` (every GOP and DSM in one small arch), ``seeded``, ``one_thread``
  (torch on 1 thread for a test module, restored after it; ``UNINET_TEST_THREADS`` overrides): the
  test tensors are tiny, and on a busy 2-core machine two OpenMP threads make small ops up to
  100x slower (barrier spinning). Use it per module with
  ``pytestmark = pytest.mark.usefixtures('one_thread')``.
"""
import os

import pytest
import torch


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: slower than ~10 s (make test deselects them)')


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Print the random order's seed (pytest.ini sets it), also under ``-q``, so that a failure
    that depends on the order can be replayed with ``--randomly-seed=N``."""
    seed = getattr(config.option, 'randomly_seed', None)
    if config.pluginmanager.hasplugin('randomly') and seed is not None:
        terminalreporter.write_line(f'test order: random, --randomly-seed={seed} '
                                    f'(replay with the same option)')
    else:
        terminalreporter.write_line('test order: file order (pytest-randomly not active)')


@pytest.fixture(scope='module')
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get('UNINET_TEST_THREADS', '1')))
    yield
    torch.set_num_threads(before)


#: Every GOP and every DSM in one small arch (head_dim 16), six stages like the release.
SMALL_ARCH = dict(
    gops=['DWConv', 'Conv', 'LSA', 'MLP', 'SA', 'SA'],
    dsms=[None, 'L', 'LG', 'G', 'LG', 'L'],
    strides=[1, 2, 2, 2, 1, 2],
    widths=[16, 24, 32, 48, 48, 64],
    repeats=[1, 1, 2, 1, 1, 1],
    expansions=[1, 2, 2, 2, 2, 2],
    stem_width=16,
    head_dim=16,
    window_size=4,
)


@pytest.fixture
def small_arch():
    import copy
    return copy.deepcopy(SMALL_ARCH)


@pytest.fixture
def seeded():
    torch.manual_seed(0)
    return torch.Generator().manual_seed(0)
