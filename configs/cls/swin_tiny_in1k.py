# Plain Swin-T on ImageNet-1k, 224x224: MMPretrain's own recipe, unchanged (300 epochs, AdamW
# lr 1e-3 at batch 1024 = 16 GPUs x 64, cosine, 20 warm-up epochs, RandAugment/Mixup/CutMix,
# label smoothing 0.1, grad clip 5). Backbone: mmpretrain.SwinTransformer (arch='tiny').
# The DSM retrofit beside it: swin_tiny_dsm_in1k.py; the exact ablation baseline (same
# implementation as the retrofit, no DSM): swin_tiny_mmdet-impl_in1k.py.
_base_ = 'mmpretrain::swin_transformer/swin-tiny_16xb64_in1k.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
