# Demo: Mask R-CNN + FPN with a small UniNet, trained from scratch on the CPU on the embedded
# demo shapes (COCO format, 128x128 images, 5 classes; `python -m uninet_mm.datasets.demo_shapes`
# or `python tools/run_demo.py` writes them to data/demo/). Same model code and the same
# MMDetection base as the COCO configs; only sizes, data and schedule are scaled down.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

classes = ('circle', 'square', 'triangle', 'star', 'cross')
num_classes = len(classes)
img_scale = (128, 128)
channels = 64  # FPN / RoI feature width (256 in the COCO configs)

# UniNet-B0's layout with fewer blocks and narrower stages (widths [24, 48, 64, 128] at strides
# 4, 8, 16, 32).
demo_arch = dict(
    stem_width=16,
    widths=[16, 24, 48, 64, 64, 128],
    repeats=[1, 1, 2, 2, 1, 1],
    expansions=[1, 4, 4, 3, 2, 3],
)

model = dict(
    backbone=dict(
        _delete_=True,
        type='UniNet',
        arch=demo_arch,
        out_indices=(1, 2, 4, 5),
        init_cfg=None),
    neck=dict(in_channels=[24, 48, 64, 128], out_channels=channels),
    rpn_head=dict(
        in_channels=channels,
        feat_channels=channels,
        anchor_generator=dict(scales=[4])),  # anchors 16..256 px for 14..70 px objects
    roi_head=dict(
        bbox_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(roi_layer=dict(sampling_ratio=2), out_channels=channels),
        mask_head=dict(num_convs=2, in_channels=channels, conv_out_channels=channels,
                       num_classes=num_classes)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(
        rpn=dict(nms_pre=500, max_per_img=100),
        rcnn=dict(max_per_img=50)))

data_root = 'data/demo/coco/'
metainfo = dict(classes=classes,
                palette=[(220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 200, 0),
                         (145, 30, 180)])
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=0),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# From scratch: AdamW with a larger lr, short warm-up, lr x0.1 for the last two epochs
# (750 iterations of 8 images).
max_epochs = 10
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=200),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[max_epochs - 2, max_epochs - 1], gamma=0.1)
]
randomness = dict(seed=0)  # reproducible demo (up to non-deterministic CPU kernels)
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.002, betas=(0.9, 0.999),
                   weight_decay=0.05),
    clip_grad=dict(max_norm=10.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'gamma1': dict(decay_mult=0.),
        'gamma2': dict(decay_mult=0.)}))
auto_scale_lr = dict(enable=False, base_batch_size=8)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
log_processor = dict(window_size=10)
