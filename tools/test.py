"""Test (and evaluate) a checkpoint of any MMDetection, MMSegmentation or MMPretrain config with
uninet_mm registered. The library is picked from the config's ``default_scope``::

    python tools/test.py configs/mmdet/mask_rcnn_uninet_b3_3x.py work_dirs/.../epoch_36.pth
    python tools/test.py CONFIG CKPT --work-dir DIR --out results.pkl --show-dir vis \
        --fuse-conv-bn --cfg-options test_dataloader.batch_size=4
    bash tools/dist_test.sh CONFIG CKPT 8 [flags]

``--out``: detection and classification dump the predictions to a ``.pkl`` file; segmentation
writes the predicted label maps into that directory (as MMSegmentation's test script does).
``--show-dir``: painted predictions go there (under the run's timestamped folder, as upstream).
``--fuse-conv-bn``: fold every BatchNorm into the convolution next to it once the checkpoint
is loaded (the ``fuse_conv_bn()`` of modules that define one, e.g. the UniNet backbone, then
``mmcv.cnn.fuse_conv_bn`` for the rest of the model).
``--deploy``: as ``--fuse-conv-bn``, and modules with an inference form take it (the UniNet
backbone's ``switch_to_deploy()``: deployed modules on fused oneDNN kernels on CPU; same
outputs). Both through ``uninet_mm.engine.InferenceFormHook``. A checkpoint already converted by
``tools/model_converters/reparameterize_model.py`` runs with
``--cfg-options model.backbone.deploy=True``.
"""
import argparse
import os
import os.path as osp
import sys
import warnings
from copy import deepcopy

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmengine.config import Config, ConfigDict  # noqa: E402
from mmengine.registry import RUNNERS  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import uninet_mm  # noqa: E402,F401  (registers the models; safe checkpoint loading)
from uninet_mm.apis.workdir import UserInputError, check_output  # noqa: E402
from uninet_mm.engine import InferenceFormHook, prepare_cpu_distributed  # noqa: E402,F401 (hook: tests)
from uninet_mm.engine.guards import add_guard_hooks  # noqa: E402
from uninet_mm.utils.config import CfgOptionsAction as DictAction  # noqa: E402
from uninet_mm.utils.config import library_of as _library_of  # noqa: E402


def library_of(cfg):
    """The library of ``cfg`` (its ``default_scope``); a clear error otherwise."""
    return _library_of(cfg, 'tools/test.py')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Test (and evaluate) a detector, segmentor or classifier with UniNet '
        'registered')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--work-dir', help='the dir to save the evaluation metrics')
    parser.add_argument('--out', help='dump predictions: a .pkl file (detection, '
                        'classification) or a directory of label maps (segmentation)')
    parser.add_argument('--force', action='store_true', help='write over an existing --out file')
    parser.add_argument('--show', action='store_true', help='show the predictions')
    parser.add_argument('--show-dir', help='save painted predictions into this directory')
    parser.add_argument('--wait-time', type=float, default=2, help='--show interval (s)')
    parser.add_argument('--fuse-conv-bn', action='store_true',
                        help='fold BatchNorm into the adjacent convolutions (faster inference)')
    parser.add_argument('--deploy', action='store_true',
                        help='--fuse-conv-bn, and the inference form of modules that have one '
                             '(UniNet: switch_to_deploy(), fused oneDNN kernels on CPU)')
    parser.add_argument('--tta', action='store_true', help='test-time augmentation')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy pairs merged into it')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_visualization(cfg, args, library):
    hooks = cfg.default_hooks
    if 'visualization' not in hooks:
        raise RuntimeError('--show/--show-dir need default_hooks.visualization in the config')
    vis = hooks['visualization']
    if library == 'mmpretrain':
        vis.update(enable=True)
        if args.show_dir:
            vis['out_dir'] = args.show_dir
        if args.show:
            vis.update(show=True, wait_time=args.wait_time)
        return cfg
    vis['draw'] = True
    if args.show:
        vis.update(show=True, wait_time=args.wait_time)
    if args.show_dir:
        if library == 'mmdet':
            vis['test_out_dir'] = args.show_dir
        else:
            cfg.visualizer['save_dir'] = args.show_dir
    return cfg


def setup_tta(cfg, library):
    if library == 'mmdet' and 'tta_model' not in cfg:
        warnings.warn('no tta_model in the config: using flip TTA with NMS')
        cfg.tta_model = dict(type='DetTTAModel', tta_cfg=dict(
            nms=dict(type='nms', iou_threshold=0.5), max_per_img=100))
    if library == 'mmdet' and 'tta_pipeline' not in cfg:
        data_cfg = cfg.test_dataloader.dataset
        while 'dataset' in data_cfg:
            data_cfg = data_cfg['dataset']
        cfg.tta_pipeline = deepcopy(data_cfg.pipeline)
        cfg.tta_pipeline[-1] = dict(type='TestTimeAug', transforms=[
            [dict(type='RandomFlip', prob=1.), dict(type='RandomFlip', prob=0.)],
            [dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape',
                                                  'img_shape', 'scale_factor', 'flip',
                                                  'flip_direction'))]])
    if 'tta_model' not in cfg or 'tta_pipeline' not in cfg:
        raise RuntimeError('--tta needs tta_model and tta_pipeline in the config')
    cfg.model = ConfigDict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
    return cfg


def main(argv=None):
    args = parse_args(argv)
    cfg = Config.fromfile(args.config)
    library = library_of(cfg)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    if args.out is not None and library != 'mmseg':
        check_output(args.out, [args.checkpoint], args.force, 'tools/test.py --out')
    add_guard_hooks(cfg, 'tools/test.py', check_model=True, stop_non_finite=False)
    cfg = prepare_cpu_distributed(cfg)  # gloo and CPU DDP when several processes have no GPU
    if library == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()
    if args.show or args.show_dir:
        cfg = setup_visualization(cfg, args, library)
    if args.tta:
        cfg = setup_tta(cfg, library)
    if args.out is not None and library == 'mmseg':
        cfg.test_evaluator['output_dir'] = args.out
        cfg.test_evaluator['keep_results'] = True
    if library == 'mmpretrain':
        for field in ('test_dataloader', ):
            loader = ConfigDict(pin_memory=True, collate_fn=dict(type='default_collate'))
            loader.update(cfg[field])
            cfg[field] = loader

    runner = Runner.from_cfg(cfg) if 'runner_type' not in cfg else RUNNERS.build(cfg)
    if args.fuse_conv_bn or args.deploy:
        runner.register_hook(dict(type='InferenceFormHook', deploy=args.deploy))
    if args.out is not None and library != 'mmseg':
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file for {library}, got {args.out!r}')
        if library == 'mmdet':
            from mmdet.evaluation import DumpDetResults
            runner.test_evaluator.metrics.append(DumpDetResults(out_file_path=args.out))
        else:
            from mmengine.evaluator import DumpResults
            runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    metrics = runner.test()
    return metrics


if __name__ == '__main__':
    try:
        main()
    except UserInputError as e:
        raise SystemExit(f'error: {e}') from None
