# Swin-T on ImageNet-1k with the implementation the DSM retrofit is built on (MMDetection's
# SwinTransformer, through SwinTransformerDSM with every down-sampler kept: dsms=(None,)*3), in
# the recipe of swin_tiny_in1k.py. This is the exact ablation baseline of swin_tiny_dsm_in1k.py:
# the two differ only in the three patch merging layers. Versus MMPretrain's Swin-T
# (swin_tiny_in1k.py: same parameters, same state-dict keys), MMDetection's implementation
# also shifts the windows of the 7x7 last stage (with the attention mask), where the original
# and MMPretrain's Swin do not shift a map no larger than the window.
_base_ = './swin_tiny_in1k.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformerDSM',
        dsms=(None, None, None),
        pretrain_img_size=224,
        embed_dims=96,
        depths=(2, 2, 6, 2),
        num_heads=(3, 6, 12, 24),
        window_size=7,
        drop_path_rate=0.2,
        out_indices=(3, ),  # norm3 + global average pooling, as MMPretrain's Swin-T
        init_cfg=None))
