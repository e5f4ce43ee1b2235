# Mask R-CNN + FPN with a UniNet-B3 backbone on COCO, 1x schedule (recipe: see the B1 config).
_base_ = './mask_rcnn_uninet_b1_1x.py'

pretrained = 'checkpoints/uninet_b3_in1k.pth'

model = dict(
    backbone=dict(
        arch='b3',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(in_channels=[56, 96, 160, 288]))
