"""Convert a released UniNet checkpoint (the authors' layout) to ours.

Released keys (flat, possibly under ``model`` or ``state_dict``, possibly with ``module.``):
``stem.0`` / ``stem.1`` (conv, BN), ``blocks.<i>`` numbering every DSM and GOP block in order
(stage 0 blocks, then for each later stage its DSM followed by its blocks), ``head.0`` /
``head.1`` (conv, BN) and ``classifier``. Ours, in MMPretrain ``ImageClassifier`` layout:
``backbone.stem.{conv,norm}``, ``backbone.stages.<s>.downsample.*``,
``backbone.stages.<s>.blocks.<j>.*``, ``head.pre.{conv,norm}``, ``head.fc``.

The renaming is rule based: one readable table per module type (:data:`RENAME_TABLES`), applied
to the released block numbering that :func:`block_plan` derives from the arch. A released key
that no rule matches raises an error naming it.
"""
import re
from collections import OrderedDict

from ..models.arch import ARCH_PRESETS, arch_spec
from ..registry import CHECKPOINT_CONVERTERS
from ..utils.state_dict import strip_prefix

#: Released sub-module name -> ours, per module type. A key ``<block>.<src>.<tensor>`` becomes
#: ``<our block>.<dst>.<tensor>``; ``src`` may also be a whole key (``gamma_1``).
RENAME_TABLES = {
    # DWConv GOP (released "MBConv"); `residual.0` is the parameter-free max-pool
    'DWConv': OrderedDict([
        ('residual.1', 'shortcut.proj'),
        ('b1.0', 'expand.pre_norm'),
        ('b1.1', 'expand.conv'),
        ('b1.2', 'expand.norm'),
        ('b2.0', 'conv'),
        ('b2.1', 'norm'),
        ('b2.3.fc1', 'se.fc1'),           # b2.2 is the GELU
        ('b2.3.fc2', 'se.fc2'),
        ('b2.4', 'project'),
        ('b2.5', 'project_norm'),
    ]),
    # SA GOP (released transformer block)
    'SA': OrderedDict([
        ('pos_embed', 'pos_embed'),
        ('norm1', 'norm1'),
        ('attn.qkv', 'mixer.qkv'),
        ('attn.proj', 'mixer.proj'),
        ('norm2', 'norm2'),
        ('mlp.fc1', 'ffn.fc1'),
        ('mlp.fc2', 'ffn.fc2'),
        ('gamma_1', 'gamma1'),
        ('gamma_2', 'gamma2'),
    ]),
    # L-DSM; shortcut conv is residual.1 after the max-pool (stride > 1) or residual.0 (stride 1)
    'L': OrderedDict([
        ('downsample.0', 'local.dw_conv'),
        ('downsample.1', 'local.norm'),
        ('downsample.2', 'local.pw_conv'),
        ('residual.1', 'shortcut.proj'),
        ('residual.0', 'shortcut.proj'),
    ]),
    # LG-DSM
    'LG': OrderedDict([
        ('q.0', 'query.dw_conv'),
        ('q.1', 'query.norm'),
        ('q.2', 'query.pw_conv'),
        ('q_norm', 'q_norm'),
        ('kv_norm', 'kv_norm'),
        ('kv', 'kv'),
        ('proj', 'proj'),
        ('residual.1', 'shortcut.proj'),
        ('residual.0', 'shortcut.proj'),
    ]),
}

#: Top-level released modules -> ours (ImageClassifier layout).
TOP_LEVEL = OrderedDict([
    ('stem.0', 'backbone.stem.conv'),
    ('stem.1', 'backbone.stem.norm'),
    ('head.0', 'head.pre.conv'),
    ('head.1', 'head.pre.norm'),
    ('classifier', 'head.fc'),
])

#: The released code has only these operators; other GOPs/DSMs have no released checkpoint.
RELEASED_GOPS = ('DWConv', 'SA')
RELEASED_DSMS = ('L', 'LG')

_PREFIXES = ('module.', 'model.')


def unwrap(checkpoint):
    """The flat state dict inside a checkpoint (``state_dict`` / ``model`` / itself), with a
    DDP ``module.`` prefix removed."""
    sd = checkpoint
    for key in ('state_dict', 'model'):
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise TypeError(f'convert_official: expected a state dict, got {type(sd)}')
    for prefix in _PREFIXES:
        sd = strip_prefix(sd, prefix, only_if_all=True)
    return sd


