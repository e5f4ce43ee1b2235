"""The search loop: propose a batch, evaluate it (serially or on Ray), write every finished
candidate at once to the results file, feed the rewards back, checkpoint; resumable.

Durability protocol (per strategy, in ``work_dir``):

1. the strategy proposes a batch; the checkpoint ``checkpoints/<name>.pkl`` is written
   atomically with the strategy's state *after* proposing and the batch itself (ids + tokens);
2. every candidate of the batch is appended to ``results.jsonl`` the moment it finishes;
3. the rewards of the whole batch are fed back (a PPO update) and the checkpoint is written
   again without a pending batch.

After a crash at any point (``kill -9`` included), ``resume=True`` loads the checkpoint and the
results file: a pending batch is finished by evaluating only the candidates that have no record
yet, then the search goes on as if it had never stopped. No finished candidate is trained
twice; only the ones running at the crash are redone. The strategies draw from their own seeded
generators, whose states are in the checkpoint, so a resumed search proposes exactly what the
uninterrupted one would.

Repeated token sequences (common once PPO converges) are not trained again: their record
copies the earlier result with ``cached_from``; the budget counts proposals, cached or not.
"""
import copy
import datetime
import math
import os
import os.path as osp
import pickle
import sys
import time
import traceback
import zlib

from .evaluators import compute_reward, scale_target
from .results import ResultsFile
from .strategies import build_strategy

