# Plain Swin-T Mask R-CNN + FPN on COCO, 1x: MMDetection's own config, unchanged (ImageNet-1k
# Swin-T weights from the original repository, converted on load: convert_weights=True).
# The DSM retrofit beside it: mask_rcnn_swin_t_dsm_1x.py.
_base_ = 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
