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
    ``b``. Pairs with equal values are dropped (Wilcoxon's original treatment); the exact null
    distribution of the positive rank sum ``W+`` when there are no ties and at most 50 pairs
    remain, the normal approximation with the tie correction otherwise (no continuity
    correction), as ``scipy.stats.wilcoxon(a, b, alternative='greater')`` computes it.
    1.0 when every pair is equal: no evidence either way."""
    if len(a) != len(b):
        raise ValueError(f'wilcoxon: paired samples of different sizes {len(a)}, {len(b)}')
    d = [float(x) - float(y) for x, y in zip(a, b)]
    d = [v for v in d if v != 0.]
    n = len(d)
    if n == 0:
        return 1.0
    order = sorted(range(n), key=lambda i: abs(d[i]))
    ranks = [0.] * n
    ties, i = [], 0
    while i < n:  # average ranks of tied |d|
        j = i
        while j + 1 < n and abs(d[order[j + 1]]) == abs(d[order[i]]):
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        if j > i:
            ties.append(j - i + 1)
        i = j + 1
    w = sum(r for r, v in zip(ranks, d) if v > 0)
    if not ties and n <= 50:
        # counts[s]: sign assignments whose positive ranks sum to s (ranks are 1..n)
        counts = [1] + [0] * (n * (n + 1) // 2)
        for r in range(1, n + 1):
            for s_ in range(len(counts) - 1, r - 1, -1):
                counts[s_] += counts[s_ - r]
        return sum(counts[int(round(w)):]) / 2 ** n
    mean = n * (n + 1) / 4
    var = n * (n + 1) * (2 * n + 1) / 24 - sum(t ** 3 - t for t in ties) / 48
    if var <= 0:
        return 1.0
    z = (w - mean) / math.sqrt(var)
    return 0.5 * math.erfc(z / math.sqrt(2))


def a12(a, b):
    """Vargha-Delaney A12: the probability that a value of ``a`` beats one of ``b`` (ties
    count half); 0.5 is no effect, 0.71 / 0.64 / 0.56 large / medium / small."""
    if not a or not b:
        raise ValueError('a12: empty sample')
    wins = sum((x > y) + 0.5 * (x == y) for x in a for y in b)
    return wins / (len(a) * len(b))
