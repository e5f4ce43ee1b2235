"""Tests of the architecture search (uninet_mm/search, tools/search.py)."""
import copy
import json
import math
import os
import os.path as osp
import random
import signal
import subprocess
import sys
import tempfile
import time
from types import SimpleNamespace

import pytest
import torch

from uninet_mm.apis import load_tool
from uninet_mm.models import UniNet, parse_arch
from uninet_mm.registry import DSMS, GOPS
from uninet_mm.search import (
    PPOSearch,
    ProxyTrainEvaluator,
    RandomSearch,
    ResultsFile,
    SearchRun,
    SearchSpace,
    SearchSpaceError,
    SerialExecutor,
    SyntheticEvaluator,
    ZeroCostEvaluator,
    build_search_space,
    compute_reward,
    export_topk,
    pareto_front,
    pareto_plot,
    ray_available,
    run_candidate,
    scale_target,
    summary_table,
    top_k,
)
from uninet_mm.search.controller import PPOController
from uninet_mm.search.runner import CandidateDiverged

pytestmark = pytest.mark.usefixtures('one_thread')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
SEARCH_TOOL = osp.join(REPO, 'tools', 'search.py')

#: the demo's base network (configs/search/mnist_demo.py), small enough for 32x32 inputs
DEMO_BASE = dict(
    gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
    dsms=[None, 'L', 'L', 'L', 'LG', 'LG'],
    strides=[1, 2, 2, 2, 1, 2],
    widths=[16, 24, 32, 64, 64, 128],
    repeats=[1, 1, 2, 2, 1, 1],
    expansions=[1, 3, 3, 3, 2, 2],
    stem_width=16, head_dim=16, window_size=4, input_size=32)


def demo_space(**kwargs):
    return SearchSpace(base_arch=copy.deepcopy(DEMO_BASE), **kwargs)


# -- reward --------------------------------------------------------------------------------------
def test_reward_equals_accuracy_at_target_and_falls_with_flops():
    assert compute_reward(0.8, 550e6, 550e6) == pytest.approx(0.8)
    rewards = [compute_reward(0.8, f, 550e6) for f in (100e6, 300e6, 550e6, 1e9, 4e9)]
    assert all(a > b for a, b in zip(rewards, rewards[1:]))
    # MnasNet form: (f / t)^alpha, alpha = -0.07
    assert compute_reward(0.8, 1100e6, 550e6) == pytest.approx(0.8 * 2 ** -0.07)
    # the target moves with the pixel count: B0's 550 M at 160x160 is 22 M at 32x32
    assert scale_target(550e6, 160, 32) == pytest.approx(22e6)
    with pytest.raises(ValueError, match='positive'):
        compute_reward(0.8, 0, 550e6)


# -- space ---------------------------------------------------------------------------------------
def test_paper_space_size_and_decode_builds_as_is():
    space = build_search_space(dict(base_arch='b0'))
    assert space.num_tokens == 25
    assert space.size == (5 * 3 * 5 * 5 * 5) ** 5  # 2.3e16, "about 10^16" in the paper
    assert '2.317e+16' in space.describe()
    base = space.decode(space.base_tokens())
    assert base == parse_arch(dict(base))        # complete: parse_arch adds nothing
    assert base['widths'] == [24, 48, 80, 128, 128, 256]
    assert base['repeats'] == [1, 2, 4, 4, 4, 8]
    rng = random.Random(0)
    for _ in range(20):
        tokens = space.sample(rng)
        arch = space.decode(tokens)
        assert parse_arch(arch) == arch
        assert json.loads(json.dumps(arch)) == arch  # JSON-able for the results file
        choices = space.choices_of(tokens)
        assert space.encode(choices) == tokens


def test_distinct_architectures_counted_against_a_naive_enumeration():
    import itertools
    space = demo_space(searchable_stages=[1, 5], choices=dict(
        gop=['SA', 'DWConv', 'MLP'], dsm=['L', 'LG'], expansion=[2, 3],
        width_mult=[0.5, 0.75, 1.0], repeat_delta=[-2, -1, 0]))
    archs = {json.dumps(space.decode(t), sort_keys=True)
             for t in itertools.product(*[range(n) for n in space.num_choices])}
    assert space.size == 108 ** 2
    assert space.num_architectures == len(archs) < space.size


@pytest.mark.parametrize('round_attention', [False, True])
def test_width_and_repeat_rules(round_attention):
    space = demo_space(round_attention_widths=round_attention)
    rng = random.Random(1)
    for _ in range(200):
        tokens = space.sample(rng)
        arch, ch = space.decode(tokens), space.choices_of(tokens)
        for s in space.searchable_stages:
            attends = ch[s]['gop'] in ('SA', 'LSA') or ch[s]['dsm'] in ('LG', 'G')
            d = 16 if attends and round_attention else 8  # attention splits any width
            value = DEMO_BASE['widths'][s] * ch[s]['width_mult']
            assert arch['widths'][s] % d == 0 and 0.9 * value <= arch['widths'][s] < value + d
            assert arch['repeats'][s] == max(1, DEMO_BASE['repeats'][s] + ch[s]['repeat_delta'])
        assert arch['widths'][0] == 16 and arch['gops'][0] == 'DWConv'  # stage 0 fixed


def _choice_sequences(space):
    seqs = []
    for d in ('gop', 'dsm'):
        seqs += space.enumerate_choices(d)
    smallest = [0] * space.num_tokens
    largest = [n - 1 for n in space.num_choices]
    return seqs + [smallest, largest]


def test_every_gop_and_dsm_choice_builds_through_uninet_and_runs():
    space = demo_space()
    seqs = _choice_sequences(space)
    assert len(seqs) == 5 + 3 + 2
    x = torch.randn(2, 3, 32, 32)
    seen_gops, seen_dsms = set(), set()
    for tokens in seqs:
        arch = space.decode(tokens)
        model = UniNet(arch=arch, out_indices=(5,)).eval()
        for s in space.searchable_stages:
            stage = model.stages[s]
            # the very registry classes of the backbone, no copies
            assert type(stage.blocks[0]) is GOPS.get(arch['gops'][s])
            assert type(stage.downsample) is DSMS.get(arch['dsms'][s])
            seen_gops.add(arch['gops'][s])
            seen_dsms.add(arch['dsms'][s])
        with torch.no_grad():
            out = model(x)[0]
        assert out.shape == (2, arch['widths'][5], 1, 1)
        assert torch.isfinite(out).all()
    assert seen_gops == {'SA', 'LSA', 'Conv', 'DWConv', 'MLP'}
    assert seen_dsms == {'L', 'LG', 'G'}


