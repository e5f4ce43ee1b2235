"""The search loop: propose candidates, evaluate them (serially, in a local pool or on Ray),
write every finished candidate at once to the results file, feed the rewards back,
checkpoint; resumable.

Two schedules (``SearchRun(schedule=...)``):

- ``'batch'``: propose ``batch_size`` candidates, evaluate them all, feed them back (one PPO
  update), repeat. Workers that finish early wait for the slowest candidate of the batch.
- ``'async'``: keep every worker busy. A candidate is proposed the moment a worker is free;
  the strategy is fed back whenever it holds ``batch_size`` finished candidates (in the order
  they finished), while the others keep running (asynchronous as in Real et al.'s evolution
  and Ray Tune's searchers). PPO's update weights candidates sampled by an older policy by
  the truncated importance ratio, as replayed ones. ``'auto'`` (default): ``'async'`` when
  the executor has more than one worker.

Durability protocol (per strategy, in ``work_dir``), the same for both:

1. the strategy proposes; the checkpoint ``checkpoints/<name>.pth`` is written atomically with
   the strategy's state *after* proposing and every candidate proposed but not yet fed back
   (ids + tokens), before any of them is started;
2. every candidate is appended to ``results.jsonl`` the moment it finishes;
3. after rewards are fed back (a PPO update) the checkpoint is written again without them.

After a crash at any point (``kill -9`` included), ``resume=True`` loads the checkpoint and the
results file: the candidates proposed but not fed back are finished by evaluating only those
that have no record yet, then the search goes on. No finished candidate is trained twice; only
the ones running at the crash are redone. The strategies draw from their own seeded
generators, whose states are in the checkpoint, so a resumed batch search proposes exactly what
the uninterrupted one would (an asynchronous one depends on the order candidates finish in,
which no run repeats exactly).

Every record holds ``t_start`` / ``t_end`` (Unix time, on the worker), from which
:func:`worker_utilisation` measures how busy the workers were.

Repeated architectures (common once PPO converges) are not trained again: their record
copies the earlier result with ``cached_from``; the cache is keyed on the decoded architecture
(token sequences that decode to the same network are one architecture); the budget counts
proposals, cached or not.

Checkpoints are ``torch.save`` files of plain containers, tensors and numbers, read back with
``torch.load(weights_only=True)`` (torch's allowlist unpickler: a crafted file cannot run
code). They record the run's signature (the space's choices in order, the strategy settings,
the reward, the batch size and seed); a resume whose signature differs is refused with a
message naming the difference.
"""
import copy
import datetime
import json
import math
import os
import os.path as osp
import sys
import time
import traceback
import zlib

from .results import ResultsFile
from .reward import PAPER_ALPHA, PAPER_TARGET_FLOPS, compute_reward, scale_target
from .strategies import build_strategy

CHECKPOINT_VERSION = 3
SCHEDULES = ('auto', 'batch', 'async')


def run_candidate(evaluator, job):
    """Evaluate one candidate; never raises: errors become ``status='failed'`` results."""
    t0 = time.time()
    try:
        out = dict(evaluator(job['arch'], tokens=job['tokens'], seed=job['seed']))
        acc = out.get('accuracy')
        if acc is None or not math.isfinite(float(acc)):
            raise FloatingPointError(f'diverged: the evaluator returned accuracy {acc}')
        out['status'] = 'ok'
    except Exception as e:  # noqa: BLE001  (any failure of a candidate is recorded)
        out = dict(status='failed', error=f'{type(e).__name__}: {e}',
                   traceback=''.join(traceback.format_exc(limit=-4)))
        if _out_of_memory(e):  # the machine's fault, not the candidate's: retried
            out['infrastructure'] = True
    t1 = time.time()
    out.update(time=t1 - t0, t_start=t0, t_end=t1)
    return out


