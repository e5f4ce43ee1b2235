"""The search's logic against hand-derived answers, through the public APIs (strategies, the
search loop, the evaluators): regularised evolution's tournament, aging and mutation; the
reward with FLOPs away from the target, end to end through :class:`SearchRun`; the NASWOT score
on constructed networks whose binary codes, and so whose kernel, are known by hand."""
import copy
import math

import pytest
import torch
import torch.nn as nn

from uninet_mm.search import (
    RegularizedEvolution,
    SearchRun,
    SearchSpace,
    ZeroCostEvaluator,
    build_strategy,
    compute_reward,
)

pytestmark = pytest.mark.usefixtures('one_thread')

NUM_CHOICES = [5] * 12


def hamming(a, b):
    return sum(x != y for x, y in zip(a, b))


def evolution(population_size, sample_size, seed=0):
    strategy = build_strategy(dict(type='evolution', population_size=population_size,
                                   sample_size=sample_size), NUM_CHOICES, seed=seed)
    assert isinstance(strategy, RegularizedEvolution)
    return strategy


def seeded_population(strategy, rewards):
    """The initial (random) population, observed with ``rewards``; the members are far apart
    (>= 4 differing tokens), so a child's parent is the one member it differs from by one."""
    members = strategy.propose(len(rewards))
    assert all(hamming(a, b) >= 4 for i, a in enumerate(members) for b in members[i + 1:])
    strategy.observe(members, rewards)
    return members


def parent_of(child, members):
    near = [i for i, m in enumerate(members) if hamming(child, m) == 1]
    assert len(near) == 1, 'a child differs from exactly one member in exactly one decision'
    return near[0]


def test_evolution_tournament_over_everyone_picks_the_best():
    strategy = evolution(population_size=4, sample_size=4)
    members = seeded_population(strategy, [0.1, 0.9, 0.3, 0.2])
    for child in strategy.propose(20):  # no new observation: the same population each time
        assert parent_of(child, members) == 1


def test_evolution_tournament_of_two_never_picks_the_worst():
    """Samples of 2 out of 4: the worst member never wins; the best wins whenever drawn, i.e.
    with probability 1 - C(3, 2) / C(4, 2) = 1/2 (binomial, 5 sigma over 400 children)."""
    strategy = evolution(population_size=4, sample_size=2, seed=1)
    members = seeded_population(strategy, [0.5, 0.9, 0.1, 0.3])
    parents = [parent_of(c, members) for c in strategy.propose(400)]
    assert parents.count(2) == 0
    assert abs(parents.count(1) / 400 - 0.5) < 5 * math.sqrt(0.25 / 400)
    # member 3 (0.3) wins only against member 2: probability 1 / C(4, 2)
    assert abs(parents.count(3) / 400 - 1 / 6) < 5 * math.sqrt(5 / 36 / 400)


def test_evolution_mutation_changes_exactly_one_decision_to_another_choice():
    strategy = evolution(population_size=3, sample_size=3, seed=2)
    members = seeded_population(strategy, [0.2, 0.4, 0.8])
    for child in strategy.propose(50):
        changed = [i for i, (a, b) in enumerate(zip(child, members[2])) if a != b]
        assert len(changed) == 1
        assert 0 <= child[changed[0]] < NUM_CHOICES[changed[0]]


def test_evolution_oldest_dies_even_when_it_is_the_best():
    """Aging, not elitism: once a child joins a full population, the first member leaves, and
    a tournament over everyone picks the best of the survivors."""
    strategy = evolution(population_size=3, sample_size=3, seed=3)
    members = seeded_population(strategy, [0.9, 0.5, 0.3])
    child = strategy.propose(1)[0]
    assert parent_of(child, members) == 0
    strategy.observe([child], [0.1])
    population = [tokens for tokens, _ in strategy.state_dict()['population']]
    assert population == [members[1], members[2], child]
    for grandchild in strategy.propose(10):
        assert parent_of(grandchild, [members[1], members[2], child]) == 0  # reward 0.5


# ------------------------------------------------------------------------- reward in the loop
class FlopsEvaluator:
    """Same accuracy for everyone; FLOPs = target * (1 + first token), so they differ from the
    target by known factors."""

    def __init__(self, target, accuracy=0.6):
        self.target, self.accuracy = target, accuracy

    def __call__(self, arch, tokens=None, seed=0):
        return dict(accuracy=self.accuracy, flops=self.target * (1 + tokens[0]), params=1)