@pytest.mark.parametrize('cfg, match', [
    (dict(choices=dict(gop=['SA', 'Transformer'])), r"unknown GOP\(s\) \['Transformer'\]"),
    (dict(choices=dict(dsm=['L', 'XG'])), r"unknown DSM\(s\) \['XG'\]"),
    (dict(choices=dict(expansion=[])), "'expansion' choices must be a non-empty list"),
    (dict(choices=dict(width_mult=[0.5, 0.5])), 'duplicates'),
    (dict(choices=dict(width_mult=[0.0, 1.0])), 'positive numbers'),
    (dict(choices=dict(repeat_delta=[0.5])), 'must be ints'),
    (dict(choices=dict(kernel=[3, 5])), r"unknown decisions \['kernel'\]"),
    (dict(searchable_stages=[1, 6]), r'searchable_stages \[6\] out of range'),
    (dict(searchable_stages=[]), 'searchable_stages is empty'),
    (dict(searchable_stages=[1, 1]), 'duplicates'),
    (dict(stage_choices={0: dict(gop=['SA'])}), 'stage 0.*not searchable'),
    (dict(min_repeats=2), 'min_repeats must be 0 or 1'),
    (dict(width_divisor=0), 'width_divisor'),
    (dict(searchable_stages=[0], min_repeats=0, stage_choices={0: dict(dsm=[None, 'L'])}),
     'nothing maps its width'),
    (dict(colour='red'), r"unknown keys \['colour'\]"),
    (dict(base_arch='b9'), "base_arch 'b9' is not a preset"),
    (dict(base_arch=dict(widths=[24, 48], repeats=[1])), 'base_arch is not a valid UniNet'),
])
def test_malformed_spaces_give_clear_errors(cfg, match):
    full = dict(base_arch='b0')
    full.update(cfg)
    with pytest.raises(SearchSpaceError, match=match):
        build_search_space(full)


def test_token_checks():
    space = demo_space()
    with pytest.raises(ValueError, match='expected 25 tokens'):
        space.decode([0] * 3)
    with pytest.raises(ValueError, match=r'stage 1 dsm\) = 3 out of range 0..2'):
        space.decode([0, 3] + [0] * 23)


# -- controller ----------------------------------------------------------------------------------
def test_same_seed_same_token_sequences_and_resumable_state():
    space = demo_space()
    a, b, c = (PPOController(space.num_choices, seed=s) for s in (7, 7, 8))
    ta, tb, tc = a.sample(6)[0], b.sample(6)[0], c.sample(6)[0]
    assert ta == tb and ta != tc
    for tokens in ta:
        assert all(0 <= t < n for t, n in zip(tokens, space.num_choices))
    # after an update and a state round trip, both sample the same again
    rewards = [0.1 * i for i in range(6)]
    a.update(ta, rewards, a.log_prob(ta))
    b.update(tb, rewards, b.log_prob(tb))
    snapshot = copy.deepcopy(a.state_dict())
    clone = PPOController(space.num_choices, seed=123)
    clone.load_state_dict(snapshot)
    assert a.sample(4)[0] == b.sample(4)[0] == clone.sample(4)[0]
    # masked softmax: no token beyond a decision's choices ever
    toks, logp = c.sample(200)
    assert all(t[1] < 3 for t in toks)
    assert all(lp < 0 for lp in logp)


