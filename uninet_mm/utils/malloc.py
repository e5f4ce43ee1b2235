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
import os

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


#: the environment variable that picks the allocator behaviour of the training tools
MALLOC_ENV = 'UNINET_MALLOC'
MALLOC_CHOICES = ('keep', 'glibc')


def default_malloc():
    """The training tools' default: ``$UNINET_MALLOC`` if set, else ``'keep'``."""
    value = os.environ.get(MALLOC_ENV, 'keep').strip().lower() or 'keep'
    if value not in MALLOC_CHOICES:
        raise ValueError(f'{MALLOC_ENV}={value!r}: choose one of {list(MALLOC_CHOICES)} '
                         f'(keep: freed memory stays in the process; glibc: its default)')
    return value


def apply_malloc(choice):
    """What ``tools/train.py``, ``tools/search.py`` and the search's Ray workers do at start
    (long-lived processes, where memory kept for the next iteration costs nothing): for
    ``'keep'`` call :func:`keep_freed_memory`, unless ``GLIBC_TUNABLES`` already sets a
    ``glibc.malloc`` option (the user's setting wins); ``'glibc'`` leaves the allocator alone.
    Returns a one-line description of the setting in force."""
    if choice not in MALLOC_CHOICES:
        raise ValueError(f'malloc={choice!r}: choose one of {list(MALLOC_CHOICES)}')
    if 'glibc.malloc.' in os.environ.get('GLIBC_TUNABLES', ''):
        return 'allocator: GLIBC_TUNABLES from the environment'
    if choice == 'glibc':
        return "allocator: glibc's default (freed large blocks go back to the kernel)"
    if not keep_freed_memory():
        return 'allocator: not glibc, left as it is'
    return ('allocator: freed memory kept in the process (mallopt M_MMAP_MAX=0, '
            'M_TRIM_THRESHOLD=1 GiB; --malloc glibc or UNINET_MALLOC=glibc to opt out)')
