"""Foundation: the environment self-check, and MMEngine checkpoints under weights_only=True.

A real MMEngine Runner (tiny model, in-memory data, CPU) trains, saves, resumes and tests;
crafted checkpoints that would run code are refused with a clear message.
"""
import copy
import os
import pickle
import re
import subprocess
import sys
import uuid

import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.model import BaseModel
from mmengine.runner import Runner, load_checkpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

import uninet_mm  # noqa: F401  (installs the safe globals and the loader wrapper)
from uninet_mm import selfcheck
from uninet_mm.utils.safe_load import UnsafeCheckpointError, install_safe_globals


# ------------------------------------------------------------------------------- self-check
def test_selfcheck_passes():
    results = selfcheck.run_selfcheck()
    for part in ('torch', 'torchvision', 'mmengine', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain',
                 'numpy', 'uninet_mm'):
        assert results[part] and results[part] != 'ok', part  # a version string
    for part in ('mmcv.ops.RoIAlign', 'mmcv.ops.nms', 'torchvision.ops.nms',
                 'safe checkpoint load'):
        assert results[part] == 'ok'
    assert results['mmcv'] == '2.1.0' and results['mmengine'] == '0.10.7'


def test_selfcheck_names_the_broken_part(monkeypatch, capsys):
    def broken():
        raise ImportError('libfoo.so: cannot open shared object file')

    monkeypatch.setattr(selfcheck, 'CHECKS', selfcheck.CHECKS[:2] + (('mmcv.ops.nms', broken),))
    with pytest.raises(selfcheck.SelfCheckError, match=r'\[mmcv\.ops\.nms\].*libfoo') as e:
        selfcheck.run_selfcheck()
    assert e.value.part == 'mmcv.ops.nms'
    assert selfcheck.main() == 1
    assert 'mmcv.ops.nms' in capsys.readouterr().err


def test_install_safe_globals_is_idempotent():
    before = len(torch.serialization.get_safe_globals())
    install_safe_globals()
    install_safe_globals()
    assert len(torch.serialization.get_safe_globals()) == before


# ------------------------------------------------------------------- a real MMEngine Runner
class TinyModel(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, targets, mode='tensor'):
        out = self.fc(torch.stack(inputs)).squeeze(-1)
        targets = torch.stack(targets)
        if mode == 'loss':
            return dict(loss=((out - targets) ** 2).mean())
        if mode == 'predict':
            return [dict(pred=p, target=t) for p, t in zip(out, targets)]
        return out


