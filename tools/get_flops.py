"""Parameters and FLOPs (multiply-adds counted once, attention matmuls included) of a UniNet
preset or of the model of any config file.

    python tools/get_flops.py --arch b0                      # B0 + 1000-class head at 160x160
    python tools/get_flops.py --arch b1 --no-head --shape 800 1216
    python tools/get_flops.py --all-presets                  # B0..B6 beside the released figures
    python tools/get_flops.py configs/mmdet/mask_rcnn_uninet_b1_1x.py --shape 1280 800

``--shape H W`` (MMDetection's convention: first the height); one number means a square.
Convention (uninet_mm/utils/flops.py): conv/linear/matmul and the two attention products as
multiply-adds; BatchNorm (eval) 2, LayerNorm/GroupNorm 5 per element; average pooling and means
1 per input element; activations and element-wise additions not counted.
"""
import argparse
import json
import os.path as osp
import sys
import time

import torch

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from uninet_mm.apis.workdir import refuse_output  # noqa: E402
from uninet_mm.utils.flops import (  # noqa: E402
    RELEASED_FIGURES,
    build_preset,
    config_flops,
    format_count,
    preset_flops,
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('config', nargs='?', help='config file (mmdet / mmseg / mmpretrain model)')
    p.add_argument('--arch', help='UniNet preset (b0..b6) instead of a config')
    p.add_argument('--all-presets', action='store_true',
                   help='B0..B6 at their input sizes, beside the released figures')
    p.add_argument('--shape', type=int, nargs='+', default=None,
                   help='input H W (one value: square); default: the preset size, or 1280 800 '
                        'for a config')
    p.add_argument('--presets', nargs='+', default=None,
                   help='with --all-presets: only these (e.g. b0 b3)')
    p.add_argument('--no-head', action='store_true', help='preset without the classifier head')
    p.add_argument('--num-classes', type=int, default=1000)
    p.add_argument('--by-op', action='store_true', help='print the count of every op type')
    p.add_argument('--device', default='meta', choices=['meta', 'cpu'],
                   help='presets: count on the meta device (shapes only, fast; default) or '
                        'with real CPU tensors (same count)')
    p.add_argument('--threads', type=int, default=None, help='torch threads')
    p.add_argument('--json', help='also write the results to this JSON file')
    p.add_argument('--force', action='store_true', help='write over an existing --json file')
    args = p.parse_args(argv)
    if sum(bool(x) for x in (args.config, args.arch, args.all_presets)) != 1:
        p.error('give exactly one of: a config file, --arch PRESET, --all-presets')
    if args.shape is not None and len(args.shape) not in (1, 2):
        p.error('--shape takes H W or one size')
    if args.shape is not None and min(args.shape) < 1:
        p.error(f'--shape {" ".join(map(str, args.shape))}: sizes must be >= 1 pixel '
                f'(e.g. --shape 224 or --shape 800 1216)')
    if args.presets:
        unknown = [a for a in args.presets if a.lower() not in RELEASED_FIGURES]
        if unknown:
            p.error(f'--presets: unknown preset(s) {unknown}; valid: {list(RELEASED_FIGURES)}')
        if not args.all_presets:
            p.error('--presets selects rows of --all-presets; pass --all-presets too')
        args.presets = [a.lower() for a in args.presets]
    if args.json:
        refuse_output(p, args.json, force=args.force, tool='get_flops')
    return args


def _hw(shape, default):
    if shape is None:
        return default
    return (shape[0], shape[0]) if len(shape) == 1 else tuple(shape)


def preset_row(arch, shape=None, with_head=True, num_classes=1000, device='meta', by_op=False):
    _, size = build_preset(arch, with_head=False, device='meta')
    h, w = _hw(shape, (size, size))
    t = time.time()
    res = preset_flops(arch, (h, w), with_head, num_classes, device=device, by_op=by_op)
    row = dict(arch=arch, input_shape=(1, 3, h, w), head=with_head, flops=res[0],
               params=res[1], seconds=round(time.time() - t, 2))
    if by_op:
        row['by_op'] = res[2]
    return row


def all_presets(num_classes=1000, device='meta', presets=None, log=print):
    rows = []
    log(f'{"preset":<7}{"input":>6}{"params (head)":>15}{"released":>11}{"params (no head)":>18}'
        f'{"released":>11}{"GFLOPs":>9}{"released":>10}{"diff":>9}')
    for arch, ref in RELEASED_FIGURES.items():
        if presets and arch not in presets:
            continue
        with_head = preset_row(arch, num_classes=num_classes, device=device)
        backbone, _ = build_preset(arch, with_head=False, device='meta')
        params_nohead = sum(p.numel() for p in backbone.parameters())
        diff = with_head['flops'] / ref['flops'] - 1
        row = dict(with_head, params_nohead=params_nohead, released_flops=ref['flops'],
                   released_params=ref['params_head'],
                   released_params_nohead=ref['params'], flops_diff=diff)
        rows.append(row)
        s = ref['input_size']
        log(f'{arch.upper():<7}{s:>6}{with_head["params"]:>15,}{ref["params_head"] / 1e3:>10,.0f}k'
            f'{params_nohead:>18,}{ref["params"] / 1e6:>10.3f}M'
            f'{with_head["flops"] / 1e9:>9.4f}{ref["flops"] / 1e9:>10.3f}{diff:>+9.2%}')
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.all_presets:
        result = all_presets(args.num_classes, args.device, args.presets)
    elif args.arch:
        result = preset_row(args.arch, args.shape, not args.no_head, args.num_classes,
                            args.device, by_op=args.by_op)
        h, w = result['input_shape'][2:]
        print(f'UniNet {args.arch.upper()} {"+ head" if not args.no_head else "backbone"} at '
              f'{h}x{w}: params {result["params"]:,} ({format_count(result["params"])}), '
              f'FLOPs {format_count(result["flops"])} (multiply-adds)')
        if args.by_op:
            for k, v in sorted(result['by_op'].items(), key=lambda kv: -kv[1]):
                print(f'  {k:<55}{format_count(v)}')
    else:
        h, w = _hw(args.shape, (1280, 800))
        result = config_flops(args.config, (h, w), by_op=args.by_op)
        print(f'{args.config}\n  library {result["library"]}, input 1x3x{h}x{w}, counted: '
              f'{result["what"]}\n  params {result["params"]:,} '
              f'({format_count(result["params"])}), FLOPs {format_count(result["flops"])} '
              f'(multiply-adds)')
        if args.by_op:
            for k, v in sorted(result['by_op'].items(), key=lambda kv: -kv[1]):
                print(f'  {k:<55}{format_count(v)}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1, default=str)
    return result


if __name__ == '__main__':
    main()
