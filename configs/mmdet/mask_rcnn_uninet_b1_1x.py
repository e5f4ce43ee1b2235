# Mask R-CNN + FPN with a UniNet-B1 backbone on COCO, 1x schedule (12 epochs).
# Recipe of Swin-T's Mask R-CNN in MMDetection 3.x: AdamW lr 1e-4, weight decay 0.05 (none on
# norms, position encodings and layer scales), linear warm-up over 1000 iterations, lr x0.1 at
# epochs 8 and 11; 2 images per GPU on 8 GPUs (`--auto-scale-lr` rescales for other batches).
# Everything else (heads, COCO pipeline, evaluation) comes from MMDetection's own R50 config.
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)

# ImageNet-1k UniNet-B1 weights, converted (tools/convert_official.py) or trained (configs/cls/).
# Without them: --cfg-options model.backbone.init_cfg=None (trains from scratch).
pretrained = 'checkpoints/uninet_b1_in1k.pth'

model = dict(
    backbone=dict(
        _delete_=True,
        type='UniNet',
        arch='b1',
        out_indices=(1, 2, 4, 5),  # strides 4, 8, 16, 32
        drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[48, 80, 128, 256]))

# The backbone's BatchNorms see 2 images per GPU: synchronise them across GPUs when training
# distributed (MMEngine converts nn.BatchNorm to torch SyncBatchNorm; ignored on one GPU/CPU).
sync_bn = 'torch'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs)

param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=1000),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[8, 11],
         gamma=0.1)
]

# No weight decay on norm layers (BN `norm`, `pre_norm`, `project_norm`; LN `norm1`, `norm2`,
# `q_norm`, `kv_norm`), the conditional position encodings (`pos_embed`) and the layer scales
# (`gamma1`, `gamma2`). Keys match parameter names as substrings.
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(_delete_=True, type='AdamW', lr=0.0001, betas=(0.9, 0.999),
                   weight_decay=0.05),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        custom_keys={
            'norm': dict(decay_mult=0.),
            'pos_embed': dict(decay_mult=0.),
            'gamma1': dict(decay_mult=0.),
            'gamma2': dict(decay_mult=0.),
        }))

auto_scale_lr = dict(enable=False, base_batch_size=16)
