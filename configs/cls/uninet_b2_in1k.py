# UniNet-B2 on ImageNet-1k at 256x256; 8 GPUs x 128 images = 1024 a step (other
# totals: --auto-scale-lr). Recipe: _base_/uninet_in1k.py. Test: resize 292 (256 / 0.875), crop 256.
_base_ = ['./_base_/uninet_in1k.py']

model = dict(
    backbone=dict(arch='b2', drop_path_rate=0.15),
    head=dict(in_channels=256))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=256, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    {{_base_.rand_augment}},
    {{_base_.random_erasing}},
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=292, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=256),
    dict(type='PackInputs'),
]
train_dataloader = dict(batch_size=128, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(batch_size=128, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
