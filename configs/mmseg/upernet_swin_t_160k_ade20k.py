# Plain Swin-T UperNet on ADE20K, 512x512 crops, 160k iterations: MMSegmentation's own config,
# unchanged (ImageNet-1k Swin-T weights in MMSegmentation's layout).
# The DSM retrofit beside it: upernet_swin_t_dsm_160k_ade20k.py.
_base_ = 'mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py'

custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