def test_loop_reward_penalises_flops_away_from_the_target(tmp_path):
    """Reward = acc * (FLOPs / target)^alpha with the *configured* target: a candidate with
    k times the target's FLOPs gets acc * k^-0.07, and the strategy is fed exactly that."""
    space = SearchSpace(base_arch=dict(  # the demo's base network (configs/search)
        gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
        dsms=[None, 'L', 'L', 'L', 'LG', 'LG'], strides=[1, 2, 2, 2, 1, 2],
        widths=[16, 24, 32, 64, 64, 128], repeats=[1, 1, 2, 2, 1, 1],
        expansions=[1, 3, 3, 3, 2, 2], stem_width=16, head_dim=16, window_size=4,
        input_size=32))
    target = 2e6
    run = SearchRun(space, dict(type='evolution', population_size=20, sample_size=3),
                    FlopsEvaluator(target), str(tmp_path), budget=12, target_flops=target,
                    alpha=-0.07, batch_size=4)
    records = run.run()
    assert len(records) == 12 and all(r['status'] == 'ok' for r in records)
    factors = set()
    for rec in records:
        k = 1 + rec['tokens'][0]
        factors.add(k)
        assert rec['flops'] == pytest.approx(target * k)
        assert rec['reward'] == pytest.approx(0.6 * k ** -0.07, rel=1e-12)
    assert len(factors) > 1 and max(factors) > 1  # FLOPs away from the target were seen
    observed = {tuple(t): r for t, r in run.strategy.state_dict()['population']}
    for rec in records:
        assert observed[tuple(rec['tokens'])] == pytest.approx(rec['reward'], rel=1e-12)


def test_reward_refuses_a_target_that_is_not_positive():
    for target in (0, -1.0):
        with pytest.raises(ValueError, match='target must be positive'):
            compute_reward(0.5, 1e6, target)


# --------------------------------------------------------------------------------- NASWOT
class CodeNet(nn.Module):
    """Linear(4, 4) + ReLU on the first four pixels: the binary codes of image i are the rows
    of ``codes`` (weights = codes, bias -0.5, inputs one-hot)."""

    def __init__(self, codes):
        super().__init__()
        self.codes = torch.tensor(codes, dtype=torch.float32)
        self.fc = nn.Linear(4, self.codes.shape[1])
        self.act = nn.ReLU()

    def init_weights(self):
        with torch.no_grad():
            self.fc.weight.copy_(self.codes.t())
            self.fc.bias.fill_(-0.5)

    def forward(self, x, mode='tensor'):
        return self.act(self.fc(x.flatten(1)[:, :4]))


class ConstructedNASWOT(ZeroCostEvaluator):
    """The real evaluator with a constructed network and batch instead of a UniNet candidate
    and MNIST images."""

    def __init__(self, nets):
        super().__init__(batch_size=4)
        self.nets = nets

    def build_model(self, arch):
        return CodeNet(self.nets[arch])

    def batch(self):
        x = torch.zeros(4, *self.input_shape()[1:])
        x.view(4, -1)[:, :4] = torch.eye(4)  # image i: pixel i lit
        return x


def naswot_by_hand(codes):
    """log det K, K_ij = number of units on which images i and j agree (Mellor et al.)."""
    n, m = len(codes), len(codes[0])
    k = [[sum(codes[i][u] == codes[j][u] for u in range(m)) for j in range(n)]
         for i in range(n)]
    return math.log(torch.det(torch.tensor(k, dtype=torch.float64)).item()), k


def test_naswot_ranks_the_network_that_separates_inputs_better():
    """Each image lights its own unit (codes = I): every pair disagrees on 2 of 4 units,
    K = 2 I + 2 J, det K = 2^3 * 10 = 80. Cumulative codes (1000, 1100, 1110, 1111): neighbours
    disagree on one unit only, K_ij = 4 - |i - j|, det K = 20: it separates the images less
    and must score lower."""
    separate = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    cumulative = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    ev = ConstructedNASWOT(dict(separate=separate, cumulative=cumulative))
    good, bad = ev('separate')['accuracy'], ev('cumulative')['accuracy']
    ref_good, k_good = naswot_by_hand(separate)
    ref_bad, k_bad = naswot_by_hand(cumulative)
    assert k_good == [[4 if i == j else 2 for j in range(4)] for i in range(4)]
    assert k_bad == [[4 - abs(i - j) for j in range(4)] for i in range(4)]
    assert ref_good == pytest.approx(math.log(80)) and ref_bad == pytest.approx(math.log(20))
    assert good == pytest.approx(math.log(80), rel=1e-9)
    assert bad == pytest.approx(math.log(20), rel=1e-9)
    assert good > bad
    assert ev('separate')['metric'] == 'naswot'


class ZeroBiasCodeNet(CodeNet):
    """CodeNet with bias 0: the inactive units' pre-activations are exactly 0."""

    def init_weights(self):
        super().init_weights()
        with torch.no_grad():
            self.fc.bias.zero_()


def test_naswot_code_of_an_exact_zero_is_inactive():
    """NASWOT's code is ``x > 0`` (Mellor et al.: a unit is active when its input is
    positive): pre-activations of exactly 0 are inactive, so the separate codes still score
    log 80. Counting them active (``x >= 0``) would make every image light every unit, K = 4 J,
    singular."""
    separate = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]

    class Ev(ConstructedNASWOT):
        def build_model(self, arch):
            return ZeroBiasCodeNet(self.nets[arch])

    assert Ev(dict(separate=separate))('separate')['accuracy'] == pytest.approx(
        math.log(80), rel=1e-9)


def test_naswot_scores_a_network_that_cannot_tell_two_images_apart_as_failed():
    """Images 0 and 1 with the same code: K is singular; the candidate fails loudly instead of
    scoring -inf (which a maximiser would just ignore)."""
    same = [[1, 0, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    ev = ConstructedNASWOT(dict(same=copy.deepcopy(same)))
    with pytest.raises(RuntimeError, match='singular'):
        ev('same')
