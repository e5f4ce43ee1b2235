"""Argument checks of the UniNet backbone, run at construction: a wrong value fails there with
the key named and the fix, not later inside an operator with torch's message.

:func:`check_arch_values` (called by the arch parser) checks the types and ranges of the values
of a complete arch dict; :func:`normalize_out_indices`, :func:`check_drop_path_rate` and
:func:`check_in_channels` check the other constructor arguments.
"""
import numbers
from collections.abc import Sequence

__all__ = ['check_arch_values', 'normalize_out_indices', 'check_drop_path_rate',
           'check_in_channels']

#: per-stage integer lists and their smallest valid value
_INT_LISTS = dict(widths=1, repeats=0, expansions=1, strides=1)
#: scalar integers and their smallest valid value (``input_size`` may also be None)
_INT_SCALARS = dict(stem_width=1, head_dim=1, window_size=1, input_size=1)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_arch_values(arch):
    """Types and ranges of the values of a complete arch dict (see ``BASE_ARCH``)."""
    for key, low in _INT_LISTS.items():
        values = arch[key]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f'UniNet: arch[{key!r}] must be a list with one integer per stage, '
                            f'got {values!r}')
        for i, v in enumerate(values):
            if not _is_int(v):
                raise TypeError(f'UniNet: arch[{key!r}][{i}] must be an integer, got {v!r} '
                                f'({type(v).__name__}); e.g. {key}=[..., {_example(v)}, ...]')
            if v < low:
                raise ValueError(f'UniNet: arch[{key!r}][{i}] = {v} is impossible: it must be '
                                 f'>= {low}')
    for key, low in _INT_SCALARS.items():
        v = arch.get(key)
        if v is None and key == 'input_size':
            continue
        if not _is_int(v):
            raise TypeError(f'UniNet: arch[{key!r}] must be an integer, got {v!r} '
                            f'({type(v).__name__})')
        if v < low:
            raise ValueError(f'UniNet: arch[{key!r}] = {v} is impossible: it must be >= {low}')
    for key in ('gops', 'dsms'):
        values = arch[key]
        if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
            raise TypeError(f'UniNet: arch[{key!r}] must be a list with one name per stage, '
                            f'got {values!r}')


def _example(v):
    try:
        return int(float(v))
    except (TypeError, ValueError):
        return 24


def normalize_out_indices(out_indices, num_stages):
    """``out_indices`` (an int, MMPretrain's form, or a sequence of ints) as a tuple of stage
    indices in ``0..num_stages-1``, increasing and without repeats (the backbone returns the
    stage outputs in stage order, and ``out_channels`` must list them in the same order)."""
    given = out_indices
    if _is_int(out_indices):
        out_indices = (out_indices,)
    if isinstance(out_indices, (str, bytes)) or not isinstance(out_indices, Sequence):
        raise TypeError(f'UniNet: out_indices must be an int or a sequence of ints, got '
                        f'{given!r}')
    out_indices = tuple(out_indices)
    wrong = [i for i in out_indices if not _is_int(i)]
    if wrong:
        raise TypeError(f'UniNet: out_indices must hold integers, got {given!r}')
    bad = [i for i in out_indices if not -num_stages <= i < num_stages]
    if bad or not out_indices:
        raise ValueError(f'UniNet: out_indices {given!r} out of range: this arch has '
                         f'{num_stages} stages (valid 0..{num_stages - 1}, or negative from '
                         f'the end)')
    resolved = tuple(i % num_stages for i in out_indices)
    if list(resolved) != sorted(set(resolved)):
        raise ValueError(f'UniNet: out_indices {given!r} (stages {resolved}) must be increasing '
                         f'without repeats: the outputs come in stage order, one per stage; '
                         f'write out_indices={tuple(sorted(set(resolved)))}')
    return resolved


def check_drop_path_rate(rate):
    """Stochastic depth rate in [0, 1): at 1 drop path divides by a keep probability of 0
    (NaN outputs in training); outside [0, 1] ``bernoulli_`` fails at the first step."""
    if not isinstance(rate, numbers.Real) or isinstance(rate, bool):
        raise TypeError(f'UniNet: drop_path_rate must be a number in [0, 1), got {rate!r}')
    if not 0. <= rate < 1.:
        raise ValueError(f'UniNet: drop_path_rate={rate} out of range: it must be in [0, 1) '
                         f'(a probability of dropping a block; typical 0.1-0.3)')
    return float(rate)


def check_in_channels(in_channels):
    if not _is_int(in_channels) or in_channels < 1:
        raise ValueError(f'UniNet: in_channels must be a positive integer (3 for RGB), got '
                         f'{in_channels!r}')
    return in_channels


def _checkpoint_arch(meta):
    """The arch a checkpoint's meta records (ours: ``meta['uninet']``; converted: ``arch``)."""
    if not isinstance(meta, dict):
        return None
    rec = meta.get('uninet')
    if isinstance(rec, dict) and rec.get('backbones'):
        return rec['backbones'][0].get('arch')
    return meta.get('arch')


def partial_load_message(filename, n_own, matched, wrong, extra, meta, arch):
    """The error of a Pretrained load that does not fill the backbone exactly: the counts, a
    few keys of each kind, the likely cause and the opt-out."""
    n_missing = n_own - len(matched)
    counts = (f'fills {len(matched)} of the {n_own} backbone tensors: {n_missing} not filled '
              f'({len(wrong)} of them of another shape in the checkpoint), {len(extra)} '
              f'checkpoint tensors have no place in this backbone')
    ours = tuple(k for k in extra if k.startswith(('stem.', 'stages.')))
    recorded = _checkpoint_arch(meta)
    this = f'widths {list(arch["widths"])}, repeats {list(arch["repeats"])}'
    if recorded is not None:
        cause = f'the checkpoint records arch {recorded!r}; this backbone has {this}'
    elif wrong or ours:
        cause = (f'another UniNet arch (same layout, other widths/depths); this backbone has '
                 f'{this}')
    elif extra:
        cause = 'another model, or a prefix to strip (set init_cfg prefix=...)'
    else:
        cause = 'a checkpoint of a smaller arch, or one saved partially'
    examples = []
    if wrong:
        examples.append(f'other shape: {wrong[:3]}')
    if extra:
        examples.append(f'unexpected: {extra[:3]}')
    examples = f' ({"; ".join(examples)})' if examples else ''
    return (f'UniNet: checkpoint {filename!r} {counts}. Likely cause: {cause}{examples}. Use '
            f'the checkpoint of this arch, or load the matching part on purpose with '
            f'init_cfg=dict(type=\'Pretrained\', checkpoint=..., strict=False)')
