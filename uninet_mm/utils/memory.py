"""Memory that autograd keeps: what memory-efficient training functions cut, counted
independently of the allocator and of other processes, and the process's resident memory
(what benchmarks report as peak memory on CPU)."""
import os
import re
import resource
import threading

import torch

__all__ = ['RSSSampler', 'peak_rss_bytes', 'reset_peak_rss', 'rss_bytes', 'saved_tensor_bytes']


def saved_tensor_bytes(fn, params=()):
    """Run ``fn()`` and count the bytes of the tensors autograd saves for backward meanwhile
    (each storage once, without the storages of ``params``). Returns ``(fn(), bytes)``."""
    seen, skip = {}, {p.untyped_storage().data_ptr() for p in params}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in skip:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def rss_bytes():
    """The resident set size of this process now."""
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')


class RSSSampler:
    """Polls the resident set size every ``interval`` s in a thread and keeps the maximum:
    the kernel's VmHWM mark is updated lazily and can miss peaks that are freed with madvise,
    so a peak is max(VmHWM, sampled RSS)."""

    def __init__(self, interval=0.01):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes())
            self._stop.wait(self.interval)

    def start(self):
        self.peak = rss_bytes()
        self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        self._thread.join()
        return max(self.peak, rss_bytes())


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark (VmHWM) of this process; False if not possible."""
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
        return True
    except OSError:
        return False


def peak_rss_bytes():
    """The kernel's peak-RSS mark (VmHWM) of this process (ru_maxrss where /proc lacks it)."""
    try:
        with open('/proc/self/status') as f:
            return int(re.search(r'VmHWM:\s+(\d+)', f.read()).group(1)) * 1024
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
