"""Make MMEngine checkpoints load under ``torch.load(weights_only=True)`` -- and nothing more.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: it only unpickles tensors,
containers, primitives and globals on an allowlist. MMEngine 0.10.7 checkpoints (what a Runner's
``CheckpointHook`` writes) also hold numpy arrays/scalars/dtypes and
``mmengine.logging.HistoryBuffer`` objects (``message_hub.log_scalars``); a ``OneCycle``
scheduler adds a static method of ``OneCycleParamScheduler``. So ``load_checkpoint``,
``Runner.resume`` and ``Runner.load_checkpoint`` fail with ``UnpicklingError`` on every
checkpoint MMEngine writes.

:func:`install_safe_globals` (run by ``import uninet_mm``) registers exactly those types with
:func:`torch.serialization.add_safe_globals` -- the list was found by saving checkpoints with
real Runners (default hooks, ``OptimWrapper`` with SGD/Adam/AdamW, clip_grad, accumulation,
EMAHook, ``save_best``, Linear/MultiStep/Step/Poly/Cosine/OneCycle/ReduceOnPlateau/momentum
schedulers, iter- and epoch-based) and listing what ``weights_only`` refused. Pickle's
``getattr`` (used for functions defined inside a class) is *not* allowed as such: a restricted
stand-in registered under that name resolves only the few class functions listed in
:data:`GETATTR_ALLOWED`.

``weights_only`` stays on. Any other global (e.g. ``os.system`` in a crafted ``__reduce__``) is
still refused; MMEngine's ``CheckpointLoader.load_checkpoint`` is wrapped so the refusal raises
:class:`UnsafeCheckpointError` naming the refused type and how to load a file you trust.

A file that is not a readable checkpoint at all (empty, truncated, corrupt, a text file, other
bytes) raises :class:`CheckpointFileError` saying which, instead of the unpickler's
``EOFError`` / ``IndexError`` or a refusal: :func:`load_file` (``torch.load`` for tools) and the
wrapped loader classify the failure with :func:`describe_checkpoint_file`.
"""
import functools
import inspect
import os.path as osp
import pickle
import re
import zipfile

import torch

__all__ = ['install_safe_globals', 'safe_globals_list', 'UnsafeCheckpointError',
           'CheckpointFileError', 'GETATTR_ALLOWED', 'describe_checkpoint_file', 'load_file',
           'classify_load_error']

#: ``getattr(cls, name)`` pairs that pickles of MMEngine checkpoints use, by class path.
#: HistoryBuffer pickles its ``statistics_methods`` dict (``HistoryBuffer.min`` ...);
#: OneCycleParamScheduler stores its static ``anneal_func`` in its state dict.
GETATTR_ALLOWED = {
    'mmengine.logging.history_buffer.HistoryBuffer': ('min', 'max', 'current', 'mean'),
    'mmengine.optim.scheduler.param_scheduler.OneCycleParamScheduler':
    ('_annealing_cos', '_annealing_linear'),
}