CHECKPOINT_VERSION = 1


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
    out['time'] = time.time() - t0
    return out


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
    target = reward_cfg.get('target_flops', 550e6)
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
        cache (bool): serve repeated token sequences from earlier records.
        progress (Progress, optional): shared progress display.
    """

    def __init__(self, space, strategy_cfg, evaluator, work_dir, budget, target_flops,
                 alpha=-0.07, batch_size=4, executor=None, seed=0, failure_reward=0.,
                 cache=True, progress=None):
        from .executor import SerialExecutor
        self.space = space
        self.strategy_cfg = dict(strategy_cfg)
        self.name = self.strategy_cfg.get('name', self.strategy_cfg.get('type'))
        # each strategy draws from its own stream: random search and evolution's initial
        # population would otherwise be the same candidates
        self.strategy_seed = zlib.crc32(f'{self.name}:{int(seed)}'.encode()) % 2 ** 31
        self.strategy = build_strategy(self.strategy_cfg, space.num_choices,
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
        self.results = ResultsFile(osp.join(work_dir, 'results.jsonl'))
        self.ckpt_path = osp.join(work_dir, 'checkpoints', f'{self.name}.pkl')
        self.history = []

    # -- checkpoint -------------------------------------------------------------------------
    def _save(self, next_index, pending):
        state = dict(version=CHECKPOINT_VERSION, name=self.name, strategy_cfg=self.strategy_cfg,
                     strategy=self.strategy.state_dict(), next_index=next_index,
                     pending=pending, budget=self.budget, num_choices=self.space.num_choices,
                     history=self.history)
        os.makedirs(osp.dirname(self.ckpt_path), exist_ok=True)
        tmp = self.ckpt_path + '.tmp'
        with open(tmp, 'wb') as f:
            pickle.dump(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.ckpt_path)

    def _load(self):
        with open(self.ckpt_path, 'rb') as f:
            state = pickle.load(f)
        if state.get('version') != CHECKPOINT_VERSION:
            raise ValueError(f'{self.ckpt_path}: checkpoint version {state.get("version")} '
                             f'is not {CHECKPOINT_VERSION}')
        if list(state['num_choices']) != list(self.space.num_choices):
            raise ValueError(f'{self.ckpt_path}: the checkpoint is of another search space '
                             f'(choices {state["num_choices"]})')
        return state

    # -- records ----------------------------------------------------------------------------
    def reward_of(self, rec):
        """The reward a strategy sees (the failure reward for failed candidates)."""
        return rec['reward'] if rec.get('status') == 'ok' else self.failure_reward

    def _record(self, cid, index, tokens, arch, result):
        rec = dict(id=cid, strategy=self.name, index=index, tokens=list(tokens), arch=arch,
                   seed=self.seed, finished_at=_now(), time=round(result.get('time', 0.), 3),
                   status=result['status'])
        if result['status'] == 'ok':
            rec.update(accuracy=float(result['accuracy']), flops=int(result['flops']),
                       params=int(result.get('params', 0)),
                       metric=result.get('metric', 'accuracy'))
            try:
                rec['reward'] = compute_reward(rec['accuracy'], rec['flops'],
                                               self.target_flops, self.alpha)
            except ValueError as e:
                rec.update(status='failed', error=f'reward: {e}', reward=None)
        else:
            rec.update(error=result.get('error', 'unknown error'),
                       traceback=result.get('traceback', ''), reward=None)
        return rec

    def _emit(self, rec, mine, cache):
        self.results.append(rec)
        mine[rec['id']] = rec
        if self.cache and not rec.get('cached_from'):
            cache.setdefault(tuple(rec['tokens']), rec)
        if self.progress is not None:
            self.progress.update(rec, f'{rec["index"] + 1}/{self.budget}')

    def _cached(self, src, cid, index):
        rec = copy.deepcopy(src)
        rec.update(id=cid, strategy=self.name, index=index, cached_from=src['id'], time=0.,
                   finished_at=_now())
        return rec

    # -- the loop ---------------------------------------------------------------------------
    def run(self, resume=False):
        """Run (or, with ``resume``, continue) the search; returns this strategy's records."""
        records = self.results.load()
        mine = {r['id']: r for r in records if r.get('strategy') == self.name}
        cache = {}
        for r in records:
            if not r.get('cached_from') and r.get('seed') == self.seed:
                cache.setdefault(tuple(r['tokens']), r)
        has_ckpt = osp.isfile(self.ckpt_path)
        if not resume and (mine or has_ckpt):
            raise RuntimeError(f'search: {self.work_dir} already has results of {self.name!r}; '
                               f'pass --resume to continue them, or use a new work dir')
        next_index, pending = 0, None
        if has_ckpt:
            state = self._load()
            self.strategy.load_state_dict(state['strategy'])
            next_index, pending = state['next_index'], state['pending']
            self.history = state.get('history', [])
        elif mine:
            raise RuntimeError(f'search: {self.work_dir} has results of {self.name!r} but no '
                               f'checkpoint {self.ckpt_path}; cannot resume consistently')
        if self.progress is not None:
            self.progress.skip(len(mine))
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
            jobs, waiting = [], []
            for cid, index, tokens in pending:
                if cid in mine:
                    continue
                key = tuple(tokens)
                if self.cache and key in cache:
                    self._emit(self._cached(cache[key], cid, index), mine, cache)
                    continue
                if self.cache and any(tuple(j['tokens']) == key for j in jobs):
                    waiting.append((cid, index, key))  # a twin in this batch is trained
                    continue
                try:
                    arch = self.space.decode(tokens)
                except Exception as e:  # noqa: BLE001
                    self._emit(self._record(cid, index, tokens, None, dict(
                        status='failed', error=f'decode: {type(e).__name__}: {e}')),
                        mine, cache)
                    continue
                jobs.append(dict(id=cid, index=index, tokens=tokens, arch=arch, seed=self.seed))
            for job, result in self.executor.map_unordered(fn, jobs):
                self._emit(self._record(job['id'], job['index'], job['tokens'], job['arch'],
                                        result), mine, cache)
            for cid, index, key in waiting:
                self._emit(self._cached(cache[key], cid, index), mine, cache)
            tokens = [t for _, _, t in pending]
            rewards = [self.reward_of(mine[cid]) for cid, _, _ in pending]
            stats = self.strategy.observe(tokens, rewards) or {}
            entry = {k: v for k, v in stats.items() if isinstance(v, (int, float))}
            entry.update(index=next_index, batch_mean_reward=sum(rewards) / len(rewards))
            self.history.append(entry)
            pending = None
            self._save(next_index, None)
        return sorted(mine.values(), key=lambda r: r['index'])
