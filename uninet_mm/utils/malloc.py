"""CPU runs: keep freed tensor memory in the process instead of returning it to the kernel.

PyTorch allocates CPU tensors with ``malloc``. glibc serves large blocks (the feature maps at
detection resolution) with a fresh ``mmap`` and returns them with ``munmap`` when freed, so each
forward pass page-faults all of its activations in again and the kernel zeroes every page:
measured 0.83 s of system time per UniNet-B3 forward at 800x1216 (2 threads), about 30% of
its wall time, and similar shares for Swin-T and PVT-Tiny. Serving every block from the heap
and not trimming it removes that cost; the resident memory then stays at the process's peak
(it is not given back between iterations). This is glibc's knob for what jemalloc or tcmalloc,
which PyTorch's CPU tuning guide recommends, do by default.

Without code, for any process: ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:``
``glibc.malloc.trim_threshold=1073741824 python ...``.
"""
import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4


def keep_freed_memory(trim_threshold=1 << 30):
    """Serve all allocations from the glibc heap (``M_MMAP_MAX = 0``) and keep up to
    ``trim_threshold`` bytes of freed memory (``M_TRIM_THRESHOLD``). Process-wide; affects
    allocations made afterwards. Returns False where it does not apply (not glibc)."""
    name = ctypes.util.find_library('c')
    try:
        libc = ctypes.CDLL(name or 'libc.so.6')
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))
