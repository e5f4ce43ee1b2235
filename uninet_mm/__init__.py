"""uninet_mm: UniNet (Liu et al., ECCV 2022) as a drop-in OpenMMLab backbone.

``import uninet_mm`` (or ``custom_imports = dict(imports=['uninet_mm'])`` in a config) registers
the GOP blocks, DSMs, the UniNet backbone, its heads, the Swin/PVT retrofits and the demo
datasets in the MMEngine, MMDetection, MMSegmentation and MMPretrain registries, and makes
``torch.load`` accept exactly the types that MMEngine checkpoints hold.
"""
from .utils.safe_load import install_safe_globals
from .version import __version__

install_safe_globals()

# registers the models, the demo datasets, the hooks and the 'released' checkpoint converter
from . import converters, datasets, engine, models  # noqa: E402,F401

__all__ = ['__version__']