def is_official(state_dict):
    """True if ``state_dict`` (or a checkpoint holding one) is in the released layout: it has
    ``stem.0.*`` and ``blocks.<i>.*`` keys and none of our ``stages.`` / ``backbone.`` keys."""
    try:
        sd = unwrap(state_dict)
    except TypeError:
        return False
    keys = [k for k in sd if isinstance(k, str)]
    has_stem = any(k.startswith('stem.0.') for k in keys)
    has_blocks = any(re.match(r'blocks\.\d+\.', k) for k in keys)
    ours = any(k.startswith(('stages.', 'backbone.', 'stem.conv.')) for k in keys)
    return has_stem and has_blocks and not ours


def block_plan(arch):
    """``[(released index, our prefix, module type)]`` for every DSM and GOP block in order."""
    plan = []
    for s, stage in enumerate(arch_spec(arch).stages):
        if stage.dsm is not None:
            plan.append((len(plan), f'backbone.stages.{s}.downsample', stage.dsm))
        for j in range(stage.depth):
            plan.append((len(plan), f'backbone.stages.{s}.blocks.{j}', stage.gop))
    return plan


def _rename(rest, table):
    """Rename ``rest`` (key below a module) by the longest matching table entry, or None."""
    for src in sorted(table, key=len, reverse=True):
        if rest == src or rest.startswith(src + '.'):
            return table[src] + rest[len(src):]
    return None


@CHECKPOINT_CONVERTERS.register_module(name='released')
def convert_official(state_dict, arch):
    """Released UniNet state dict -> ours, in MMPretrain ``ImageClassifier`` layout. Registered
    as the checkpoint converter ``'released'`` (``init_cfg=dict(type='Pretrained',
    checkpoint=..., converter='released')`` converts on load).

    Args:
        state_dict (dict): the released state dict, or a checkpoint holding it under
            ``model`` / ``state_dict``.
        arch (str | dict): the preset name (``'b1'``) or arch dict of the checkpoint, which
            fixes what every ``blocks.<i>`` is.

    Returns:
        OrderedDict: ``backbone.*`` and (if the checkpoint has the classifier) ``head.*`` keys.

    Raises:
        ValueError: for a checkpoint that is not in the released layout, whose block count
            does not fit ``arch``, or that has keys no rule matches (all listed).
    """
    sd = unwrap(state_dict)
    if not is_official(sd):
        sample = list(sd)[:6]
        raise ValueError(
            f'convert_official: not a released UniNet checkpoint: its keys look like {sample}; '
            f'the released layout has keys such as "stem.0.weight", "blocks.0.b2.0.weight", '
            f'"classifier.weight". A checkpoint with "backbone.stages..." keys is already in '
            f'our layout and needs no conversion.')
    arch_name = arch if isinstance(arch, str) else 'the given arch'
    full = arch_spec(arch)
    for s, stage in enumerate(full.stages):
        if stage.depth and stage.gop not in RELEASED_GOPS:
            raise ValueError(f'convert_official: stage {s} uses the {stage.gop!r} GOP, which '
                             f'the released code does not have (only {list(RELEASED_GOPS)}); '
                             f'released checkpoints cannot hold it')
        if stage.dsm is not None and stage.dsm not in RELEASED_DSMS:
            raise ValueError(f'convert_official: stage {s} uses the {stage.dsm!r} DSM, which '
                             f'the released code does not have (only {list(RELEASED_DSMS)})')
    plan = {idx: (prefix, kind) for idx, prefix, kind in block_plan(full)}

    in_ckpt = sorted({int(m.group(1)) for k in sd for m in [re.match(r'blocks\.(\d+)\.', k)]
                      if m})
    n_ckpt = in_ckpt[-1] + 1 if in_ckpt else 0
    if n_ckpt != len(plan):
        fits = [name for name in ARCH_PRESETS if len(block_plan(name)) == n_ckpt]
        raise ValueError(
            f'convert_official: the checkpoint has {n_ckpt} blocks (DSMs + GOPs) but arch '
            f'{arch_name} has {len(plan)}; pass the arch the checkpoint was trained with '
            f'(presets with {n_ckpt} blocks: {fits or "none"})')

    out, unmatched = OrderedDict(), []
    for key, value in sd.items():
        m = re.match(r'blocks\.(\d+)\.(.+)$', key)
        if m:
            prefix, kind = plan[int(m.group(1))]
            new = _rename(m.group(2), RENAME_TABLES[kind])
            new = f'{prefix}.{new}' if new is not None else None
        else:
            new = _rename(key, TOP_LEVEL)
        if new is None:
            unmatched.append(key)
        else:
            out[new] = value
    if unmatched:
        raise ValueError(
            f'convert_official: {len(unmatched)} released keys match no renaming rule: '
            f'{unmatched[:10]}{" ..." if len(unmatched) > 10 else ""}. Is arch {arch_name} '
            f'right? (rules: uninet_mm/converters/official.py RENAME_TABLES)')
    return out
