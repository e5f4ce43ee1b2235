# Swin-T with DSMs (UniNet paper, Table 7: 81.2 -> 81.6 top-1) on ImageNet-1k, 224x224, in the
# Swin-T 300-epoch recipe at batch 1024 (swin_tiny_in1k.py, MMPretrain's recipe). The three
# patch merging layers are replaced (docs/retrofit.md):
#   stages.0.downsample (opens stage 1, 96 -> 192):  L-DSM
#   stages.1.downsample (opens stage 2, 192 -> 384): LG-DSM
#   stages.2.downsample (opens stage 3, 384 -> 768): LG-DSM
# Exact ablation baseline (same implementation, no DSM): swin_tiny_mmdet-impl_in1k.py.
# No weight decay on the DSMs' norms (BN `norm`, LN `q_norm`/`kv_norm`) and biases: the recipe's
# norm_decay_mult / bias_decay_mult apply to them as to the rest.
_base_ = './swin_tiny_mmdet-impl_in1k.py'

model = dict(backbone=dict(dsms=('L', 'LG', 'LG'), dsm_head_dim=32))
