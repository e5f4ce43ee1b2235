"""Statistics of a multi-seed comparison: mean and standard error, the paired one-sided
Wilcoxon signed-rank test (seeds paired) and the Vargha-Delaney A12 effect size."""
import math


def mean_sem(values):
    """``(mean, standard error of the mean)``; the sem of one value is 0."""
    n = len(values)
    if n == 0:
        raise ValueError('mean_sem: no values')
    m = sum(values) / n
    if n == 1:
        return m, 0.
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def wilcoxon_greater(a, b):
    """One-sided p-value of the paired Wilcoxon signed-rank test that ``a`` is greater than
    ``b`` (pairs with equal values are dropped, Wilcoxon's original treatment; scipy's exact
    distribution without ties, its normal approximation with ties). 1.0 when every pair is
    equal: no evidence either way."""
    if len(a) != len(b):
        raise ValueError(f'wilcoxon: paired samples of different sizes {len(a)}, {len(b)}')
    d = [x - y for x, y in zip(a, b)]
    if all(abs(v) <= 1e-12 * max(1., abs(x)) for v, x in zip(d, a)):
        return 1.0
    from scipy.stats import wilcoxon
    return float(wilcoxon(a, b, alternative='greater', zero_method='wilcox').pvalue)


def a12(a, b):
    """Vargha-Delaney A12: the probability that a value of ``a`` beats one of ``b`` (ties
    count half); 0.5 is no effect, 0.71 / 0.64 / 0.56 large / medium / small."""
    if not a or not b:
        raise ValueError('a12: empty sample')
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))
