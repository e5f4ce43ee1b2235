"""tools/train.py, tools/test.py, tools/image_demo.py and tools/run_demo.py end to end on tiny
demo data (real pycocotools bbox/segm AP and mmseg mIoU, checkpoints that resume), and the
upstream MMDetection train script running one of our configs with only ``custom_imports``."""
import os
import os.path as osp
import subprocess
import sys

import pytest

from uninet_mm.apis import load_tool
from uninet_mm.datasets import demo_shapes as ds

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DET_CONFIG = osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_demo.py')
SEG_CONFIG = osp.join(ROOT, 'configs/mmseg/upernet_uninet_demo.py')


def tool(name):
    return load_tool(name)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('demo'))
    ds.ensure_demo_data(root, seed=5, img_size=96, num_train=4, num_val=2, seg_img_size=64,
                        seg_num_train=4, seg_num_val=2)
    return root


def loaders(**dataset):
    out = []
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        out += [f'{loader}.num_workers=0', f'{loader}.persistent_workers=False']
        out += [f'{loader}.dataset.{k}={v}' for k, v in dataset.items()]
    return out


def det_options(root, epochs=1):
    ann = f'{root}/coco/annotations/instances_val.json'
    return loaders(data_root=f'{root}/coco/') + [
        'train_dataloader.batch_size=2', 'val_dataloader.batch_size=2',
        'test_dataloader.batch_size=2', f'train_cfg.max_epochs={epochs}',
        'train_cfg.val_interval=1', f'val_evaluator.ann_file={ann}',
        f'test_evaluator.ann_file={ann}', 'default_hooks.logger.interval=1',
        # an almost untrained detector: keep every box so that AP is really computed
        'model.test_cfg.rcnn.score_thr=0.0']


def seg_options(root, iters=2):
    return loaders(data_root=f'{root}/ade') + [
        'train_dataloader.batch_size=2', f'train_cfg.max_iters={iters}',
        f'train_cfg.val_interval={iters}', 'default_hooks.logger.interval=1',
        f'default_hooks.checkpoint.interval={iters}']


def check_det_metrics(metrics, dump, root):
    """bbox and segm AP of ``tools/test.py`` equal pycocotools' on the ``--out`` dump (written
    by this process a moment ago), with our own box conversion; every image has predictions."""
    import mmengine
    from pycocotools import mask as mask_utils
    from test_metrics import coco_ap_by_pycocotools, coco_cat_ids, det_results_of
    ann_file = f'{root}/coco/annotations/instances_val.json'
    preds = mmengine.load(dump)
    assert len(preds) == 2 and all(len(p['pred_instances']['scores']) for p in preds)
    cat_ids = coco_cat_ids(ann_file, ds.CLASSES)
    insts = [p['pred_instances'] for p in preds]
    boxes = det_results_of(insts, [p['img_id'] for p in preds], cat_ids)
    assert metrics['coco/bbox_mAP'] == pytest.approx(
        coco_ap_by_pycocotools(ann_file, boxes), abs=6e-4)
    segms = []
    for box, rle in zip(boxes, [m for inst in insts for m in inst['masks']]):
        segms.append(dict(box, segmentation=rle, area=float(mask_utils.area(rle))))
    assert metrics['coco/segm_mAP'] == pytest.approx(
        coco_ap_by_pycocotools(ann_file, segms, 'segm'), abs=6e-4)


def check_seg_metrics(metrics, pred_dir, root):
    """mIoU of ``tools/test.py`` equals the hand count on its ``--out`` label maps against the
    annotation files (ADE20K convention: reduce_zero_label, file value v is class v - 1)."""
    import mmcv
    from mmengine.config import Config
    from test_metrics import miou_by_hand
    classes = Config.fromfile(SEG_CONFIG).classes
    pairs = []
    for name in sorted(os.listdir(pred_dir)):
        pred = mmcv.imread(osp.join(pred_dir, name), flag='unchanged').astype(int) - 1
        gt = mmcv.imread(osp.join(root, 'ade/annotations/validation', name),
                         flag='unchanged').astype(int) - 1
        gt[gt < 0] = 255
        pairs.append((pred, gt))
    assert len(pairs) == 2
    assert metrics['mIoU'] == pytest.approx(miou_by_hand(pairs, len(classes)), abs=6e-3)


