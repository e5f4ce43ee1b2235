# UperNet with a UniNet-B1 backbone on ADE20K, 512x512 crops, 160k iterations.
# Recipe of Swin-T's UperNet in MMSegmentation 1.x: AdamW lr 6e-5, weight decay 0.01 (none on
# norms, position encodings and layer scales), linear warm-up over 1500 iterations then poly
# decay (power 1), auxiliary FCN head on the 1/16 feature, 2 images per GPU on 8 GPUs.
# Model, ADE20K pipeline, runtime and 160k schedule come from MMSegmentation's own bases.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py', 'mmseg::_base_/schedules/schedule_160k.py'
]

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

# ImageNet-1k UniNet-B1 weights, converted (tools/convert_official.py) or trained (configs/cls/).
# Without them: --cfg-options model.backbone.init_cfg=None (trains from scratch).
pretrained = 'checkpoints/uninet_b1_in1k.pth'

crop_size = (512, 512)
# Training batches are padded to the crop size. Testing is whole-image at the resized size
# (short side 512, any size: the backbone does not need multiples of 32; the heads resize to
# the input and the prediction is resized back to the original image).
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    pretrained=None,
    backbone=dict(
        _delete_=True,
        type='UniNet',
        arch='b1',
        out_indices=(1, 2, 4, 5),  # strides 4, 8, 16, 32
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[48, 80, 128, 256], num_classes=150),
    auxiliary_head=dict(in_channels=128, in_index=2, num_classes=150))

# The backbone's BatchNorms are synchronised across GPUs like the heads' SyncBN (distributed
# training only; on one device MMEngine uses plain BatchNorm).
sync_bn = 'torch'

# No weight decay on norm layers, the conditional position encodings (`pos_embed`) and the
# layer scales (`gamma1`, `gamma2`).
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=0.00006, betas=(0.9, 0.999), weight_decay=0.01),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'norm': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
            'gamma1': dict(decay_mult=0.),
            'gamma2': dict(decay_mult=0.),
        }))

param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', eta_min=0.0, power=1.0, begin=1500, end=160000, by_epoch=False)
]

# 8 GPUs x 2 images
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
auto_scale_lr = dict(enable=False, base_batch_size=16)