def _synthetic_run(strategy, best, budget, batch):
    reward = lambda t: sum(x == y for x, y in zip(t, best)) / len(best)  # noqa: E731
    found = []
    for _ in range(budget // batch):
        tokens = strategy.propose(batch)
        rewards = [reward(t) for t in tokens]
        found += rewards
        strategy.observe(tokens, rewards)
    return max(found)


@pytest.mark.parametrize('seed', [0, 1])
def test_ppo_learns_a_known_best_architecture_and_beats_random(seed):
    space = build_search_space(dict(base_arch='b0'))
    rng = random.Random(1000 + seed)
    best = [rng.randrange(n) for n in space.num_choices]
    ppo = PPOSearch(space.num_choices, seed=seed)
    logp0 = ppo.controller.log_prob(best)
    assert logp0 == pytest.approx(-math.log(space.size), abs=1e-3)  # uniform at the start
    budget, batch = 160, 8                                           # 20 PPO updates
    ppo_best = _synthetic_run(ppo, best, budget, batch)
    rnd_best = _synthetic_run(RandomSearch(space.num_choices, seed=seed), best, budget, batch)
    gain = ppo.controller.log_prob(best) - logp0
    assert ppo.controller.num_updates == 20
    assert gain > 3.0, f'PPO raised log p(best) by only {gain:.2f} nats'  # > 20x likelier
    assert ppo_best > rnd_best


# -- the loop: failures, resume ------------------------------------------------------------------
def _run(space, work_dir, evaluator, strategy='ppo', budget=12, batch=4, resume=False,
         executor=None, schedule='auto'):
    return SearchRun(space, dict(type=strategy), evaluator, str(work_dir), budget,
                     target_flops=1.0, batch_size=batch, seed=0, executor=executor,
                     schedule=schedule).run(resume=resume)


def test_failed_candidates_are_recorded_and_the_search_goes_on(tmp_path):
    space = demo_space()
    ev = SyntheticEvaluator(best_tokens=[0] * 25, fail_on=(0, 0))  # stage 1 GOP 'SA' fails
    recs = _run(space, tmp_path, ev, strategy='random', budget=16)
    assert len(recs) == 16 and [r['index'] for r in recs] == list(range(16))
    failed = [r for r in recs if r['status'] == 'failed']
    ok = [r for r in recs if r['status'] == 'ok']
    assert failed and ok
    for r in failed:
        assert r['tokens'][0] == 0 and 'synthetic failure' in r['error'] and r['reward'] is None
        assert 'Traceback' in r['traceback']
    assert all(r['tokens'][0] != 0 and r['reward'] == r['accuracy'] for r in ok)
    on_disk = ResultsFile(osp.join(tmp_path, 'results.jsonl')).load()
    assert [r['id'] for r in on_disk] == [r['id'] for r in recs]


def test_candidate_that_fails_to_build_is_recorded(tmp_path, monkeypatch):
    # attention refuses widths that are not multiples of head_dim (as before any width
    # worked): the error comes from inside UniNet's own build of the candidate
    import uninet_mm.models.gops as gops

    def refuse(width, head_dim):
        if width % head_dim:
            raise ValueError(f'width {width} is not divisible by the head dimension {head_dim}')
        return width // head_dim

    monkeypatch.setattr(gops, 'attention_heads', refuse)
    space = demo_space()
    ev = ZeroCostEvaluator(base_config='configs/cls/uninet_mnist_demo.py', batch_size=16,
                           cfg_options={'train_dataloader.dataset.indices': 64})
    recs = _run(space, tmp_path, ev, strategy='random', budget=6, batch=3)
    failed = [r for r in recs if r['status'] == 'failed']
    ok = [r for r in recs if r['status'] == 'ok']
    assert failed, 'expected candidates with widths that attention cannot split'
    assert all('not divisible by the head dimension' in r['error'] for r in failed)
    assert ok and all(r['metric'] == 'naswot' and r['flops'] > 0 for r in ok)


class _Crash(BaseException):
    """Not an Exception: escapes run_candidate like a kill would."""


class _CrashAfter(SyntheticEvaluator):
    def __init__(self, n, **kw):
        super().__init__(**kw)
        self.n, self.calls = n, 0

    def __call__(self, arch, tokens=None, seed=0):
        self.calls += 1
        if self.calls > self.n:
            raise _Crash()
        return super().__call__(arch, tokens, seed)


def test_resume_after_an_injected_crash_loses_and_retrains_nothing(tmp_path):
    space = demo_space()
    best = random.Random(5).choices(range(3), k=25)
    log = osp.join(tmp_path, 'calls.log')
    ref = _run(space, tmp_path / 'ref', SyntheticEvaluator(best_tokens=best))
    crashing = _CrashAfter(6, best_tokens=best, log_file=log)   # dies inside the 2nd batch
    with pytest.raises(_Crash):
        _run(space, tmp_path / 'run', crashing)
    assert len(ResultsFile(osp.join(tmp_path, 'run', 'results.jsonl')).load()) == 6
    with pytest.raises(RuntimeError, match='pass --resume'):
        _run(space, tmp_path / 'run', SyntheticEvaluator(best_tokens=best))
    resumed = _run(space, tmp_path / 'run', SyntheticEvaluator(best_tokens=best, log_file=log),
                   resume=True)
    key = lambda r: (r['id'], r['tokens'], r['status'], r.get('reward'))  # noqa: E731
    assert [key(r) for r in resumed] == [key(r) for r in ref]
    with open(log) as f:
        calls = f.read().splitlines()
    trained = [r for r in resumed if not r.get('cached_from')]
    # 6 before the crash, then the crashed one (it never finished) and the rest: once each
    assert len(calls) == len(trained) == len(set(calls))
    assert len(ResultsFile(osp.join(tmp_path, 'run', 'results.jsonl')).load()) == 12
    # a resumed, finished search is a no-op
    again = _run(space, tmp_path / 'run', SyntheticEvaluator(best_tokens=best, log_file=log),
                 resume=True)
    assert [key(r) for r in again] == [key(r) for r in ref]
    with open(log) as f:
        assert len(f.read().splitlines()) == len(calls)


def test_results_file_survives_a_line_cut_short(tmp_path):
    path = osp.join(tmp_path, 'results.jsonl')
    res = ResultsFile(path)
    res.append(dict(id='a', x=1))
    with open(path, 'a') as f:
        f.write('{"id": "b", "x"')   # kill -9 while writing
    with pytest.warns(UserWarning, match='incomplete last line'):
        assert [r['id'] for r in res.load()] == ['a']
    res.append(dict(id='c', x=3))
    assert [r['id'] for r in res.load()] == ['a', 'c']


_KILL_CONFIG = """
search_space = dict(base_arch={base!r})
reward = dict(target_flops=1.0, alpha=-0.07)
evaluator = dict(type='Synthetic', best_tokens={best!r}, flops=1.0, sleep=0.1,
                 log_file={log!r})
strategies = [dict(type='ppo'), dict(type='random')]
search = dict(budget=8, batch_size=4, seed=3)
executor = dict(type='serial')
export = dict(topk=2)
"""


@pytest.mark.slow  # ~20 s: two start-ups of tools/search.py (imports mmdet/mmseg/mmpretrain)
def test_resume_after_kill_9(tmp_path):
    best = random.Random(9).choices(range(3), k=25)
    log = osp.join(tmp_path, 'calls.log')
    cfg = osp.join(tmp_path, 'kill_cfg.py')
    with open(cfg, 'w') as f:
        f.write(_KILL_CONFIG.format(base=DEMO_BASE, best=best, log=log))
    work = osp.join(tmp_path, 'work')
    results = osp.join(work, 'results.jsonl')
    env = dict(os.environ, PYTHONPATH=REPO)
    cmd = [sys.executable, SEARCH_TOOL, cfg, '--work-dir', work]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        if osp.isfile(results) and len(ResultsFile(results).load()) >= 5:
            break
        if proc.poll() is not None:
            pytest.fail(f'search ended early: {proc.stdout.read().decode()[-2000:]}')
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = ResultsFile(results).load()
    assert 5 <= len(before) < 16, 'the kill must land mid-search'
    out = subprocess.run(cmd + ['--resume'], env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    after = ResultsFile(results).load()
    assert len(after) == 16
    assert sorted(r['id'] for r in after) == sorted(
        [f'ppo-{i}' for i in range(8)] + [f'random-{i}' for i in range(8)])
    by_id = {r['id']: r for r in after}
    for r in before:  # nothing lost, nothing changed
        assert by_id[r['id']]['tokens'] == r['tokens']
        assert by_id[r['id']]['finished_at'] == r['finished_at']
    with open(log) as f:
        calls = f.read().splitlines()
    trained = [r for r in after if not r.get('cached_from')]
    assert len(trained) <= len(calls) <= len(trained) + 1  # only the in-flight one redone
    assert 'equal budget (8 candidates each)' in out.stdout
    for name in ('pareto.png', 'summary.md', 'summary.json'):
        assert osp.isfile(osp.join(work, name))


# -- the real proxy evaluation -------------------------------------------------------------------
def test_real_proxy_evaluation_through_the_runner(tmp_path, monkeypatch):
    space = demo_space()
    arch = space.decode(space.base_tokens())
    ev = ProxyTrainEvaluator(base_config='configs/cls/uninet_mnist_demo.py', epochs=1,
                             train_subset=256, val_subset=100, num_threads=1,
                             work_dir=str(tmp_path))
    assert ev.input_shape() == (1, 3, 32, 32)
    res = run_candidate(ev, dict(arch=arch, tokens=space.base_tokens(), seed=0))
    assert res['status'] == 'ok', res.get('traceback')
    acc = res['accuracy']
    assert 0. <= acc <= 1. and round(acc * 100) == pytest.approx(acc * 100, abs=1e-4)
    flops, params = ev.complexity(arch)
    assert res['flops'] == flops > 1e6 and res['params'] == params > 1e5
    # 10-class chance is -log(0.1) = 2.30; one epoch on 256 digits is not far from it
    assert 0.5 < res['val_nll'] < 4. and 0.5 < res['train_loss_tail'] < 4.
    assert res['train_loss'] >= res['train_loss_tail'] - 0.5
    assert res['top1'] == acc and res['metric'] == 'accuracy'
    assert os.listdir(tmp_path) == []  # the candidate's Runner folder is cleaned up
    # the early-epoch extrapolation: the score is top-1 + slope * ln(FLOPs / ref); without a
    # work_dir the Runner writes into a temporary folder, removed afterwards
    monkeypatch.setattr(tempfile, 'tempdir', str(tmp_path / 'tmp'))
    os.makedirs(tempfile.tempdir)
    ext = ProxyTrainEvaluator(base_config='configs/cls/uninet_mnist_demo.py', epochs=1,
                              train_subset=64, val_subset=50, num_threads=1, flops_slope=0.1,
                              flops_ref=flops / math.e)
    res = run_candidate(ext, dict(arch=arch, tokens=space.base_tokens(), seed=0))
    assert res['status'] == 'ok' and res['metric'] == 'top1+ln(FLOPs)'
    assert res['accuracy'] == pytest.approx(res['top1'] + 0.1)
    assert os.listdir(tempfile.tempdir) == []
    # a copy shipped to a worker (Ray pickles it) leaves the built datasets behind
    assert ext._datasets is not None and copy.deepcopy(ext)._datasets is None
    # a candidate whose training diverges (inputs / 0: non-finite loss) is a failure
    bad = ProxyTrainEvaluator(base_config='configs/cls/uninet_mnist_demo.py', epochs=1,
                              train_subset=128, val_subset=50, num_threads=1,
                              cfg_options={'model.data_preprocessor.std': [0., 0., 0.]})
    res = run_candidate(bad, dict(arch=arch, tokens=space.base_tokens(), seed=0))
    assert res['status'] == 'failed' and 'diverged' in res['error']


def test_candidate_hook_measures_training_loss_and_validation_nll():
    """The hook's summary against hand-computed values: the mean training loss over all
    iterations and over the last quarter, and -log p(true class) averaged over the val set."""
    from mmpretrain.structures import DataSample

    from uninet_mm.search.runner import SearchCandidateHook
    hook = SearchCandidateHook()
    assert hook.summary() == {}
    for i, loss in enumerate([4., 3., 2., 1., 1., 0.5, 0.5, 0.]):  # 8 iterations: tail = 2
        hook.after_train_iter(None, i, outputs=dict(loss=torch.tensor(loss)))
    samples = [DataSample().set_pred_score(torch.tensor([0.5, 0.25, 0.25])).set_gt_label(0),
               DataSample().set_pred_score(torch.tensor([0.1, 0.1, 0.8])).set_gt_label(2),
               DataSample().set_pred_score(torch.tensor([0.2, 0.7, 0.1])).set_gt_label(0)]
    hook.before_val_epoch(None)
    hook.after_val_iter(None, 0, outputs=[DataSample().set_gt_label(1)] + samples[:2])  # no score
    hook.after_val_iter(None, 1, outputs=samples[2:])
    got = hook.summary()
    assert got['train_loss'] == pytest.approx(12. / 8)
    assert got['train_loss_tail'] == pytest.approx(0.25)
    assert got['val_nll'] == pytest.approx((math.log(2) - math.log(0.8) - math.log(0.2)) / 3)
    hook.before_val_epoch(None)  # a second validation replaces the first
    hook.after_val_iter(None, 0, outputs=samples[1:2])
    assert hook.summary()['val_nll'] == pytest.approx(-math.log(0.8))
    with pytest.raises(CandidateDiverged, match='iteration 1'):
        hook.after_train_iter(SimpleNamespace(iter=0), 0,
                              outputs=dict(loss=torch.tensor(float('nan'))))


# -- outputs -------------------------------------------------------------------------------------
def _fake_records(space, n=12):
    rng = random.Random(0)
    recs = []
    for i in range(n):
        tokens = space.sample(rng)
        acc, flops = 0.5 + 0.04 * (i % 7), 1e6 * (1 + i)
        recs.append(dict(id=f'{"ppo" if i % 2 else "random"}-{i}',
                         strategy='ppo' if i % 2 else 'random', index=i // 2, tokens=tokens,
                         arch=space.decode(tokens), status='ok', accuracy=acc, flops=flops,
                         params=1000 * i, reward=compute_reward(acc, flops, 4e6), time=1.,
                         metric='accuracy'))
    recs.append(dict(id='random-99', strategy='random', index=99, tokens=recs[0]['tokens'],
                     arch=None, status='failed', error='boom', reward=None, time=0.))
    return recs


def test_pareto_front():
    pts = [(1, 0.5), (2, 0.7), (3, 0.6), (4, 0.9), (2, 0.4)]
    assert pareto_front(pts) == [0, 1, 3]


def test_exported_configs_are_ready_to_train(tmp_path):
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    space = build_search_space(dict(base_arch='b0'))
    recs = _fake_records(space)
    best = top_k(recs, 2)
    assert [r['reward'] for r in best] == sorted((r['reward'] for r in recs
                                                  if r['reward'] is not None), reverse=True)[:2]
    folders = export_topk(recs, 2, str(tmp_path / 'topk'))
    assert len(folders) == 2
    rid = best[0]['id']
    assert sorted(os.listdir(folders[0])) == sorted([
        'arch.json', f'uninet_search_{rid}_in1k.py', f'mask_rcnn_uninet_search_{rid}_1x.py'])
    cls_cfg = Config.fromfile(osp.join(folders[0], f'uninet_search_{rid}_in1k.py'))
    assert cls_cfg.model.backbone.arch == best[0]['arch']
    assert cls_cfg.model.head.in_channels == best[0]['arch']['widths'][-1]
    assert cls_cfg.train_dataloader.dataset.type == 'ImageNet'
    det_cfg = Config.fromfile(osp.join(folders[0], f'mask_rcnn_uninet_search_{rid}_1x.py'))
    assert det_cfg.model.type == 'MaskRCNN'
    assert det_cfg.pretrained == f'work_dirs/uninet_search_{rid}_in1k/epoch_300.pth'
    assert det_cfg.model.backbone.arch == best[0]['arch']
    widths = [best[0]['arch']['widths'][i] for i in det_cfg.model.backbone.out_indices]
    assert list(det_cfg.model.neck.in_channels) == widths
    from mmdet.registry import MODELS as DET_MODELS
    from mmpretrain.registry import MODELS as CLS_MODELS
    init_default_scope('mmpretrain')
    clf = CLS_MODELS.build(cls_cfg.model)
    assert isinstance(clf.backbone, UniNet) and clf.backbone.arch == best[0]['arch']
    init_default_scope('mmdet')
    det_cfg.model.backbone.init_cfg = None
    det = DET_MODELS.build(det_cfg.model)
    feats = det.backbone(torch.randn(1, 3, 64, 64))
    assert [f.shape[1] for f in feats] == widths
    assert [64 // f.shape[-1] for f in feats] == [4, 8, 16, 32]
    with open(osp.join(folders[0], 'arch.json')) as f:
        assert json.load(f)['tokens'] == best[0]['tokens']


def test_pareto_plot_and_summary_table(tmp_path):
    space = demo_space()
    recs = _fake_records(space)
    path = pareto_plot(recs, str(tmp_path / 'pareto.png'), target_flops=4e6)
    with open(path, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    table = summary_table(recs, top=3)
    rows = {line.split('|')[1].strip(): line for line in table.splitlines()
            if line.startswith('| ppo') or line.startswith('| random')}
    assert set(rows) == {'ppo', 'random'}
    assert rows['random'].split('|')[5].strip() == '1'   # one failed
    top_rows = [line for line in table.splitlines()[table.splitlines().index(
        'Top 3 architectures (all strategies):'):] if line.startswith('| ') and
        line.split('|')[1].strip().isdigit()]
    assert [int(line.split('|')[1]) for line in top_rows] == [1, 2, 3]
    assert top_rows[0].split('|')[2].strip() == top_k(recs, 1)[0]['id']


def test_tool_prints_the_space(capsys):
    search_tool = load_tool('search')
    assert search_tool.main([osp.join(REPO, 'configs/search/uninet_space.py'),
                             '--print-space']) == 0
    out = capsys.readouterr().out
    assert '2.317e+16 token sequences' in out and 'repeat_delta [-2, -1, 0, 1, 2]' in out
    assert 'distinct architectures' in out
    assert search_tool.main(['--demo', '--print-space']) == 0
    assert 'head_dim 16, input 32' in capsys.readouterr().out


# -- Ray -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_ray_executor_gives_the_serial_results(tmp_path):
    # Ray is installed by the search extra (requirements/search.txt, tools/setup_env.sh)
    assert ray_available(), 'Ray is missing: pip install -r requirements/search.txt'
    from uninet_mm.search import RayExecutor
    space = demo_space()
    best = random.Random(2).choices(range(3), k=25)
    serial = _run(space, tmp_path / 'serial', SyntheticEvaluator(best_tokens=best),
                  executor=SerialExecutor())
    ray_ex = RayExecutor(num_workers=2)
    par = _run(space, tmp_path / 'ray', SyntheticEvaluator(best_tokens=best), executor=ray_ex,
               schedule='batch')
    key = lambda r: (r['id'], r['tokens'], r['reward'])  # noqa: E731
    assert [key(r) for r in par] == [key(r) for r in serial]
    # the asynchronous schedule (the default with 2 workers): every candidate once, the
    # workers busy (candidates of 0.3 s; docs/search.md gives the demo's utilisation)
    recs = _run(space, tmp_path / 'async', SyntheticEvaluator(best_tokens=best, sleep=0.3),
                strategy='random', budget=16, executor=ray_ex)
    assert [r['index'] for r in recs] == list(range(16))
    from uninet_mm.search import worker_utilisation
    assert worker_utilisation(recs, 2) >= 0.8
    import ray
    ray.shutdown()



# -- the benchmark harness (uninet_mm/search/benchmark.py, tools/search_benchmark.py) -----------
def _small_table(tmp_path, absent=(), twins=()):
    """3 tokens of 4 choices: value = a smooth function, test = value reversed on half of the
    entries (so a pick scored by value and one scored by test differ); ``absent`` sequences
    are missing (failed candidates), ``twins`` pairs name the same architecture."""
    from uninet_mm.search.tabular import load_table
    path = osp.join(tmp_path, 'table.jsonl')
    rng = random.Random(0)
    twin_of = {tuple(b): list(a) for a, b in twins}
    with open(path, 'w') as f:
        f.write(json.dumps(dict(choices=[4, 4, 4])) + '\n')
        for t in [[a, b, c] for a in range(4) for b in range(4) for c in range(4)]:
            if tuple(t) in {tuple(x) for x in absent}:
                continue
            value = 0.5 + 0.1 * t[0] + 0.03 * t[1] + 0.01 * t[2] + 0.001 * rng.random()
            test = value if t[2] % 2 else 1.5 - value
            line = dict(tokens=t, value=value, test=test)
            if tuple(t) in twin_of:
                line['arch'] = twin_of[tuple(t)]
            f.write(json.dumps(line) + '\n')
    return path, load_table(path)


def _naive_random_picks(table, seed, budget, batch):
    """Independent reference: replay random search's proposals and pick by hand."""
    import zlib
    rs = RandomSearch(table.num_choices, seed=zlib.crc32(f'random:{seed}'.encode()) % 2 ** 31)
    proposals = []
    while len(proposals) < budget:
        proposals += rs.propose(min(batch, budget - len(proposals)))
    picks, best, score = [], None, min(
        (e.test if e.test is not None else e.value) for e in table.entries.values())
    for t in proposals:
        e = table.get(t)
        if e is not None and (best is None or e.value > best):
            best, score = e.value, e.test
        picks.append(score)
    return picks


def test_benchmark_picks_by_observed_reward_and_scores_by_test(tmp_path):
    from uninet_mm.search.benchmark import run_benchmark
    _, table = _small_table(tmp_path, absent=[[3, 3, 3], [3, 3, 2]])
    out = run_benchmark(table, [dict(type='random')], seeds=3, budgets=(5, 12, 30), workers=1,
                        batch_size=4)
    for seed in range(3):
        ref = _naive_random_picks(table, seed, 30, 4)
        assert out['curves']['random'][seed] == pytest.approx(ref)
        for b in (5, 12, 30):
            assert out['budgets'][str(b)]['random']['values'][seed] == pytest.approx(ref[b - 1])
    vals = out['budgets']['30']['random']['values']
    m = sum(vals) / 3
    se = math.sqrt(sum((v - m) ** 2 for v in vals) / 2 / 3)
    assert out['budgets']['30']['random']['mean'] == pytest.approx(m)
    assert out['budgets']['30']['random']['sem'] == pytest.approx(se)
    assert out['num_architectures'] == 62


def test_benchmark_failed_and_twin_candidates_through_the_real_loop(tmp_path):
    from uninet_mm.search.tabular import TabularEvaluator, TabularSpace
    _, table = _small_table(tmp_path, absent=[[0, 0, 0]], twins=[([1, 1, 1], [2, 1, 1])])
    space = TabularSpace(table)
    assert space.num_architectures == 62  # 63 sequences, two of them one architecture

    class Counting(TabularEvaluator):
        calls = []

        def __call__(self, arch, tokens=None, seed=0):
            self.calls.append(list(tokens))
            return super().__call__(arch, tokens, seed)

    class Fixed(RandomSearch):
        def propose(self, n):
            return [[0, 0, 0], [1, 1, 1], [2, 1, 1], [0, 0, 0]][:n]

    from uninet_mm.search import strategies as st
    st.STRATEGIES.register_module(name='fixed', module=Fixed)
    try:
        ev = Counting(table)
        recs = SearchRun(space, dict(type='fixed'), ev, str(tmp_path / 'w'), 4, target_flops=1.,
                         batch_size=4, durable=False).run()
    finally:
        st.STRATEGIES._module_dict.pop('fixed')
    assert [r['status'] for r in recs] == ['failed', 'ok', 'ok', 'failed']
    assert 'not in the table' in recs[0]['error']
    assert recs[2].get('cached_from') == recs[1]['id']      # the twin is not evaluated again
    assert recs[3].get('cached_from') == recs[0]['id']      # nor is a known failure
    assert ev.calls == [[0, 0, 0], [1, 1, 1]]


def _exact_wilcoxon_greater(d):
    """Independent reference: the exact null distribution of W+ by enumerating all 2^n
    sign assignments of the ranks of |d| (no ties, no zeros)."""
    import itertools
    ranks = {v: i + 1 for i, v in enumerate(sorted(abs(x) for x in d))}
    w = sum(ranks[abs(x)] for x in d if x > 0)
    r = [ranks[abs(x)] for x in d]
    hits = sum(sum(ri for ri, s in zip(r, signs) if s) >= w
               for signs in itertools.product((0, 1), repeat=len(d)))
    return hits / 2 ** len(d)


def test_wilcoxon_direction_and_a12_against_hand_computed_cases():
    from uninet_mm.search.stats import a12, mean_sem, wilcoxon_greater
    # a beats b in all 5 pairs: W+ = 15 is the largest of 2^5 equally likely values
    a, b = [1.0, 2.0, 3.0, 4.0, 5.0], [0.9, 1.7, 2.6, 3.5, 4.4]
    assert wilcoxon_greater(a, b) == pytest.approx(1 / 32)
    assert wilcoxon_greater(b, a) == pytest.approx(1.0)
    rng = random.Random(3)
    for _ in range(5):
        x = [rng.random() for _ in range(9)]
        y = [v + rng.gauss(0.1, 0.3) for v in x]
        d = [p - q for p, q in zip(x, y)]
        assert wilcoxon_greater(x, y) == pytest.approx(_exact_wilcoxon_greater(d))
        assert wilcoxon_greater(y, x) == pytest.approx(
            _exact_wilcoxon_greater([-v for v in d]))
    assert wilcoxon_greater([1., 2.], [1., 2.]) == 1.0   # all tied: no evidence
    # A12: (1>0) + (1>1.5: no) + (2>0) + (2>1.5) = 3 of 4; a tie counts half
    assert a12([1., 2.], [0., 1.5]) == pytest.approx(0.75)
    assert a12([1.], [1.]) == pytest.approx(0.5)
    assert mean_sem([1., 2., 3.]) == pytest.approx((2., 1 / math.sqrt(3)))


def test_benchmark_summary_shape_and_p_value_direction():
    from uninet_mm.search.benchmark import summarise
    good = [0.5 + 0.01 * s for s in range(8)]
    bad = [v - 0.001 * (1 + s) for s, v in enumerate(good)]  # distinct: exact test
    curves = {'a': {s: dict(curve=[good[s]] * 3, distinct=[1, 2, 3]) for s in range(8)},
              'b': {s: dict(curve=[bad[s]] * 3, distinct=[1, 2, 2]) for s in range(8)}}
    out = summarise(curves, [2, 3], ['a', 'b'], 8)
    assert set(out['budgets']) == {'2', '3'} and set(out['p_values']['3']) == {'a>b', 'b>a'}
    assert out['budgets']['3']['a']['values'] == good
    assert out['p_values']['3']['a>b'] == pytest.approx(1 / 2 ** 8)   # a wins every pair
    assert out['p_values']['3']['b>a'] == pytest.approx(1.0)
    assert out['a12']['3']['a>b'] > 0.5 > out['a12']['3']['b>a']
    assert out['budgets']['3']['b']['distinct_mean'] == 2


@pytest.mark.slow  # a start-up of tools/search_benchmark.py and its worker processes
def test_search_benchmark_tool_writes_summary_and_plot(tmp_path):
    path, _ = _small_table(tmp_path)
    out = osp.join(tmp_path, 'bench')
    r = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'search_benchmark.py'),
                        '--table', path, '--strategies', 'ppo,random,evolution', '--seeds',
                        '4', '--budgets', '10,20', '--noise', '0.01', '--workers', '2',
                        '--out', out], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, PYTHONPATH=REPO))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    with open(osp.join(out, 'summary.json')) as f:
        s = json.load(f)
    for b in ('10', '20'):
        for n in ('ppo', 'random', 'evolution'):
            assert len(s['budgets'][b][n]['values']) == 4
            assert {'mean', 'sem', 'values'} <= set(s['budgets'][b][n])
        assert set(s['p_values'][b]) == {f'{x}>{y}' for x in ('ppo', 'random', 'evolution')
                                         for y in ('ppo', 'random', 'evolution') if x != y}
    assert osp.getsize(osp.join(out, 'anytime.png')) > 1000
    assert 'ppo mean +- sem' in open(osp.join(out, 'summary.md')).read()


