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


def _dict_action():
    from mmengine.config import DictAction

    class CfgOptionsAction(DictAction):
        """MMEngine's ``DictAction`` (``--cfg-options key=value ...``), with an argparse error
        naming a pair without ``=`` instead of a ``ValueError`` from inside it."""

        def __call__(self, parser, namespace, values, option_string=None):
            for kv in values if isinstance(values, (list, tuple)) else [values]:
                if '=' not in kv:
                    parser.error(f'{option_string}: {kv!r} is not a key=value pair; write '
                                 f'e.g. {kv}=VALUE (no spaces around "=")')
            super().__call__(parser, namespace, values, option_string)

    return CfgOptionsAction


#: ``action=`` of the tools' ``--cfg-options``
CfgOptionsAction = _dict_action()
