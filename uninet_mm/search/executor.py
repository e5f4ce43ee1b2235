"""Where candidates are evaluated: one small abstraction, serial, a local pool or Ray.

Two ways to use an executor:

- ``submit(fn, job)`` starts ``fn(job)`` (on a free worker; the serial executor runs it at
  the next ``wait_one``), ``wait_one()`` blocks until one submitted job has finished and
  returns ``(job, result)``, ``num_running`` counts the submitted jobs not yet returned. The
  asynchronous search loop keeps ``num_workers`` jobs running and proposes a new candidate the
  moment one returns (``SearchRun(schedule='async')``).
- ``map_unordered(fn, jobs)`` runs every job, at most ``num_workers`` at once, and yields
  ``(job, result)`` as each finishes (the batch loop).

``fn`` must not raise (the search wraps evaluators in
:func:`uninet_mm.search.loop.run_candidate`, which turns any error into a failed result); a
task that dies anyway (a Ray worker killed, out of memory, a pool process lost) comes back as
a failed result marked ``infrastructure=True``: the search evaluates it again instead of
caching the failure.

Ray is optional: ``build_executor('auto')`` uses it when it is installed, the serial executor
otherwise; ``'ray'`` without Ray installed is an error that says so. ``'pool'`` runs the
candidates in local processes (or threads) without Ray.
"""
import collections
import functools
import traceback
from concurrent.futures.process import BrokenProcessPool

from .registry import EXECUTORS


def _lost(what, e):
    """The result of a task lost to the infrastructure (retried by the search)."""
    return dict(status='failed', error=f'{what}: {e!r}', traceback=traceback.format_exc(limit=3),
                infrastructure=True)


class Executor:
    """The interface (see the module doc); subclasses implement ``submit`` and ``wait_one``."""

    kind = 'executor'
    num_workers = 1

    def _init_tracking(self):
        self._running = {}  # handle (future, object ref) -> (submission number, job)
        self._count = 0

    def _track(self, handle, job):
        self._running[handle] = (self._count, job)
        self._count += 1

    @property
    def num_running(self):
        return len(self._running)

    def submit(self, fn, job):
        raise NotImplementedError

    def wait_one(self):
        raise NotImplementedError

    def map_unordered(self, fn, jobs):
        queue = collections.deque(jobs)
        base = self.num_running
        while queue or self.num_running > base:
            while queue and self.num_running - base < self.num_workers:
                self.submit(fn, queue.popleft())
            yield self.wait_one()

    def shutdown(self):
        pass


@EXECUTORS.register_module(name='serial')
class SerialExecutor(Executor):
    """Runs the jobs one after another in this process (a submitted job runs at the next
    ``wait_one``, in submission order)."""

    kind = 'serial'
    num_workers = 1

    def __init__(self):
        self._queue = collections.deque()

    @property
    def num_running(self):
        return len(self._queue)

    def submit(self, fn, job):
        self._queue.append((fn, job))

    def wait_one(self):
        if not self._queue:
            raise RuntimeError('SerialExecutor.wait_one: nothing was submitted')
        fn, job = self._queue.popleft()
        return job, fn(job)

    def map_unordered(self, fn, jobs):
        for job in jobs:
            yield job, fn(job)