def test_table_format_errors_name_the_line(tmp_path):
    from uninet_mm.search.tabular import load_table
    p = osp.join(tmp_path, 't.jsonl')
    for text, match in [('{"tokens": [0, 1]}\n', r':1: each line needs "tokens"'),
                        ('{"tokens": [0], "value": 1}\n{"choices": [2]}\n', 'first line'),
                        ('{"choices": [2]}\n{"tokens": [2], "value": 1}\n', 'out of range'),
                        ('{"tokens": [0], "value": 1}\nnot json\n', r':2: not valid JSON')]:
        with open(p, 'w') as f:
            f.write(text)
        with pytest.raises(ValueError, match=match):
            load_table(p)


# -- NAS-Bench-Graph --------------------------------------------------------------------------
class _Evil:
    def __reduce__(self):
        return (os.system, ('touch PWNED',))


def test_bench_unpickler_decodes_numpy_scalars_and_refuses_code(tmp_path):
    import pickle

    import numpy as np

    from uninet_mm.search.nasbench_graph import BenchFileError, read_bench
    ok = osp.join(tmp_path, 'ok.bench')
    with open(ok, 'wb') as f:  # written in this process, as the package's files are laid out
        pickle.dump({7: dict(valid_perf=np.float64(0.25), perf=0.5, latency=0.1,
                             para=np.float64(-1.5))}, f)
    assert read_bench(ok) == {7: dict(valid_perf=0.25, perf=0.5, latency=0.1, para=-1.5)}
    evil = osp.join(tmp_path, 'evil.bench')
    with open(evil, 'wb') as f:
        pickle.dump({0: dict(valid_perf=_Evil(), perf=0.5)}, f)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(BenchFileError, match='refusing to load global posix.system'):
            read_bench(evil)
    finally:
        os.chdir(cwd)
    assert not osp.exists(osp.join(tmp_path, 'PWNED'))
    with open(evil, 'wb') as f:
        pickle.dump({0: dict(valid_perf=np.float32(0.5), perf=0.5)}, f)
    with pytest.raises(BenchFileError, match='only f8'):
        read_bench(evil)


