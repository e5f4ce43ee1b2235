"""Detection and segmentation configs: every config loads and builds; each distinct model does
one real training iteration and one evaluation pass on tiny synthetic inputs (only the data is
swapped, the model is the config's); recipe details (optimizer groups, missing-checkpoint
message, whole-image test at sizes that are not multiples of 32)."""
import copy
import glob
import math
import os.path as osp

import pytest
import torch

import uninet_mm  # noqa: F401
from uninet_mm.datasets import demo_shapes as ds

pytestmark = pytest.mark.usefixtures('one_thread')

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _ours(pattern):
    # the Swin/PVT retrofit configs in the same folders are tested with the retrofits
    return sorted(p for p in glob.glob(osp.join(ROOT, pattern))
                  if not any(k in osp.basename(p) for k in ('swin', 'pvt')))


DET_CONFIGS = _ours('configs/mmdet/*.py')
SEG_CONFIGS = _ours('configs/mmseg/*.py')
IMG_HW = (76, 100)  # neither side a multiple of 32


def load_cfg(path):
    from mmengine.config import Config
    cfg = Config.fromfile(path)
    cfg.model.backbone.init_cfg = None  # no ImageNet checkpoint needed
    return cfg


def build(cfg):
    from mmengine.registry import MODELS, init_default_scope
    init_default_scope(cfg.default_scope)
    torch.manual_seed(0)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model


def distinct_models(paths):
    """One config per distinct model dict (1x/3x share a model)."""
    seen, out = [], []
    for p in paths:
        m = load_cfg(p).model.to_dict()
        if m not in seen:
            seen.append(m)
            out.append(p)
    return out


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('tiny'))
    ds.ensure_demo_data(root, seed=1, img_size=IMG_HW, num_train=0, num_val=2,
                        seg_img_size=IMG_HW, seg_num_train=0, seg_num_val=2)
    return root


def det_batch(root):
    from mmdet.datasets import CocoDataset
    from mmengine.dataset import pseudo_collate
    dataset = CocoDataset(
        data_root=osp.join(root, 'coco'), ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'), metainfo=dict(classes=ds.CLASSES),
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
                  # identity resize: records scale_factor, as every mmdet pipeline does
                  dict(type='Resize', scale=IMG_HW[::-1], keep_ratio=True),
                  dict(type='PackDetInputs')])
    return pseudo_collate([dataset[i] for i in range(len(dataset))]), dataset


def seg_batch(root):
    from mmengine.dataset import pseudo_collate
    from mmseg.datasets import BaseSegDataset
    dataset = BaseSegDataset(
        data_root=osp.join(root, 'ade'), metainfo=dict(classes=ds.SEG_CLASSES),
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        img_suffix='.jpg', seg_map_suffix='.png', reduce_zero_label=True,
        pipeline=[dict(type='LoadImageFromFile'),
                  dict(type='LoadAnnotations', reduce_zero_label=True),
                  dict(type='PackSegInputs')])
    return pseudo_collate([dataset[i] for i in range(len(dataset))]), dataset


def train_iteration(cfg, model, batch):
    from mmengine.optim import build_optim_wrapper
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.train()
    log_vars = model.train_step(batch, optim_wrapper)
    assert log_vars['loss'].ndim == 0 and math.isfinite(log_vars['loss'].item())
    for name, value in log_vars.items():
        assert torch.isfinite(torch.as_tensor(value)).all(), name
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert any(n.startswith('backbone.stem') for n in changed)
    assert any(n.startswith('backbone.stages.5') for n in changed)  # gradients reach all stages
    return log_vars


@pytest.mark.parametrize('path', DET_CONFIGS + SEG_CONFIGS, ids=osp.basename)
def test_config_loads_and_builds(path):
    cfg = load_cfg(path)
    assert cfg.custom_imports['imports'] == ['uninet_mm']
    model = build(cfg)
    backbone = model.backbone
    assert type(backbone).__name__ == 'UniNet'
    if cfg.default_scope == 'mmdet':
        assert list(cfg.model.neck.in_channels) == backbone.out_channels
    else:
        assert list(cfg.model.decode_head.in_channels) == backbone.out_channels
        assert cfg.model.auxiliary_head.in_channels == backbone.out_channels[2]  # 1/16 map
    assert [backbone.out_strides[i] for i in backbone.out_indices] == [4, 8, 16, 32]