def test_det_train_test_resume_and_draw(data, tmp_path):
    work = str(tmp_path / 'det')
    runner = tool('train').main([DET_CONFIG, '--work-dir', work,
                                 '--cfg-options', *det_options(data)])
    assert runner.iter == 2 and osp.isfile(osp.join(work, 'epoch_1.pth'))

    metrics = tool('test').main([
        DET_CONFIG, osp.join(work, 'epoch_1.pth'), '--work-dir', work,
        '--out', str(tmp_path / 'det.pkl'), '--show-dir', 'vis', '--fuse-conv-bn',
        '--cfg-options', *det_options(data)])
    for key in ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'):
        assert key in metrics
    # the numbers are those of the dumped predictions, evaluated by pycocotools directly
    check_det_metrics(metrics, str(tmp_path / 'det.pkl'), data)
    import glob
    assert len(glob.glob(osp.join(work, '*', 'vis', '*.jpg'))) == 2

    # --resume (latest checkpoint of the work dir) continues at epoch 1, iteration 2
    runner = tool('train').main([DET_CONFIG, '--work-dir', work, '--resume', '--cfg-options',
                                 *det_options(data, epochs=2)])
    assert runner.epoch == 2 and runner.iter == 4
    assert osp.isfile(osp.join(work, 'epoch_2.pth'))

    out = tool('image_demo').run(f'{data}/coco/val/000000.jpg,{data}/coco/val/000001.jpg',
                                 DET_CONFIG, osp.join(work, 'epoch_2.pth'),
                                 str(tmp_path / 'det.png'), score_thr=0.0)
    import cv2
    img = cv2.imread(out)
    assert img.shape[0] >= 96 * 5 and img.shape[1] > 2 * img.shape[0]  # two enlarged tiles


def test_seg_train_test_resume_and_draw(data, tmp_path):
    work = str(tmp_path / 'seg')
    runner = tool('train').main([SEG_CONFIG, '--work-dir', work,
                                 '--cfg-options', *seg_options(data)])
    assert runner.iter == 2 and osp.isfile(osp.join(work, 'iter_2.pth'))
    metrics = tool('test').main([SEG_CONFIG, osp.join(work, 'iter_2.pth'), '--work-dir', work,
                                 '--out', str(tmp_path / 'pred'),
                                 '--cfg-options', *seg_options(data)])
    assert {'aAcc', 'mIoU', 'mAcc'} <= set(metrics)
    assert len(os.listdir(tmp_path / 'pred')) == 2
    check_seg_metrics(metrics, str(tmp_path / 'pred'), data)
    deployed = tool('test').main([SEG_CONFIG, osp.join(work, 'iter_2.pth'), '--work-dir', work,
                                  '--deploy', '--cfg-options', *seg_options(data)])
    assert abs(deployed['aAcc'] - metrics['aAcc']) < 0.1  # same predictions, up to fp ties
    runner = tool('train').main([SEG_CONFIG, '--work-dir', work, '--resume',
                                 osp.join(work, 'iter_2.pth'), '--cfg-options',
                                 *seg_options(data, iters=4)])
    assert runner.iter == 4 and osp.isfile(osp.join(work, 'iter_4.pth'))
    out = tool('image_demo').run(f'{data}/ade/images/validation/000000.jpg', SEG_CONFIG,
                                 osp.join(work, 'iter_4.pth'), str(tmp_path / 'seg.png'))
    assert osp.getsize(out) > 0


def test_inference_form_hook_deploys_backbone_and_keeps_predictions():
    """tools/test.py --deploy: the UniNet backbone takes its inference form, the neck and
    heads get mmcv's Conv+BN fusion, and the detector's boxes, scores and masks stay the same
    (through RoIAlign, which reads NCHW memory: the deployed backbone must hand it that)."""
    from types import SimpleNamespace

    import torch
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    cfg = Config.fromfile(DET_CONFIG)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # untrained: keep every box
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(cfg.model).eval()
    for m in model.backbone.modules():  # token branches that matter (layer scale 1e-6 at init)
        for name in ('gamma1', 'gamma2'):
            if isinstance(getattr(m, name, None), torch.nn.Parameter):
                getattr(m, name).data.uniform_(0.5, 1.5)
    packed = demo_mm_inputs(batch_size=2, image_shapes=[(3, 96, 128), (3, 80, 112)],
                            num_classes=3, with_mask=True)
    data = model.data_preprocessor(packed, False)
    rois = torch.tensor([[0, 4., 6., 60., 50.], [1, 10., 2., 100., 70.]])

    def roi_features():  # what the RoI head sees: RoIAlign over the FPN maps
        feats = model.extract_feat(data['inputs'])
        return model.roi_head.bbox_roi_extractor(feats[:4], rois)

    with torch.no_grad():
        ref, ref_rois = model(**data, mode='predict'), roi_features()
        tool('test').InferenceFormHook(deploy=True).before_test(SimpleNamespace(model=model))
        out, out_rois = model(**data, mode='predict'), roi_features()
    torch.testing.assert_close(out_rois, ref_rois, rtol=1e-4, atol=1e-4)
    assert model.backbone.deploy
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    for a, b in zip(ref, out):
        a, b = a.pred_instances, b.pred_instances
        assert len(a) > 0 and len(a) == len(b)
        torch.testing.assert_close(b.bboxes, a.bboxes, rtol=1e-4, atol=1e-3)
        torch.testing.assert_close(b.scores, a.scores, rtol=1e-4, atol=1e-5)
        assert (a.masks != b.masks).float().mean() < 1e-3


