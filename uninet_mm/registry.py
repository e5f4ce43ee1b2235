"""Registries of uninet_mm.

``GOPS`` and ``DSMS`` are children of the OpenMMLab root model registry (scopes ``uninet_gop``
and ``uninet_dsm``), so a config, a retrofit or a search candidate builds any general operator
or down-sampling module by name through the same code: :func:`build_gop` and :func:`build_dsm`
(or ``MODELS.build(dict(type='uninet_gop.DWConv', ...))`` from any scope).

Backbones and heads are registered with :func:`register_model`, which puts them into the root
registry and into MMDetection's, MMSegmentation's and MMPretrain's ``MODELS`` (those that are
installed), so ``dict(type='UniNet')`` builds under any default scope.
"""
import importlib

from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

#: General operators (paper Sec. 3.2, Eq. 1-4): one constructor signature, see models/gops.py.
GOPS = Registry('gop', parent=MMENGINE_MODELS, scope='uninet_gop',
                locations=['uninet_mm.models.gops'])
#: Down-sampling modules (paper Sec. 3.3, Fig. 3), see models/dsms.py.
DSMS = Registry('dsm', parent=MMENGINE_MODELS, scope='uninet_dsm',
                locations=['uninet_mm.models.dsms'])

#: Checkpoint converters, ``fn(state_dict, arch) -> state_dict`` in our layout, chosen by name
#: with ``init_cfg=dict(type='Pretrained', checkpoint=..., converter=NAME)`` (the explicit
#: step that loads a released checkpoint; models never import a converter), see converters/.
CHECKPOINT_CONVERTERS = Registry('checkpoint converter', scope='uninet_mm',
                                 locations=['uninet_mm.converters'])

# -- what the registries know: the only list of operators -----------------------------------
# A GOP or DSM class declares what it needs as class attributes, which the arch parser, the
# search space and the FLOPs counter read through these queries:
#   needs_heads (bool): it attends, so its width must split into heads of ``head_dim``;
#   operates_on ('maps' | 'tokens'): what its operator mixes inside the block (every block takes
#       and returns (B, C, H, W) maps).
def operator_names(registry):
    """Names of the operators registered in ``registry`` (GOPS or DSMS), in registration
    order."""
    registry.import_from_location()
    return tuple(registry.module_dict)


def operator_class(registry, name):
    """The class registered as ``name``; KeyError listing the valid names otherwise."""
    cls = registry.get(name) if isinstance(name, str) else name
    if cls is None:
        raise KeyError(f'unknown {registry.name.upper()} {name!r}; valid '
                       f'{registry.name.upper()}s are {list(operator_names(registry))}')
    return cls


def operator_needs_heads(registry, name):
    """Whether operator ``name`` attends (its class's ``needs_heads``; False if undeclared)."""
    return bool(getattr(operator_class(registry, name), 'needs_heads', False))


def operator_operates_on(registry, name):
    """``'maps'`` or ``'tokens'``: what operator ``name`` mixes (its class's ``operates_on``)."""
    return getattr(operator_class(registry, name), 'operates_on', 'maps')


def _build(registry, what, cfg):
    # Registry.get, not Registry.build: build() would switch to the registry of the current
    # default scope (mmdet, mmseg, ...), where GOPs and DSMs are not registered.
    cfg = dict(cfg)
    name = cfg.pop('type')
    cls = registry.get(name) if isinstance(name, str) else name
    if cls is None:
        raise KeyError(f'unknown {what} {name!r}; valid {what}s are {sorted(registry.module_dict)}')
    return cls(**cfg)


def build_gop(cfg):
    """Build a GOP block from ``dict(type=NAME, in_channels, out_channels, expansion, ...)``."""
    return _build(GOPS, 'GOP', cfg)


def build_dsm(cfg):
    """Build a DSM from ``dict(type=NAME, in_channels, out_channels, stride, head_dim)``."""
    return _build(DSMS, 'DSM', cfg)


#: Library registries that user-facing models go into, besides the root one.
DOWNSTREAM_REGISTRIES = ('mmdet.registry', 'mmseg.registry', 'mmpretrain.registry')


def _downstream_model_registries():
    regs = [MMENGINE_MODELS]
    for mod in DOWNSTREAM_REGISTRIES:
        try:
            regs.append(importlib.import_module(mod).MODELS)
        except ImportError:  # library not installed: configs of it cannot run anyway
            pass
    return regs


def register_model(cls=None, *, name=None):
    """Class decorator: register a model component in every OpenMMLab model registry."""

    def _register(module):
        for reg in _downstream_model_registries():
            reg.register_module(name=name, module=module, force=True)
        return module

    return _register(cls) if cls is not None else _register
