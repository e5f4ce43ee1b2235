"""The code passes the project's lint (ruff.toml; `make lint`, CI's lint phase)."""
import os.path as osp
import subprocess
import sys

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_ruff_clean():
    pytest.importorskip('ruff', reason='ruff is in requirements/tests.txt; install it')
    proc = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache',
                           '--output-format', 'concise', '.'],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (
        f'ruff finds problems (fix with `make lint RUFF_ARGS=--fix` or by hand):\n'
        f'{proc.stdout}{proc.stderr}')
