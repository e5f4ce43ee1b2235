# PVT-Tiny with DSMs, RetinaNet + FPN on COCO, 1x: retinanet_pvt_t_1x.py with the backbone
# type swapped for PyramidVisionTransformerDSM (a subclass of MMDetection's
# PyramidVisionTransformer; same arguments, output shapes and strides at any input size).
# Replaced layers (docs/retrofit.md): the patch embeddings that open stages 1-3,
#   layers.1.0: L-DSM, layers.2.0: LG-DSM, layers.3.0: LG-DSM.
# The plain ImageNet PVT-Tiny checkpoint of the base config loads into everything but the
# DSMs, which start fresh; the log lists the new and the dropped keys.
_base_ = './retinanet_pvt_t_1x.py'

model = dict(
    backbone=dict(type='PyramidVisionTransformerDSM', dsms=('L', 'LG', 'LG'), dsm_head_dim=32))

# The DSMs' BatchNorms see 2 images per GPU: synchronise them when training distributed.
sync_bn = 'torch'
