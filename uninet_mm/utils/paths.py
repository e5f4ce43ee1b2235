"""Where the configs and tools are: in the clone, or inside the installed package.

From a clone (or an editable install) they are the repository's ``configs/`` and ``tools/``.
A built wheel ships them as OpenMMLab packages do, under ``uninet_mm/.mim/{configs,tools}``
(copied there by ``setup.py`` at build time, never kept in git). Default and exported config
paths resolve through :func:`find_config`, so they work from either.
"""
import os.path as osp

#: the uninet_mm package directory
PACKAGE_DIR = osp.dirname(osp.dirname(osp.abspath(__file__)))


def clone_root():
    """The repository root that holds this package, or None for an installed package."""
    root = osp.dirname(PACKAGE_DIR)
    if osp.isfile(osp.join(root, 'setup.py')) and osp.isdir(osp.join(root, 'configs')):
        return root
    return None


def resource_roots():
    """Directories that hold ``configs/`` and ``tools/``: the clone first, then ``.mim``."""
    roots = [clone_root(), osp.join(PACKAGE_DIR, '.mim')]
    return [r for r in roots if r is not None and osp.isdir(osp.join(r, 'configs'))]


def _find(kind, path, as_given):
    if as_given and osp.isfile(path):
        return osp.abspath(path)
    rel = path[len(kind) + 1:] if path.startswith(kind + '/') else path
    tried = []
    for root in resource_roots():
        candidate = osp.join(root, kind, rel)
        if osp.isfile(candidate):
            return candidate
        tried.append(candidate)
    raise FileNotFoundError(
        f'{kind[:-1]} {path!r} not found (tried it as given and {tried or "no " + kind + "/"}); '
        f'run from a clone of uninet_mm, or install the package from a wheel built by setup.py '
        f'(which ships {kind}/ as uninet_mm/.mim/{kind})')


def find_config(path):
    """``path`` if it exists, else ``configs/<path>`` (``'configs/cls/x.py'`` or ``'cls/x.py'``)
    in the clone or in the installed ``.mim``; FileNotFoundError naming what was tried."""
    return _find('configs', path, as_given=True)


def find_tool(name):
    """``tools/<name>.py`` (``name`` with or without ``.py``) in the clone or the ``.mim``."""
    return _find('tools', name if name.endswith(('.py', '.sh')) else name + '.py', as_given=False)