def worker_utilisation(records, num_workers):
    """The fraction of ``num_workers`` x the wall span (first ``t_start`` to last ``t_end``)
    that evaluated records kept busy: ``sum(t_end - t_start) / (num_workers * span)``; None
    without timed records. Cached records (no evaluation) do not count."""
    spans = [(r['t_start'], r['t_end']) for r in records
             if r.get('t_start') is not None and r.get('t_end') is not None
             and not r.get('cached_from')]
    if not spans:
        return None
    wall = max(e for _, e in spans) - min(s for s, _ in spans)
    busy = sum(e - s for s, e in spans)
    return busy / (num_workers * wall) if wall > 0 else 1.


def _out_of_memory(e):
    import torch
    oom = (MemoryError,) + ((torch.OutOfMemoryError,) if hasattr(torch, 'OutOfMemoryError')
                            else ())
    return isinstance(e, oom)


class _CandidateFn:
    """Picklable ``job -> result`` for the executors."""

    def __init__(self, evaluator):
        self.evaluator = evaluator

    def __call__(self, job):
        return run_candidate(self.evaluator, job)


def resolve_target(reward_cfg, space, evaluator, proxy_resolution=None):
    """The FLOPs target at the proxy resolution.

    ``reward_cfg.target_flops``: a number (FLOPs at ``target_resolution``, scaled by the pixel
    count to the proxy resolution) or ``'base'`` (the base network's own FLOPs at the proxy
    resolution, counted by the evaluator).
    """
    target = reward_cfg.get('target_flops', PAPER_TARGET_FLOPS)
    if target == 'base':
        flops, _ = evaluator.complexity(space.base_arch)
        return float(flops)
    if not isinstance(target, (int, float)) or target <= 0:
        raise ValueError(f"reward.target_flops must be a positive number or 'base', got "
                         f'{target!r}')
    res = reward_cfg.get('target_resolution')
    proxy = proxy_resolution or space.base_arch.get('input_size')
    if res and proxy:
        return float(scale_target(target, res, proxy))
    return float(target)


class Progress:
    """One line per finished candidate, with the best reward so far and an ETA."""

    def __init__(self, total, stream=None):
        self.total = total
        self.done = 0
        self.start = time.time()
        self.trained = 0
        self.train_time = 0.
        self.stream = stream or sys.stdout
        self.best = {}

    def skip(self, n):
        """Candidates already finished before this process (resume)."""
        self.done += n

    def update(self, rec, budget_index):
        self.done += 1
        if not rec.get('cached_from'):
            self.trained += 1
            self.train_time += rec.get('time', 0.)
        name = rec['strategy']
        if rec.get('reward') is not None:
            self.best[name] = max(self.best.get(name, -math.inf), rec['reward'])
        elapsed = time.time() - self.start
        remaining = self.total - self.done
        rate = elapsed / max(1, self.trained)
        eta = remaining * rate
        if rec['status'] == 'ok':
            what = (f'reward {rec["reward"]:.4f} {rec.get("metric", "accuracy")} '
                    f'{rec["accuracy"]:.4f} {rec["flops"] / 1e6:.2f} MFLOPs')
        else:
            what = f'FAILED {rec.get("error", "")[:80]}'
        cached = ' (cached)' if rec.get('cached_from') else ''
        best = self.best.get(name)
        best = f'{best:.4f}' if best is not None else '-'
        print(f'[{name} {budget_index}] {what}{cached} {rec.get("time", 0.):.1f}s | best '
              f'{best} | {self.done}/{self.total} elapsed {_hms(elapsed)} ETA {_hms(eta)}',
              file=self.stream, flush=True)


def _hms(seconds):
    seconds = int(round(seconds))
    return f'{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}'


def _now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')


