# UniNet on ImageNet-1k: the DeiT-style recipe of the paper, shared by uninet_b*_in1k.py.
# - AdamW, lr 1e-3 per 1024 images (auto_scale_lr), weight decay 0.05, none on norms, biases,
#   position encodings (`pos_embed`, a depth-wise conv) and layer scales (`gamma1`, `gamma2`);
# - 300 epochs: linear warm-up over 5 epochs (by iteration) from 1e-6, then cosine to 1e-5;
# - RandomResizedCrop, flip, RandAugment (rand-m9-mstd0.5-inc1), random erasing 0.25 (per-pixel
#   noise, as DeiT), Mixup 0.8 / CutMix 1.0, label smoothing 0.1, drop path per preset;
# - test: resize the short edge to input / 0.875 (bicubic), center crop `input` (crop ratio 0.875).
# This file is written for the 224 input of B1; every preset sets its arch, drop-path rate and
# the input-size-dependent transforms (train crop, test resize and crop).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

# ImageNet mean/std in RGB; the images are loaded as BGR and flipped to RGB here. Given to the
# model explicitly (the Runner would also merge the top-level one), so that
# `MODELS.build(cfg.model)` alone normalises like training and the released models.
data_preprocessor = dict(
    num_classes=1000,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

model = dict(
    type='ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='UniNet', arch='b1', out_indices=(5, ), drop_path_rate=0.1, init_cfg=None),
    head=dict(
        type='UniNetClsHead',
        num_classes=1000,
        in_channels=256,  # the width of the last stage (B0-B2: 256, B3: 288, B4: 352, B5: 448)
        mid_channels=1280,
        dropout=0.,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        cal_acc=False),
    train_cfg=dict(augments=[
        dict(type='Mixup', alpha=0.8),
        dict(type='CutMix', alpha=1.0),
    ]),
)

# -- data: the transforms that do not depend on the input size (used by the presets) -------------
bgr_mean = data_preprocessor['mean'][::-1]
bgr_std = data_preprocessor['std'][::-1]

rand_augment = dict(
    type='RandAugment',
    policies='timm_increasing',
    num_policies=2,
    total_level=10,
    magnitude_level=9,
    magnitude_std=0.5,
    hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic'))
random_erasing = dict(
    type='RandomErasing',
    erase_prob=0.25,
    mode='rand',
    min_area_ratio=0.02,
    max_area_ratio=1 / 3,
    fill_color=bgr_mean,
    fill_std=bgr_std)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=224, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    rand_augment,
    random_erasing,
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=256, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=224),
    dict(type='PackInputs'),
]
# 8 GPUs x 128 images = 1024 (the base batch of the lr); other totals: `--auto-scale-lr`.
train_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, num_workers=8, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# -- optimisation -------------------------------------------------------------------------------
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,  # every 1-D parameter: biases, norms, layer scales
        custom_keys={
            '.pos_embed': dict(decay_mult=0.0),
            '.gamma1': dict(decay_mult=0.0),
            '.gamma2': dict(decay_mult=0.0),
        },
        _delete_=True),
)
warmup_epochs = 5
max_epochs = 300
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0, end=warmup_epochs,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=warmup_epochs,
         end=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=1024)

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=100),
    checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'))
# EMA of the weights (optional; DeiT used none): uncomment, or pass
# --cfg-options "custom_hooks=[dict(type='EMAHook',momentum=1e-4,priority='ABOVE_NORMAL')]"
# custom_hooks = [dict(type='EMAHook', momentum=1e-4, priority='ABOVE_NORMAL')]
