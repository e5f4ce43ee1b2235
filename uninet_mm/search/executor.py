"""Where candidates are evaluated: one small abstraction, serial or on Ray.

``executor.map_unordered(fn, jobs)`` runs ``fn(job)`` for every job and yields ``(job, result)``
as each finishes. ``fn`` must not raise (the search wraps evaluators in
:func:`uninet_mm.search.loop.run_candidate`, which turns any error into a failed result); a
Ray task that dies anyway (worker killed, out of memory) comes back as a failed result marked
``infrastructure=True``: the search evaluates it again instead of caching the failure.

Ray is optional: ``build_executor('auto')`` uses it when it is installed, the serial executor
otherwise; ``'ray'`` without Ray installed is an error that says so.
"""
import traceback

from .registry import EXECUTORS


@EXECUTORS.register_module(name='serial')
class SerialExecutor:
    """Runs the jobs one after another in this process."""

    kind = 'serial'
    num_workers = 1

    def map_unordered(self, fn, jobs):
        for job in jobs:
            yield job, fn(job)

    def shutdown(self):
        pass


def ray_available():
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


@EXECUTORS.register_module(name='ray')
class RayExecutor:
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
        self._remote = ray.remote(num_cpus=num_cpus_per_task)(_ray_call)

    def map_unordered(self, fn, jobs):
        jobs = list(jobs)
        fn_ref = self.ray.put(fn)
        pending = {}
        queue = list(enumerate(jobs))
        while queue or pending:
            while queue and len(pending) < self.num_workers:
                i, job = queue.pop(0)
                pending[self._remote.remote(fn_ref, job, self.num_cpus_per_task)] = job
            done, _ = self.ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                try:
                    result = self.ray.get(ref)
                except Exception as e:  # noqa: BLE001  (a dead worker, out of memory)
                    result = dict(status='failed', error=f'ray task failed: {e!r}',
                                  traceback=traceback.format_exc(limit=3), infrastructure=True)
                yield job, result

    def shutdown(self):
        pass  # a local Ray stays up for the next strategy; it ends with the process


def _ray_call(fn, job, num_cpus):
    import torch

    from ..utils.malloc import apply_malloc, default_malloc
    try:  # a long-lived worker: keep freed memory unless $UNINET_MALLOC says otherwise
        apply_malloc(default_malloc())
    except ValueError:
        pass
    torch.set_num_threads(max(1, int(num_cpus)))
    return fn(job)


def build_executor(kind='serial', **kwargs):
    """``'serial'``, ``'ray'``, ``'auto'`` (Ray when installed) or a registered executor;
    ``kwargs`` (``address``, ``num_workers``, ``num_cpus_per_task`` for Ray) go to its
    constructor (the serial executor takes none)."""
    if kind == 'auto':
        kind = 'ray' if ray_available() else 'serial'
    cls = EXECUTORS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise KeyError(f"unknown executor {kind!r}; valid executors are 'auto', "
                       f'{sorted(EXECUTORS.module_dict)}')
    if cls is SerialExecutor:
        kwargs = {}
    return cls(**kwargs)