class SearchRun:
    """One strategy's search with a fixed budget of proposals.

    Args:
        space (SearchSpace): the search space.
        strategy_cfg (dict): ``dict(type='ppo' | 'random' | 'evolution', name=..., ...)``.
        evaluator: a callable ``(arch, tokens, seed) -> dict(accuracy, flops, params)``.
        work_dir (str): results file and checkpoints.
        budget (int): number of candidates (proposals) of this strategy.
        target_flops (float): FLOPs target at the proxy resolution.
        alpha (float): reward exponent (-0.07).
        batch_size (int): candidates per proposal (one PPO update per batch).
        executor: :class:`SerialExecutor` (default) or :class:`RayExecutor`.
        seed (int): seeds every candidate's training, and the strategy (through a seed
            derived from it and the strategy's name).
        failure_reward (float): reward fed back for failed candidates.
        cache (bool): serve repeated architectures from earlier records.
        progress (Progress, optional): shared progress display.
        durable (bool): fsync every record and checkpoint (False: flush only; the benchmark
            harness, whose runs are cheap to redo).
        checkpoint (bool): write the strategy checkpoint (False: no resume; the benchmark
            harness, in a scratch folder, where the checkpoints cost most of a run's time).
        schedule (str): ``'batch'``, ``'async'`` or ``'auto'`` (module doc).

    A strategy config may carry its own ``batch_size`` (e.g. PPO's update size), which then
    overrides ``batch_size`` for that strategy.
    """

    def __init__(self, space, strategy_cfg, evaluator, work_dir, budget, target_flops,
                 alpha=PAPER_ALPHA, batch_size=4, executor=None, seed=0, failure_reward=0.,
                 cache=True, progress=None, durable=True, schedule='auto', checkpoint=True):
        from .executor import SerialExecutor
        self.space = space
        self.strategy_cfg = dict(strategy_cfg)
        self.name = self.strategy_cfg.get('name', self.strategy_cfg.get('type'))
        batch_size = self.strategy_cfg.pop('batch_size', batch_size)
        # each strategy draws from its own stream: random search and evolution's initial
        # population would otherwise be the same candidates
        self.strategy_seed = zlib.crc32(f'{self.name}:{int(seed)}'.encode()) % 2 ** 31
        self.strategy = build_strategy(dict(self.strategy_cfg), space.num_choices,
                                       seed=self.strategy_seed)
        self.evaluator = evaluator
        self.work_dir = work_dir
        self.budget, self.batch_size = int(budget), int(batch_size)
        if self.budget < 1 or self.batch_size < 1:
            raise ValueError(f'search: budget and batch_size must be >= 1, got {budget}, '
                             f'{batch_size}')
        self.target_flops, self.alpha = float(target_flops), float(alpha)
        self.executor = executor or SerialExecutor()
        self.seed, self.failure_reward, self.cache = int(seed), float(failure_reward), cache
        self.progress = progress
        self.durable = bool(durable)
        self.checkpoint = bool(checkpoint)
        self.results = ResultsFile(osp.join(work_dir, 'results.jsonl'), fsync=self.durable)
        self.ckpt_path = osp.join(work_dir, 'checkpoints', f'{self.name}.pth')
        self.history = []
        if schedule not in SCHEDULES:
            raise ValueError(f'search: schedule must be one of {SCHEDULES}, got {schedule!r}')
        if schedule == 'auto':
            schedule = 'async' if getattr(self.executor, 'num_workers', 1) > 1 else 'batch'
        self.schedule = schedule

    # -- checkpoint -------------------------------------------------------------------------
    def signature(self):
        """What a resume must match: the space (its choices, in order), the strategy
        settings, the reward, the batch size and the seed (not the schedule or the executor:
        both loops read and write the same pending candidates, a run may go on elsewhere)."""
        space = (self.space.signature() if hasattr(self.space, 'signature')
                 else dict(num_choices=list(self.space.num_choices)))
        return _plain(dict(space=space, strategy=self.strategy_cfg,
                           reward=dict(target_flops=self.target_flops, alpha=self.alpha,
                                       failure_reward=self.failure_reward),
                           batch_size=self.batch_size, seed=self.seed, cache=self.cache))

    def _save(self, next_index, pending):
        if not self.checkpoint:
            return
        import torch
        state = dict(version=CHECKPOINT_VERSION, name=self.name, signature=self.signature(),
                     strategy=self.strategy.state_dict(), next_index=next_index,
                     pending=pending, budget=self.budget,
                     history=json.dumps(self.history))  # one string: fast to save
        os.makedirs(osp.dirname(self.ckpt_path), exist_ok=True)
        tmp = self.ckpt_path + '.tmp'
        with open(tmp, 'wb') as f:
            torch.save(state, f)
            if self.durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.ckpt_path)

    def _load(self):
        import pickle

        import torch
        try:
            state = torch.load(self.ckpt_path, map_location='cpu', weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f'{self.ckpt_path}: not a search checkpoint this version can read '
                             f'safely ({first}); it was not loaded. Start a new --work-dir.'
                             ) from None
        if not isinstance(state, dict) or state.get('version') != CHECKPOINT_VERSION:
            raise ValueError(f'{self.ckpt_path}: checkpoint version '
                             f'{state.get("version") if isinstance(state, dict) else "?"} is '
                             f'not {CHECKPOINT_VERSION}; start a new --work-dir')
        diff = _first_difference(state.get('signature'), self.signature())
        if diff:
            raise ValueError(f'--resume: the run in {self.work_dir} was made with different '
                             f'settings for {self.name!r}: {diff}; resume with the original '
                             f'config (search_config.py in the work dir) or use a new --work-dir')
        return state

    # -- records ----------------------------------------------------------------------------
    def reward_of(self, rec):
        """The reward a strategy sees (the failure reward for failed candidates)."""
        return rec['reward'] if rec.get('status') == 'ok' else self.failure_reward

    def key_of(self, tokens, arch):
        """The cache key: the decoded architecture (its tokens when it did not decode)."""
        if arch is None:
            return ('tokens', tuple(int(t) for t in tokens))
        key_fn = getattr(self.space, 'arch_key', None)
        return ('arch', key_fn(arch) if key_fn else
                json.dumps(arch, sort_keys=True, separators=(',', ':')))

    def _record(self, cid, index, tokens, arch, result):
        rec = dict(id=cid, strategy=self.name, index=index, tokens=list(tokens), arch=arch,
                   seed=self.seed, finished_at=_now(), time=round(result.get('time', 0.), 3),
                   status=result['status'])
        for k in ('t_start', 't_end'):
            if result.get(k) is not None:
                rec[k] = round(float(result[k]), 3)
        if result['status'] == 'ok':
            flops = result.get('flops')
            rec.update(accuracy=float(result['accuracy']),
                       flops=None if flops is None else int(flops),
                       params=int(result.get('params') or 0),
                       metric=result.get('metric', 'accuracy'))
            rec.update(result.get('extra') or {})
            try:
                rec['reward'] = (rec['accuracy'] if flops is None else compute_reward(
                    rec['accuracy'], rec['flops'], self.target_flops, self.alpha))
            except ValueError as e:
                rec.update(status='failed', error=f'reward: {e}', reward=None)
        else:
            rec.update(error=result.get('error', 'unknown error'),
                       traceback=result.get('traceback', ''), reward=None)
            if result.get('infrastructure'):
                rec['infrastructure'] = True
        return rec

    def _emit(self, rec, mine, cache):
        self.results.append(rec)
        mine[rec['id']] = rec
        if self.cache and not rec.get('cached_from') and not rec.get('infrastructure'):
            cache.setdefault(self.key_of(rec['tokens'], rec.get('arch')), rec)
        if self.progress is not None:
            self.progress.update(rec, f'{rec["index"] + 1}/{self.budget}')

    def _cached(self, src, cid, index, tokens):
        rec = copy.deepcopy(src)
        rec.pop('t_start', None)
        rec.pop('t_end', None)
        rec.update(id=cid, strategy=self.name, index=index, tokens=list(tokens),
                   cached_from=src['id'], time=0., finished_at=_now())
        return rec

    # -- the loop ---------------------------------------------------------------------------
    def run(self, resume=False):
        """Run (or, with ``resume``, continue) the search; returns this strategy's records."""
        if self.schedule == 'async':
            return run_async([self], resume=resume)[0]
        mine, cache, next_index, pending = self._prepare(resume)
        fn = _CandidateFn(self.evaluator)
        while True:
            if pending is None:
                if next_index >= self.budget:
                    break
                n = min(self.batch_size, self.budget - next_index)
                proposed = self.strategy.propose(n)
                pending = [(f'{self.name}-{next_index + i}', next_index + i, list(t))
                           for i, t in enumerate(proposed)]
                next_index += n
                self._save(next_index, pending)
            for attempt in range(self.max_retries + 1):
                lost = self._evaluate(pending, mine, cache, fn)
                for cid in lost:   # infrastructure failures: tried again, never cached
                    mine.pop(cid, None)
                if not lost:
                    break
            if lost:
                raise RuntimeError(f'search: candidates {lost} were lost to the infrastructure '
                                   f'{self.max_retries + 1} times (a worker died or ran out of '
                                   f'memory); fix it and --resume: they will be evaluated again')
            self._feed_back(pending, mine, next_index)
            pending = None
            self._save(next_index, None)
        return sorted(mine.values(), key=lambda r: r['index'])

    max_retries = 2

    def _prepare(self, resume):
        """This strategy's records, the cache, and the checkpoint's ``next_index`` and
        candidates proposed but not fed back (None: none)."""
        records = self.results.load()
        # a candidate lost to the infrastructure (a dead worker) is redone, not kept
        mine = {r['id']: r for r in records
                if r.get('strategy') == self.name and not r.get('infrastructure')}
        cache = {}
        for r in records:
            if not r.get('cached_from') and not r.get('infrastructure') and \
                    r.get('seed') == self.seed:
                cache.setdefault(self.key_of(r['tokens'], r.get('arch')), r)
        has_ckpt = osp.isfile(self.ckpt_path)
        if not resume and (mine or has_ckpt):
            raise RuntimeError(f'search: {self.work_dir} already has results of {self.name!r}; '
                               f'pass --resume to continue them, or use a new work dir')
        next_index, pending = 0, None
        if has_ckpt:
            state = self._load()
            self.strategy.load_state_dict(state['strategy'])
            next_index, pending = state['next_index'], state['pending']
            self.history = json.loads(state.get('history') or '[]')
        elif mine:
            legacy = osp.splitext(self.ckpt_path)[0] + '.pkl'
            if osp.isfile(legacy):
                raise RuntimeError(f'search: {legacy} is a plain pickle of an older version; '
                                   f'it is not loaded (unpickling can run code): start a new '
                                   f'work dir')
            raise RuntimeError(f'search: {self.work_dir} has results of {self.name!r} but no '
                               f'checkpoint {self.ckpt_path}; cannot resume consistently')
        if self.progress is not None:
            self.progress.skip(len(mine))
        return mine, cache, next_index, pending

    def _feed_back(self, entries, mine, next_index):
        """Feed the rewards of finished candidates ``(id, index, tokens)`` to the strategy."""
        tokens = [t for _, _, t in entries]
        rewards = [self.reward_of(mine[cid]) for cid, _, _ in entries]
        stats = self.strategy.observe(tokens, rewards) or {}
        entry = {k: v for k, v in stats.items() if isinstance(v, (int, float))}
        entry.update(index=next_index, candidates=len(rewards),
                     batch_mean_reward=sum(rewards) / len(rewards))
        self.history.append(entry)

    def _evaluate(self, pending, mine, cache, fn):
        """Evaluate the candidates of ``pending`` without a record; returns the ids lost to
        the infrastructure (they keep a record marked ``infrastructure`` but are redone)."""
        jobs, waiting = [], []
        for cid, index, tokens in pending:
            if cid in mine:
                continue
            try:
                arch = self.space.decode(tokens)
            except Exception as e:  # noqa: BLE001
                self._emit(self._record(cid, index, tokens, None, dict(
                    status='failed', error=f'decode: {type(e).__name__}: {e}')),
                    mine, cache)
                continue
            key = self.key_of(tokens, arch)
            if self.cache and key in cache:
                self._emit(self._cached(cache[key], cid, index, tokens), mine, cache)
                continue
            if self.cache and any(self.key_of(j['tokens'], j['arch']) == key for j in jobs):
                waiting.append((cid, index, tokens, key))  # a twin in this batch is trained
                continue
            jobs.append(dict(id=cid, index=index, tokens=tokens, arch=arch, seed=self.seed))
        lost = []
        for job, result in self.executor.map_unordered(fn, jobs):
            rec = self._record(job['id'], job['index'], job['tokens'], job['arch'], result)
            self._emit(rec, mine, cache)
            if rec.get('infrastructure'):
                lost.append(rec['id'])
        for cid, index, tokens, key in waiting:
            if key in cache:
                self._emit(self._cached(cache[key], cid, index, tokens), mine, cache)
            else:
                lost.append(cid)  # its twin was lost: redo it too
        return lost

