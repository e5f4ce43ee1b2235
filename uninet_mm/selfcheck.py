"""Environment self-check: versions, compiled ops, OpenMMLab imports, safe checkpoint loading.

    python -m uninet_mm.selfcheck        # prints a table, exits 1 naming the broken part

:func:`run_selfcheck` returns ``{part: version or 'ok'}`` and raises :class:`SelfCheckError`
naming the first broken part.
"""
import importlib
import os
import platform
import sys
import tempfile
import time

__all__ = ['SelfCheckError', 'run_selfcheck', 'main']


class SelfCheckError(RuntimeError):
    """A part of the environment is broken; ``part`` names it."""

    def __init__(self, part, detail):
        self.part = part
        super().__init__(f'self-check failed at [{part}]: {detail}')


class _NotAllowed:
    """A type no checkpoint allowlist includes: the safe loader must refuse it."""


def _version(module):
    mod = importlib.import_module(module)
    return getattr(mod, '__version__', 'ok')


def _roi_align():
    import torch
    from mmcv.ops import RoIAlign
    feat = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    rois = torch.tensor([[0, 0., 0., 4., 4.], [1, 2., 2., 7., 7.]])
    out = RoIAlign((2, 2), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feat, rois)
    assert out.shape == (2, 3, 2, 2), out.shape
    assert torch.isfinite(out).all() and out.abs().sum() > 0, out
    return 'ok'


def _boxes_scores():
    import torch
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 11., 11.], [50., 50., 60., 60.]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    return boxes, scores


def _mmcv_nms():
    from mmcv.ops import nms
    boxes, scores = _boxes_scores()
    _, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2], keep
    return 'ok'


def _tv_nms():
    import torchvision
    boxes, scores = _boxes_scores()
    keep = torchvision.ops.nms(boxes, scores, 0.5)
    assert keep.tolist() == [0, 2], keep
    return 'ok'


def _safe_checkpoint():
    """Save an MMEngine-style checkpoint, load it through MMEngine's loader (weights_only=True),
    and make sure a checkpoint holding another type is still refused."""
    import numpy as np
    import torch
    from mmengine.logging import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint

    from uninet_mm.utils.safe_load import UnsafeCheckpointError, install_safe_globals
    install_safe_globals()
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    ckpt = dict(meta=dict(iter=2, cfg='model = dict()', best=np.float32(0.25)),
                state_dict={'w': torch.ones(2)},
                message_hub=dict(log_scalars={'train/loss': buf},
                                 runtime_info={'arr': np.arange(3)}))
    with tempfile.TemporaryDirectory() as tmp:
        good, bad = os.path.join(tmp, 'good.pth'), os.path.join(tmp, 'bad.pth')
        torch.save(ckpt, good)
        torch.save({'state_dict': {}, 'x': _NotAllowed()}, bad)
        loaded = _load_checkpoint(good, map_location='cpu', logger='silent')
        assert loaded['message_hub']['log_scalars']['train/loss'].current() == 0.5
        assert loaded['message_hub']['runtime_info']['arr'].tolist() == [0, 1, 2]
        try:
            _load_checkpoint(bad, map_location='cpu', logger='silent')
        except UnsafeCheckpointError as e:
            assert '_NotAllowed' in str(e), str(e)
        else:
            raise AssertionError('a checkpoint holding an arbitrary object was NOT refused')
    return 'ok'


#: (part, check) in the order they run; a check returns the value shown in the table.
CHECKS = (
    ('python', lambda: platform.python_version()),
    ('numpy', lambda: _version('numpy')),
    ('torch', lambda: _version('torch')),
    ('torchvision', lambda: _version('torchvision')),
    ('mmengine', lambda: _version('mmengine')),
    ('mmcv', lambda: _version('mmcv')),
    ('mmcv.ops.RoIAlign', _roi_align),
    ('mmcv.ops.nms', _mmcv_nms),
    ('torchvision.ops.nms', _tv_nms),
    ('mmdet', lambda: _version('mmdet')),
    ('mmseg', lambda: _version('mmseg')),
    ('mmpretrain', lambda: _version('mmpretrain')),
    ('uninet_mm', lambda: _version('uninet_mm')),
    ('safe checkpoint load', _safe_checkpoint),
)


def run_selfcheck(verbose=False):
    """Run every check; return ``{part: version or 'ok'}``; raise SelfCheckError on the first
    broken part."""
    results = {}
    for part, check in CHECKS:
        t0 = time.perf_counter()
        try:
            results[part] = str(check())
        except Exception as e:  # noqa: BLE001 -- any failure is reported with its part
            raise SelfCheckError(part, f'{type(e).__name__}: {e}') from e
        if verbose:
            print(f'  {part:<22} {results[part]:<16} ({time.perf_counter() - t0:.2f}s)',
                  flush=True)
    return results


def main():
    print('uninet_mm self-check', flush=True)
    try:
        run_selfcheck(verbose=True)
    except SelfCheckError as e:
        print(f'FAILED: {e}', file=sys.stderr)
        print('fix: rerun `bash tools/setup_env.sh`; if the part stays broken, remove .venv '
              'and rerun it', file=sys.stderr)
        return 1
    print('self-check passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
