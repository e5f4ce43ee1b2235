# Mask R-CNN + FPN with a UniNet-B2 backbone on COCO, 3x schedule (recipe: see the B1 configs).
_base_ = './mask_rcnn_uninet_b1_3x.py'

pretrained = 'checkpoints/uninet_b2_in1k.pth'

model = dict(
    backbone=dict(
        arch='b2',
        drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)))
