# UniNet-B5 on ImageNet-1k at 384x384; 32 GPUs x 32 images = 1024 a step (other
# totals: --auto-scale-lr). Recipe: _base_/uninet_in1k.py. Test: resize 438 (384 / 0.875), crop 384.
_base_ = ['./_base_/uninet_in1k.py']

model = dict(
    backbone=dict(arch='b5', drop_path_rate=0.4),
    head=dict(in_channels=448))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=384, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    {{_base_.rand_augment}},
    {{_base_.random_erasing}},
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=438, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=384),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=32, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=32, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