class _AsyncRun:
    """One strategy's state in the ``'async'`` schedule (:func:`run_async`)."""

    def __init__(self, run, mine, cache, next_index, pending):
        self.run, self.mine, self.cache, self.next_index = run, mine, cache, next_index
        self.fn = _CandidateFn(run.evaluator)
        self.pending = [tuple(p) for p in pending or []]  # proposed, not fed back, in order
        self.entries = {p[0]: p for p in self.pending}
        self.ready = [p[0] for p in self.pending if p[0] in mine]  # finished, not fed back
        # proposed before a crash and never finished (more than the workers after a batch
        # run): started first
        self.queue = [p[0] for p in self.pending if p[0] not in mine]
        self.running = {}   # id -> cache key, submitted to the executor
        self.twins = {}     # cache key -> [ids waiting for a running twin]
        self.lost = {}      # id -> attempts lost to the infrastructure

    @property
    def done(self):
        return (not self.running and not self.queue and not self.ready
                and self.next_index >= self.run.budget)

    def feed_back(self):
        """Feed back a batch if ``batch_size`` are finished (or the last ones, at the end)."""
        run = self.run
        final = not self.running and not self.twins and not self.queue and \
            self.next_index >= run.budget
        if not self.ready or (len(self.ready) < run.batch_size and not final):
            return False
        batch, self.ready = self.ready[:run.batch_size], self.ready[run.batch_size:]
        run._feed_back([self.entries[c] for c in batch], self.mine, self.next_index)
        fed = set(batch)
        self.pending = [p for p in self.pending if p[0] not in fed]
        for c in batch:
            self.entries.pop(c)
        run._save(self.next_index, [list(p) for p in self.pending] or None)
        return True

    def start_one(self, executor):
        """Start one candidate on a free worker: a left-over one, else a new proposal
        (checkpointed before it starts). Returns False when there is nothing to start."""
        run = self.run
        while True:
            if self.queue:
                cid = self.queue.pop(0)
            elif self.next_index < run.budget:
                tokens = run.strategy.propose(1)[0]
                cid = f'{run.name}-{self.next_index}'
                entry = (cid, self.next_index, list(tokens))
                self.next_index += 1
                self.pending.append(entry)
                self.entries[cid] = entry
                run._save(self.next_index, [list(p) for p in self.pending])
            else:
                return False
            if self._start(cid, executor):
                return True
            # served at once (cached, a failed decode) or waiting for its twin: the worker is
            # still free; feed back first if that completed a batch
            self.feed_back()

    def _start(self, cid, executor):
        run = self.run
        _, index, tokens = self.entries[cid]
        try:
            arch = run.space.decode(tokens)
        except Exception as e:  # noqa: BLE001
            run._emit(run._record(cid, index, tokens, None, dict(
                status='failed', error=f'decode: {type(e).__name__}: {e}')),
                self.mine, self.cache)
            self.ready.append(cid)
            return False
        key = run.key_of(tokens, arch)
        if run.cache and key in self.cache:
            run._emit(run._cached(self.cache[key], cid, index, tokens), self.mine, self.cache)
            self.ready.append(cid)
            return False
        if run.cache and key in self.running.values():
            self.twins.setdefault(key, []).append(cid)  # its twin is being evaluated
            return False
        self.running[cid] = key
        executor.submit(self.fn, dict(id=cid, index=index, tokens=tokens, arch=arch,
                                      seed=run.seed))
        return True

    def finished(self, job, result, executor):
        """A candidate of this strategy came back from the executor."""
        run = self.run
        cid = job['id']
        key = self.running.pop(cid)
        rec = run._record(cid, job['index'], job['tokens'], job['arch'], result)
        run._emit(rec, self.mine, self.cache)
        if rec.get('infrastructure'):  # tried again at once, never cached
            self.mine.pop(cid, None)
            self.lost[cid] = self.lost.get(cid, 0) + 1
            if self.lost[cid] > run.max_retries:
                raise RuntimeError(
                    f'search: candidate {cid} was lost to the infrastructure {self.lost[cid]} '
                    f'times (a worker died or ran out of memory); fix it and --resume: it '
                    f'will be evaluated again')
            self.running[cid] = key
            executor.submit(self.fn, job)
            return
        self.ready.append(cid)
        for twin in self.twins.pop(key, []):
            _, index, tokens = self.entries[twin]
            run._emit(run._cached(self.cache.get(key, rec), twin, index, tokens), self.mine,
                      self.cache)
            self.ready.append(twin)


