# Demo: UperNet with a small UniNet, trained from scratch on the CPU on the embedded demo shapes
# (ADE20K format, 128x128 images, background + 5 shape classes; `python tools/run_demo.py --seg`
# writes them to data/demo/ade/ and trains this config). Same model code and the same
# MMSegmentation bases as the ADE20K configs; only sizes, data and schedule are scaled down.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

classes = ('background', 'circle', 'square', 'triangle', 'star', 'cross')
palette = [(90, 90, 90), (220, 20, 60), (0, 130, 200), (60, 180, 75), (255, 200, 0),
           (145, 30, 180)]
crop_size = (128, 128)

# UniNet-B0's layout with fewer blocks and narrower stages (widths [24, 48, 64, 128] at strides
# 4, 8, 16, 32), as in the detection demo.
demo_arch = dict(
    stem_width=16,
    widths=[16, 24, 48, 64, 64, 128],
    repeats=[1, 1, 2, 2, 1, 1],
    expansions=[1, 4, 4, 3, 2, 3],
)

data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='UniNet',
        arch=demo_arch,
        out_indices=(1, 2, 4, 5),
        init_cfg=None),
    decode_head=dict(in_channels=[24, 48, 64, 128], channels=64, dropout_ratio=0.,
                     num_classes=len(classes)),
    auxiliary_head=dict(in_channels=64, in_index=2, channels=32, dropout_ratio=0.,
                        num_classes=len(classes)))

data_root = 'data/demo/ade'
dataset = dict(
    type='BaseSegDataset',
    data_root=data_root,
    metainfo=dict(classes=classes, palette=palette),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomFlip', prob=0.5),  # the demo scenes already vary in scale
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/training', seg_map_path='annotations/training'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=1,
    dataset=dict(
        _delete_=True,
        **dataset,
        data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

# From scratch: AdamW with a larger lr, short warm-up, then poly decay.
max_iters = 1600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.002, betas=(0.9, 0.999), weight_decay=0.01),
    clip_grad=dict(max_norm=10.0, norm_type=2),
    paramwise_cfg=dict(norm_decay_mult=0., custom_keys={
        'pos_embed': dict(decay_mult=0.),
        'gamma1': dict(decay_mult=0.),
        'gamma2': dict(decay_mult=0.)}))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=100, end=max_iters, by_epoch=False)
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
randomness = dict(seed=0)  # reproducible demo (up to non-deterministic CPU kernels)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(by_epoch=False, interval=max_iters, max_keep_ckpts=1))
log_processor = dict(window_size=20)
