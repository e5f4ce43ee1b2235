"""Shared code of the tools and the tests (the top layer of the package, below ``tools/``):
work-dir and output guards (:mod:`.workdir`), checkpoint/model matching (:mod:`.loading`),
loading a tool as a module, finding configs in the clone or the installed package, the
released-layout reference model and the parameter randomiser of the parity checks."""
from ..utils.paths import find_config, find_tool
from .randomize import randomize_
from .released import RELEASED_PRESETS, ReleasedUniNet
from .tools import load_tool

__all__ = ['RELEASED_PRESETS', 'ReleasedUniNet', 'find_config', 'find_tool', 'load_tool',
           'randomize_']
