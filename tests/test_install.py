"""The package installs like an OpenMMLab one: a wheel (not an editable install) ships the
configs and tools under ``uninet_mm/.mim``, and the installed package trains the MNIST demo from
its installed config, run outside any clone."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: run by the installed package, from a directory outside the clone
SCRIPT = r'''
import json, os.path as osp, sys
import uninet_mm
from uninet_mm.apis import find_config, load_tool
from uninet_mm.utils.paths import clone_root, resource_roots
cfg = find_config('configs/cls/uninet_mnist_demo.py')
train = load_tool('train')
runner = train.main([cfg, '--work-dir', sys.argv[1], '--cfg-options',
                     'train_dataloader.dataset.indices=128', 'val_dataloader.dataset.indices=64',
                     'test_dataloader.dataset.indices=64', 'train_cfg.max_epochs=1',
                     'default_hooks.logger.interval=1'])
metrics = runner.val_loop.run()
print('RESULT ' + json.dumps(dict(
    package=uninet_mm.__file__, config=cfg, tool=train.__file__, clone=clone_root(),
    roots=resource_roots(), sys_path=sys.path, iters=runner.iter,
    accuracy=float(metrics['accuracy/top1']))))
'''


@pytest.mark.slow  # builds a wheel and trains 2 iterations in a subprocess (~1 min)
def test_wheel_ships_configs_and_trains_mnist_demo(tmp_path):
    src = tmp_path / 'src'
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(
        '.git', '.venv', 'work_dirs', 'data', 'build', 'dist', '*.egg-info', '.mim',
        '__pycache__', '.hypothesis'))
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps', '--no-build-isolation',
                    '--disable-pip-version-check', '-q', str(src), '-w', str(tmp_path / 'whl')],
                   check=True, env=env, cwd=tmp_path, timeout=300)
    (wheel,) = (tmp_path / 'whl').glob('uninet_mm-*.whl')
    names = zipfile.ZipFile(wheel).namelist()
    assert 'uninet_mm/.mim/configs/cls/uninet_mnist_demo.py' in names
    assert 'uninet_mm/.mim/tools/train.py' in names
    assert not any(n.startswith(('configs/', 'tools/', 'tests/')) for n in names)
    # .mim is a build output: the copy never lands in the source tree's git
    assert not osp.exists(osp.join(ROOT, 'uninet_mm', '.mim', 'configs', '.git'))

    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q',
                    '--disable-pip-version-check', '--target', str(site), str(wheel)],
                   check=True, env=env, cwd=tmp_path, timeout=300)
    run_dir = tmp_path / 'elsewhere'
    run_dir.mkdir()
    env.update(PYTHONPATH=str(site), OMP_NUM_THREADS='1')
    proc = subprocess.run([sys.executable, '-c', SCRIPT, str(tmp_path / 'work')], env=env,
                          cwd=run_dir, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith('RESULT ')][-1]
    res = json.loads(line[len('RESULT '):])
    mim = osp.join(str(site), 'uninet_mm', '.mim')
    # the installed package, config and tool ran, not the clone's (nor the editable install's)
    assert res['package'] == osp.join(str(site), 'uninet_mm', '__init__.py')
    assert res['config'] == osp.join(mim, 'configs', 'cls', 'uninet_mnist_demo.py')
    assert res['tool'] == osp.join(mim, 'tools', 'train.py')
    assert res['clone'] is None and res['roots'] == [mim]
    path = res['sys_path']
    assert path.index(str(site)) < min([i for i, p in enumerate(path) if 'site-packages' in p]
                                       or [len(path)])
    assert res['iters'] == 2                          # 128 images / batch 64, one epoch
    assert 0.0 <= res['accuracy'] <= 100.0
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')
