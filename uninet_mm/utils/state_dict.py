"""State-dict key helpers shared by the backbone, the retrofits and the converters."""
from collections import OrderedDict


def strip_prefix(state_dict, prefix, only_if_all=False):
    """The entries of ``state_dict`` under ``prefix`` (``'backbone'`` or ``'backbone.'``), with
    the prefix removed; entries outside it are dropped.

    With ``only_if_all`` the prefix is a wrapper's (DDP's ``module.``): it is removed only when
    every key has it, and ``state_dict`` comes back unchanged otherwise.
    """
    if not prefix:
        return state_dict
    prefix = prefix if prefix.endswith('.') else prefix + '.'
    if only_if_all and not (state_dict and all(k.startswith(prefix) for k in state_dict)):
        return state_dict
    return OrderedDict((k[len(prefix):], v) for k, v in state_dict.items()
                       if k.startswith(prefix))