@pytest.mark.parametrize('library', ['mmdet', 'mmseg'])
def test_upstream_train_script(library, data, tmp_path):
    """A drop-in backbone: the library's own tools/train.py trains our config; only the
    config's ``custom_imports`` brings UniNet in."""
    import importlib
    lib = importlib.import_module(library)
    script = osp.join(osp.dirname(lib.__file__), '.mim', 'tools', 'train.py')
    assert osp.isfile(script)
    env = dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1')
    if library == 'mmdet':
        config, ckpt = DET_CONFIG, 'epoch_1.pth'
        opts = [o for o in det_options(data) if 'val_interval' not in o] + [
            'train_cfg.val_interval=10']
    else:
        config, ckpt = SEG_CONFIG, 'iter_1.pth'
        opts = [o for o in seg_options(data, iters=1) if 'val_interval' not in o] + [
            'train_cfg.val_interval=10']
    proc = subprocess.run(
        [sys.executable, script, config, '--work-dir', str(tmp_path / 'up'),
         '--cfg-options', *opts], cwd=str(tmp_path), env=env, capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert osp.isfile(tmp_path / 'up' / ckpt)


def test_run_demo_smoke(tmp_path, monkeypatch):
    """The main job, shortened: data (written if missing), train, evaluate, draw, summary."""
    monkeypatch.chdir(ROOT)  # run_demo chdirs to the repository; restored after the test
    results = tool('run_demo').main([
        '--work-dir', str(tmp_path / 'wd'), '--out-dir', str(tmp_path / 'out'),
        '--cfg-options', 'train_cfg.max_epochs=1', 'train_dataloader.dataset.indices=8',
        'test_dataloader.dataset.indices=4', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False', 'model.test_cfg.rcnn.score_thr=0.0'])
    det = results['det']
    assert osp.isfile(det['picture']) and osp.isfile(tmp_path / 'out' / 'metrics.json')
    assert 0 <= det['metrics']['coco/bbox_mAP_50'] <= 1
    assert det['train_s'] > 0


def test_library_is_picked_from_default_scope(tmp_path):
    from mmengine.config import Config
    cfg_file = tmp_path / 'bad.py'
    cfg_file.write_text("model = dict(type='UniNet')\n")
    with pytest.raises(ValueError, match='default_scope'):
        tool('train').library_of(Config.fromfile(str(cfg_file)))
    for path, lib in ((DET_CONFIG, 'mmdet'), (SEG_CONFIG, 'mmseg')):
        assert tool('test').library_of(Config.fromfile(path)) == lib


def test_amp_and_auto_scale_lr_flags():
    from mmengine.config import Config
    train = tool('train')
    cfg = Config.fromfile(osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_b1_1x.py'))
    args = train.parse_args([cfg.filename, '--amp', '--auto-scale-lr', '--resume', 'x.pth',
                             '--cfg-options', 'model.backbone.init_cfg=None'])
    cfg = train.merge_args(cfg, args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.auto_scale_lr.enable
    assert cfg.resume and cfg.load_from == 'x.pth' and cfg.model.backbone.init_cfg is None
    assert cfg.work_dir.endswith('mask_rcnn_uninet_b1_1x')


@pytest.mark.parametrize('script', ['dist_train.sh', 'dist_test.sh', 'slurm_train.sh'])
def test_shell_scripts(script):
    path = osp.join(ROOT, 'tools', script)
    assert os.access(path, os.X_OK)
    subprocess.run(['bash', '-n', path], check=True)
    text = open(path).read()
    if script.startswith('dist'):
        assert 'torch.distributed.run' in text and 'NNODES' in text and 'MASTER_ADDR' in text
