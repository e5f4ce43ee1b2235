"""Headroom of a tabular benchmark: what a strategy could gain over random search, modelled as
random search with ``k`` times the budget (docs/search.md, "How much a search can gain").

Random search draws ``n`` token sequences uniformly (with replacement) and picks the one with
the best observed value (validation value plus the seed's noise of that architecture). Over
the ``M`` token sequences sorted by observed value (failed sequences last), the position ``J``
of the pick has ``P(J >= j) = ((M - j) / M) ** n``, so ``J = floor(M * (1 - U ** (1 / n)))``
with ``U`` uniform draws it exactly, for any ``n``, in one sort per seed. A strategy "``k``
times as sample-efficient as random search" at budget ``B`` is random search with ``k * B``
draws; ``k = inf`` (every sequence evaluated) is the best pick that the observed values allow.
Power is the share of simulated studies (``seeds`` paired seeds each, the noise shared within a
seed) in which the one-sided paired Wilcoxon test finds it better than random search at ``B``.
"""
import math

import numpy as np

from .stats import a12, wilcoxon_greater
from .tabular import arch_key


class PickSampler:
    """The picks of random search on one table: :meth:`reorder` for a seed's noise, then
    :meth:`pick` for any number of draws."""

    def __init__(self, table):
        archs, keys = {}, []
        for e in table.entries.values():
            keys.append(archs.setdefault(arch_key(e.arch), len(archs)))
        self.keys, self.num_archs = np.array(keys), len(archs)
        self.values = np.array([e.value for e in table.entries.values()])
        self.scores = np.array([e.score for e in table.entries.values()])
        self.size = int(np.prod(table.num_choices, dtype=np.float64))   # M, failed ones included
        self.worst = table.worst_score()
        self.reorder(0., None)

    def reorder(self, noise, rng):
        """Sort by the observed value under fresh noise of standard deviation ``noise`` (one
        offset per architecture, as :class:`~.tabular.TabularEvaluator` adds it)."""
        values = self.values
        if noise:
            values = values + rng.normal(0., noise, self.num_archs)[self.keys]
        self.sorted_scores = self.scores[np.argsort(-values, kind='stable')]

    def pick(self, n, rng):
        """The score of random search's pick after ``n`` draws (``n = inf``: the best)."""
        if math.isinf(n):
            return float(self.sorted_scores[0])
        j = int(self.size * (1. - rng.random() ** (1. / n)))
        return float(self.sorted_scores[j]) if j < len(self.sorted_scores) else self.worst


def headroom(table, budgets=(100, 300), factors=(1, 2, 4, 8, 16, 32, math.inf), seeds=30,
             noise=0., studies=200, alpha=0.01, seed=0):
    """Per budget ``B`` and factor ``k``: the mean pick of random search with ``k * B`` draws,
    its power against random search at ``B`` (one-sided paired Wilcoxon p < ``alpha`` over
    ``seeds`` pairs) and its mean A12.
    ``{B: {'random': mean, 'factors': {k: dict(mean, power, a12)}}}``."""
    rng = np.random.default_rng(seed)
    sampler = PickSampler(table)
    base = np.empty((len(budgets), studies, seeds))
    picks = np.empty((len(budgets), len(factors), studies, seeds))
    for s in range(studies):
        for i in range(seeds):
            if noise:
                sampler.reorder(noise, rng)
            for b, budget in enumerate(budgets):
                base[b, s, i] = sampler.pick(budget, rng)
                for f, k in enumerate(factors):
                    picks[b, f, s, i] = sampler.pick(k * budget, rng)
    out = {}
    for b, budget in enumerate(budgets):
        res = {}
        for f, k in enumerate(factors):
            p, r = picks[b, f], base[b]
            res[k] = dict(
                mean=float(p.mean()),
                power=float(np.mean([wilcoxon_greater(list(p[s]), list(r[s])) < alpha
                                     for s in range(studies)])),
                a12=float(np.mean([a12(list(p[s]), list(r[s])) for s in range(studies)])))
        out[budget] = dict(random=float(base[b].mean()), factors=res)
    return out


def effective_factor(result, mean):
    """The ``k`` at which random search with ``k`` times the budget first matches ``mean``
    (log-linear between the finite factors of one budget's :func:`headroom` result); ``None``
    where ``mean`` is below random search at ``k = 1``, ``math.inf`` where it is above every
    finite factor."""
    pts = sorted((k, r['mean']) for k, r in result['factors'].items() if math.isfinite(k))
    if mean < pts[0][1]:
        return None
    for (k0, m0), (k1, m1) in zip(pts, pts[1:]):
        if min(m0, m1) <= mean <= max(m0, m1):
            t = 0. if m1 == m0 else (mean - m0) / (m1 - m0)
            return float(2 ** (math.log2(k0) + t * (math.log2(k1) - math.log2(k0))))
    return math.inf
