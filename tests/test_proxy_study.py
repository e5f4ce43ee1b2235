"""The proxy study's statistics (uninet_mm/search/rank_agreement.py) against hand-computed
cases and an independent bootstrap (scipy.stats.bootstrap), its stratified sampling and resume
(tools/proxy_study.py), and the harness on the shipped UniNet table."""
import json
import math
import os.path as osp
import random

import pytest

from uninet_mm.search.rank_agreement import (
    agreement,
    bootstrap_interval,
    kendall_tau,
    seed_to_seed_tau,
    spearman_rho,
    top_overlap,
)
from uninet_mm.search.results import ResultsFile

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def test_tau_and_rho_against_hand_computed_cases():
    # one swapped neighbour pair of 4: 5 concordant, 1 discordant pair -> (5 - 1) / 6
    x, y = [1, 2, 3, 4], [1, 3, 2, 4]
    assert kendall_tau(x, y) == pytest.approx(2 / 3)
    # d = (0, 1, 1, 0): 1 - 6 * 2 / (4 * 15)
    assert spearman_rho(x, y) == pytest.approx(0.8)
    # reversed: every pair discordant
    assert kendall_tau(x, x[::-1]) == pytest.approx(-1.)
    # tau-b with a tie in x: 5 concordant of 6 pairs, 1 tied in x: 5 / sqrt(5 * 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / 30 ** 0.5)
    with pytest.raises(ValueError, match='different lengths'):
        kendall_tau([1, 2], [1, 2, 3])


def test_top_overlap_counts_the_shared_top_k():
    y = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    x = [0.1, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.9, 0.0]  # y's best is x's 9th
    assert top_overlap(x, y, 0.2) == pytest.approx(0.5)   # top 2: {0, 1} vs {8, 1}
    assert top_overlap(x, y, 0.1) == pytest.approx(0.)    # top 1: {0} vs {8}
    assert top_overlap(y, y, 0.3) == pytest.approx(1.)
    assert top_overlap(x[:4], y[:4], 0.1) == pytest.approx(0.)  # k is at least 1


def test_bootstrap_resamples_pairs_together():
    """Perfectly concordant pairs give tau 1 on every resample: an interval of [1, 1] (pairs
    resampled independently would centre it on 0)."""
    x = list(range(20))
    y = [v * v for v in x]
    assert bootstrap_interval(x, y, kendall_tau, reps=200) == pytest.approx((1., 1.))


def test_bootstrap_interval_matches_scipy_percentile_bootstrap():
    from scipy.stats import bootstrap
    rng = random.Random(0)
    x = [rng.random() for _ in range(30)]
    y = [v + rng.gauss(0, 0.3) for v in x]
    lo, hi = bootstrap_interval(x, y, spearman_rho, reps=3000, seed=1)
    ref = bootstrap((x, y), lambda a, b: spearman_rho(list(a), list(b)), paired=True,
                    vectorized=False, n_resamples=3000, method='percentile',
                    confidence_level=0.95, random_state=2).confidence_interval
    assert lo < spearman_rho(x, y) < hi
    assert lo == pytest.approx(ref.low, abs=0.05) and hi == pytest.approx(ref.high, abs=0.05)
    lo90, hi90 = bootstrap_interval(x, y, spearman_rho, reps=3000, seed=1, level=0.9)
    assert lo < lo90 < hi90 < hi


def test_seed_to_seed_tau_is_the_mean_over_pairs():
    a, b, c = [1, 2, 3, 4], [1, 3, 2, 4], [4, 3, 2, 1]
    recs = [dict(fidelity='p', seed=s, index=i, accuracy=v[i])
            for s, v in enumerate((a, b, c)) for i in range(4)]
    recs.append(dict(fidelity='q', seed=0, index=0, accuracy=9.))  # another fidelity
    out = seed_to_seed_tau(recs, 'p', 3)
    assert {k: p['tau'] for k, p in out['pairs'].items()} == pytest.approx(
        {'0-1': 2 / 3, '0-2': -1., '1-2': -2 / 3})
    assert out['tau'] == pytest.approx(-1 / 3) and out['sd_n'] == 4
    # per-architecture sd over (1 1 4), (2 3 3), (3 2 2), (4 4 1): sqrt(3), sqrt(1/3) x 2, sqrt(3)
    assert out['sd'] == pytest.approx((2 * 3 ** .5 + 2 * (1 / 3) ** .5) / 4)
    out = agreement(a, b, reps=50)
    assert out['kendall_tau'] == pytest.approx(2 / 3) and out['n'] == 4
    assert out['kendall_tau_ci'][0] <= out['kendall_tau_ci'][1]


