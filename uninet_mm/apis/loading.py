"""Checkpoints that match their model.

:func:`model_record` is what checkpoints written by our tools record about their model
(``meta['uninet']``: config name, model class, the arch of every UniNet backbone);
:func:`check_model_checkpoint` refuses a checkpoint of another model before it is loaded: one
whose record names another model or arch, or whose state dict leaves tensors of the model
unfilled or of another shape (``tools/test.py``, ``tools/image_demo.py``).
"""
import os.path as osp
import re

from .workdir import UserInputError

__all__ = ['model_record', 'check_model_checkpoint', 'arch_label']


def _plain(model):
    """The model inside a DDP wrapper or a test-time-augmentation model."""
    import torch.nn as nn
    from mmengine.model import is_model_wrapper
    inner = getattr(model, 'module', None)
    return inner if is_model_wrapper(model) or isinstance(inner, nn.Module) else model


def arch_label(arch):
    """The preset name of a parsed arch dict, or the dict itself (plain lists and ints)."""
    from ..models import ARCH_PRESETS, parse_arch
    for name in ARCH_PRESETS:
        if parse_arch(name) == arch:
            return name
    return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in arch.items()}


def _uninets(model):
    from ..models import UniNet
    return [(name, m) for name, m in _plain(model).named_modules() if isinstance(m, UniNet)]


def model_record(model, cfg=None):
    """``meta['uninet']`` of a checkpoint of ``model`` (built from ``cfg``)."""
    filename = getattr(cfg, 'filename', None) if cfg is not None else None
    return dict(
        config=osp.basename(filename) if filename else None,
        model=type(_plain(model)).__name__,
        backbones=[dict(module=name, arch=arch_label(m.arch)) for name, m in _uninets(model)])


def _same_arch(a, b):
    from ..models import parse_arch
    try:
        pa, pb = parse_arch(a), parse_arch(b)
    except Exception:
        return a == b
    keys = set(pa) & set(pb)
    return all(pa[k] == pb[k] for k in keys)


def _show(arch):
    return repr(arch) if isinstance(arch, str) else 'a custom arch dict'


def _diff(recorded, arch):
    """' (they differ in k: a in the checkpoint, b here)' for two arch dicts."""
    from ..models import parse_arch
    try:
        a, b = parse_arch(recorded), parse_arch(arch)
    except Exception:
        return ''
    keys = [k for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return ''.join(f' (they differ in {k}: {a[k]} in the checkpoint, {b[k]} here)'
                   for k in keys[:2])


def check_model_checkpoint(model, checkpoint, filename, tool='this tool'):
    """Raise :class:`UserInputError` if ``checkpoint`` (a loaded dict) is not one of ``model``."""
    meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    ours = dict(_uninets(model))
    rec = meta.get('uninet') if isinstance(meta.get('uninet'), dict) else None
    way_out = f'pass the checkpoint of this config to {tool}'
    if rec is not None:
        config = rec.get('config')
        written = f'written for {rec.get("model")} (config {config})' if config else \
            f'written for {rec.get("model")}'
        if rec.get('model') != type(_plain(model)).__name__:
            raise UserInputError(
                f'{tool}: checkpoint {filename!r} was {written}; this model is a '
                f'{type(_plain(model)).__name__}: {way_out}')
        for b in rec.get('backbones') or []:
            m = ours.get(b.get('module'))
            if m is not None and not _same_arch(b.get('arch'), m.arch):
                raise UserInputError(
                    f'{tool}: checkpoint {filename!r} was {written}, UniNet arch '
                    f'{_show(b.get("arch"))}; this model\'s backbone is '
                    f'{_show(arch_label(m.arch))}{_diff(b.get("arch"), m.arch)}: {way_out}')
    elif meta.get('arch') is not None and len(ours) == 1:  # tools/convert_official.py output
        (_, m), = ours.items()
        if not _same_arch(meta['arch'], m.arch):
            raise UserInputError(
                f'{tool}: checkpoint {filename!r} holds UniNet arch {_show(meta["arch"])} '
                f'(converted from {meta.get("source")}); this model\'s backbone is '
                f'{_show(arch_label(m.arch))}: {way_out}')

    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    state = {re.sub(r'^module\.', '', k): v for k, v in state.items()}
    own = _plain(model).state_dict()
    missing = [k for k in own if k not in state]
    wrong = [k for k in own if k in state and getattr(state[k], 'shape', None) != own[k].shape]
    if missing or wrong:
        n_ok = len(own) - len(missing) - len(wrong)
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (e.g. {missing[:2]})')
        if wrong:
            parts.append(f'{len(wrong)} of another shape (e.g. {wrong[:2]})')
        hint = ('another model' if n_ok == 0 or len(missing) > len(wrong)
                else 'another arch or number of classes')
        raise UserInputError(
            f'{tool}: checkpoint {filename!r} fills {n_ok} of the {len(own)} tensors of this '
            f'model ({"; ".join(parts)}): it is a checkpoint of {hint}; {way_out}')