def run_async(runs, resume=False):
    """The ``'async'`` schedule (module doc) for one or several strategies sharing one
    executor's workers: whenever a worker is free, the next strategy in turn that has
    something to start proposes a candidate; each strategy is fed back whenever it holds
    ``batch_size`` finished candidates. Strategies of the same seed share the cache (as in
    consecutive runs). Returns each run's records, sorted by index."""
    executor = runs[0].executor
    if any(r.executor is not executor for r in runs):
        raise ValueError('run_async: the runs must share one executor')
    caches, states = {}, []
    for run in runs:
        mine, cache, next_index, pending = run._prepare(resume)
        shared = caches.setdefault(run.seed, cache)
        for k, v in cache.items():
            shared.setdefault(k, v)
        states.append(_AsyncRun(run, mine, shared, next_index, pending))
    by_name = {st.run.name: st for st in states}
    if len(by_name) != len(states):
        raise ValueError(f'run_async: strategy names must differ, got {[r.name for r in runs]}')
    workers = max(1, int(getattr(executor, 'num_workers', 1)))
    turn = 0
    while True:
        for st in states:
            while st.feed_back():
                pass
        while sum(len(st.running) for st in states) < workers:
            for i in range(len(states)):  # round robin over the strategies
                st = states[(turn + i) % len(states)]
                if st.start_one(executor):
                    turn = (turn + i + 1) % len(states)
                    break
            else:
                break  # nothing left to start
        if not any(st.running for st in states):
            if all(st.done for st in states):
                break
            continue  # finished candidates to feed back first
        job, result = executor.wait_one()
        by_name[job['id'].rsplit('-', 1)[0]].finished(job, result, executor)
    return [sorted(st.mine.values(), key=lambda r: r['index']) for st in states]


def _plain(obj):
    """Tuples -> lists, recursively (a signature compares equal after a JSON round trip)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _first_difference(recorded, current, path=''):
    """A one-line description of the first difference between two signatures, or ''."""
    if isinstance(recorded, dict) and isinstance(current, dict):
        for k in list(recorded) + [k for k in current if k not in recorded]:
            if k not in current:
                return f'{path}{k} was {recorded[k]!r}, now absent'
            if k not in recorded:
                return f'{path}{k} was absent, now {current[k]!r}'
            d = _first_difference(recorded[k], current[k], f'{path}{k}.')
            if d:
                return d
        return ''
    if isinstance(recorded, list) and isinstance(current, list) and \
            len(recorded) == len(current) and \
            any(isinstance(v, (list, dict)) for v in recorded + current):
        for i, (r, c) in enumerate(zip(recorded, current)):
            d = _first_difference(r, c, f'{path.rstrip(".")}[{i}].')
            if d:
                return d
        return ''
    if recorded != current:
        return f'{path.rstrip(".")} was {recorded!r}, now {current!r}'
    return ''