@pytest.mark.parametrize('path', distinct_models(DET_CONFIGS), ids=osp.basename)
def test_det_train_iteration_and_eval(path, tiny_data, tmp_path):
    from mmdet.evaluation import CocoMetric
    from test_metrics import coco_ap_by_pycocotools, coco_cat_ids, det_results_of
    cfg = load_cfg(path)
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # an almost untrained detector: keep every box
    model = build(cfg)
    batch, dataset = det_batch(tiny_data)
    train_iteration(cfg, model, batch)

    model.eval()
    with torch.no_grad():
        preds = model.val_step(batch)
    for pred in preds:
        inst = pred.pred_instances
        assert inst.masks.shape[1:] == IMG_HW  # masks at the original, non-/32 size
        assert inst.bboxes.shape[1] == 4
    assert all(len(p.pred_instances) for p in preds), 'no predictions: AP would mean nothing'
    for p in preds:  # the COCO models have 80 classes, the tiny data 5: fold the labels
        p.pred_instances.labels = p.pred_instances.labels % len(ds.CLASSES)
    ann_file = osp.join(tiny_data, 'coco/annotations/instances_val.json')
    metric = CocoMetric(ann_file=ann_file, metric=['bbox', 'segm'],
                        outfile_prefix=str(tmp_path / 'res'))
    metric.dataset_meta = dataset.metainfo
    metric.process(batch, [p.to_dict() for p in preds])
    results = metric.evaluate(len(preds))
    # the same boxes through pycocotools directly (our own xyxy -> xywh and class ids)
    ref = coco_ap_by_pycocotools(ann_file, det_results_of(
        [p.pred_instances for p in preds], [p.img_id for p in preds],
        coco_cat_ids(ann_file, dataset.metainfo['classes'])))
    assert results['coco/bbox_mAP'] == pytest.approx(ref, abs=6e-4)  # CocoMetric rounds to 3
    assert 'coco/segm_mAP' in results


@pytest.mark.parametrize('path', distinct_models(SEG_CONFIGS), ids=osp.basename)
def test_seg_train_iteration_and_eval(path, tiny_data):
    from mmseg.evaluation import IoUMetric
    cfg = load_cfg(path)
    # tiny inputs: no padding to the 512x512 training crop (the model itself is unchanged)
    cfg.model.data_preprocessor.size = None
    cfg.model.data_preprocessor.size_divisor = 4
    model = build(cfg)
    batch, dataset = seg_batch(tiny_data)
    train_iteration(cfg, model, batch)

    model.eval()
    assert cfg.model.test_cfg.mode == 'whole'
    with torch.no_grad():
        preds = model.val_step(batch)
    for pred in preds:
        assert pred.pred_sem_seg.data.shape[-2:] == IMG_HW
        assert pred.seg_logits.data.shape[-2:] == IMG_HW
    from test_metrics import miou_by_hand
    classes = cfg.get('classes', ds.SEG_CLASSES) if 'demo' in path else tuple(range(150))
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dict(dataset.metainfo, classes=classes)
    metric.process(batch, [p.to_dict() for p in preds])
    results = metric.evaluate(len(preds))
    ref = miou_by_hand([(p.pred_sem_seg.data[0].numpy(), p.gt_sem_seg.data[0].numpy())
                        for p in preds], len(classes))
    assert results['mIoU'] == pytest.approx(ref, abs=6e-3)  # IoUMetric rounds to 2 decimals


def test_whole_inference_any_size():
    """ADE20K test pipeline resizes to short side 512 keeping the ratio: e.g. 683x512 or
    512x715. Whole-image inference returns maps of exactly the input size."""
    cfg = load_cfg(osp.join(ROOT, 'configs/mmseg/upernet_uninet_demo.py'))
    model = build(cfg).eval()
    from mmseg.structures import SegDataSample
    for h, w in ((61, 83), (50, 50), (97, 33)):
        img = torch.randint(0, 255, (3, h, w), dtype=torch.uint8)
        sample = SegDataSample(metainfo=dict(ori_shape=(h, w), img_shape=(h, w)))
        with torch.no_grad():
            out = model.test_step(dict(inputs=[img], data_samples=[sample]))
        assert out[0].pred_sem_seg.data.shape == (1, h, w)


