"""The asynchronous search schedule (uninet_mm/search/loop.py, ``schedule='async'``): a new
candidate is proposed as soon as a worker is free, the strategy is fed back whenever it holds
a batch of results, the results file and resume work as in the batch loop. Cheap: a small
generated table, candidates of known durations on a simulated clock (and, once, on threads
that sleep); no training."""
import itertools
import os
import os.path as osp
import time

import pytest

from uninet_mm.search import (
    PoolExecutor,
    ResultsFile,
    SearchRun,
    build_executor,
    worker_utilisation,
)
from uninet_mm.search.executor import Executor
from uninet_mm.search.loop import run_async
from uninet_mm.search.tabular import Table, TableEntry, TabularEvaluator, TabularSpace

pytestmark = pytest.mark.usefixtures('one_thread')


def _table():
    """4 tokens x 4 choices, every sequence present; value: a smooth function of the tokens."""
    entries = [TableEntry(t, value=0.5 + 0.1 * t[0] - 0.05 * abs(t[1] - 2) + 0.01 * t[2] * t[3])
               for t in itertools.product(range(4), repeat=4)]
    return Table(entries, name='schedule')


def duration(tokens):
    """Known, very uneven durations (1..7 time units)."""
    return 1 + 3 * (tokens[0] % 2) + tokens[1]


class SimulatedExecutor(Executor):
    """``num_workers`` workers on a simulated clock: a job runs (instantly) when submitted and
    occupies a free worker for ``duration(tokens)`` units; ``wait_one`` advances the clock to
    the first job to end. ``log`` holds (worker, start, end) of every job."""

    kind = 'simulated'

    def __init__(self, num_workers=2, lose=()):
        self.num_workers = num_workers
        self.clock, self.seq, self.running, self.log = 0., 0, [], []
        self.lose, self.attempts = set(lose), {}

    @property
    def num_running(self):
        return len(self.running)

    def submit(self, fn, job):
        busy = {r[2] for r in self.running}
        free = [w for w in range(self.num_workers) if w not in busy]
        assert free, 'a job was submitted while every worker was busy'
        n = self.attempts[job['id']] = self.attempts.get(job['id'], 0) + 1
        if n == 1 and job['index'] in self.lose:   # the worker dies: lost, not failed
            result = dict(status='failed', error='worker died', infrastructure=True)
        else:
            result = fn(job)
        end = self.clock + duration(job['tokens'])
        self.running.append((end, self.seq, free[0], job, result))
        self.log.append((free[0], self.clock, end))
        self.seq += 1

    def wait_one(self):
        item = min(self.running, key=lambda r: (r[0], r[1]))
        self.running.remove(item)
        self.clock = item[0]
        return item[3], item[4]


STRATEGIES = [dict(type='ppo', ppo_epochs=1), dict(type='random'),
               dict(type='evolution', population_size=6, sample_size=2)]


def _utilisation(log, num_workers):
    span = max(e for _, _, e in log) - min(s for _, s, _ in log)
    return sum(e - s for _, s, e in log) / (num_workers * span)


def _idle_before_last_start(log, num_workers):
    """Total worker idle time before the last job started (while work remained)."""
    last = max(s for _, s, _ in log)
    idle = 0.
    for w in range(num_workers):
        t = 0.
        for _, s, e in sorted(x for x in log if x[0] == w):
            idle += max(0., min(s, last) - t)
            t = max(t, e)
        idle += max(0., last - t)
    return idle


def _run(tmp_path, name, strategy, schedule, executor, budget=40, batch=5, resume=False,
         evaluator=None):
    table = _table()
    run = SearchRun(TabularSpace(table), strategy, evaluator or TabularEvaluator(table),
                    str(tmp_path / name), budget, target_flops=1.0, batch_size=batch, seed=0,
                    executor=executor, durable=False, schedule=schedule)
    return run, run.run(resume=resume)


@pytest.mark.parametrize('strategy', STRATEGIES)
def test_async_keeps_every_worker_busy_while_work_remains(tmp_path, strategy):
    ex = SimulatedExecutor(num_workers=2)
    run, recs = _run(tmp_path, 'async', strategy, 'async', ex)
    assert [r['index'] for r in recs] == list(range(40))
    on_disk = ResultsFile(osp.join(run.work_dir, 'results.jsonl')).load()
    assert sorted(r['index'] for r in on_disk) == list(range(40))
    evaluated = [r for r in recs if not r.get('cached_from')]
    assert len(ex.log) == len(evaluated)
    assert _idle_before_last_start(ex.log, 2) == 0.   # no worker waits while work remains
    util = _utilisation(ex.log, 2)
    assert util >= 0.9
    # every candidate fed back exactly once, in batches of 5 (the last one may be short)
    if strategy['type'] == 'ppo':
        assert run.strategy.pending == []
        assert run.strategy.controller.num_updates == len(run.history) == 8
    assert [h['candidates'] for h in run.history] == [5] * 8

    # the batch schedule on the same workers waits for the slowest candidate of every batch
    ex_b = SimulatedExecutor(num_workers=2)
    _run(tmp_path, 'batch', strategy, 'batch', ex_b)
    assert _idle_before_last_start(ex_b.log, 2) > 0.
    assert _utilisation(ex_b.log, 2) < util


