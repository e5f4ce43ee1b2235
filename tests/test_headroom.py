"""The headroom model (uninet_mm/search/headroom.py) against a hand-computed case and a naive
simulation of random search; the harness's --headroom option end to end."""
import json
import math
import random

import numpy as np
import pytest

from uninet_mm.apis import load_tool
from uninet_mm.search.headroom import PickSampler, effective_factor, headroom
from uninet_mm.search.tabular import Table, TableEntry, write_table


def _hand_table():
    # 4 token sequences, the last absent (a failed candidate: scored as the table's worst)
    return Table([TableEntry([0], 0.9, 0.5), TableEntry([1], 0.8, 0.7),
                  TableEntry([2], 0.1, 0.2)], num_choices=[4])


@pytest.mark.parametrize('n,expected', [
    (1, (0.5 + 0.7 + 0.2 + 0.2) / 4),            # each position with probability 1/4
    (2, (7 * 0.5 + 5 * 0.7 + 3 * 0.2 + 1 * 0.2) / 16),   # P(J >= j) = ((4 - j) / 4) ** 2
])
def test_pick_distribution_hand_computed(n, expected):
    sampler, rng = PickSampler(_hand_table()), np.random.default_rng(0)
    picks = [sampler.pick(n, rng) for _ in range(40000)]
    assert abs(np.mean(picks) - expected) < 0.004
    assert sampler.pick(math.inf, rng) == 0.5      # the best observed value's test score


def _aliased_table():
    # architecture A (value 0.50, test 0.3) under 4 token sequences, B (0.52, 0.9) under one;
    # C (0.1, 0.1) under two; two sequences absent
    entries = [TableEntry(t, 0.50, 0.3, arch='A') for t in ([0, 0], [0, 1], [0, 2], [1, 0])]
    entries += [TableEntry([1, 1], 0.52, 0.9, arch='B'),
                TableEntry([1, 2], 0.1, 0.1, arch='C'), TableEntry([2, 0], 0.1, 0.1, arch='C')]
    return Table(entries, num_choices=[3, 3])


def _naive_random_search(table, n, noise, rng):
    """Random search written out: fresh noise per architecture, n uniform draws of the tokens,
    the best observed value's score (every draw failed: the worst score)."""
    offset = {}
    best = None
    for _ in range(n):
        tokens = [rng.randrange(c) for c in table.num_choices]
        e = table.get(tokens)
        if e is None:
            continue
        v = e.value + offset.setdefault(e.arch, rng.gauss(0., noise))
        if best is None or v > best[0]:
            best = (v, e.score)
    return table.worst_score() if best is None else best[1]


@pytest.mark.parametrize('n', [1, 5])
def test_pick_matches_a_naive_random_search_with_noise_and_aliases(n):
    table, trials = _aliased_table(), 20000
    py = random.Random(0)
    naive = [_naive_random_search(table, n, 0.05, py) for _ in range(trials)]
    sampler, rng = PickSampler(table), np.random.default_rng(0)
    model = []
    for _ in range(trials):
        sampler.reorder(0.05, rng)
        model.append(sampler.pick(n, rng))
    sem = math.hypot(np.std(naive), np.std(model)) / math.sqrt(trials)
    assert abs(np.mean(naive) - np.mean(model)) < 4 * sem + 1e-9


def test_power_of_an_oracle_and_of_random_search_itself():
    table = Table([TableEntry([i], i / 1000., i / 1000.) for i in range(1000)])
    res = headroom(table, budgets=(2,), factors=(1, math.inf), seeds=30, studies=40)[2]
    assert res['factors'][math.inf]['power'] == 1.0 and res['factors'][math.inf]['a12'] > 0.99
    assert res['factors'][math.inf]['mean'] == pytest.approx(0.999)
    assert res['factors'][1]['power'] <= 0.1            # random vs itself: about alpha
    assert abs(res['factors'][1]['a12'] - 0.5) < 0.05
    assert res['random'] == pytest.approx(2 / 3 * 0.999, abs=0.02)   # E[max of 2 uniforms]


def test_effective_factor_interpolates_in_log_k():
    res = dict(factors={1: dict(mean=0.80), 2: dict(mean=0.81), 4: dict(mean=0.82),
                        math.inf: dict(mean=0.9)})
    assert effective_factor(res, 0.815) == pytest.approx(2 ** 1.5)
    assert effective_factor(res, 0.80) == pytest.approx(1.0)
    assert effective_factor(res, 0.79) is None
    assert effective_factor(res, 0.83) == math.inf


def test_harness_headroom_option_with_an_earlier_summary(tmp_path):
    path = tmp_path / 'table.jsonl'
    write_table(Table([TableEntry([i], i / 100., i / 100.) for i in range(100)]), str(path))
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'summary.json').write_text(json.dumps(
        dict(budgets={'2': dict(ppo=dict(mean=0.0), evolution=dict(mean=1.5))})))
    bench = load_tool('search_benchmark')
    assert bench.main(['--table', str(path), '--headroom', '--budgets', '2', '--seeds', '6',
                       '--studies', '5', '--factors', '1,4,inf', '--out', str(out)]) == 0
    got = json.loads((out / 'headroom.json').read_text())['2']
    assert set(got['factors']) == {'1', '4', 'inf'}
    assert got['factors']['inf']['mean'] == pytest.approx(0.99)
    assert got['effective_factor'] == {'ppo': None, 'evolution': 'inf'}
    assert 'k=inf mean (power)' in (out / 'headroom.md').read_text()
    with pytest.raises(SystemExit):
        bench.parse_args(['--table', str(path), '--headroom', '--factors', '0.5', '--out', 'x'])
