# UperNet with a UniNet-B3 backbone on ADE20K, 512x512 crops, 160k iterations (recipe: see the
# B1 config).
_base_ = './upernet_uninet_b1_8xb2_160k_ade20k_512x512.py'

pretrained = 'checkpoints/uninet_b3_in1k.pth'

model = dict(
    backbone=dict(
        arch='b3',
        drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(in_channels=[56, 96, 160, 288]),
    auxiliary_head=dict(in_channels=160))