class TinyData(Dataset):
    metainfo = dict(classes=('value', ), palette=[(0, 0, 255)])

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=g)
        self.y = self.x.sum(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return dict(inputs=self.x[i], targets=self.y[i])


class MAE(BaseMetric):

    def process(self, data_batch, data_samples):
        self.results += [float((s['pred'] - s['target']).abs()) for s in data_samples]

    def compute_metrics(self, results):
        # numpy scalars go into the checkpoint (message hub, save_best): on purpose
        return dict(mae=np.float64(np.mean(results)))


class Record(Hook):
    """Records the state the loop starts from and the iterations it runs."""

    def __init__(self):
        self.start = None
        self.iters = []

    def before_train(self, runner):
        self.start = dict(
            iter=runner.iter,
            optim=copy.deepcopy(runner.optim_wrapper.state_dict()),  # updated in place later
            lr=runner.optim_wrapper.get_lr()['lr'][0],
            sched=[(s.last_step, s._global_step) for s in runner.param_schedulers],
            fc_weight=runner.model.fc.weight.detach().clone(),
            loss_history=runner.message_hub.get_scalar('train/loss').data[0].copy())

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        self.iters.append(runner.iter)


def _loader(shuffle=True):
    from mmengine.dataset import DefaultSampler, pseudo_collate
    ds = TinyData()
    return DataLoader(ds, batch_size=4, sampler=DefaultSampler(ds, shuffle=shuffle, seed=0),
                      collate_fn=pseudo_collate)


def _runner(work_dir, max_iters, schedulers=None, **kwargs):
    return Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        experiment_name=f'foundation_{uuid.uuid4().hex[:8]}',  # own MessageHub per runner
        train_dataloader=_loader(),
        val_dataloader=_loader(False),
        val_evaluator=[MAE()],
        train_cfg=dict(by_epoch=False, max_iters=max_iters, val_interval=2),
        val_cfg=dict(),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                                          weight_decay=1e-4),
                           clip_grad=dict(max_norm=10.0)),
        param_scheduler=schedulers or [
            dict(type='LinearLR', start_factor=0.5, by_epoch=False, begin=0, end=2),
            dict(type='MultiStepLR', milestones=[3], by_epoch=False)],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2, by_epoch=False,
                            save_best='mae', rule='less'),
            logger=dict(type='LoggerHook', interval=1)),
        log_processor=dict(by_epoch=False),
        randomness=dict(seed=0),
        log_level='WARNING',
        **kwargs)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two iterations of training, checkpoint iter_2.pth saved (shared by the tests below)."""
    work_dir = tmp_path_factory.mktemp('train')
    runner = _runner(work_dir, max_iters=2)
    runner.train()
    ckpt = work_dir / 'iter_2.pth'
    assert ckpt.is_file()
    return runner, ckpt


def test_runner_checkpoint_holds_only_allowlisted_globals(trained):
    _, ckpt = trained
    assert torch.serialization.get_unsafe_globals_in_checkpoint(str(ckpt)) == []
    raw = torch.load(ckpt, map_location='cpu', weights_only=True)  # no error, weights only
    assert isinstance(raw['message_hub']['log_scalars']['train/loss'], HistoryBuffer)
    assert raw['meta']['iter'] == 2


def test_runner_resume_restores_iteration_and_optimizer(trained, tmp_path):
    _, ckpt = trained
    saved = torch.load(ckpt, map_location='cpu', weights_only=True)
    record = Record()
    runner = _runner(tmp_path, max_iters=4, resume=True, load_from=str(ckpt),
                     custom_hooks=[record])
    runner.train()

    start = record.start
    assert start['iter'] == 2
    assert record.iters == [2, 3]  # 0-based: ran iterations 3 and 4, did not start over
    assert runner.iter == 4 and (tmp_path / 'iter_4.pth').is_file()
    torch.testing.assert_close(start['fc_weight'], saved['state_dict']['fc.weight'])
    # optimizer: momentum buffers and hyper-parameters come back exactly
    saved_state = saved['optimizer']['state']
    assert saved_state, 'SGD with momentum must have saved state'
    for k, v in saved_state.items():
        torch.testing.assert_close(start['optim']['state'][k]['momentum_buffer'],
                                   v['momentum_buffer'])
    assert start['lr'] == pytest.approx(saved['optimizer']['param_groups'][0]['lr'])
    assert start['sched'] == [(s['last_step'], s['_global_step'])
                              for s in saved['param_schedulers']]
    assert [g for _, g in start['sched']] == [2, 2]  # schedulers resume at step 2, not 0
    np.testing.assert_allclose(
        start['loss_history'], saved['message_hub']['log_scalars']['train/loss'].data[0])


def test_runner_load_from_and_test(trained, tmp_path):
    train_runner, ckpt = trained
    runner = Runner(
        model=TinyModel(),
        work_dir=str(tmp_path),
        experiment_name=f'foundation_{uuid.uuid4().hex[:8]}',
        test_dataloader=_loader(False),
        test_evaluator=[MAE()],
        test_cfg=dict(),
        load_from=str(ckpt),
        log_level='WARNING')
    metrics = runner.test()
    assert set(metrics) == {'mae'} and np.isfinite(metrics['mae'])
    saved = torch.load(ckpt, map_location='cpu', weights_only=True)['state_dict']
    torch.testing.assert_close(runner.model.fc.weight, saved['fc.weight'])


def test_onecycle_scheduler_checkpoint_loads(tmp_path):
    """OneCycle pickles a class function (via getattr): resolved by the restricted getattr."""
    sched = [dict(type='OneCycleLR', eta_max=0.05, total_steps=4, by_epoch=False)]
    _runner(tmp_path / 'a', max_iters=2, schedulers=sched).train()
    record = Record()
    runner = _runner(tmp_path / 'b', max_iters=3, schedulers=sched, resume=True,
                     load_from=str(tmp_path / 'a' / 'iter_2.pth'), custom_hooks=[record])
    runner.train()
    assert record.start['iter'] == 2 and record.iters == [2]
    assert runner.param_schedulers[0].anneal_func.__name__ == '_annealing_cos'


# ------------------------------------------------------------------ malicious checkpoints
class _Payload:
    """Unpickling this runs a command (what a crafted checkpoint would do)."""

    def __init__(self, func, args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class _GetattrPayload:

    def __reduce__(self):  # getattr(HistoryBuffer.min, '__globals__') -> module globals -> os
        return getattr, (HistoryBuffer.min, '__globals__')


def _evil_cases(marker):
    cmd = f'{sys.executable} -c "open({str(marker)!r}, \'w\').write(\'pwned\')"'
    return {
        'os.system': (_Payload(os.system, (cmd, )), r'(posix|nt)\.system'),
        'subprocess.call': (_Payload(subprocess.call, (cmd, ), ), r'(subprocess|commands)\.call'),
    }


@pytest.mark.parametrize('case', ['os.system', 'subprocess.call'])
def test_malicious_checkpoint_is_refused(case, tmp_path, trained):
    marker = tmp_path / 'marker'
    payload, refused = _evil_cases(marker)[case]
    ckpt = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'fc.weight': torch.zeros(1, 4)}, 'meta': {'x': payload}}, ckpt)

    # 1) mmengine.runner.load_checkpoint (what init_cfg / load_from use)
    with pytest.raises(UnsafeCheckpointError) as e:
        load_checkpoint(TinyModel(), str(ckpt), map_location='cpu')
    msg = str(e.value)
    assert 'refused to load checkpoint' in msg
    assert re.search(refused, msg), msg                       # names the refused type
    assert 'safe_globals' in msg and 'weights_only=False' in msg  # says how to load if trusted
    assert isinstance(e.value, pickle.UnpicklingError)

    # 2) Runner.resume
    runner = _runner(tmp_path / 'wd', max_iters=4, resume=True, load_from=str(ckpt))
    with pytest.raises(UnsafeCheckpointError, match=refused):
        runner.train()

    assert not marker.exists(), 'the payload ran'


def test_getattr_escape_is_refused(tmp_path):
    ckpt = tmp_path / 'escape.pth'
    torch.save({'x': _GetattrPayload()}, ckpt)
    with pytest.raises(UnsafeCheckpointError, match='getattr'):
        load_checkpoint(TinyModel(), str(ckpt), map_location='cpu')
    with pytest.raises(pickle.UnpicklingError):
        torch.load(ckpt, weights_only=True)


def test_trusted_file_loads_with_explicit_allowlist(tmp_path):
    ckpt = tmp_path / 'trusted.pth'
    torch.save({'state_dict': {}, 'extra': MAE}, ckpt)  # a class: refused by default
    with pytest.raises(UnsafeCheckpointError, match='MAE'):
        load_checkpoint(TinyModel(), str(ckpt), map_location='cpu')
    with torch.serialization.safe_globals([MAE]):
        load_checkpoint(TinyModel(), str(ckpt), map_location='cpu')