@pytest.mark.slow  # canonical hashes of 59,049 sequences
def test_nasbench_graph_bundled_table():
    pytest.importorskip('nas_bench_graph')
    from nas_bench_graph.architecture import Arch, gnn_list, link_list

    from uninet_mm.search.nasbench_graph import bench_path, load_nasbench_graph, read_bench
    table = load_nasbench_graph('cora')
    assert table.num_choices == [9, 9, 9, 9, 9]
    assert len(table.architectures()) == 26206        # the paper's count of distinct archs
    assert len(table) == 9 ** 5 - 9                    # all-skip is no architecture
    raw = read_bench(bench_path('cora'))
    # an independent look-up: the package's own hash of one architecture
    arch = Arch(list(link_list[8]), ['gcn', 'gat', 'skip', 'sage'])
    e = table.get([8, gnn_list.index('gcn'), gnn_list.index('gat'), gnn_list.index('skip'),
                   gnn_list.index('sage')])
    assert e.value == raw[arch.valid_hash()]['valid_perf']
    assert e.test == raw[arch.valid_hash()]['perf'] and e.arch == arch.valid_hash()
    assert 0 < e.value < 1 and 0 < e.test < 1


# -- safe and exact resume ------------------------------------------------------------------
def test_crafted_checkpoint_is_refused_without_running_code(tmp_path):
    import pickle
    space = demo_space()
    ev = SyntheticEvaluator(best_tokens=[0] * 25)
    _run(space, tmp_path, ev, strategy='random', budget=4)
    ckpt = osp.join(tmp_path, 'checkpoints', 'random.pth')
    assert osp.isfile(ckpt)
    marker = osp.join(tmp_path, 'PWNED')

    class Evil:
        def __reduce__(self):
            return (os.system, (f'touch {marker}',))

    with open(ckpt, 'wb') as f:
        pickle.dump(dict(version=2, strategy=Evil()), f)
    with pytest.raises(ValueError, match='not a search checkpoint this version can read'):
        _run(space, tmp_path, ev, strategy='random', budget=8, resume=True)
    assert not osp.exists(marker)