def test_strategies_share_the_workers_without_a_tail_between_them(tmp_path):
    table = _table()

    def runs(d, ex):
        return [SearchRun(TabularSpace(table), st, TabularEvaluator(table), str(tmp_path / d),
                          20, target_flops=1.0, batch_size=5, seed=0, executor=ex,
                          durable=False) for st in STRATEGIES]

    ex = SimulatedExecutor(num_workers=2)
    out = run_async(runs('together', ex))
    assert [[r['index'] for r in recs] for recs in out] == [list(range(20))] * 3
    on_disk = ResultsFile(str(tmp_path / 'together' / 'results.jsonl')).load()
    assert sorted(r['id'] for r in on_disk) == sorted(r['id'] for recs in out for r in recs)
    assert _idle_before_last_start(ex.log, 2) == 0.
    # one strategy after the other: the last candidates of each leave a worker idle
    ex_seq = SimulatedExecutor(num_workers=2)
    for run in runs('one_by_one', ex_seq):
        run.run()
    assert _idle_before_last_start(ex_seq.log, 2) > 0.
    assert _utilisation(ex.log, 2) > _utilisation(ex_seq.log, 2)


def test_async_is_the_default_with_more_than_one_worker(tmp_path):
    table = _table()
    mk = lambda ex: SearchRun(TabularSpace(table), dict(type='random'),  # noqa: E731
                              TabularEvaluator(table), str(tmp_path), 4, 1.0, executor=ex)
    assert mk(SimulatedExecutor(num_workers=2)).schedule == 'async'
    assert mk(SimulatedExecutor(num_workers=1)).schedule == 'batch'
    assert mk(build_executor('serial')).schedule == 'batch'
    with pytest.raises(ValueError, match="schedule must be one of"):
        SearchRun(TabularSpace(table), dict(type='random'), TabularEvaluator(table),
                  str(tmp_path), 4, 1.0, schedule='eager')


class _Crash(BaseException):
    """Not an Exception: escapes run_candidate like a kill would."""


class _CrashingEvaluator(TabularEvaluator):
    def __init__(self, table, after, calls):
        super().__init__(table)
        self.after, self.calls = after, calls

    def __call__(self, arch, tokens=None, seed=0):
        if self.after is not None and len(self.calls) >= self.after:
            raise _Crash()
        self.calls.append(tuple(tokens))
        return super().__call__(arch, tokens, seed)


@pytest.mark.parametrize('strategy', ['ppo', 'evolution'])
def test_async_resume_after_a_crash_redoes_nothing_finished(tmp_path, strategy):
    table = _table()
    cfg = dict(type=strategy) if strategy == 'ppo' else dict(
        type='evolution', population_size=6, sample_size=2)
    calls = []
    with pytest.raises(_Crash):
        _run(tmp_path, 'run', cfg, 'async', SimulatedExecutor(2),
             evaluator=_CrashingEvaluator(table, 13, calls))
    before = ResultsFile(str(tmp_path / 'run' / 'results.jsonl')).load()
    assert len(before) >= 12   # 13 evaluated, one of them still running at the crash
    # the same results file and checkpoint, resumed on a single worker (the batch loop reads
    # the same pending candidates) and then asynchronously again
    with pytest.raises(_Crash):
        _run(tmp_path, 'run', cfg, 'batch', build_executor('serial'), resume=True,
             evaluator=_CrashingEvaluator(table, 26, calls))
    run, recs = _run(tmp_path, 'run', cfg, 'async', SimulatedExecutor(2), resume=True,
                     evaluator=_CrashingEvaluator(table, None, calls))
    assert [r['index'] for r in recs] == list(range(40))
    on_disk = ResultsFile(str(tmp_path / 'run' / 'results.jsonl')).load()
    assert sorted(r['id'] for r in on_disk) == sorted(r['id'] for r in recs)  # once each
    assert [r['id'] for r in on_disk[:len(before)]] == [r['id'] for r in before]  # kept
    evaluated = [r for r in on_disk if not r.get('cached_from')]
    assert {tuple(r['tokens']) for r in evaluated} == set(calls)
    # no finished candidate evaluated twice: only the one running on the other worker at
    # each of the two crashes was redone
    assert len(evaluated) <= len(calls) <= len(evaluated) + 2
    assert sum(h['candidates'] for h in run.history) == 40  # each fed back once
    if strategy == 'ppo':
        assert run.strategy.pending == []


