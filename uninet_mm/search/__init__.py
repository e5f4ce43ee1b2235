"""Unified architecture search of UniNet (paper Sec. 3.4, 3.5): the search space as data,
an LSTM controller trained with PPO, random search and regularised evolution baselines,
proxy-training and zero-cost evaluators, serial or Ray execution, a durable results file with
resume, and the exports (top-k configs, Pareto plot, summary). ``tools/search.py`` runs it.

One concept per module: ``space`` (tokens <-> arch dicts), ``controller`` (policy + PPO),
``strategies`` (PPO / random / evolution), ``reward`` (the reward, alpha and target),
``runner`` (Runner plumbing of the proxies), ``proxy`` (proxy training), ``zero_cost``
(NASWOT), ``evaluators`` (synthetic, ``build_evaluator``), ``registry`` (MMEngine registries
of strategies, evaluators, executors), ``executor`` (serial / local pool / Ray), ``results``
(the results file), ``loop`` (the resumable search loop, both schedules, progress), ``export``
(configs, plot, tables),
``tabular`` and ``nasbench_graph`` (tabular benchmarks), ``stats`` and ``benchmark`` (the
multi-seed harness of ``tools/search_benchmark.py``).
"""
from .controller import LSTMPolicy, PPOController
from .evaluators import (
                         ProxyTrainEvaluator,
                         SyntheticEvaluator,
                         ZeroCostEvaluator,
                         build_evaluator,
                         compute_reward,
                         scale_target,
)
from .executor import PoolExecutor, RayExecutor, SerialExecutor, build_executor, ray_available
from .export import export_topk, pareto_front, pareto_plot, strategy_stats, summary_table, top_k
from .loop import (
    Progress,
    SearchRun,
    resolve_target,
    run_async,
    run_candidate,
    worker_utilisation,
)
from .registry import EVALUATORS, EXECUTORS, STRATEGIES
from .results import ResultsFile
from .space import DECISIONS, PAPER_CHOICES, SearchSpace, SearchSpaceError, build_search_space
from .strategies import PPOSearch, RandomSearch, RegularizedEvolution, build_strategy
from .tabular import Table, TabularEvaluator, TabularSpace, load_table

__all__ = [
    'LSTMPolicy', 'PPOController', 'ProxyTrainEvaluator', 'SyntheticEvaluator',
    'ZeroCostEvaluator', 'build_evaluator', 'compute_reward', 'scale_target', 'PoolExecutor',
    'RayExecutor', 'worker_utilisation', 'run_async',
    'SerialExecutor', 'build_executor', 'ray_available', 'export_topk', 'pareto_front',
    'pareto_plot', 'strategy_stats', 'summary_table', 'top_k', 'Progress', 'SearchRun',
    'resolve_target', 'run_candidate', 'ResultsFile', 'DECISIONS', 'PAPER_CHOICES',
    'SearchSpace', 'SearchSpaceError', 'build_search_space', 'PPOSearch', 'RandomSearch',
    'RegularizedEvolution', 'build_strategy', 'STRATEGIES', 'EVALUATORS', 'EXECUTORS', 'Table',
    'TabularEvaluator', 'TabularSpace', 'load_table'
]