def test_resume_refuses_other_settings_naming_the_difference(tmp_path):
    ev = SyntheticEvaluator(best_tokens=[0] * 25)
    _run(demo_space(), tmp_path, ev, strategy='random', budget=4)
    gops = ['LSA', 'SA', 'Conv', 'DWConv', 'MLP']             # two GOPs swapped
    with pytest.raises(ValueError, match=r"space\.decisions.*\['SA', 'LSA'.*now.*\['LSA', 'SA'"):
        _run(demo_space(choices=dict(gop=gops)), tmp_path, ev, strategy='random', budget=8,
             resume=True)
    with pytest.raises(ValueError, match=r'reward\.alpha was -0\.07, now -0\.1'):
        SearchRun(demo_space(), dict(type='random'), ev, str(tmp_path), 8, target_flops=1.,
                  alpha=-0.1, batch_size=4).run(resume=True)
    with pytest.raises(ValueError, match='batch_size was 4, now 2'):
        _run(demo_space(), tmp_path, ev, strategy='random', budget=8, batch=2, resume=True)
    # the same settings resume, a larger budget extends the search
    recs = _run(demo_space(), tmp_path, ev, strategy='random', budget=8, resume=True)
    assert len(recs) == 8


def test_complete_last_record_without_newline_is_kept(tmp_path):
    path = osp.join(tmp_path, 'results.jsonl')
    res = ResultsFile(path)
    res.append(dict(id='a'))
    with open(path, 'a') as f:
        f.write('{"id": "b"}')        # complete, but its newline never made it to disk
    assert [r['id'] for r in res.load()] == ['a', 'b']
    res.append(dict(id='c'))
    assert [r['id'] for r in res.load()] == ['a', 'b', 'c']


