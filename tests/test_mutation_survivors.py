"""Tests written for the survivors of the sampled mutmut run (docs/mutation.md): the search's
statistics and strategies against independent references (hand-computed cases, scipy, a naive
enumeration of a small space, an uninterrupted twin for resuming)."""
import copy
import itertools
import math

import pytest
from scipy.stats import wilcoxon

from uninet_mm.search import PPOSearch, RandomSearch, RegularizedEvolution, build_strategy
from uninet_mm.search.stats import wilcoxon_greater

pytestmark = pytest.mark.usefixtures('one_thread')


def scipy_greater(d):
    return wilcoxon(d, zero_method='wilcox', correction=False, alternative='greater',
                    method='approx').pvalue


# ------------------------------------------------------------------ Wilcoxon, normal branch
def test_wilcoxon_with_ties_uses_the_tie_corrected_normal_approximation():
    """Hand-computed: d = (1, -2, 2) has ranks 1, 2.5, 2.5 (a tie at the top), W+ = 3.5,
    mean n(n+1)/4 = 3, var n(n+1)(2n+1)/24 - (2^3 - 2)/48 = 3.5 - 0.125, p = Phi(-z)."""
    z = (3.5 - 3) / math.sqrt(3.5 - 0.125)
    p = 0.5 * math.erfc(z / math.sqrt(2))
    assert wilcoxon_greater([1., 0., 2.], [0., 2., 0.]) == pytest.approx(p, rel=1e-12)
    assert p == pytest.approx(scipy_greater([1, -2, 2]), rel=1e-9)
    # d = (1, 1, 2): the tie at the bottom, W+ = 6
    z = (6 - 3) / math.sqrt(3.5 - 0.125)
    assert wilcoxon_greater([1., 1., 2.], [0., 0., 0.]) == pytest.approx(
        0.5 * math.erfc(z / math.sqrt(2)), rel=1e-12)
    # several tie groups and zeros (dropped), against scipy
    d = [0., 1., -1., 2., 2., -2., 3., 0., 4., 4., -5.]
    assert wilcoxon_greater(d, [0.] * len(d)) == pytest.approx(scipy_greater(d), rel=1e-9)


def test_wilcoxon_over_50_pairs_without_ties_against_scipy():
    d = [(k + 1) * (1 if k % 3 else -1) for k in range(51)]   # 51: the first normal case
    assert wilcoxon_greater(d, [0] * 51) == pytest.approx(scipy_greater(d), rel=1e-9)
    assert wilcoxon_greater([0] * 51, d) == pytest.approx(
        scipy_greater([-v for v in d]), rel=1e-9)


# ----------------------------------------------------------------------- strategies
NUM_CHOICES = [3, 1, 4, 2, 5]


@pytest.mark.parametrize('cls', [RandomSearch, RegularizedEvolution, PPOSearch])
def test_the_seed_decides_the_proposals_and_defaults_to_zero(cls):
    assert cls(NUM_CHOICES, seed=5).seed == 5
    assert cls(NUM_CHOICES, seed=5).propose(6) == cls(NUM_CHOICES, seed=5).propose(6)
    assert cls(NUM_CHOICES, seed=5).propose(6) != cls(NUM_CHOICES, seed=6).propose(6)
    assert cls(NUM_CHOICES).propose(6) == cls(NUM_CHOICES, seed=0).propose(6)


def test_evolution_smallest_settings_are_allowed_and_smaller_refused():
    RegularizedEvolution(NUM_CHOICES, population_size=2, sample_size=2)
    RegularizedEvolution(NUM_CHOICES, population_size=2, sample_size=1)
    for size, sample in ((1, 1), (4, 0), (4, 5)):
        with pytest.raises(ValueError, match='population_size >= 2'):
            RegularizedEvolution(NUM_CHOICES, population_size=size, sample_size=sample)
    with pytest.raises(KeyError, match="unknown search strategy 'nope'"):
        build_strategy(dict(type='nope'), NUM_CHOICES)


def test_evolution_mutates_only_decisions_with_a_choice_and_reports_the_population():
    strategy = RegularizedEvolution([1, 3, 1], seed=0, population_size=2, sample_size=2)
    first = strategy.propose(2)
    assert strategy.observe(first, [0.2, 0.4]) == dict(population=2)
    for child in strategy.propose(20):
        assert child[0] == child[2] == 0 and child[1] != first[1][1]
    assert strategy.observe([first[0]], [0.1]) == dict(population=2)  # the oldest left


def test_evolution_first_population_size_proposals_are_random_even_if_observed_early():
    """Each proposal counts once; the first ``population_size`` ones are random, also when
    some were observed before the rest were proposed (a mutant of one member differs from it
    by one token; random sequences of 12 decisions of 5 choices by far more)."""
    strategy = RegularizedEvolution([5] * 12, seed=4, population_size=4, sample_size=4)
    first = strategy.propose(2)
    strategy.observe(first, [0.5, 0.7])
    second = strategy.propose(2)
    assert strategy.state_dict()['proposed'] == 4
    assert all(sum(a != b for a, b in zip(s, f)) > 1 for s in second for f in first)


def _run(strategy, rounds, batch=3):
    for r in range(rounds):
        tokens = strategy.propose(batch)
        strategy.observe(tokens, [0.1 * (r + i) for i in range(len(tokens))])


@pytest.mark.parametrize('cls', [RandomSearch, RegularizedEvolution, PPOSearch])
def test_resumed_strategy_continues_like_the_uninterrupted_one(cls):
    kw = dict(population_size=3, sample_size=2) if cls is RegularizedEvolution else {}
    a = cls(NUM_CHOICES, seed=1, **kw)
    _run(a, 3)
    pending = a.propose(2)                 # proposed, not observed yet, when it stops
    b = cls(NUM_CHOICES, seed=2, **kw)
    b.load_state_dict(copy.deepcopy(a.state_dict()))
    a.observe(pending, [0.3, 0.2])
    b.observe(pending, [0.3, 0.2])
    assert a.state_dict().keys() == b.state_dict().keys()
    assert a.propose(4) == b.propose(4)
    if cls is RegularizedEvolution:
        assert a.population == b.population
    if cls is PPOSearch:
        assert a.seen == b.seen and len(a.seen) == 3 * 3 + 2 + 4


def test_ppo_never_repeats_until_the_space_is_used_up():
    """A space of 3 x 2 = 6 sequences, one proposal at a time (the policy's own draw repeats
    often, so the re-draws run): the first six are the whole space, each once; then repeats
    are allowed and every call still returns exactly one sequence. Each pending proposal keeps
    one log-probability per decision, summing to the sequence's log-probability."""
    strategy = PPOSearch([3, 2], seed=0)
    seen = [strategy.propose(1) for _ in range(6)]
    assert all(len(s) == 1 for s in seen)
    assert sorted(tuple(s[0]) for s in seen) == sorted(itertools.product(range(3), range(2)))
    for _ in range(3):
        assert len(strategy.propose(1)) == 1
    pending = strategy.state_dict()['pending']
    assert len(pending) == 9
    for tokens, logp in pending:
        assert len(logp) == 2
        assert sum(logp) == pytest.approx(strategy.controller.log_prob(tokens), abs=1e-5)


def test_ppo_batch_has_no_repeats_within_or_across_calls():
    strategy = PPOSearch([2, 2, 2], seed=3)
    first, second = strategy.propose(3), strategy.propose(5)
    assert len(first) == 3 and len(second) == 5
    assert len({tuple(t) for t in first + second}) == 8
