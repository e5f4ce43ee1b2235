# UniNet-B4 on ImageNet-1k at 320x320; 16 GPUs x 64 images = 1024 a step (other
# totals: --auto-scale-lr). Recipe: _base_/uninet_in1k.py. Test: resize 365 (320 / 0.875), crop 320.
_base_ = ['./_base_/uninet_in1k.py']

model = dict(
    backbone=dict(arch='b4', drop_path_rate=0.3),
    head=dict(in_channels=352))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=320, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    {{_base_.rand_augment}},
    {{_base_.random_erasing}},
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=365, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=320),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=64, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
