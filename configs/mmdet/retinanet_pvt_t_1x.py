# Plain PVT-Tiny RetinaNet + FPN on COCO, 1x: MMDetection's own config, unchanged (ImageNet
# PVT-Tiny weights from the original repository, converted on load by pvt_convert).
# MMDetection 3.3.0 has no Mask R-CNN config for PVT v1 (only RetinaNet), and neither
# MMPretrain nor MMSegmentation has PVT v1: PVT-Tiny is covered by detection only.
# The DSM retrofit beside it: retinanet_pvt_t_dsm_1x.py.
_base_ = 'mmdet::pvt/retinanet_pvt-t_fpn_1x_coco.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
