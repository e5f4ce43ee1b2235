"""The command-line tools as modules: ``load_tool('train').main([...])``.

``tools/`` is no package (``tools/test.py`` would shadow the ``test`` module), so tools, the demo
and the tests import a tool through :func:`load_tool`, found in the clone or in the installed
``uninet_mm/.mim/tools`` (:func:`uninet_mm.utils.paths.find_tool`).
"""
import importlib.util
import sys

from ..utils.paths import find_tool


def load_tool(name):
    """``tools/<name>.py`` imported once as the module ``uninet_tools_<name>``."""
    module_name = f'uninet_tools_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, find_tool(name))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]
