"""UniNet architectures: the presets B0-B6 (data) and the parser every consumer uses.

An architecture is a stem width, the attention head dimension, the window size and one
:class:`StageSpec` per stage (paper Sec. 3.4, Table 3; layout of the released code): stage ``i``
is an optional DSM (``in -> width``, ``stride``) followed by ``depth`` GOP blocks of one type at
``width`` with ``expansion``.

Configs, the search and the presets spell an arch as a dict; :func:`parse_arch` accepts

- a preset name (``'b0'`` .. ``'b6'``);
- a dict of per-stage lists (``gops, dsms, widths, repeats, expansions, strides``) plus the
  scalars ``stem_width, head_dim, window_size, input_size`` and ``stem_patch`` (None: the 3x3
  stride-2 stem; ``p``: a p x p stride-p patchifying stem, which with stages without DSMs
  expresses the isotropic networks of the paper's Table 1), missing keys from
  :data:`BASE_ARCH` (what configs and the search write);
- a dict with ``stages``: a list of per-stage records (``StageSpec`` or dicts with its fields).

and returns the complete dict of per-stage lists (JSON-able, what ``UniNet.arch`` holds);
:func:`arch_spec` returns the same architecture as records, which is what the backbone, the
converters and the search space iterate. Which operator exists and what it needs (attention
heads) comes from the GOP and DSM registries, never from a list here. Attention of any width
splits it into :func:`~.layers.attention_heads` ``(width, head_dim)`` heads.
"""
import copy
from dataclasses import asdict, dataclass, fields
from typing import Optional, Tuple

from ..registry import DSMS, GOPS, operator_names
from .validate import check_arch_values

#: The released layout, shared by all presets (paper Table 3, released code).
BASE_ARCH = dict(
    gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
    dsms=[None, 'L', 'L', 'L', 'LG', 'LG'],
    strides=[1, 2, 2, 2, 1, 2],
    expansions=[1, 4, 6, 3, 2, 5],
    stem_width=32,
    head_dim=32,
    window_size=7,
)

#: Presets B0-B6 (paper Table 3, released code): depths (``repeats``), widths and the default
#: input size; the operators, strides and expansions are those of :data:`BASE_ARCH`.
ARCH_PRESETS = {
    'b0': dict(repeats=[1, 2, 4, 4, 4, 8], widths=[24, 48, 80, 128, 128, 256], input_size=160),
    'b1': dict(repeats=[1, 2, 4, 4, 4, 8], widths=[24, 48, 80, 128, 128, 256], input_size=224),
    'b2': dict(repeats=[2, 3, 6, 6, 6, 12], widths=[24, 48, 80, 128, 128, 256], input_size=256),
    'b3': dict(repeats=[2, 3, 7, 7, 7, 14], widths=[24, 56, 96, 160, 160, 288], input_size=288),
    'b4': dict(repeats=[2, 4, 9, 9, 9, 18], widths=[32, 64, 112, 192, 192, 352], input_size=320),
    'b5': dict(repeats=[3, 5, 10, 10, 10, 20], widths=[32, 64, 112, 224, 224, 448],
               input_size=384),
    'b6': dict(repeats=[4, 6, 12, 12, 12, 24], widths=[48, 96, 160, 256, 256, 512],
               input_size=448),
}

#: the per-stage lists of an arch dict, and the StageSpec field each one fills
PER_STAGE_KEYS = ('gops', 'dsms', 'widths', 'repeats', 'expansions', 'strides')
SCALAR_KEYS = ('stem_width', 'head_dim', 'window_size', 'input_size', 'stem_patch')


@dataclass(frozen=True)
class StageSpec:
    """One stage: ``dsm`` (a DSM name or None) with ``stride``, then ``depth`` blocks of the GOP
    ``gop`` at ``width`` channels with inverted-residual ``expansion``."""
    gop: str
    dsm: Optional[str]
    width: int
    depth: int
    expansion: int
    stride: int


#: arch-dict list -> StageSpec field (same order as PER_STAGE_KEYS)
_FIELD_OF = dict(zip(PER_STAGE_KEYS, ('gop', 'dsm', 'width', 'depth', 'expansion', 'stride')))


@dataclass(frozen=True)
class ArchSpec:
    """A whole architecture: the stem width, attention head dimension, window size (LSA and
    the token MLP), the default input size, the stem's patch size (None: 3x3 stride 2) and one
    :class:`StageSpec` per stage."""
    stages: Tuple[StageSpec, ...]
    stem_width: int = 32
    head_dim: int = 32
    window_size: int = 7
    input_size: Optional[int] = None
    stem_patch: Optional[int] = None

    @property
    def num_stages(self):
        return len(self.stages)

    def to_dict(self):
        """The arch dict of per-stage lists (configs, the search, ``UniNet.arch``)."""
        out = {key: [getattr(s, _FIELD_OF[key]) for s in self.stages] for key in PER_STAGE_KEYS}
        for key in SCALAR_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