_HOW_TO_TRUST = (
    'If you trust the file, load it with the type allowlisted for that call only:\n'
    '    with torch.serialization.safe_globals([<the type>]):\n'
    '        runner.load_checkpoint(path)   # or mmengine.runner.load_checkpoint(model, path)\n'
    'or, for a file from a source you trust completely, '
    'torch.load(path, map_location="cpu", weights_only=False) '
    'and load the resulting state dict.')


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allowlist; it was not unpickled."""


class CheckpointFileError(ValueError):
    """The file is not a readable checkpoint: empty, truncated, corrupt, text or other bytes."""


def _qualified(obj):
    return f'{obj.__module__}.{obj.__qualname__}'


def _checkpoint_getattr(obj, name):
    """``getattr`` restricted to the class functions in :data:`GETATTR_ALLOWED`.

    Registered under the name ``builtins.getattr``; a real ``getattr`` would let a pickle walk
    from any allowed object to ``__globals__`` and from there to ``os.system``.
    """
    allowed = GETATTR_ALLOWED.get(_qualified(obj)) if inspect.isclass(obj) else None
    if allowed is not None and name in allowed:
        attr = inspect.getattr_static(obj, name, None)
        if isinstance(attr, staticmethod):
            attr = attr.__func__
        if inspect.isfunction(attr):
            return attr
    raise pickle.UnpicklingError(
        f'refused getattr({obj!r}, {name!r}): only {sorted(GETATTR_ALLOWED)} class functions '
        'may be looked up while loading a checkpoint with weights_only=True')



def _numpy_globals():
    import numpy as np
    try:  # numpy >= 2
        from numpy._core import multiarray
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray
    out = [np.ndarray, np.dtype]
    # Checkpoints written under numpy 1.x name numpy.core, under 2.x numpy._core: accept both.
    for mod in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        out += [(multiarray._reconstruct, f'{mod}._reconstruct'),
                (multiarray.scalar, f'{mod}.scalar')]
    # np.dtype(...) returns an instance of a numpy.dtypes.*DType class (numpy >= 1.25), which the
    # unpickler's BUILD step checks by type.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        out += [getattr(dtypes, n) for n in dir(dtypes)
                if n.endswith('DType') and inspect.isclass(getattr(dtypes, n))]
    # scalar types themselves (e.g. a dtype=np.float32 value in a meta dict)
    for name in ('bool_', 'int8', 'int16', 'int32', 'int64', 'uint8', 'uint16', 'uint32',
                 'uint64', 'float16', 'float32', 'float64', 'longdouble', 'complex64',
                 'complex128', 'str_', 'bytes_', 'datetime64', 'timedelta64', 'void'):
        if hasattr(np, name):
            out.append(getattr(np, name))
    return out


@functools.lru_cache(maxsize=1)
def safe_globals_list():
    """The globals registered by :func:`install_safe_globals` (list, computed once)."""
    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.optim.scheduler.param_scheduler import OneCycleParamScheduler
    return tuple(_numpy_globals() + [
        HistoryBuffer,
        OneCycleParamScheduler,
        (_checkpoint_getattr, 'builtins.getattr'),
    ])


def _refused_names(exc, filename):
    """Names of the globals the checkpoint holds that are not allowed (best effort)."""
    names = []
    if isinstance(filename, str):
        try:
            names = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
        except Exception:  # not a local zip checkpoint: fall back to the message
            names = []
    if not names:
        msg = str(exc)
        m = (re.search(r'GLOBAL (\S+) (?:was not|whose module)', msg)
             or re.search(r'unrecognized function (.+?)(?:\n|$)', msg)
             or re.search(r'but got (<[^>]+>)', msg))
        if m:
            names = [m.group(1)]
    return names


def refusal_message(exc, filename):
    names = _refused_names(exc, filename)
    what = ', '.join(names) if names else 'an object outside the allowlist'
    return (f'refused to load checkpoint {filename!r}: it contains {what}, which is not one of '
            'the types MMEngine checkpoints hold (uninet_mm.utils.safe_load allows tensors, '
            'numpy arrays/scalars/dtypes, mmengine HistoryBuffer and OneCycle scheduler '
            'functions). torch.load(weights_only=True) did not unpickle it, because unpickling '
            f'an arbitrary object can run arbitrary code.\n{_HOW_TO_TRUST}\n'
            f'torch said: {_torch_reason(exc)}')


def _torch_reason(exc):
    """The line of torch's message that says what was refused (not its boilerplate)."""
    boiler = ('Weights only load failed', 'Check the documentation', '(1)', '(2)',
              'Please file an issue')
    for line in str(exc).split('WeightsUnpickler error:', 1)[-1].splitlines():
        line = line.strip().replace('WeightsUnpickler error: ', '')
        if line and not line.startswith(boiler):
            return line
    return repr(exc)


