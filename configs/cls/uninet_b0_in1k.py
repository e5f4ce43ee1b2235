# UniNet-B0 on ImageNet-1k at 160x160; 8 GPUs x 128 images = 1024 a step (other
# totals: --auto-scale-lr). Recipe: _base_/uninet_in1k.py. Test: resize 182 (160 / 0.875), crop 160.
_base_ = ['./_base_/uninet_in1k.py']

model = dict(
    backbone=dict(arch='b0', drop_path_rate=0.1),
    head=dict(in_channels=256))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=160, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    {{_base_.rand_augment}},
    {{_base_.random_erasing}},
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=182, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=160),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