@EXECUTORS.register_module(name='pool')
class PoolExecutor(Executor):
    """``num_workers`` local processes (``concurrent.futures``, spawned: no forked torch
    state) or, with ``threads=True``, threads; no Ray needed.

    Args:
        num_workers (int): concurrent candidates (default: the CPU count).
        threads (bool): threads instead of processes (for evaluators that release the GIL,
            and the tests).
        num_cpus_per_task (int): torch threads of each candidate in a worker process.
    """

    kind = 'pool'

    def __init__(self, num_workers=None, threads=False, num_cpus_per_task=1):
        import concurrent.futures as cf
        import os
        self.num_workers = max(1, int(num_workers or os.cpu_count() or 1))
        self.num_cpus_per_task = num_cpus_per_task
        self.threads = bool(threads)
        self._cf = cf
        self._pool = (cf.ThreadPoolExecutor(self.num_workers) if self.threads
                      else self._process_pool())
        self._init_tracking()

    def _process_pool(self):
        import multiprocessing
        return self._cf.ProcessPoolExecutor(
            self.num_workers, mp_context=multiprocessing.get_context('spawn'))

    def submit(self, fn, job):
        call = (fn, job) if self.threads else (_worker_call, fn, job, self.num_cpus_per_task)
        try:
            future = self._pool.submit(*call)
        except BrokenProcessPool:
            self._restart()
            future = self._pool.submit(*call)
        self._track(future, job)

    def _restart(self):
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._process_pool()

    def wait_one(self):
        if not self._running:
            raise RuntimeError('PoolExecutor.wait_one: nothing was submitted')
        done, _ = self._cf.wait(list(self._running), return_when=self._cf.FIRST_COMPLETED)
        future = min(done, key=lambda f: self._running[f][0])  # the oldest of the finished
        _, job = self._running.pop(future)
        try:
            result = future.result()
        except Exception as e:  # noqa: BLE001  (a worker process died: the pool is broken)
            result = _lost('pool task failed', e)
            if isinstance(e, BrokenProcessPool):
                self._restart_after_loss()
        return job, result

    def _restart_after_loss(self):
        """Every job of a broken pool is lost: they come back as lost, one per wait_one."""
        lost = list(self._running.values())
        self._running.clear()
        self._restart()
        for n, job in lost:
            f = self._cf.Future()
            f.set_exception(RuntimeError('the pool lost this task with a dead worker'))
            self._running[f] = (n, job)

    def shutdown(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


@functools.lru_cache(maxsize=None)
def _setup_worker_process():
    """Once per worker process (a long-lived one): keep freed memory unless $UNINET_MALLOC
    says otherwise. Returns the setting in force."""
    from ..utils.malloc import apply_malloc, default_malloc
    try:
        return apply_malloc(default_malloc())
    except ValueError as e:  # a bad $UNINET_MALLOC: the allocator is left as it is
        return str(e)


def _worker_call(fn, job, num_cpus):
    import torch
    _setup_worker_process()
    torch.set_num_threads(max(1, int(num_cpus)))
    return fn(job)


def ray_available():
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@EXECUTORS.register_module(name='ray')
class RayExecutor(Executor):
    """Runs the jobs as Ray tasks, ``num_cpus_per_task`` CPUs each.

    Args:
        address (str, optional): an existing cluster (``'auto'`` or ``'ray://host:10001'``);
            None starts a local Ray with ``num_workers * num_cpus_per_task`` CPUs.
        num_workers (int, optional): concurrent tasks of a local Ray (default: all CPUs).
        num_cpus_per_task (float): CPUs reserved per candidate (also its torch threads).
    """

    kind = 'ray'

    def __init__(self, address=None, num_workers=None, num_cpus_per_task=1):
        if not ray_available():
            raise ImportError("the Ray executor needs Ray: pip install 'ray>=2.9' "
                              "(requirements/search.txt), or use the serial executor")
        import os

        import ray
        self.ray = ray
        self.num_cpus_per_task = num_cpus_per_task
        if not ray.is_initialized():
            kwargs = dict(ignore_reinit_error=True, include_dashboard=False,
                          log_to_driver=False, configure_logging=False)
            if address:
                ray.init(address=address, **kwargs)
            else:
                cpus = (num_workers or os.cpu_count() or 1) * num_cpus_per_task
                ray.init(num_cpus=cpus, **kwargs)
        total = ray.cluster_resources().get('CPU', 1)
        self.num_workers = max(1, int(num_workers or total // num_cpus_per_task))
        self._remote = ray.remote(num_cpus=num_cpus_per_task)(_worker_call)
        self._fn_refs = {}  # id(fn) -> (fn, its object ref): each evaluator is put once
        self._init_tracking()

    def submit(self, fn, job):
        entry = self._fn_refs.get(id(fn))
        if entry is None or entry[0] is not fn:
            entry = self._fn_refs[id(fn)] = (fn, self.ray.put(fn))
        self._track(self._remote.remote(entry[1], job, self.num_cpus_per_task), job)

    def wait_one(self):
        if not self._running:
            raise RuntimeError('RayExecutor.wait_one: nothing was submitted')
        done, _ = self.ray.wait(list(self._running), num_returns=1)
        ref = done[0]
        _, job = self._running.pop(ref)
        try:
            result = self.ray.get(ref)
        except Exception as e:  # noqa: BLE001  (a dead worker, out of memory)
            result = _lost('ray task failed', e)
        return job, result

    def shutdown(self):
        pass  # a local Ray stays up for the next strategy; it ends with the process


def build_executor(kind='serial', **kwargs):
    """``'serial'``, ``'pool'``, ``'ray'``, ``'auto'`` (Ray when installed) or a registered
    executor; ``kwargs`` (``address``, ``num_workers``, ``num_cpus_per_task`` for Ray;
    ``num_workers``, ``threads`` for the pool) go to its constructor (the serial executor takes
    none)."""
    if kind == 'auto':
        kind = 'ray' if ray_available() else 'serial'
    cls = EXECUTORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise KeyError(f"unknown executor {kind!r}; valid executors are 'auto', "
                       f'{sorted(EXECUTORS.module_dict)}')
    if cls is SerialExecutor:
        kwargs = {}
    elif cls is PoolExecutor:
        kwargs.pop('address', None)
    return cls(**kwargs)