def describe_checkpoint_file(path):
    """What is wrong with the file at ``path`` as a checkpoint, judged from its bytes (a
    phrase such as ``'is empty (0 bytes)'``), or None if it looks like one (a zip archive
    with a pickle inside, or a pickle)."""
    size = osp.getsize(path)
    if size == 0:
        return ('is empty (0 bytes): an interrupted save, copy or download; write or '
                'download it again')
    with open(path, 'rb') as f:
        head = f.read(4096)
    if head.startswith(b'PK\x03\x04'):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            return (f'is truncated or corrupt ({size:,} bytes; the zip archive torch.save '
                    f'writes is unreadable: {e}): an interrupted save, copy or download; '
                    f'write or download it again')
        if not any(n.endswith('data.pkl') for n in names):
            return (f'is a zip archive but not a PyTorch checkpoint (no data.pkl inside; it '
                    f'holds {names[:3]})')
        return None
    if head[:1] == b'\x80':  # a pickle (torch's legacy format or a plain pickle)
        return None
    try:
        text = head.decode('utf-8')
    except UnicodeDecodeError:
        text = None
    if text is not None and sum(c.isprintable() or c in '\n\r\t' for c in text) > .95 * len(text):
        first = text.strip().splitlines()[0][:60] if text.strip() else ''
        return (f'is a text file, not a checkpoint (it starts with {first!r}): pass the '
                f'.pth file that torch.save wrote')
    return (f'is not a PyTorch checkpoint: neither a zip archive (what torch.save writes) nor '
            f'a pickle; it starts with bytes {head[:8]!r}')


def _is_refusal(exc, filename):
    """An allowlist refusal (a global or getattr outside the list), not unreadable bytes."""
    if not isinstance(exc, pickle.UnpicklingError):
        return False
    return bool(_refused_names(exc, filename)) or bool(re.search(
        r'global|getattr|unrecognized function|but got <', _torch_reason(exc), re.I))


_CORRUPT = (EOFError, IndexError, KeyError, ValueError, zipfile.BadZipFile,
            pickle.UnpicklingError, UnicodeDecodeError)


def classify_load_error(exc, filename, trusted=False):
    """The error to raise for ``exc``, raised by ``torch.load(filename)``: a
    :class:`CheckpointFileError` for a file that is no readable checkpoint, an
    :class:`UnsafeCheckpointError` naming the refused type for an allowlist refusal, or None
    (re-raise ``exc``: a missing file, a device problem, ...)."""
    if isinstance(exc, (UnsafeCheckpointError, CheckpointFileError)):
        return exc
    if not isinstance(filename, str) or '://' in filename or not osp.isfile(filename):
        return None
    problem = describe_checkpoint_file(filename)
    if problem is not None:
        return CheckpointFileError(f'cannot load checkpoint {filename!r}: it {problem}')
    if not trusted and _is_refusal(exc, filename):
        return UnsafeCheckpointError(refusal_message(exc, filename))
    stream = isinstance(exc, RuntimeError) and re.search(
        r'PytorchStreamReader|zip archive|unexpected EOF|corrupted', str(exc), re.I)
    if isinstance(exc, _CORRUPT) or stream:
        return CheckpointFileError(
            f'cannot load checkpoint {filename!r}: it is corrupt (a zip archive or pickle '
            f'whose content does not unpickle: {type(exc).__name__}: '
            f'{_torch_reason(exc) if str(exc) else "the data ends early"}); '
            f'write or download it again')
    return None


def load_file(path, map_location='cpu', trust=False):
    """``torch.load`` for tools: ``weights_only`` unless ``trust``; errors classified as in
    :func:`classify_load_error`."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        return torch.load(path, map_location=map_location, weights_only=not trust)
    except Exception as exc:
        err = classify_load_error(exc, path, trusted=trust)
        if err is None:
            raise
        raise err from exc


def _wrap_checkpoint_loader():
    from mmengine.runner.checkpoint import CheckpointLoader

    current = CheckpointLoader.__dict__['load_checkpoint'].__func__
    if getattr(current, '_uninet_safe_load', False):
        return

    @functools.wraps(current)
    def load_checkpoint(cls, filename, map_location=None, logger='current'):
        try:
            return current(cls, filename, map_location, logger)
        except (UnsafeCheckpointError, CheckpointFileError):
            raise
        except Exception as exc:
            err = classify_load_error(exc, filename)
            if err is None and isinstance(exc, pickle.UnpicklingError):
                err = UnsafeCheckpointError(refusal_message(exc, filename))
            if err is None:
                raise
            raise err from exc

    load_checkpoint._uninet_safe_load = True
    CheckpointLoader.load_checkpoint = classmethod(load_checkpoint)


def install_safe_globals():
    """Allow MMEngine checkpoint types under ``weights_only=True`` (idempotent, cheap)."""
    if not hasattr(torch.serialization, 'add_safe_globals'):  # torch < 2.4: nothing to do
        return
    torch.serialization.add_safe_globals(list(safe_globals_list()))
    _wrap_checkpoint_loader()
