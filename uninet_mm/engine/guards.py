"""Runner hooks that stop a run which would lose or corrupt work (registered in MMEngine's
``HOOKS``, so every library's runner finds them; ``tools/train.py`` and ``tools/test.py`` add
them).

- :class:`NonFiniteLossHook`: a non-finite loss stops training at that iteration, before a
  checkpoint of the diverged weights is written (as MMDetection's ``CheckInvalidLossHook``, but
  every iteration, for every library, and also refusing to save non-finite weights).
- :class:`CheckpointGuardHook`: records the model in the meta of the checkpoints it saves
  (:func:`uninet_mm.apis.loading.model_record`); refuses a checkpoint of another model
  (``check_model``) and a ``--resume`` from a weights-only file.
"""
import math

import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from ..apis.loading import check_model_checkpoint, model_record
from ..apis.workdir import check_resumable

__all__ = ['NonFiniteLossError', 'NonFiniteLossHook', 'CheckpointGuardHook', 'add_guard_hooks']


class NonFiniteLossError(RuntimeError):
    """Training produced a non-finite loss (or weights); the run was stopped."""


_CAUSES = ('usual causes: a learning rate too high for this batch size (lower '
           'optim_wrapper.optimizer.lr, or add warm-up), AMP fp16 overflow (use bf16 or a '
           'dynamic loss scale), or bad input data')


def _value(v):
    if isinstance(v, torch.Tensor):
        return v.detach().float().sum().item() if v.numel() else 0.
    return float(v)


@HOOKS.register_module()
class NonFiniteLossHook(Hook):
    """Stop at the first iteration whose loss is NaN or infinite.

    Runs before the checkpoint and logger hooks of that iteration, so the last checkpoint
    written stays the last good one; a checkpoint whose weights are not finite is refused too.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_weights=True):
        self.check_weights = check_weights

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if not isinstance(outputs, dict):
            return
        bad = {k: _value(v) for k, v in outputs.items() if 'loss' in k}
        bad = {k: v for k, v in bad.items() if not math.isfinite(v)}
        if bad:
            raise NonFiniteLossError(
                f'training stopped: non-finite loss at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}): {bad}; no checkpoint of these weights was written, the '
                f'last one in {runner.work_dir} is the last good one; {_CAUSES}')

    def before_save_checkpoint(self, runner, checkpoint):
        if not self.check_weights:
            return
        bad = [k for k, v in checkpoint.get('state_dict', {}).items()
               if isinstance(v, torch.Tensor) and v.is_floating_point()
               and not torch.isfinite(v).all()]
        if bad:
            raise NonFiniteLossError(
                f'training stopped at iteration {runner.iter}: the weights are not finite '
                f'({len(bad)} tensors, e.g. {bad[:2]}); the checkpoint was not written; '
                f'{_CAUSES}')


@HOOKS.register_module()
class CheckpointGuardHook(Hook):
    """Record the model in saved checkpoints; check loaded ones.

    Args:
        check_model (bool): refuse a loaded checkpoint of another model
            (:func:`~uninet_mm.apis.loading.check_model_checkpoint`).
        tool (str): named in the errors.
    """

    priority = 'VERY_HIGH'

    def __init__(self, check_model=False, tool='this tool'):
        self.check_model = check_model
        self.tool = tool

    def before_save_checkpoint(self, runner, checkpoint):
        checkpoint.setdefault('meta', {})['uninet'] = model_record(runner.model, runner.cfg)

    def after_load_checkpoint(self, runner, checkpoint):
        if getattr(runner, '_resume', False):
            # Runner.resume reads meta.epoch / meta.iter right after this hook
            check_resumable(checkpoint, _source(runner), self.tool)
        elif self.check_model:
            check_model_checkpoint(runner.model, checkpoint, _source(runner), self.tool)


def _source(runner):
    from mmengine.runner import find_latest_checkpoint
    return runner._load_from or find_latest_checkpoint(runner.work_dir) or '?'


def add_guard_hooks(cfg, tool, check_model=False, stop_non_finite=True):
    """Append the hooks above to ``cfg.custom_hooks`` (those the config lacks)."""
    hooks = list(cfg.get('custom_hooks', None) or [])
    have = {h.get('type') for h in hooks if isinstance(h, dict)}
    if stop_non_finite and 'NonFiniteLossHook' not in have:
        hooks.append(dict(type='NonFiniteLossHook'))
    if 'CheckpointGuardHook' not in have:
        hooks.append(dict(type='CheckpointGuardHook', check_model=check_model, tool=tool))
    cfg.custom_hooks = hooks
    return cfg
