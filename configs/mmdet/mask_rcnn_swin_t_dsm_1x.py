# Swin-T with DSMs, Mask R-CNN + FPN on COCO, 1x: mask_rcnn_swin_t_1x.py with the backbone
# type swapped for SwinTransformerDSM (a subclass of MMDetection's SwinTransformer; same
# arguments, output shapes and strides). Replaced layers (docs/retrofit.md):
#   stages.0.downsample: L-DSM, stages.1.downsample: LG-DSM, stages.2.downsample: LG-DSM.
# The plain ImageNet Swin-T checkpoint of the base config loads into everything but the DSMs,
# which start fresh; the log lists the new and the dropped keys. For an ImageNet-trained Swin-T
# with DSMs (configs/cls/swin_tiny_dsm_in1k.py), set init_cfg.checkpoint to that checkpoint
# and convert_weights=False.
_base_ = './mask_rcnn_swin_t_1x.py'

model = dict(backbone=dict(type='SwinTransformerDSM', dsms=('L', 'LG', 'LG'), dsm_head_dim=32))

# The DSMs' BatchNorms see 2 images per GPU: synchronise them when training distributed
# (MMEngine converts nn.BatchNorm to torch SyncBatchNorm; ignored on one GPU/CPU).
sync_bn = 'torch'
