"""Tests written for the survivors of the sampled mutmut run (docs/mutation.md): the search's
statistics and strategies against independent references (hand-computed cases, scipy, a naive
enumeration of a small space, an uninterrupted twin for resuming) and the checkpoint loader's
numpy allowlist against a list of types written here."""
import contextlib
import copy
import itertools
import math
import pickle
import re
import zipfile

import numpy as np
import pytest
import torch
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


# --- utils/safe_load.py (bounded run, preset safe_load): the numpy allowlist is built at import
# time, before mutmut's forked test runs, so these tests build it again inside the test.

#: the numpy types an MMEngine checkpoint may hold (written here, not read from safe_load)
NUMPY_SCALARS = dict(
    bool_=True, int8=-3, int16=300, int32=-70000, int64=2**40, uint8=200, uint16=60000,
    uint32=2**31, uint64=2**63, float16=0.5, float32=1.25, float64=2.5, longdouble=3.5,
    complex64=1 + 2j, complex128=3 - 4j, str_='abc', bytes_=b'xy',
    datetime64='2026-12-02', timedelta64=3, void=b'\x01\x02')


@contextlib.contextmanager
def _only_numpy_allowlist():
    """torch's safe globals = what ``_numpy_globals()`` returns now (restored afterwards)."""
    from uninet_mm.utils import safe_load
    before = torch.serialization.get_safe_globals()
    torch.serialization.clear_safe_globals()
    try:
        torch.serialization.add_safe_globals(safe_load._numpy_globals())
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def _numpy_objects(name):
    np_type = getattr(np, name)
    value = NUMPY_SCALARS[name]
    scalar = (np.datetime64(value) if name == 'datetime64' else
              np.timedelta64(value, 's') if name == 'timedelta64' else np_type(value))
    return dict(scalar=scalar, dtype=np.dtype(scalar.dtype), array=np.array([scalar, scalar]),
                type=np_type)


def _with_module_spelling(path, spelling):
    """Rewrite the checkpoint so its pickle names numpy's multiarray as ``spelling`` (numpy 1.x
    writes ``numpy.core.multiarray``, numpy 2.x may write ``numpy._core.multiarray``)."""
    with zipfile.ZipFile(path) as z:
        entries = [(n, z.read(n)) for n in z.namelist()]
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
        for n, data in entries:
            if n.endswith('data.pkl'):
                data = re.sub(rb'numpy\.(_?)core\.multiarray', spelling.encode(), data)
            z.writestr(n, data)


@pytest.mark.parametrize('spelling', ['numpy.core.multiarray', 'numpy._core.multiarray'])
@pytest.mark.parametrize('name', sorted(NUMPY_SCALARS))
def test_numpy_allowlist_loads_every_listed_type(name, spelling, tmp_path):
    if not hasattr(np, name):
        pytest.skip(f'numpy {np.__version__} has no {name}')
    objects = _numpy_objects(name)
    path = str(tmp_path / 'np.pth')
    torch.save(objects, path)
    _with_module_spelling(path, spelling)
    with _only_numpy_allowlist():
        loaded = torch.load(path, weights_only=True)
    assert loaded['type'] is objects['type'] and loaded['dtype'] == objects['dtype']
    assert type(loaded['scalar']) is type(objects['scalar'])
    assert loaded['scalar'] == objects['scalar']
    assert np.array_equal(loaded['array'], objects['array'])


def test_numpy_allowlist_refuses_what_it_does_not_list(tmp_path):
    path = str(tmp_path / 'np.pth')
    torch.save({'f': np.float64(1.0), 'ufunc': np.add}, path)
    with _only_numpy_allowlist(), pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)


def test_whitespace_only_text_file_is_named_as_text(tmp_path):
    from uninet_mm.utils.safe_load import CheckpointFileError, load_file
    path = tmp_path / 'blank.pth'
    path.write_text('   \n\n\t\n')
    with pytest.raises(CheckpointFileError, match=r"is a text file, not a checkpoint \(it "
                                                  r"starts with ''\)"):
        load_file(str(path))


@pytest.mark.parametrize('legacy', [False, True])
def test_refusal_names_every_refused_global(legacy, tmp_path):
    """Two functions outside the allowlist are both named; a legacy (non-zip) checkpoint, which
    torch cannot list the globals of, is named from the unpickler's message."""
    import os

    from uninet_mm.utils.safe_load import UnsafeCheckpointError, load_file
    path = str(tmp_path / 'evil.pth')
    objects = {'a': os.getcwd} if legacy else {'a': os.getcwd, 'b': os.getpid}
    torch.save(objects, path, _use_new_zipfile_serialization=not legacy)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_file(path)
    names = 'posix.getcwd' if legacy else 'posix.getcwd, posix.getpid'
    assert f'it contains {names}, which is not one of' in str(info.value)