class _FlakyExecutor(SerialExecutor):
    """The first attempt of every other job dies like a Ray worker killed by the OOM killer."""

    def __init__(self):
        self.attempts = {}

    def map_unordered(self, fn, jobs):
        for job in jobs:
            n = self.attempts[job['id']] = self.attempts.get(job['id'], 0) + 1
            if n == 1 and job['index'] % 2 == 0:
                yield job, dict(status='failed', error='ray task failed: worker died',
                                infrastructure=True)
            else:
                yield job, fn(job)


def test_infrastructure_failures_are_retried_not_cached(tmp_path):
    space = demo_space()
    best = random.Random(2).choices(range(3), k=25)
    ex = _FlakyExecutor()
    recs = _run(space, tmp_path, SyntheticEvaluator(best_tokens=best), strategy='random',
                budget=8, executor=ex)
    assert [r['status'] for r in recs] == ['ok'] * 8
    assert all(ex.attempts[f'random-{i}'] == (2 if i % 2 == 0 else 1) for i in range(8))
    on_disk = ResultsFile(osp.join(tmp_path, 'results.jsonl')).load()
    assert sum(bool(r.get('infrastructure')) for r in on_disk) == 4
    # a resume does not take the lost attempts for results either
    again = _run(space, tmp_path, SyntheticEvaluator(best_tokens=best), strategy='random',
                 budget=8, executor=ex, resume=True)
    assert [r['status'] for r in again] == ['ok'] * 8


