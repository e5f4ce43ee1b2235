"""Registries of the search: strategies, evaluators and executors, MMEngine ``Registry``
objects like the model registries, so a new one is a decorated class and a config names it::

    from uninet_mm.search.registry import STRATEGIES

    @STRATEGIES.register_module(name='my_strategy')
    class MyStrategy(Strategy): ...

    strategies = [dict(type='my_strategy', ...)]
"""
from mmengine.registry import Registry

#: search strategies: ``cls(num_choices, seed=..., **kwargs)`` (search/strategies.py)
STRATEGIES = Registry('search strategy', locations=['uninet_mm.search.strategies'])
#: candidate evaluators: ``cls(**kwargs)``, called as ``(arch, tokens, seed) -> dict``
EVALUATORS = Registry('search evaluator', locations=['uninet_mm.search.evaluators'])
#: where candidates run: ``cls(**kwargs)``, an ``Executor`` (``submit``, ``wait_one``,
#: ``map_unordered``; search/executor.py)
EXECUTORS = Registry('search executor', locations=['uninet_mm.search.executor'])


def build_from(registry, what, cfg, **defaults):
    """``registry.get(cfg['type'])(**defaults, **rest)`` with an error naming the valid
    types (``Registry.build`` would switch to the default scope's registry)."""
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    cls = registry.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise KeyError(f'unknown {what} {kind!r}; valid {what}s are '
                       f'{sorted(registry.module_dict)}')
    return cls(**{**defaults, **cfg})
