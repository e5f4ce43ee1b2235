"""Train any config of MMDetection, MMSegmentation or MMPretrain with uninet_mm registered.

The library is picked from the config's ``default_scope`` (``mmdet`` / ``mmseg`` /
``mmpretrain``); the flags are those of the libraries' own train scripts::

    python tools/train.py configs/mmdet/mask_rcnn_uninet_b3_3x.py
    python tools/train.py CONFIG --work-dir DIR --resume [CKPT] --amp --auto-scale-lr \
        --cfg-options model.backbone.init_cfg=None train_dataloader.batch_size=4
    bash tools/dist_train.sh CONFIG 8 [flags]            # torchrun, one node, 8 GPUs
    python tools/train.py CONFIG --malloc glibc          # glibc's allocator default

A training process is long-lived, so by default it keeps freed memory in its heap
(``--malloc keep``, ``uninet_mm.utils.malloc``): glibc would otherwise unmap every freed
activation and page it in again at the next iteration (docs/performance.md, Training).
``UNINET_MALLOC=glibc`` or ``--malloc glibc`` opts out; a ``GLIBC_TUNABLES`` with
``glibc.malloc`` options in the environment is left in force.

``uninet_mm`` is imported before the config is read, so the UniNet models are registered and
MMEngine checkpoints load under torch's ``weights_only`` default even for configs without
``custom_imports``.
"""
import argparse
import logging
import os
import os.path as osp
import sys
from copy import deepcopy

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.logging import print_log  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import uninet_mm  # noqa: E402,F401  (registers the models; safe checkpoint loading)
from uninet_mm.apis.workdir import UserInputError, check_work_dir  # noqa: E402
from uninet_mm.engine import prepare_cpu_distributed  # noqa: E402
from uninet_mm.engine.guards import NonFiniteLossError, add_guard_hooks  # noqa: E402
from uninet_mm.utils.config import CfgOptionsAction as DictAction  # noqa: E402
from uninet_mm.utils.config import library_of as _library_of  # noqa: E402
from uninet_mm.utils.malloc import MALLOC_CHOICES, apply_malloc, default_malloc  # noqa: E402


def library_of(cfg):
    """The library of ``cfg`` (its ``default_scope``); a clear error otherwise."""
    return _library_of(cfg, 'tools/train.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Train a detector, segmentor or classifier (MMDetection / MMSegmentation / '
        'MMPretrain config) with UniNet registered')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint; without a path, from the latest checkpoint in the '
        'work dir')
    parser.add_argument('--overwrite', action='store_true',
                        help='start over in a work dir that holds checkpoints (they are '
                        'written over); without it or --resume, such a work dir is refused')
    parser.add_argument('--amp', action='store_true',
                        help='enable automatic mixed precision training')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the lr by (actual batch size) / auto_scale_lr.base_batch_size')
    parser.add_argument('--no-validate', action='store_true',
                        help='do not evaluate checkpoints during training')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy pairs merged into it, e.g. '
        'model.backbone.init_cfg=None or key="[a,b]"; no white space inside a pair')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument(
        '--malloc', choices=MALLOC_CHOICES, default=None,
        help="CPU allocator: 'keep' freed memory in the process (default; no page faults "
        "per iteration) or glibc's default; the default comes from $UNINET_MALLOC if set")
    # torch.distributed.launch passes --local-rank (torch >= 2.0) or --local_rank
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if args.malloc is None:
        try:
            args.malloc = default_malloc()
        except ValueError as e:
            parser.error(str(e))
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def merge_args(cfg, args):
    """Apply the command line to the config, as the library's own train script does."""
    library = library_of(cfg)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    # work_dir: command line > config > ./work_dirs/<config name>
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.amp:
        if cfg.optim_wrapper.get('type', 'OptimWrapper') == 'AmpOptimWrapper':
            print_log('AMP training is already enabled in the config.', logger='current',
                      level=logging.WARNING)
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.auto_scale_lr:
        if 'base_batch_size' not in cfg.get('auto_scale_lr', {}):
            raise RuntimeError(f'{args.config}: --auto-scale-lr needs '
                               f'auto_scale_lr = dict(base_batch_size=...) in the config')
        cfg.auto_scale_lr.enable = True

    # --resume: a path resumes from it, no path from the latest checkpoint of the work dir
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if library == 'mmpretrain':
        # MMPretrain's train script defaults (its models expect default_collate batches)
        defaults = ConfigDict(pin_memory=True, persistent_workers=True,
                              collate_fn=dict(type='default_collate'))
        for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            if cfg.get(field, None) is not None:
                loader = deepcopy(defaults)
                loader.update(cfg[field])
                cfg[field] = loader
    return cfg


def main(argv=None):
    args = parse_args(argv)
    malloc_note = apply_malloc(args.malloc)  # before the large allocations
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)
    check_work_dir(cfg.work_dir, args.resume, args.overwrite)  # nothing written is lost
    add_guard_hooks(cfg, 'tools/train.py')  # stop on NaN loss; model recorded in checkpoints
    cfg = prepare_cpu_distributed(cfg)  # gloo and CPU DDP when several processes have no GPU
    if library_of(cfg) == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    print_log(malloc_note, logger='current')
    runner.train()
    return runner


if __name__ == '__main__':
    try:
        main()
    except (UserInputError, NonFiniteLossError) as e:
        raise SystemExit(f'error: {e}') from None
