"""Which OpenMMLab library a config belongs to (shared by the tools and the FLOPs counter)."""

#: the libraries whose configs the tools run
LIBRARIES = ('mmdet', 'mmseg', 'mmpretrain')


def library_of(cfg, tool='this tool'):
    """``'mmdet'`` / ``'mmseg'`` / ``'mmpretrain'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope', None)
    if scope not in LIBRARIES:
        raise ValueError(f'{cfg.filename}: default_scope is {scope!r}; {tool} runs configs of '
                         f'{LIBRARIES} (inherit one of their bases, e.g. '
                         f"_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py')")
    return scope