def test_recipe_param_groups():
    """AdamW, lr/wd of the Swin-T recipes; no decay on norms, position encodings and layer
    scales; decay on convolution and linear weights."""
    from mmengine.optim import build_optim_wrapper
    for path, lr, wd in ((DET_CONFIGS[0], 1e-4, 0.05),
                         (osp.join(ROOT, 'configs/mmseg/'
                                   'upernet_uninet_b1_8xb2_160k_ade20k_512x512.py'), 6e-5, 0.01)):
        cfg = load_cfg(path)
        model = build(cfg)
        wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
        assert type(wrapper.optimizer).__name__ == 'AdamW'
        names = {id(p): n for n, p in model.named_parameters()}
        decay = {}
        for group in wrapper.optimizer.param_groups:
            assert group['lr'] == pytest.approx(lr)
            for p in group['params']:
                decay[names[id(p)]] = group['weight_decay']
        no_decay = [n for n in decay if n.startswith('backbone.') and any(
            k in n for k in ('norm', 'pos_embed', 'gamma1', 'gamma2'))]
        assert any('pos_embed' in n for n in no_decay) and any('gamma1' in n for n in no_decay)
        assert any('project_norm' in n for n in no_decay) and any('q_norm' in n
                                                                  for n in no_decay)
        assert all(decay[n] == 0 for n in no_decay)
        assert decay['backbone.stem.conv.weight'] == pytest.approx(wd)
        assert decay['backbone.stages.5.blocks.0.mixer.qkv.weight'] == pytest.approx(wd)


def test_schedules():
    from mmengine.config import Config
    c1 = Config.fromfile(osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_b1_1x.py'))
    c3 = Config.fromfile(osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_b3_3x.py'))
    assert c1.train_cfg.max_epochs == 12 and c3.train_cfg.max_epochs == 36
    assert c1.param_scheduler[0].end == 1000 and c1.param_scheduler[1].milestones == [8, 11]
    assert c3.param_scheduler[1].milestones == [27, 33]
    assert c3.train_dataloader.dataset.pipeline[3].type == 'RandomChoice'
    assert c1.train_dataloader.batch_size == 2 and c1.auto_scale_lr.base_batch_size == 16
    s = Config.fromfile(osp.join(ROOT, 'configs/mmseg/'
                                      'upernet_uninet_b3_8xb2_160k_ade20k_512x512.py'))
    assert s.train_cfg.max_iters == 160000 and s.crop_size == (512, 512)
    assert s.param_scheduler[0].end == 1500 and s.param_scheduler[1].power == 1.0
    assert s.train_dataloader.batch_size == 2 and s.model.decode_head.num_classes == 150


def test_missing_pretrained_checkpoint_says_what_to_do(tmp_path):
    from mmengine.config import Config
    path = osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_b1_1x.py')
    init_cfg = Config.fromfile(path).model.backbone.init_cfg
    assert init_cfg.type == 'Pretrained'
    assert init_cfg.checkpoint == 'checkpoints/uninet_b1_in1k.pth'
    missing = str(tmp_path / 'uninet_b1_in1k.pth')
    model = build(load_cfg(path))
    model.backbone.init_cfg = dict(init_cfg, checkpoint=missing)
    with pytest.raises(FileNotFoundError) as err:
        model.backbone.init_weights()
    msg = str(err.value)
    assert missing in msg and 'convert_official' in msg
    assert 'model.backbone.init_cfg=None' in msg


def test_fuse_conv_bn_keeps_outputs():
    from mmcv.cnn import fuse_conv_bn
    cfg = load_cfg(osp.join(ROOT, 'configs/mmdet/mask_rcnn_uninet_demo.py'))
    model = build(cfg).eval()
    x = torch.randn(1, 3, 70, 90)
    with torch.no_grad():
        for m in model.backbone.modules():  # non-trivial BN statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2)
                m.weight.uniform_(0.5, 1.5)
        before = model.backbone(x)
        fuse_conv_bn(model)
        after = model.backbone(x)
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.backbone.modules())
    assert n_bn < 10  # almost all folded (BNs that follow no conv stay, e.g. pre_norm)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
