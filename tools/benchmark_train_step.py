"""Time and peak memory of one whole detector training step -- figures only, no pass/fail.

    python tools/benchmark_train_step.py configs/mmdet/mask_rcnn_uninet_b3_3x.py \\
        configs/mmdet/mask_rcnn_swin_t_1x.py --out docs/bench/mask_rcnn_step.json

For every config, in its own subprocess, on the same synthetic batch (``--shape H W`` images,
random pixels, ``--boxes`` ground-truth boxes with box-shaped masks, fixed seed): the model of the
config (pretrained weights not loaded: the step's cost does not depend on them), its optimiser
wrapper, and ``model.train_step(data, optim_wrapper)`` -- what MMEngine's training loop calls: the
data preprocessor (normalise, pad), backbone, neck, RPN and RoI heads with their target
assignment and sampling, the losses, backward and the optimiser step. ``--warmup`` untimed then
``--iters`` timed steps; the best step is reported beside the mean. Peak memory is the peak
resident set size of the process during the steps (warm-up included), above what it held with
the model built
(``uninet_mm.utils.memory``). Each worker applies ``--malloc`` as ``tools/train.py`` does (its
default: keep freed memory). The first config is the reference of the ``x`` column.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)


def synthetic_batch(shape, boxes, num_classes, seed=0):
    """``{'inputs': [uint8 image], 'data_samples': [DetDataSample]}`` as the data loader packs
    it: ``boxes`` random ground-truth boxes with labels and box-shaped bitmap masks."""
    import numpy as np
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    h, w = shape
    g = torch.Generator().manual_seed(seed)
    image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
    xy = torch.rand(boxes, 2, generator=g) * torch.tensor([w * 0.8, h * 0.8])
    wh = (0.05 + torch.rand(boxes, 2, generator=g) * 0.3) * torch.tensor([w, h])
    bboxes = torch.cat([xy, torch.minimum(xy + wh, torch.tensor([w - 1., h - 1.]))], 1)
    masks = np.zeros((boxes, h, w), dtype=np.uint8)
    for m, (x0, y0, x1, y1) in zip(masks, bboxes.round().long().tolist()):
        m[y0:y1 + 1, x0:x1 + 1] = 1
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w),
                                         scale_factor=(1., 1.), flip=False))
    sample.gt_instances = InstanceData(
        bboxes=bboxes, labels=torch.randint(0, num_classes, (boxes,), generator=g),
        masks=BitmapMasks(masks, h, w))
    return dict(inputs=[image], data_samples=[sample])


def run_one(config, args):
    """Build ``config``'s model and time its training step in this process."""
    import torch

    from uninet_mm.utils.malloc import apply_malloc
    malloc_note = apply_malloc(args.malloc)
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    from uninet_mm.utils.memory import RSSSampler, peak_rss_bytes, reset_peak_rss, rss_bytes

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = Config.fromfile(config)  # imports the config's custom_imports
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.init_cfg = None  # no weights read: the step costs the same
    model = MODELS.build(cfg.model).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    num_classes = cfg.model.roi_head.bbox_head.num_classes
    data = synthetic_batch(args.shape, args.boxes, num_classes)
    reset_peak_rss()  # from here: what the steps add to the built model (warm-up included,
    base, sampler = rss_bytes(), RSSSampler().start()  # a kept heap holds its first peak)
    for _ in range(args.warmup):
        model.train_step(data, optim_wrapper)
    times, losses = [], None
    for _ in range(args.iters):
        t0 = time.perf_counter()
        losses = model.train_step(data, optim_wrapper)
        times.append(time.perf_counter() - t0)
    peak = max(peak_rss_bytes(), sampler.stop()) - base
    return dict(config=config, seconds_per_step=times, best_s=min(times),
                mean_s=sum(times) / len(times), peak_mem_mb=peak / 2**20,
                loss=sum(float(torch.as_tensor(v).detach())
                         for k, v in losses.items() if 'loss' in k),
                params=sum(p.numel() for p in model.parameters()),
                malloc=args.malloc, malloc_note=malloc_note)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('configs', nargs='+', help='MMDetection configs (the first is the reference)')
    p.add_argument('--shape', type=int, nargs=2, default=[800, 1216], metavar=('H', 'W'))
    p.add_argument('--boxes', type=int, default=8, help='ground-truth instances in the image')
    p.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    p.add_argument('--iters', type=int, default=3, help='timed steps')
    p.add_argument('--warmup', type=int, default=1, help='untimed steps first')
    p.add_argument('--malloc', choices=['glibc', 'keep'], default='keep',
                   help="allocator setting of every worker, as tools/train.py's --malloc")
    p.add_argument('--out', help='write the results as JSON here')
    p.add_argument('--force', action='store_true', help='write over an existing --out file')
    p.add_argument('--worker', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            p.error(f'config {config!r} not found; pass a path such as '
                    'configs/mmdet/mask_rcnn_uninet_b3_3x.py')
    if args.out and not args.worker:
        from uninet_mm.apis.workdir import refuse_output
        refuse_output(p, args.out, args.configs, args.force, 'benchmark_train_step')
    if min(args.iters, args.boxes, *args.shape) < 1 or args.warmup < 0:
        p.error('--iters, --boxes and --shape must be >= 1 and --warmup >= 0')
    return args


def run_subprocess(config, args):
    argv = [sys.executable, osp.abspath(__file__), config, '--worker', config,
            '--shape', *map(str, args.shape), '--boxes', str(args.boxes),
            '--threads', str(args.threads), '--iters', str(args.iters),
            '--warmup', str(args.warmup), '--malloc', args.malloc]
    from uninet_mm.utils.worker import run_worker
    result = run_worker(argv, cwd=ROOT)
    result.setdefault('config', config)
    return result


def format_table(results):
    ref = next((r for r in results if 'best_s' in r), None)
    lines = ['| config | s / step (best) | mean | x first | peak MB | params (M) |',
             '| --- | --- | --- | --- | --- | --- |']
    for r in results:
        if 'error' in r:
            lines.append(f'| {r["config"]} | {r["error"]} | | | | |')
            continue
        lines.append(f'| {osp.basename(r["config"])} | {r["best_s"]:.2f} | {r["mean_s"]:.2f} | '
                     f'{ref["best_s"] / r["best_s"]:.2f}x | {r["peak_mem_mb"]:.0f} | '
                     f'{r["params"] / 1e6:.1f} |')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        from uninet_mm.utils.worker import print_result
        print_result(run_one(args.worker, args))
        return
    results = [run_subprocess(c, args) for c in args.configs]
    print(format_table(results))
    if args.out:
        os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
        with open(args.out, 'w') as f:
            json.dump(dict(shape=args.shape, threads=args.threads, iters=args.iters,
                           warmup=args.warmup, malloc=args.malloc, results=results), f, indent=1)


if __name__ == '__main__':
    main()
