"""The UniNet search space as data (paper Sec. 3.4, 3.5).

A :class:`SearchSpace` is built from a plain dict (``search_space`` of
``configs/search/uninet_space.py``)::

    search_space = dict(
        base_arch=dict(...),                # a complete UniNet arch dict (UniNet-B0 by default)
        searchable_stages=[1, 2, 3, 4, 5],  # stage 0, the stem and the head stay fixed
        choices=dict(gop=[...], dsm=[...], expansion=[...], width_mult=[...],
                     repeat_delta=[...]),
        stage_choices={},                   # optional per-stage overrides of ``choices``
        width_divisor=8,                    # searched widths: multiples of 8
        round_attention_widths=False,       # True: attention stages in multiples of head_dim
        min_repeats=1)

An architecture is a sequence of integer tokens, five per searchable stage in the order
:data:`DECISIONS` (``gop, dsm, expansion, width_mult, repeat_delta``); token ``k`` of a decision
picks the ``k``-th entry of that decision's choice list. :meth:`SearchSpace.decode` turns the
tokens into a complete arch dict that ``UniNet(arch=arch)`` builds as is: the candidate is made by
the same registry and classes as the backbone, never by a copy of a block.

Width rule (documented in docs/search.md): the searched width is ``base_width * width_mult``
rounded by :func:`uninet_mm.models.layers.make_divisible` to a multiple of ``width_divisor``,
whatever the stage's operators: attention of any width picks its heads from the width
(:func:`uninet_mm.models.layers.attention_heads`), so the paper's widths (24, 48, 80, ...) stay
as they are. ``round_attention_widths=True`` rounds attending stages (those whose GOP or DSM
class declares ``needs_heads``: ``SA``, ``LSA``, ``LG``, ``G``) to multiples of ``head_dim``
instead (whole ``head_dim``-wide heads). Repeats are ``base_repeats + repeat_delta`` clipped
below at ``min_repeats`` (1 by default; 0 is allowed only for stages whose every DSM choice
exists, because the DSM then maps the width).
"""
import copy
import itertools
import math

from ..models.arch import ARCH_PRESETS, BASE_ARCH, parse_arch
from ..models.layers import make_divisible
from ..registry import DSMS, GOPS, operator_names, operator_needs_heads

#: the per-stage decisions, in token order
DECISIONS = ('gop', 'dsm', 'expansion', 'width_mult', 'repeat_delta')

#: the paper's choice lists (Sec. 3.4)
PAPER_CHOICES = dict(
    gop=['SA', 'LSA', 'Conv', 'DWConv', 'MLP'],
    dsm=['L', 'LG', 'G'],
    expansion=[2, 3, 4, 5, 6],
    width_mult=[0.5, 0.75, 1.0, 1.25, 1.5],
    repeat_delta=[-2, -1, 0, 1, 2],
)

_SPACE_KEYS = ('base_arch', 'searchable_stages', 'choices', 'stage_choices', 'width_divisor',
               'round_attention_widths', 'min_repeats')


class SearchSpaceError(ValueError):
    """A malformed search space; the message names the key and the fix."""


def b0_base_arch():
    """UniNet-B0's complete arch dict (the paper's base network)."""
    arch = copy.deepcopy(BASE_ARCH)
    arch.update(copy.deepcopy(ARCH_PRESETS['b0']))
    return arch


