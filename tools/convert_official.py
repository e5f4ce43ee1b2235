"""Convert a released UniNet checkpoint (the authors' layout) to uninet_mm's layout.

    python tools/convert_official.py uninet_b1.pth checkpoints/uninet-b1_in1k.pth --arch b1

The output holds ``{'state_dict': ..., 'meta': {...}}`` with MMPretrain ``ImageClassifier`` keys
(``backbone.*``, ``head.*``). It loads as it is into the classifier configs and, through
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``, into any detector or
segmentor with a UniNet backbone. Before saving, the converted weights are loaded (strict) into
an ``ImageClassifier`` built from ``UniNet`` + ``UniNetClsHead`` and run on one image.
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

import uninet_mm  # noqa: E402,F401  (registers the models, safe torch.load globals)
from uninet_mm.apis.workdir import UserInputError, check_output  # noqa: E402
from uninet_mm.converters.official import convert_official, is_official, unwrap  # noqa: E402
from uninet_mm.models.arch import parse_arch  # noqa: E402
from uninet_mm.utils.safe_load import CheckpointFileError, UnsafeCheckpointError, load_file  # noqa: E402
from uninet_mm.utils.state_dict import strip_prefix  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('src', help='released checkpoint (.pth)')
    p.add_argument('dst', help='output checkpoint')
    p.add_argument('--arch', required=True,
                   help="preset of the checkpoint: b0..b6 (the block numbering depends on it)")
    p.add_argument('--num-classes', type=int, default=None,
                   help='classes of the classifier (default: read from the checkpoint)')
    p.add_argument('--trust-checkpoint', action='store_true',
                   help='load SRC with weights_only=False (only for files you trust: needed '
                        'when the checkpoint pickles objects such as argparse.Namespace)')
    p.add_argument('--force', action='store_true', help='write over an existing DST')
    return p.parse_args(argv)


def load_source(path, trust=False):
    """``torch.load`` of SRC; a corrupt file and an allowlist refusal get different messages
    (only the refusal suggests ``--trust-checkpoint``)."""
    if not osp.isfile(path):
        raise SystemExit(f'convert_official: {path!r} does not exist')
    try:
        return load_file(path, trust=trust)
    except CheckpointFileError as e:
        raise SystemExit(f'convert_official: {e}') from None
    except UnsafeCheckpointError as e:
        raise SystemExit(f'convert_official: {e}\nIf you trust this file, rerun with '
                         f'--trust-checkpoint.') from None


def build_classifier(arch, num_classes):
    """MMPretrain ImageClassifier with UniNet + UniNetClsHead (the layout the output uses)."""
    from mmpretrain.registry import MODELS
    width = parse_arch(arch)['widths'][-1]
    return MODELS.build(dict(  # scoped names: builds under any default scope
        type='mmpretrain.ImageClassifier',
        data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor'),
        backbone=dict(type='UniNet', arch=arch, out_indices=(-1,)),
        head=dict(type='UniNetClsHead', num_classes=num_classes, in_channels=width)))


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            h.update(chunk)
    return h.hexdigest()


def convert(src, dst, arch, num_classes=None, trust=False, log=print, force=False):
    """Convert ``src`` to ``dst`` (never over ``src``; over an existing ``dst`` only with
    ``force``); returns the converted state dict."""
    try:
        check_output(dst, [src], force, 'convert_official')
    except UserInputError as e:
        raise SystemExit(str(e)) from None
    ckpt = load_source(src, trust)
    sd = unwrap(ckpt) if isinstance(ckpt, dict) else ckpt
    if not isinstance(sd, dict) or not is_official(sd):
        keys = list(sd)[:6] if isinstance(sd, dict) else type(sd).__name__
        top = list(ckpt)[:6] if isinstance(ckpt, dict) else None
        raise SystemExit(
            f'convert_official: {src!r} is not a released UniNet checkpoint: its keys look like '
            f'{keys} (top level: {top}). The released layout has flat keys "stem.0.*", '
            f'"blocks.<i>.*", "head.0.*", "classifier.*" (possibly under "model"). Keys such as '
            f'"backbone.stages.0..." are already ours and need no conversion.')
    sd = {k: v for k, v in sd.items() if isinstance(v, torch.Tensor)}
    try:
        converted = convert_official(sd, arch)
    except ValueError as e:
        raise SystemExit(str(e)) from None

    has_head = 'head.fc.weight' in converted
    ckpt_classes = converted['head.fc.weight'].shape[0] if has_head else None
    if num_classes is not None and has_head and num_classes != ckpt_classes:
        raise SystemExit(f'convert_official: --num-classes {num_classes} but the checkpoint '
                         f'classifier has {ckpt_classes} outputs')
    num_classes = ckpt_classes or num_classes or 1000

    # verify: strict load into the model our configs build, and one forward pass
    if has_head:
        model = build_classifier(arch, num_classes)
        model.load_state_dict(converted, strict=True)
        what = f'ImageClassifier(UniNet {arch} + UniNetClsHead {num_classes})'
    else:
        from uninet_mm.models import UniNet
        model = UniNet(arch)
        model.load_state_dict(strip_prefix(converted, 'backbone.'), strict=True)
        what = f'UniNet {arch} backbone (checkpoint without classifier)'
    model.eval()
    size = parse_arch(arch).get('input_size', 224)
    with torch.no_grad():
        x = torch.randn(1, 3, size, size)
        out = model(x, mode='tensor') if has_head else model(x)
    outs = out if isinstance(out, (tuple, list)) else [out]
    if not all(torch.isfinite(o).all() for o in outs):
        raise SystemExit('convert_official: the converted model gives non-finite outputs')

    n_params = sum(v.numel() for k, v in converted.items()
                   if not k.endswith(('running_mean', 'running_var', 'num_batches_tracked')))
    meta = dict(
        arch=arch if isinstance(arch, str) else 'custom',
        num_classes=num_classes if has_head else None,
        source=osp.basename(src),
        source_sha256=sha256(src),
        layout='mmpretrain.ImageClassifier(backbone=UniNet, head=UniNetClsHead)',
        converter='uninet_mm.converters.official.convert_official',
        uninet_mm_version=uninet_mm.__version__,
    )
    os.makedirs(osp.dirname(osp.abspath(dst)), exist_ok=True)
    torch.save(dict(state_dict=converted, meta=meta), dst)
    log(f'converted {len(sd)} released tensors -> {len(converted)} tensors '
        f'({n_params:,} parameters)')
    log(f'verified: strict load into {what}; forward at {size}x{size} finite')
    log(f'saved {dst}  (meta: {meta})')
    return converted


def main(argv=None):
    args = parse_args(argv)
    convert(args.src, args.dst, args.arch, args.num_classes, args.trust_checkpoint,
            force=args.force)


if __name__ == '__main__':
    main()