def _load_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location('proxy_study',
                                                  osp.join(REPO, 'tools', 'proxy_study.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _GridSpace:
    """6 x 6 token pairs, each its own architecture."""

    def sample(self, rng):
        return [rng.randrange(6), rng.randrange(6)]

    def decode(self, tokens):
        return list(tokens)

    def arch_key(self, arch):
        return tuple(arch)


def test_stratified_archs_take_one_per_flops_bin_and_results_resume(tmp_path):
    tool = _load_tool()
    flops_of = {}

    def complexity(arch):
        flops_of[tuple(arch)] = 10 * arch[0] + arch[1]
        return flops_of[tuple(arch)], 0

    archs = tool.stratified_archs(_GridSpace(), complexity, 4, 3)
    pool = sorted(flops_of.values())
    assert len(pool) == 12  # 4 bins of 3 distinct architectures
    for b, a in enumerate(archs):  # one per bin, in FLOPs order
        assert a['flops'] in pool[3 * b:3 * b + 3]
    jobs = tool.job_list(archs, 'demo', 3, True)
    assert len(jobs) == len(set(jobs)) == 16
    first = jobs[0][2]
    # seeds 0 and 1 of every architecture first, then the higher fidelity and seed 2
    assert {j[1] for j in jobs[:8] if j[0] == 'demo'} == {0, 1} and len(jobs[:8]) == 8
    assert jobs[:2] == [('demo', 0, first), ('demo', 1, first)]
    assert jobs[8:10] == [('high', 0, first), ('demo', 2, first)]
    # the study's records file is the search's results file (search/results.py)
    path = str(tmp_path / 'results.jsonl')
    results = ResultsFile(path)
    results.append(dict(fidelity='demo', seed=0, index=first, accuracy=0.5))
    with open(path, 'a') as f:
        f.write('{"fidelity": "demo", "seed": 1')  # cut by a kill: dropped, redone
    with pytest.warns(UserWarning, match='incomplete last line'):
        assert results.load() == [dict(fidelity='demo', seed=0, index=first, accuracy=0.5)]
    results.append(dict(fidelity='demo', seed=1, index=first, accuracy=0.6))
    assert [r['seed'] for r in results.load()] == [0, 1]


def test_report_on_a_partial_study():
    """4 architectures: seeds 0 and 1 of all, the higher fidelity and seed 2 of 3; seed 1
    swaps one neighbour pair of seed 0's ranking (tau 2/3), the higher fidelity reverses it."""
    tool = _load_tool()
    recs = []
    s0, s1, s2, high = [.1, .2, .3, .4], [.1, .3, .2, .4], [.1, .2, .3, .4], [.9, .8, .7, .6]
    for i in range(4):
        recs += [dict(fidelity='demo', seed=0, index=i, accuracy=s0[i], cpu_seconds=2.),
                 dict(fidelity='demo', seed=1, index=i, accuracy=s1[i], cpu_seconds=4.)]
        if i < 3:
            recs += [dict(fidelity='demo', seed=2, index=i, accuracy=s2[i], cpu_seconds=3.),
                     dict(fidelity='high', seed=0, index=i, accuracy=high[i], cpu_seconds=9.)]
    for r in recs:
        r['options'] = {}
    rep = tool.report([{}] * 4, recs, 'demo', 3, reps=50)
    assert rep['complete'] == 3
    assert rep['seed0_vs_high']['kendall_tau'] == pytest.approx(-1.)
    assert rep['seconds_demo']['mean'] == pytest.approx(3.) and rep['seconds_high']['n'] == 3
    sa = rep['seed_to_seed']
    assert sa['pairs']['0-1'] == dict(n=4, tau=pytest.approx(2 / 3))
    # over archs 0..2: seed 1 = (.1, .3, .2) against (.1, .2, .3): tau 1/3
    assert sa['pairs']['0-2']['tau'] == pytest.approx(1.) and sa['pairs']['1-2']['n'] == 3
    assert sa['pairs']['1-2']['tau'] == pytest.approx(1 / 3)
    assert sa['tau'] == pytest.approx((2 / 3 + 1 + 1 / 3) / 3)
    assert 'seed-to-seed tau' in tool.markdown(rep)


@pytest.mark.parametrize('name', ['uninet_demo_40', 'uninet_pairs_40', 'uninet_pairs_fresh_40'])
def test_harness_runs_on_the_uninet_table(tmp_path, name):
    """The shipped 40-architecture tables load in the harness's format and the harness runs
    on them (their 25 tokens are the demo space's; absent sequences are failed candidates)."""
    from uninet_mm.search.benchmark import run_benchmark
    from uninet_mm.search.tabular import load_table
    path = osp.join(REPO, 'docs', 'bench', f'{name}.jsonl')
    table = load_table(path)
    assert len(table) == 40
    assert len(table) >= 5 and table.has_flops and table.num_choices == [5, 3, 5, 5, 5] * 5
    for e in table.entries.values():
        assert 0. < e.value <= 1. and (e.test is None or 0. < e.test <= 1.)
    out = run_benchmark(table, [dict(type='random')], seeds=2, budgets=(5,), workers=1,
                        batch_size=5, target=1e6)
    assert len(out['budgets']['5']['random']['values']) == 2
    with open(path) as f:
        assert json.loads(f.readline()) == dict(choices=[5, 3, 5, 5, 5] * 5)


def test_part_option_is_checked():
    study = _load_tool()
    args = study.parse_args(['--out', 'x', '--part', '2/3'])
    assert (args.part_k, args.part_m) == (2, 3)
    for bad in ('0/2', '3/2', '2', 'a/b'):
        with pytest.raises(SystemExit):
            study.parse_args(['--out', 'x', '--part', bad])


def test_high_seeds_add_jobs_and_the_reference_seed_to_seed_tau():
    """--high-seeds 2: every architecture's second reference seed comes after all else; the
    report gives the reference's own seed-to-seed tau and the proxy against its seed mean."""
    tool = _load_tool()
    jobs = tool.job_list([{}] * 4, 'p', 2, True, high_seeds=2)
    assert len(jobs) == len(set(jobs)) == 16
    assert {j for j in jobs[12:]} == {('high', 1, i) for i in range(4)}
    assert not any(j[0] == 'high' and j[1] == 1 for j in jobs[:12])
    assert len(tool.job_list([{}] * 4, 'p', 2, True)) == 12  # one reference seed by default
    # reference seeds: h0 = (.1 .2 .3 .4), h1 = (.2 .1 .3 .4) -> tau 2/3 between them; their
    # mean (.15 .15 .3 .4) against the proxy (.1 .2 .3 .4): tau-b 5 / sqrt(6 * 5)
    p, h0, h1 = [.1, .2, .3, .4], [.1, .2, .3, .4], [.2, .1, .3, .4]
    recs = []
    for i in range(4):
        recs += [dict(fidelity='p', seed=0, index=i, accuracy=p[i], cpu_seconds=1.),
                 dict(fidelity='high', seed=0, index=i, accuracy=h0[i], cpu_seconds=5.),
                 dict(fidelity='high', seed=1, index=i, accuracy=h1[i], cpu_seconds=5.)]
    for r in recs:
        r['options'] = {}
    rep = tool.report([{}] * 4, recs, 'p', 1, reps=50, high_seeds=2)
    assert rep['high_seed_to_seed']['pairs']['0-1'] == dict(n=4, tau=pytest.approx(2 / 3))
    assert rep['seed0_vs_high']['kendall_tau'] == pytest.approx(1.)
    assert rep['seed0_vs_high_mean']['kendall_tau'] == pytest.approx(5 / 30 ** 0.5)
    text = tool.markdown(rep)
    assert 'seed-to-seed tau of the higher fidelity 0.667' in text and 'mean of 2 high' in text
    with pytest.raises(SystemExit):
        tool.parse_args(['--out', 'x', '--high-seeds', '0'])


def test_a_resume_with_another_draw_is_refused(tmp_path):
    """--arch-seed draws another set; resuming a study folder with other draw options is
    refused by name (archs.json would otherwise keep the first set under the new label)."""
    tool = _load_tool()

    def complexity(arch):
        return 10 * arch[0] + arch[1], 0

    a = tool.stratified_archs(_GridSpace(), complexity, 4, 3, seed=0)
    b = tool.stratified_archs(_GridSpace(), complexity, 4, 3, seed=1)
    assert [x['tokens'] for x in a] != [x['tokens'] for x in b]
    draw, path = dict(archs=4, arch_seed=0), str(tmp_path / 'draw.json')
    tool.check_draw(path, draw)  # nothing recorded yet: nothing to refuse
    assert not osp.exists(path)  # recorded by main() only once archs.json is written
    with open(path, 'w') as f:
        json.dump(draw, f)
    tool.check_draw(path, draw)  # the same options resume
    with pytest.raises(SystemExit, match=r'arch_seed 0 -> 1'):
        tool.check_draw(path, dict(draw, arch_seed=1))
    with open(path) as f:
        assert json.load(f) == draw  # the record is not overwritten by the refused options


def test_extrapolation_against_hand_computed_values():
    from uninet_mm.search.proxy import ProxyTrainEvaluator, extrapolate
    assert extrapolate(0.5, 2e7, 0.1) == pytest.approx(0.5 + 0.1 * 0.693147, abs=1e-6)
    assert extrapolate(0.5, 1e7, 0.1) == 0.5 and extrapolate(0.4, 5e6, 0.2, 5e6) == 0.4
    with pytest.raises(ValueError, match='FLOPs must be > 0'):
        extrapolate(0.5, 0, 0.1)
    with pytest.raises(ValueError, match='FLOPs must be > 0'):
        ProxyTrainEvaluator(flops_slope=0.1, flops_ref=0)


def test_report_ranks_the_extrapolated_proxy_and_flops_alone():
    """4 architectures: the proxy's top-1 ranks them (1 2 3 4), the reference (3 4 1 2):
    tau -1/3; the last two have e^-4 x the FLOPs of the first two, so with slope 0.1 their
    scores drop by 0.4 and the extrapolation ranks as the reference does: tau 1."""
    tool = _load_tool()
    top1, high = [.10, .20, .30, .40], [.7, .8, .5, .6]
    flops = [1e7, 1e7, 1e7 * math.exp(-4.), 1e7 * math.exp(-4.)]  # -0.4 for the small two
    recs = []
    for i in range(4):
        recs += [dict(fidelity='p', seed=0, index=i, accuracy=top1[i], cpu_seconds=1.,
                      flops=flops[i], options={}),
                 dict(fidelity='high', seed=0, index=i, accuracy=high[i], cpu_seconds=1.,
                      flops=flops[i], options={})]
    rep = tool.report([{}] * 4, recs, 'p', 1, reps=20)
    assert rep['seed0_vs_high']['kendall_tau'] == pytest.approx(-1 / 3)
    assert 'extrapolated_vs_high' not in rep  # no slope given
    # FLOPs (big big small small) vs (.7 .8 .5 .6): 4 concordant, 2 tied -> tau-b 4 / sqrt(4 * 6)
    assert rep['flops_vs_high']['kendall_tau'] == pytest.approx(4 / math.sqrt(24))
    rep = tool.report([{}] * 4, recs, 'p', 1, reps=20, flops_slope=0.1)
    ext = rep['extrapolated_vs_high']['0']  # (.1 .2 -.1 0): the reference's order
    assert ext['kendall_tau'] == pytest.approx(1.) and ext['slope'] == 0.1
    for r in recs:  # a proxy run with flops_slope keeps the measured top-1 in 'top1'
        if r['fidelity'] == 'p':
            r['top1'], r['accuracy'] = r['accuracy'], -r['accuracy']
    rep = tool.report([{}] * 4, recs, 'p', 1, reps=20, flops_slope=0.1)
    assert rep['extrapolated_vs_high']['0']['kendall_tau'] == pytest.approx(1.)
    assert '+ 0.1 ln(FLOPs) vs high: Kendall tau 1.000' in tool.markdown(rep)


def test_the_draw_is_recorded_with_the_architectures_and_checked_on_resume(tmp_path):
    tool = _load_tool()
    out = str(tmp_path / 'study')
    argv = ['--out', out, '--archs', '2', '--pool-per-bin', '1', '--seeds', '1', '--report-only',
            '--bootstrap', '10']
    assert tool.main(argv) == 0
    with open(osp.join(out, 'draw.json')) as f:
        assert json.load(f) == dict(config='configs/search/mnist_demo.py', archs=2,
                                    pool_per_bin=1, arch_seed=0)
    with open(osp.join(out, 'archs.json')) as f:
        assert len(json.load(f)) == 2
    with pytest.raises(SystemExit, match=r'arch_seed 0 -> 1'):
        tool.main(argv + ['--arch-seed', '1'])
    assert tool.main(argv) == 0  # the same options resume