def test_async_retries_candidates_lost_to_the_infrastructure(tmp_path):
    ex = SimulatedExecutor(2, lose=range(0, 40, 3))
    run, recs = _run(tmp_path, 'lost', dict(type='random'), 'async', ex)
    assert [r['status'] for r in recs] == ['ok'] * 40
    on_disk = ResultsFile(osp.join(run.work_dir, 'results.jsonl')).load()
    lost = [r for r in on_disk if r.get('infrastructure')]
    assert lost and all(ex.attempts[r['id']] == 2 for r in lost)
    assert not any(r.get('cached_from') in {x['id'] for x in lost} and
                   r.get('status') == 'failed' for r in on_disk)


def test_worker_utilisation_against_hand_computed_spans():
    recs = [dict(t_start=0., t_end=4.), dict(t_start=0., t_end=2.), dict(t_start=2., t_end=5.),
            dict(t_start=9., t_end=9., cached_from='x'), dict(status='failed')]
    # busy 4 + 2 + 3 = 9 of 2 workers x span 5
    assert worker_utilisation(recs, 2) == pytest.approx(0.9)
    assert worker_utilisation(recs, 1) == pytest.approx(1.8)
    assert worker_utilisation([dict(status='ok')], 2) is None


class _Sleeping(TabularEvaluator):
    """Sleeps ``duration(tokens) * unit`` seconds (releases the GIL, like a Ray task)."""

    unit = 0.04

    def __call__(self, arch, tokens=None, seed=0):
        time.sleep(duration(tokens) * self.unit)
        return super().__call__(arch, tokens, seed)


def test_async_on_real_threads_keeps_two_workers_busy(tmp_path):
    table = _table()
    figures = {}
    for schedule in ('async', 'batch'):
        ex = PoolExecutor(num_workers=2, threads=True)
        try:
            _, recs = _run(tmp_path, schedule, dict(type='random'), schedule, ex, budget=24,
                           batch=6, evaluator=_Sleeping(table))
        finally:
            ex.shutdown()
        assert [r['index'] for r in recs] == list(range(24))
        # from the recorded t_start / t_end: busy while work remained (up to the last
        # start), and overall (the last candidate leaves one worker idle at the end)
        figures[schedule] = (_busy_until_last_start(recs, 2), worker_utilisation(recs, 2))
    (busy, util), (busy_b, _) = figures['async'], figures['batch']
    # loose bounds: on a loaded machine the driver reacts late (an idle one measured 0.94
    # async, 0.87 in batches); the exact property (no idle while work remains) is checked
    # on the simulated clock above
    assert busy >= 0.85 and util >= 0.75, figures
    assert busy_b < busy, figures  # a batch waits for its slowest candidate


def _busy_until_last_start(records, num_workers):
    """Mean number of running candidates / ``num_workers`` from the first to the last start."""
    events = sorted([(r['t_start'], 1) for r in records if 't_start' in r] +
                    [(r['t_end'], -1) for r in records if 't_end' in r])
    first, last = events[0][0], max(r['t_start'] for r in records if 't_start' in r)
    area, running, t = 0., 0, first
    for when, step in events:
        when = min(when, last)
        area += min(running, num_workers) * (when - t)
        running, t = running + step, when
    return area / (num_workers * (last - first))


class _DiesOnce(TabularEvaluator):
    """Kills its worker process at its first candidate (a marker file remembers it)."""

    def __init__(self, table, marker):
        super().__init__(table)
        self.marker = marker

    def __call__(self, arch, tokens=None, seed=0):
        if not os.path.exists(self.marker):
            open(self.marker, 'w').close()
            os._exit(1)   # like the OOM killer: no exception, the process is gone
        return super().__call__(arch, tokens, seed)


@pytest.mark.slow
def test_process_pool_runs_asynchronously_and_survives_a_dead_worker(tmp_path):
    table = _table()
    ex = PoolExecutor(num_workers=2)  # spawned processes (they import uninet_mm: slow)
    try:
        run, recs = _run(tmp_path, 'pool', dict(type='random'), 'async', ex, budget=10,
                         batch=3, evaluator=_DiesOnce(table, str(tmp_path / 'died')))
    finally:
        ex.shutdown()
    assert [r['status'] for r in recs] == ['ok'] * 10
    on_disk = ResultsFile(osp.join(run.work_dir, 'results.jsonl')).load()
    assert 1 <= sum(bool(r.get('infrastructure')) for r in on_disk) <= 2  # lost, redone
    assert worker_utilisation(recs, 2) is not None
