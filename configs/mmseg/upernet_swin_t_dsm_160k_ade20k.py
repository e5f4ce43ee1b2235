# Swin-T with DSMs, UperNet on ADE20K, 512x512 crops, 160k iterations:
# upernet_swin_t_160k_ade20k.py with the backbone type swapped for SwinTransformerDSM (a
# subclass of MMDetection's SwinTransformer, whose arguments and state-dict keys equal
# MMSegmentation's). Replaced layers (docs/retrofit.md):
#   stages.0.downsample: L-DSM, stages.1.downsample: LG-DSM, stages.2.downsample: LG-DSM.
# The plain ImageNet Swin-T checkpoint of the base config loads into everything but the DSMs,
# which start fresh; the log lists the new and the dropped keys.
_base_ = './upernet_swin_t_160k_ade20k.py'

model = dict(backbone=dict(type='SwinTransformerDSM', dsms=('L', 'LG', 'LG'), dsm_head_dim=32))

# The DSMs' BatchNorms see 2 images per GPU: synchronise them when training distributed.
sync_bn = 'torch'