def _stages_to_lists(arch):
    """``dict(stages=[...], ...)`` -> the dict of per-stage lists."""
    arch = dict(arch)
    stages = arch.pop('stages')
    if not isinstance(stages, (list, tuple)):
        raise TypeError(f'UniNet: arch["stages"] must be a list of stage records, got '
                        f'{type(stages).__name__}')
    clash = set(arch) & set(PER_STAGE_KEYS)
    if clash:
        raise KeyError(f'UniNet: arch has both "stages" and the per-stage lists '
                       f'{sorted(clash)}; give one of the two forms')
    names = [f.name for f in fields(StageSpec)]
    for key in PER_STAGE_KEYS:
        arch[key] = []
    for i, stage in enumerate(stages):
        record = asdict(stage) if isinstance(stage, StageSpec) else dict(stage)
        record.setdefault('dsm', None)
        missing, unknown = set(names) - set(record), set(record) - set(names)
        if missing or unknown:
            raise KeyError(f'UniNet: arch stage {i}: a stage record has the fields {names}; '
                           f'missing {sorted(missing)}, unknown {sorted(unknown)}')
        for key in PER_STAGE_KEYS:
            arch[key].append(record[_FIELD_OF[key]])
    return arch


def _check_stage(i, stage, gops, dsms):
    """Operator names against the registries' (``gops``, ``dsms``) and the DSM/stride rule;
    the value types and ranges were checked by :func:`~.validate.check_arch_values`."""
    if stage.gop not in gops:
        raise KeyError(f'UniNet: stage {i}: unknown GOP {stage.gop!r}; valid GOPs are '
                       f'{list(gops)} (a new GOP is a class registered in uninet_mm.registry.GOPS)')
    if stage.dsm is not None and stage.dsm not in dsms:
        raise KeyError(f'UniNet: stage {i}: unknown DSM {stage.dsm!r}; valid DSMs are '
                       f'{list(dsms)} (or None for no down-sampling module)')
    if stage.dsm is None and stage.stride != 1:
        raise ValueError(f'UniNet: stage {i} has stride {stage.stride} but no DSM; only a DSM '
                         f'down-samples: give it a DSM or stride 1')


def arch_spec(arch):
    """A preset name, an arch dict (either form) or an :class:`ArchSpec` -> a validated
    :class:`ArchSpec`. Missing keys of a dict come from :data:`BASE_ARCH`; errors name the
    problem and the fix."""
    if isinstance(arch, ArchSpec):
        arch = arch.to_dict()
    if isinstance(arch, str):
        key = arch.lower()
        if key not in ARCH_PRESETS:
            raise KeyError(f'UniNet: unknown arch preset {arch!r}; valid presets are '
                           f'{sorted(ARCH_PRESETS)}, or pass a dict of per-stage lists')
        arch = ARCH_PRESETS[key]
    if not isinstance(arch, dict):
        raise TypeError(f'UniNet: arch must be a preset name or a dict, got {type(arch)}')
    if 'stages' in arch:
        arch = _stages_to_lists(arch)
    unknown = set(arch) - set(PER_STAGE_KEYS) - set(SCALAR_KEYS)
    if unknown:
        raise KeyError(f'UniNet: unknown arch keys {sorted(unknown)}; valid keys are '
                       f'{list(PER_STAGE_KEYS + SCALAR_KEYS)} (or "stages": a list of records)')
    for key in ('widths', 'repeats'):
        if key not in arch:
            raise KeyError(f'UniNet: arch dict needs {key!r} (one entry per stage)')
    full = copy.deepcopy(BASE_ARCH)
    full.update(copy.deepcopy(arch))
    check_arch_values(full)
    patch = full.get('stem_patch')
    if patch is not None and (not isinstance(patch, int) or isinstance(patch, bool)
                              or patch < 1):
        raise ValueError(f'UniNet: stem_patch must be None (the 3x3 stride-2 stem) or a patch '
                         f'size >= 1 (a p x p stride-p patchifying stem), got {patch!r}')
    lengths = {k: len(full[k]) for k in PER_STAGE_KEYS}
    if len(set(lengths.values())) != 1:
        raise ValueError(f'UniNet: per-stage lists must have one entry per stage, but their '
                         f'lengths disagree: {lengths}')
    stages = tuple(StageSpec(**{_FIELD_OF[k]: v for k, v in zip(PER_STAGE_KEYS, values)})
                   for values in zip(*(full[k] for k in PER_STAGE_KEYS)))
    spec = ArchSpec(stages, **{k: full.get(k) for k in SCALAR_KEYS if k in full})
    gops, dsms = operator_names(GOPS), operator_names(DSMS)
    for i, stage in enumerate(spec.stages):
        _check_stage(i, stage, gops, dsms)
    return spec


def parse_arch(arch):
    """Turn a preset name or an arch dict into a complete, validated arch dict of per-stage
    lists (see the module doc); ``arch_spec(arch)`` gives the same as stage records."""
    return arch_spec(arch).to_dict()


__all__ = ['ARCH_PRESETS', 'BASE_ARCH', 'ArchSpec', 'PER_STAGE_KEYS', 'SCALAR_KEYS',
           'StageSpec', 'arch_spec', 'parse_arch']