def test_topk_zero_exports_nothing(tmp_path):
    recs = [dict(id=f'r-{i}', tokens=[i], arch=dict(DEMO_BASE), status='ok', reward=0.1 * i,
                 accuracy=0.1 * i, flops=1e6, metric='accuracy') for i in range(3)]
    assert top_k(recs, 0) == []
    assert export_topk(recs, 0, osp.join(tmp_path, 'topk')) == []
    assert not osp.exists(osp.join(tmp_path, 'topk'))


_TOOL_CONFIG = """
search_space = dict(base_arch={base!r}, choices=dict(gop={gops!r}))
reward = dict(target_flops=1.0, alpha=-0.07)
evaluator = dict(type='Synthetic', best_tokens=[0] * 25, flops=1.0)
strategies = [dict(type='random')]
search = dict(budget=4, batch_size=2, seed=0)
executor = dict(type='serial')
export = dict(topk=0)
multiseed = dict(seeds=3, budget=4, evaluator=dict(type='Synthetic', best_tokens=[1] * 25))
"""


def test_tool_resume_checks_and_never_overwrites_the_config(tmp_path, capsys):
    sys.path.insert(0, osp.join(REPO, 'tools'))
    try:
        import search as search_tool
    finally:
        sys.path.pop(0)
    cfg = osp.join(tmp_path, 'cfg.py')
    work = osp.join(tmp_path, 'work')
    with pytest.raises(SystemExit, match='nothing to resume'):
        search_tool.main([cfg if osp.isfile(cfg) else _write(cfg, _TOOL_CONFIG.format(
            base=DEMO_BASE, gops=['SA', 'LSA', 'Conv', 'DWConv', 'MLP'])),
            '--work-dir', work, '--resume'])
    assert search_tool.main([cfg, '--work-dir', work]) == 0
    assert not osp.exists(osp.join(work, 'topk'))           # topk=0: nothing exported
    summary = open(osp.join(work, 'summary.md')).read()     # the multi-seed part: mean +- sem
    assert 'Multi-seed comparison (Synthetic evaluator, 3 seeds x 4 candidates' in summary
    assert '| random | ' in summary and ' +- ' in summary
    saved = open(osp.join(work, 'search_config.py')).read()
    _write(cfg, _TOOL_CONFIG.format(base=DEMO_BASE, gops=['LSA', 'SA', 'Conv', 'DWConv',
                                                          'MLP']))
    with pytest.raises(SystemExit, match="settings for 'random': space.decisions"):
        search_tool.main([cfg, '--work-dir', work, '--resume', '--budget', '6'])
    assert open(osp.join(work, 'search_config.py')).read() == saved


def _write(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return path


def test_out_of_memory_is_an_infrastructure_failure():
    class OOM(SyntheticEvaluator):
        def __call__(self, arch, tokens=None, seed=0):
            raise MemoryError('out of memory')

    out = run_candidate(OOM(best_tokens=[0]), dict(arch=None, tokens=[0], seed=0))
    assert out['status'] == 'failed' and out['infrastructure'] is True
    out = run_candidate(SyntheticEvaluator(best_tokens=[0], fail_on=(0, 0)),
                        dict(arch=None, tokens=[0], seed=0))
    assert out['status'] == 'failed' and 'infrastructure' not in out


def test_zero_cost_on_a_training_config_drops_the_training_arguments():
    """`--cfg-options evaluator.type=ZeroCost` on the demo's ProxyTrain evaluator (epochs,
    subsets, lr, the extrapolation's flops_slope) builds NASWOT with the shared arguments."""
    from mmengine.config import Config

    from uninet_mm.search import build_evaluator
    cfg = Config.fromfile('configs/search/mnist_demo.py').evaluator.to_dict()
    assert {'epochs', 'lr', 'flops_slope', 'train_subset'} <= set(cfg)
    ev = build_evaluator(dict(cfg, type='ZeroCost'))
    assert isinstance(ev, ZeroCostEvaluator) and ev.batch_size == cfg['batch_size'] == 64
    assert ev.base_config == cfg['base_config'] and ev.num_threads == 1
    with pytest.raises(TypeError, match='epochs'):  # only ZeroCost drops them
        build_evaluator(dict(type='Synthetic', best_tokens=[0], epochs=1))
