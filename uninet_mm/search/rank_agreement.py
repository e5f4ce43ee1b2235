"""How well a cheap proxy ranks architectures as a costlier reference does: Kendall's tau-b and
Spearman's rho (scipy), percentile bootstrap intervals over architectures (pairs resampled
together, a fixed seed), the overlap of the top fraction, and the seed-to-seed agreement of
repeated proxy runs (docs/search.md, "Does the proxy rank like longer training?")."""
import itertools
import math
import random
import statistics
import warnings


def kendall_tau(x, y):
    """Kendall's tau-b (ties in either ranking corrected for), ``scipy.stats.kendalltau``."""
    from scipy.stats import kendalltau
    _check_pairs(x, y)
    return float(kendalltau(x, y).statistic)


def spearman_rho(x, y):
    """Spearman's rho (Pearson's r of the average ranks), ``scipy.stats.spearmanr``."""
    from scipy.stats import spearmanr
    _check_pairs(x, y)
    return float(spearmanr(x, y).statistic)


def _check_pairs(x, y):
    if len(x) != len(y):
        raise ValueError(f'rank agreement: paired lists of different lengths {len(x)}, {len(y)}')
    if len(x) < 2:
        raise ValueError(f'rank agreement: needs at least 2 pairs, got {len(x)}')


def bootstrap_interval(x, y, statistic, reps=2000, level=0.95, seed=0):
    """Percentile bootstrap interval of ``statistic(x, y)``: ``reps`` resamples of the pairs
    (with replacement, the same indices for ``x`` and ``y``) drawn by ``random.Random(seed)``;
    resamples where the statistic is undefined (NaN: one value repeated) are skipped.
    Returns ``(low, high)``."""
    _check_pairs(x, y)
    if not 0. < level < 1.:
        raise ValueError(f'bootstrap_interval: level must be in (0, 1), got {level}')
    rng, n, values = random.Random(seed), len(x), []
    for _ in range(int(reps)):
        idx = [rng.randrange(n) for _ in range(n)]
        with warnings.catch_warnings():  # scipy warns on a constant resample (NaN, skipped)
            warnings.simplefilter('ignore')
            v = statistic([x[i] for i in idx], [y[i] for i in idx])
        if not math.isnan(v):
            values.append(v)
    if not values:
        raise ValueError('bootstrap_interval: the statistic is undefined on every resample')
    values.sort()
    return _quantile(values, (1. - level) / 2), _quantile(values, (1. + level) / 2)


def _quantile(sorted_values, q):
    """Linear interpolation between order statistics (numpy's default)."""
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def top_overlap(x, y, fraction=0.1):
    """Share of the top ``k = max(1, round(fraction * n))`` by ``y`` that are also in the top
    ``k`` by ``x`` (ties broken by position)."""
    _check_pairs(x, y)
    k = max(1, round(fraction * len(x)))

    def top(v):
        return set(sorted(range(len(v)), key=lambda i: (-v[i], i))[:k])

    return len(top(x) & top(y)) / k


def seed_to_seed_tau(records, fidelity, seeds):
    """Seed-to-seed agreement of repeated runs of one fidelity, from study records
    (``fidelity``, ``seed``, ``index`` of the architecture, ``accuracy``): Kendall tau-b per
    pair of seeds over the architectures that have both (a partial study included), their
    mean, and the mean per-architecture standard deviation over the seeds each has."""
    acc = {}
    for r in records:
        if r['fidelity'] == fidelity:
            acc.setdefault(r['index'], {})[r['seed']] = r['accuracy']
    pairs = {}
    for s, t in itertools.combinations(range(seeds), 2):
        both = [i for i in sorted(acc) if s in acc[i] and t in acc[i]]
        if len(both) >= 3:
            pairs[f'{s}-{t}'] = dict(n=len(both), tau=kendall_tau(
                [acc[i][s] for i in both], [acc[i][t] for i in both]))
    out = dict(pairs=pairs)
    if pairs:
        out['tau'] = sum(p['tau'] for p in pairs.values()) / len(pairs)
    sds = [statistics.stdev(v.values()) for v in acc.values() if len(v) > 1]
    if sds:
        out['sd'], out['sd_n'] = sum(sds) / len(sds), len(sds)
    return out


def agreement(proxy, reference, reps=2000, level=0.95, seed=0, fraction=0.1):
    """Everything the study reports for one proxy against the reference: tau and rho with
    their bootstrap intervals, the top-``fraction`` overlap."""
    out = dict(n=len(proxy), kendall_tau=kendall_tau(proxy, reference),
               spearman_rho=spearman_rho(proxy, reference),
               top_overlap=top_overlap(proxy, reference, fraction), top_fraction=fraction)
    out['kendall_tau_ci'] = bootstrap_interval(proxy, reference, kendall_tau, reps, level, seed)
    out['spearman_rho_ci'] = bootstrap_interval(proxy, reference, spearman_rho, reps, level,
                                                seed)
    return out