class SearchSpace:
    """Per-stage choices around a base network; tokens <-> arch dicts.

    Args:
        base_arch (dict | str): the base network, an arch dict or a preset name ('b0').
        searchable_stages (Sequence[int]): stage indices that are searched.
        choices (dict): choice lists for the keys of :data:`DECISIONS` (missing keys take the
            paper's lists).
        stage_choices (dict): ``{stage: {decision: [...]}}`` overrides for single stages.
        width_divisor (int): rounding of the searched widths (``base_width * width_mult`` is
            rarely an integer).
        round_attention_widths (bool): round attending stages to multiples of ``head_dim``
            (off by default: attention splits any width into heads).
        min_repeats (int): 1, or 0 to let a stage keep only its DSM.
    """

    def __init__(self, base_arch='b0', searchable_stages=(1, 2, 3, 4, 5), choices=None,
                 stage_choices=None, width_divisor=8, round_attention_widths=False,
                 min_repeats=1):
        if isinstance(base_arch, str):
            if base_arch.lower() not in ARCH_PRESETS:
                raise SearchSpaceError(
                    f'search space: base_arch {base_arch!r} is not a preset; use one of '
                    f'{sorted(ARCH_PRESETS)} or a complete arch dict')
            arch = copy.deepcopy(BASE_ARCH)
            arch.update(copy.deepcopy(ARCH_PRESETS[base_arch.lower()]))
            base_arch = arch
        if not isinstance(base_arch, dict):
            raise SearchSpaceError(f'search space: base_arch must be an arch dict or a preset '
                                   f'name, got {type(base_arch).__name__}')
        try:
            self.base_arch = parse_arch(dict(base_arch))
        except (KeyError, ValueError, TypeError) as e:
            raise SearchSpaceError(f'search space: base_arch is not a valid UniNet arch: '
                                   f'{e}') from e
        self.num_stages = len(self.base_arch['widths'])

        stages = list(searchable_stages) if searchable_stages is not None else []
        if not stages:
            raise SearchSpaceError('search space: searchable_stages is empty; list the stage '
                                   f'indices to search (0..{self.num_stages - 1})')
        bad = [s for s in stages if not isinstance(s, int) or not 0 <= s < self.num_stages]
        if bad:
            raise SearchSpaceError(
                f'search space: searchable_stages {bad} out of range; the base network has '
                f'{self.num_stages} stages (valid 0..{self.num_stages - 1})')
        if len(set(stages)) != len(stages):
            raise SearchSpaceError(f'search space: searchable_stages {stages} has duplicates')
        self.searchable_stages = sorted(stages)

        if not isinstance(width_divisor, int) or width_divisor < 1:
            raise SearchSpaceError(f'search space: width_divisor must be a positive int, got '
                                   f'{width_divisor!r}')
        if min_repeats not in (0, 1):
            raise SearchSpaceError(f'search space: min_repeats must be 0 or 1, got '
                                   f'{min_repeats!r}')
        self.width_divisor = width_divisor
        self.round_attention_widths = bool(round_attention_widths)
        self.min_repeats = min_repeats

        choices = dict(PAPER_CHOICES, **(choices or {}))
        self._check_choice_keys(choices, 'choices')
        stage_choices = dict(stage_choices or {})
        for s, over in stage_choices.items():
            if s not in self.searchable_stages:
                raise SearchSpaceError(
                    f'search space: stage_choices has stage {s!r}, which is not searchable '
                    f'(searchable_stages={self.searchable_stages})')
            if not isinstance(over, dict):
                raise SearchSpaceError(f'search space: stage_choices[{s}] must be a dict of '
                                       f'choice lists, got {type(over).__name__}')
            self._check_choice_keys(over, f'stage_choices[{s}]')
        self.choices = {k: list(v) for k, v in choices.items()}
        self.stage_choices = {s: {k: list(v) for k, v in over.items()}
                              for s, over in stage_choices.items()}
        # one (stage, decision, choice list) per token
        self.decisions = []
        for s in self.searchable_stages:
            for d in DECISIONS:
                opts = self.stage_choices.get(s, {}).get(d, self.choices[d])
                self._check_choice_list(d, opts, f'stage {s}')
                self.decisions.append((s, d, list(opts)))
        if self.min_repeats == 0:
            for s in self.searchable_stages:
                if None in self._stage_opts(s, 'dsm'):
                    raise SearchSpaceError(
                        f'search space: stage {s} may have no DSM and min_repeats=0 lets it '
                        f'have no blocks, so nothing maps its width; use min_repeats=1')

    # -- validation -------------------------------------------------------------------------
    @staticmethod
    def _check_choice_keys(choices, where):
        if not isinstance(choices, dict):
            raise SearchSpaceError(f'search space: {where} must be a dict, got '
                                   f'{type(choices).__name__}')
        unknown = set(choices) - set(DECISIONS)
        if unknown:
            raise SearchSpaceError(f'search space: {where} has unknown decisions '
                                   f'{sorted(unknown)}; valid decisions are {list(DECISIONS)}')

    def _check_choice_list(self, decision, opts, where):
        if not isinstance(opts, (list, tuple)) or not opts:
            raise SearchSpaceError(f'search space: {where}: the {decision!r} choices must be a '
                                   f'non-empty list, got {opts!r}')
        if len({repr(o) for o in opts}) != len(opts):
            raise SearchSpaceError(f'search space: {where}: the {decision!r} choices {opts} '
                                   f'have duplicates')
        if decision == 'gop':
            valid = operator_names(GOPS)  # the registry is the only list of operators
            bad = [o for o in opts if o not in valid]
            if bad:
                raise SearchSpaceError(f'search space: {where}: unknown GOP(s) {bad}; valid '
                                       f'GOPs are {list(valid)}')
        elif decision == 'dsm':
            valid = operator_names(DSMS)
            bad = [o for o in opts if o is not None and o not in valid]
            if bad:
                raise SearchSpaceError(f'search space: {where}: unknown DSM(s) {bad}; valid '
                                       f'DSMs are {list(valid)} (or None)')
        elif decision == 'expansion':
            bad = [o for o in opts if not isinstance(o, int) or o < 1]
            if bad:
                raise SearchSpaceError(f'search space: {where}: expansions must be ints >= 1, '
                                       f'got {bad}')
        elif decision == 'width_mult':
            bad = [o for o in opts if not isinstance(o, (int, float)) or not o > 0]
            if bad:
                raise SearchSpaceError(f'search space: {where}: width multipliers must be '
                                       f'positive numbers, got {bad}')
        elif decision == 'repeat_delta':
            bad = [o for o in opts if not isinstance(o, int) or isinstance(o, bool)]
            if bad:
                raise SearchSpaceError(f'search space: {where}: repeat deltas must be ints, '
                                       f'got {bad}')

    def _stage_opts(self, stage, decision):
        return self.stage_choices.get(stage, {}).get(decision, self.choices[decision])

    # -- size -------------------------------------------------------------------------------
    @property
    def num_tokens(self):
        return len(self.decisions)

    @property
    def num_choices(self):
        """Number of choices of every token position."""
        return [len(opts) for _, _, opts in self.decisions]

    @property
    def size(self):
        """Number of token sequences (the paper counts about 10^16 for its space)."""
        return math.prod(self.num_choices)

    @property
    def num_architectures(self):
        """Distinct architectures: token sequences that decode to the same arch dict (widths
        rounded to the same multiple, repeats clipped at ``min_repeats``) count once. A stage
        decodes from its own tokens only, so this is the product of the stages' counts."""
        total = 1
        for s in self.searchable_stages:
            opts = [self._stage_opts(s, d) for d in DECISIONS]
            seen = set()
            for gop, dsm, exp, mult, delta in itertools.product(*opts):
                stride = 1 if dsm is None else self.base_arch['strides'][s]
                seen.add((gop, dsm, stride, exp, self.stage_width(s, gop, dsm, mult),
                          max(self.min_repeats, self.base_arch['repeats'][s] + delta)))
            total *= len(seen)
        return total

    def signature(self):
        """The space as plain data (the choices of every token, in order, and the base
        network): a resumed search must have the same."""
        return dict(decisions=[[s, d, [o for o in opts]] for s, d, opts in self.decisions],
                    base_arch=copy.deepcopy(self.base_arch), width_divisor=self.width_divisor,
                    round_attention_widths=self.round_attention_widths,
                    min_repeats=self.min_repeats)

    @staticmethod
    def arch_key(arch):
        """The cache key of a decoded arch dict."""
        import json
        return json.dumps(arch, sort_keys=True, separators=(',', ':'))

    def describe(self):
        """A short human-readable description, with the size."""
        lines = [f'UniNet search space: {len(self.searchable_stages)} searchable stages '
                 f'{self.searchable_stages} of {self.num_stages}, {self.num_tokens} tokens, '
                 f'{self.size:.3e} token sequences (10^{math.log10(self.size):.1f}), '
                 f'{self.num_architectures:.3e} distinct architectures']
        for d in DECISIONS:
            lines.append(f'  {d:<13}{self.choices[d]}')
        for s, over in sorted(self.stage_choices.items()):
            lines.append(f'  stage {s} overrides: {over}')
        b = self.base_arch
        lines.append(f'  base widths {b["widths"]}, repeats {b["repeats"]}, '
                     f'head_dim {b["head_dim"]}, input {b.get("input_size")}')
        return '\n'.join(lines)

    # -- tokens <-> arch --------------------------------------------------------------------
    def check_tokens(self, tokens):
        tokens = [int(t) for t in tokens]
        if len(tokens) != self.num_tokens:
            raise ValueError(f'search space: expected {self.num_tokens} tokens, got '
                             f'{len(tokens)}')
        for i, (t, n) in enumerate(zip(tokens, self.num_choices)):
            if not 0 <= t < n:
                s, d, _ = self.decisions[i]
                raise ValueError(f'search space: token {i} (stage {s} {d}) = {t} out of range '
                                 f'0..{n - 1}')
        return tokens

    def choices_of(self, tokens):
        """``{stage: {decision: value}}`` of a token sequence."""
        tokens = self.check_tokens(tokens)
        out = {s: {} for s in self.searchable_stages}
        for t, (s, d, opts) in zip(tokens, self.decisions):
            out[s][d] = opts[t]
        return out

    def stage_width(self, stage, gop, dsm, width_mult):
        """The rounded width of a searched stage (see the module doc)."""
        width = self.base_arch['widths'][stage] * width_mult
        # what attends is declared by the operator classes (``needs_heads``)
        attends = (operator_needs_heads(GOPS, gop)
                   or (dsm is not None and operator_needs_heads(DSMS, dsm)))
        if attends and self.round_attention_widths:
            return make_divisible(width, self.base_arch['head_dim'])
        return make_divisible(width, self.width_divisor)

    def decode(self, tokens):
        """Tokens -> a complete arch dict (JSON-able) that ``UniNet(arch=...)`` builds."""
        arch = copy.deepcopy(self.base_arch)
        for s, c in self.choices_of(tokens).items():
            arch['gops'][s] = c['gop']
            arch['dsms'][s] = c['dsm']
            if c['dsm'] is None and arch['strides'][s] != 1:
                arch['strides'][s] = 1  # only a DSM down-samples
            arch['expansions'][s] = c['expansion']
            arch['widths'][s] = self.stage_width(s, c['gop'], c['dsm'], c['width_mult'])
            arch['repeats'][s] = max(self.min_repeats,
                                     self.base_arch['repeats'][s] + c['repeat_delta'])
        return arch

    def encode(self, choices):
        """``{stage: {decision: value}}`` -> tokens (the inverse of :meth:`choices_of`)."""
        tokens = []
        for s, d, opts in self.decisions:
            try:
                tokens.append(opts.index(choices[s][d]))
            except (KeyError, ValueError) as e:
                raise ValueError(f'search space: stage {s} {d}={choices.get(s, {}).get(d)!r} '
                                 f'is not among the choices {opts}') from e
        return tokens

    def base_tokens(self):
        """Tokens closest to the base network (its own GOP/DSM/expansion, mult 1, delta 0),
        where those values are choices; the first choice otherwise."""
        tokens = []
        base = {'gop': self.base_arch['gops'], 'dsm': self.base_arch['dsms'],
                'expansion': self.base_arch['expansions']}
        for s, d, opts in self.decisions:
            value = base[d][s] if d in base else (1.0 if d == 'width_mult' else 0)
            tokens.append(opts.index(value) if value in opts else 0)
        return tokens

    def sample(self, rng):
        """A uniformly random token sequence (``rng``: a :class:`random.Random`)."""
        return [rng.randrange(n) for n in self.num_choices]

    def enumerate_choices(self, decision):
        """For tests: one token sequence per choice of ``decision`` (applied to all stages)."""
        seqs, base = [], self.base_tokens()
        for k in itertools.count():
            seq, hit = list(base), False
            for i, (s, d, opts) in enumerate(self.decisions):
                if d == decision and k < len(opts):
                    seq[i], hit = k, True
            if not hit:
                return seqs
            seqs.append(seq)


def build_search_space(cfg):
    """A :class:`SearchSpace` from a config dict; unknown keys give a clear error."""
    if isinstance(cfg, SearchSpace):
        return cfg
    if not isinstance(cfg, dict):
        raise SearchSpaceError(f'search space: expected a dict (the `search_space` of a '
                               f'config), got {type(cfg).__name__}')
    cfg = dict(cfg)
    unknown = set(cfg) - set(_SPACE_KEYS)
    if unknown:
        raise SearchSpaceError(f'search space: unknown keys {sorted(unknown)}; valid keys are '
                               f'{list(_SPACE_KEYS)}')
    if 'base_arch' not in cfg:
        raise SearchSpaceError('search space: `base_arch` is missing (an arch dict or a '
                               "preset name such as 'b0')")
    return SearchSpace(**cfg)


__all__ = ['SearchSpace', 'SearchSpaceError', 'build_search_space', 'DECISIONS',
           'PAPER_CHOICES', 'b0_base_arch']
