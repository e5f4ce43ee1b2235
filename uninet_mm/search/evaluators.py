"""Candidate evaluators, registered in ``EVALUATORS`` (``search/registry.py``), one module
each; this module holds the synthetic one and ``build_evaluator``, and re-exports the others.

- :class:`ProxyTrainEvaluator` (``search/proxy.py``): trains the candidate for a few epochs
  through MMEngine's
  ``Runner`` and MMPretrain's ``ImageClassifier`` (``UniNet`` backbone + ``UniNetClsHead``) on
  the dataset of any classification config (default: ``configs/cls/uninet_mnist_demo.py``, the
  embedded MNIST proxy), and reads the real top-1 validation accuracy.
- :class:`ZeroCostEvaluator` (``search/zero_cost.py``): NASWOT (Mellor et al., ICML 2021), the
  log-determinant of the
  kernel of binary activation codes of one batch, for cheap screening without training.
- :class:`SyntheticEvaluator`: the share of tokens equal to a known best sequence (tests, and
  checking a strategy without training anything).

All of them build a candidate only through ``dict(type='UniNet', arch=arch)`` in the registry,
and count FLOPs with the project's counter (:func:`uninet_mm.utils.flops.count_flops`:
multiply-adds, attention included) at the proxy resolution.

The reward is defined once, in :mod:`uninet_mm.search.reward`; the Runner plumbing (the
candidate's Runner, the divergence hook, FLOPs counting) is in :mod:`uninet_mm.search.runner`.
"""
import inspect
import os
import time

from .proxy import _DATASET_CACHE, ProxyTrainEvaluator  # noqa: F401
from .registry import EVALUATORS, build_from
from .reward import (  # noqa: F401
    PAPER_ALPHA,
    PAPER_TARGET_FLOPS,
    PAPER_TARGET_RESOLUTION,
    compute_reward,
    scale_target,
)
from .runner import (  # noqa: F401
    DEFAULT_PROXY_CONFIG,
    REPO_ROOT,
    CandidateDiverged,
    ClassifierEvaluatorBase,
    SearchCandidateHook,
    _ClassifierEvaluatorBase,
    _release_runner,
    count_complexity,
    make_runner,
    num_threads,
    quiet_logger,
    resolve_path,
)
from .zero_cost import ZeroCostEvaluator  # noqa: F401


@EVALUATORS.register_module(name='Synthetic')
class SyntheticEvaluator:
    """A known best architecture: ``accuracy`` = share of tokens equal to ``best_tokens``,
    FLOPs fixed at ``flops`` (so the reward is the accuracy when ``flops`` is the target).

    ``fail_on=(position, value)`` raises for candidates with that token (a build failure
    stand-in), ``sleep`` seconds per call mimic training time, and ``log_file`` gets one line
    per call (the tests count re-trainings with it).
    """

    metric_name = 'synthetic'

    def __init__(self, best_tokens, flops=1.0, sleep=0., fail_on=None, log_file=None):
        self.best_tokens = [int(t) for t in best_tokens]
        self.flops, self.sleep = flops, float(sleep)
        self.fail_on = tuple(fail_on) if fail_on else None
        self.log_file = log_file

    def complexity(self, arch):
        return self.flops, 0

    def __call__(self, arch, tokens=None, seed=0):
        if tokens is None or len(tokens) != len(self.best_tokens):
            raise ValueError(f'SyntheticEvaluator: needs {len(self.best_tokens)} tokens')
        if self.log_file:
            with open(self.log_file, 'a') as f:
                f.write(' '.join(map(str, tokens)) + '\n')
                f.flush()
                os.fsync(f.fileno())
        if self.sleep:
            time.sleep(self.sleep)
        if self.fail_on and tokens[self.fail_on[0]] == self.fail_on[1]:
            raise RuntimeError(f'synthetic failure: token {self.fail_on[0]} is '
                               f'{self.fail_on[1]}')
        acc = sum(a == b for a, b in zip(tokens, self.best_tokens)) / len(tokens)
        return dict(accuracy=acc, flops=self.flops, params=0, metric=self.metric_name)


def build_evaluator(cfg):
    """``dict(type='ProxyTrain' | 'ZeroCost' | 'Synthetic' | <registered>, **kwargs)`` -> an
    evaluator (a callable is returned as is)."""
    if callable(cfg) and not isinstance(cfg, dict):
        return cfg
    cfg = dict(cfg)
    # `--cfg-options evaluator.type=ZeroCost` on a training config: the ProxyTrain arguments
    # that ZeroCost does not take mean nothing without training (epochs, subsets, lr, ...)
    if cfg.get('type') == 'ZeroCost':
        takes = inspect.signature(ZeroCostEvaluator).parameters
        for key in inspect.signature(ProxyTrainEvaluator).parameters:
            if key not in takes:
                cfg.pop(key, None)
    return build_from(EVALUATORS, 'evaluator', cfg)
