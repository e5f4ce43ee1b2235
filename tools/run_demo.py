"""The embedded demo: the whole detection pipeline on data generated on the spot, on the CPU.

1. writes the demo data under ``data/demo/`` if it is missing (seeded, see
   ``uninet_mm/datasets/demo_shapes.py``);
2. trains Mask R-CNN with a small UniNet from scratch (``configs/mmdet/mask_rcnn_uninet_demo.py``,
   through ``tools/train.py``; the Runner logs progress with an ETA);
3. evaluates the checkpoint on the held-out split with pycocotools (``tools/test.py``: bbox and
   segm AP);
4. draws the predictions on held-out images (``tools/image_demo.py``) and prints where the
   picture is and the metrics reached.

``--seg`` does the same afterwards for UperNet (``configs/mmseg/upernet_uninet_demo.py``, mIoU
with MMSegmentation's IoUMetric); ``--seg-only`` skips detection. Re-running reuses the
finished checkpoints of ``--work-dir`` unless ``--retrain``.
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

DET_CONFIG = 'configs/mmdet/mask_rcnn_uninet_demo.py'
SEG_CONFIG = 'configs/mmseg/upernet_uninet_demo.py'
# held-out images drawn into the demo pictures (scenes with several objects and occlusion)
DET_IMAGES = ['data/demo/coco/val/000001.jpg', 'data/demo/coco/val/000007.jpg',
              'data/demo/coco/val/000010.jpg', 'data/demo/coco/val/000003.jpg']
SEG_IMAGES = ['data/demo/ade/images/validation/000000.jpg',
              'data/demo/ade/images/validation/000001.jpg',
              'data/demo/ade/images/validation/000002.jpg',
              'data/demo/ade/images/validation/000003.jpg']


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seg', action='store_true', help='also run the segmentation demo')
    parser.add_argument('--seg-only', action='store_true', help='only the segmentation demo')
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='checkpoints and logs (det/ and seg/ inside)')
    parser.add_argument('--out-dir', default='outputs/demo', help='pictures and metrics.json')
    parser.add_argument('--threads', type=int, default=1,
                        help='torch CPU threads (1 is fastest on a busy 2-core machine; '
                        'the data loader uses another core)')
    parser.add_argument('--retrain', action='store_true',
                        help='train again even if the work dir has a finished checkpoint')
    parser.add_argument('--data-only', action='store_true', help='only write the demo data')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='extra overrides passed to train.py/test.py (key=value)')
    return parser.parse_args(argv)


def _checkpoint(work_dir):
    """Path of the final checkpoint written by a finished training run, or None."""
    marker = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(marker):
        with open(marker) as f:
            path = f.read().strip()
        done = osp.join(work_dir, 'demo_done')
        if osp.isfile(path) and osp.isfile(done):
            with open(done) as f:
                if f.read().strip() == path:
                    return path
    return None


def load_tool(name):
    """``tools/<name>.py`` as a module (:func:`uninet_mm.apis.load_tool`)."""
    from uninet_mm.apis import load_tool as _load_tool
    return _load_tool(name)


def run_one(kind, config, images, args):
    train_tool, test_tool = load_tool('train'), load_tool('test')
    draw = load_tool('image_demo').run

    work_dir = osp.join(args.work_dir, kind)
    timing = {}
    ckpt = None if args.retrain else _checkpoint(work_dir)
    if ckpt is None:
        print(f'\n==> [{kind}] training {config} from scratch (logs: {work_dir})', flush=True)
        t = time.time()
        # this run decided to start over (--retrain, or no finished run in the work dir)
        train_argv = [config, '--work-dir', work_dir, '--no-validate', '--overwrite']
        if args.cfg_options:
            train_argv += ['--cfg-options', *args.cfg_options]
        train_tool.main(train_argv)
        timing['train_s'] = round(time.time() - t, 1)
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            ckpt = f.read().strip()
        with open(osp.join(work_dir, 'demo_done'), 'w') as f:
            f.write(ckpt)
    else:
        print(f'\n==> [{kind}] reusing {ckpt} (--retrain to train again)', flush=True)

    print(f'\n==> [{kind}] evaluating {ckpt} on the held-out split', flush=True)
    t = time.time()
    test_argv = [config, ckpt, '--work-dir', work_dir]
    if args.cfg_options:
        test_argv += ['--cfg-options', *args.cfg_options]
    metrics = test_tool.main(test_argv)
    timing['test_s'] = round(time.time() - t, 1)

    picture = osp.join(args.out_dir, f'{kind}_demo.png')
    draw([p for p in images if osp.isfile(p)], config, ckpt, picture, device='cpu',
         score_thr=0.5, force=True)  # the demo's own picture, redrawn each run
    return dict(config=config, checkpoint=ckpt, picture=picture,
                metrics={k: float(v) for k, v in metrics.items()}, **timing)


def summary_lines(kind, result):
    m = result['metrics']
    if kind == 'det':
        text = (f"bbox AP {m.get('coco/bbox_mAP', float('nan')):.3f}, "
                f"bbox AP50 {m.get('coco/bbox_mAP_50', float('nan')):.3f}, "
                f"segm AP {m.get('coco/segm_mAP', float('nan')):.3f}, "
                f"segm AP50 {m.get('coco/segm_mAP_50', float('nan')):.3f}")
    else:
        text = (f"mIoU {m.get('mIoU', float('nan')) / 100:.3f}, "
                f"mAcc {m.get('mAcc', float('nan')) / 100:.3f}, "
                f"aAcc {m.get('aAcc', float('nan')) / 100:.3f}")
    took = ''
    if 'train_s' in result:
        took = f" (trained in {result['train_s'] / 60:.1f} min)"
    return [f'[{kind}] held-out metrics: {text}{took}',
            f'[{kind}] picture: {osp.abspath(result["picture"])}']


def main(argv=None):
    args = parse_args(argv)
    for name in ('work_dir', 'out_dir'):
        setattr(args, name, osp.abspath(getattr(args, name)))
    os.chdir(ROOT)  # the demo configs name data/demo/... relative to the repository
    os.environ.setdefault('OMP_NUM_THREADS', str(args.threads))
    import torch
    torch.set_num_threads(args.threads)

    from uninet_mm.datasets.demo_shapes import ensure_demo_data
    t = time.time()
    ensure_demo_data('data/demo')
    print(f'==> demo data ready under {osp.join(ROOT, "data/demo")} ({time.time() - t:.0f} s)',
          flush=True)
    if args.data_only:
        return {}

    results = {}
    kinds = [] if args.seg_only else ['det']
    if args.seg or args.seg_only:
        kinds.append('seg')
    for kind in kinds:
        config, images = (DET_CONFIG, DET_IMAGES) if kind == 'det' else (SEG_CONFIG, SEG_IMAGES)
        results[kind] = run_one(kind, config, images, args)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(osp.join(args.out_dir, 'metrics.json'), 'w') as f:
        json.dump(results, f, indent=1)
    print('\n' + '=' * 78)
    for kind, result in results.items():
        print('\n'.join(summary_lines(kind, result)))
    print(f'metrics and timings: {osp.join(args.out_dir, "metrics.json")}')
    print('=' * 78)
    return results


if __name__ == '__main__':
    main()
