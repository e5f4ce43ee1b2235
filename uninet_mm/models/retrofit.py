"""DSM retrofits of Swin Transformer and PVT (v1) (paper Sec. 4.4, Table 7).

Both classes subclass the upstream MMDetection backbones and change one thing: the inter-stage
down-samplers are replaced by the project's context-aware DSMs (``models/dsms.py``), one entry
of ``dsms`` per replaced layer, built through :func:`uninet_mm.registry.build_dsm`.

=====================================  ====================================  ===============
upstream layer (module name)           what it is upstream                   default DSM
=====================================  ====================================  ===============
Swin ``stages.0.downsample``           PatchMerging 2x2, C=96 -> 192         ``L``
Swin ``stages.1.downsample``           PatchMerging 2x2, C=192 -> 384        ``LG``
Swin ``stages.2.downsample``           PatchMerging 2x2, C=384 -> 768        ``LG``
PVT  ``layers.1.0``                    PatchEmbed conv 2x2 s2 + LN, 64->128   ``L``
PVT  ``layers.2.0``                    PatchEmbed conv 2x2 s2 + LN, 128->320  ``LG``
PVT  ``layers.3.0``                    PatchEmbed conv 2x2 s2 + LN, 320->512  ``LG``
=====================================  ====================================  ===============

Default = the paper's rule "L-DSM for the first two stages, LG-DSM for the last two": the
down-sampler that opens stage ``i`` belongs to stage ``i``; stage 0 is opened by the stride-4
patch embedding of the image, which stays (Swin ``patch_embed``, PVT ``layers.0.0``), so stage 1
gets ``L`` and stages 2 and 3 get ``LG``. (Swin's stage ``i`` module carries the merging that
feeds stage ``i + 1``, hence ``stages.0.downsample`` opens stage 1.)

Output sizes equal the upstream ones at any input size. A DSM gives ``ceil(H / s)``; the
:class:`DSMDownsample` adapter computes the size the replaced layer would give from its own
geometry (kernel, stride, padding) and, where that is smaller, crops the trailing rows/columns
the upstream layer never reads before the DSM:

- Swin (mmdet ``PatchMerging``, adaptive 'corner' padding): ``ceil(H / 2)``, nothing to do;
- PVT v1 (``PatchEmbed`` conv 2x2, stride 2, padding 0): ``floor(H / 2)``; an odd last
  row/column is dropped, as the upstream strided conv drops it.

Pretrained weights: a plain Swin-T / PVT-Tiny checkpoint in any format the upstream
``init_weights`` accepts (original repository with ``convert_weights=True``, which runs
``swin_converter`` / ``pvt_convert``; or MMDetection / MMSegmentation / MMPretrain layout, with
or without a ``backbone.`` prefix) loads through ``init_cfg=dict(type='Pretrained',
checkpoint=...)``. Every tensor loads except the replaced down-samplers; the log lists exactly
which keys were initialised fresh (the DSMs) and which checkpoint keys were dropped (the
replaced layers), and :attr:`pretrained_report` keeps both lists.
"""
import math
from collections import OrderedDict

import torch.nn.functional as F
from mmdet.models.backbones.pvt import PyramidVisionTransformer, pvt_convert
from mmdet.models.backbones.swin import SwinTransformer, swin_converter
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader

from ..registry import build_dsm, register_model
from ..utils.state_dict import strip_prefix
from .layers import map_to_tokens, tokens_to_map

#: the paper's rule for 4-stage backbones: one entry per replaced down-sampler (stages 1, 2, 3)
DEFAULT_DSMS = ('L', 'LG', 'LG')


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class DSMDownsample(BaseModule):
    """A DSM standing in for an upstream token down-sampler, with the upstream call signature.

    Args:
        dsm (str | dict): DSM type (``'L'``, ``'LG'``, ``'G'``) or a ``build_dsm`` config;
            ``in_channels``, ``out_channels``, ``stride`` and ``head_dim`` are filled in.
        in_channels, out_channels (int): widths of the replaced layer.
        stride (int): its stride.
        head_dim (int): attention head width of LG/G DSMs (a ``head_dim`` in ``dsm`` wins).
        layout (str): ``'tokens'``: ``forward(x, hw_shape)`` with ``x`` of shape
            ``(B, H*W, C)`` (Swin's ``PatchMerging.forward(x, input_size)``); ``'map'``:
            ``forward(x)`` with ``x`` of shape ``(B, C, H, W)`` (PVT's ``PatchEmbed.forward``).
            Both return ``(tokens (B, H'*W', C'), (H', W'))``, as upstream.
        kernel_size (int): kernel of the replaced layer (default: ``stride``).
        padding (int | str): padding of the replaced layer, or ``'corner'`` / ``'same'`` for
            the adaptive padding of mmdet's ``PatchMerging`` / ``PatchEmbed``. With the kernel
            and stride it fixes the output size (see :meth:`out_size`).
    """

    def __init__(self, dsm, in_channels, out_channels, stride=2, head_dim=32, layout='tokens',
                 kernel_size=None, padding='corner', init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if layout not in ('tokens', 'map'):
            raise ValueError(f"DSMDownsample: layout must be 'tokens' or 'map', got {layout!r}")
        cfg = dict(type=dsm) if isinstance(dsm, str) else dict(dsm)
        cfg.setdefault('head_dim', head_dim)
        cfg.update(in_channels=in_channels, out_channels=out_channels, stride=stride)
        self.dsm = build_dsm(cfg)
        self.dsm_type = cfg['type']
        self.in_channels, self.out_channels = in_channels, out_channels
        self.stride, self.layout = stride, layout
        self.kernel_size = stride if kernel_size is None else kernel_size
        self.padding = padding

    def out_size(self, hw_shape):
        """``(H', W')`` the replaced upstream layer gives for an ``(H, W)`` input."""
        if isinstance(self.padding, str):  # mmdet AdaptivePadding: covers the input, ceil
            return tuple(math.ceil(n / self.stride) for n in hw_shape)
        return tuple((n + 2 * self.padding - self.kernel_size) // self.stride + 1
                     for n in hw_shape)

    def forward(self, x, hw_shape=None):
        if self.layout == 'tokens':
            H, W = hw_shape
            if x.shape[1] != H * W:
                raise ValueError(f'DSMDownsample: {x.shape[1]} tokens for a {H}x{W} map')
            x = tokens_to_map(x, (H, W))
        out_hw = self.out_size(x.shape[2:])
        x = self._fit(x, out_hw)
        x = self.dsm(x)
        assert tuple(x.shape[2:]) == out_hw, (tuple(x.shape[2:]), out_hw)
        return map_to_tokens(x).contiguous(), out_hw

    def _fit(self, x, out_hw):
        """Crop (or zero-pad) the bottom/right so that the DSM's ``ceil(n / s)`` equals the
        upstream output size: crop to ``s * n'`` where upstream reads fewer rows (floor-type
        layers), pad to ``s * (n' - 1) + 1`` where it reads more."""
        s = self.stride
        H, W = x.shape[2:]
        (Ho, Wo) = out_hw
        if math.ceil(H / s) > Ho or math.ceil(W / s) > Wo:
            x = x[:, :, :min(H, s * Ho), :min(W, s * Wo)]
        H, W = x.shape[2:]
        pad_h = max(0, s * (Ho - 1) + 1 - H)
        pad_w = max(0, s * (Wo - 1) + 1 - W)
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))
        return x

    def extra_repr(self):
        return (f'dsm={self.dsm_type}, layout={self.layout}, replaces kernel={self.kernel_size} '
                f'stride={self.stride} padding={self.padding!r}')


def _dsm_entries(dsms, num, what):
    dsms = list(dsms)
    if len(dsms) != num:
        raise ValueError(f'{what}: dsms needs one entry per replaced down-sampler ({num}: '
                         f'stages 1..{num}), got {len(dsms)}: {dsms}')
    return dsms


def _strip_prefixes(state_dict):
    """``backbone.`` (a whole detector/segmentor/classifier checkpoint: only backbone keys are
    kept) and ``module.`` (DataParallel) prefixes off."""
    if any(k.startswith('backbone.') for k in state_dict):
        state_dict = strip_prefix(state_dict, 'backbone.')
    return strip_prefix(state_dict, 'module.', only_if_all=True)


class _DSMRetrofitMixin:
    """Shared bookkeeping: which layers were replaced, and pretrained loading with a report."""

    def _replace(self, name, upstream, dsm, head_dim, layout):
        """Swap the module at dotted ``name`` (currently ``upstream``) for a DSM adapter with
        the same widths, stride and output-size rule."""
        if hasattr(upstream, 'sampler'):  # mmdet PatchMerging: nn.Unfold
            kernel, stride = _pair(upstream.sampler.kernel_size), _pair(upstream.sampler.stride)
            padding = _pair(upstream.sampler.padding)
            in_ch = upstream.in_channels
        else:  # mmdet PatchEmbed: a conv
            conv = upstream.projection
            kernel, stride, padding = conv.kernel_size, conv.stride, conv.padding
            in_ch = conv.in_channels
        out_ch = upstream.out_channels if hasattr(upstream, 'out_channels') \
            else upstream.embed_dims
        if upstream.adap_padding is not None:
            padding = (upstream.adap_padding.padding[0],) * 2
        if len(set(kernel)) != 1 or len(set(stride)) != 1 or len(set(padding)) != 1:
            raise ValueError(f'{name}: DSMs need square kernels/strides/paddings, got '
                             f'{kernel}, {stride}, {padding}')
        new = DSMDownsample(dsm, in_ch, out_ch, stride=stride[0], head_dim=head_dim,
                            layout=layout, kernel_size=kernel[0], padding=padding[0])
        parent_name, _, attr = name.rpartition('.')
        parent = self.get_submodule(parent_name)
        if attr.isdigit():  # an entry of a ModuleList (PVT: layers.<i>.0)
            parent[int(attr)] = new
        else:
            setattr(parent, attr, new)
        self.replaced[name] = (type(upstream).__name__, new.dsm_type)

    def dsm_keys(self):
        """State-dict keys of the DSMs (what a plain checkpoint cannot provide)."""
        return [k for k in self.state_dict()
                if any(k.startswith(name + '.') for name in self.replaced)]

    def _adapt_checkpoint(self, state_dict, logger):
        return state_dict

    def _load_pretrained(self, converter):
        logger = MMLogger.get_current_instance()
        path = self.init_cfg['checkpoint']
        ckpt = CheckpointLoader.load_checkpoint(path, logger=logger, map_location='cpu')
        for field in ('state_dict', 'model'):
            if isinstance(ckpt, dict) and field in ckpt:
                ckpt = ckpt[field]
                break
        state_dict = OrderedDict(ckpt)
        if self.convert_weights:  # original-repository layout, as upstream
            state_dict = converter(state_dict)
        state_dict = _strip_prefixes(state_dict)
        state_dict = self._adapt_checkpoint(state_dict, logger)

        own = self.state_dict()
        loadable = OrderedDict((k, v) for k, v in state_dict.items()
                               if k in own and own[k].shape == v.shape)
        mismatched = [k for k, v in state_dict.items() if k in own and own[k].shape != v.shape]
        dropped = [k for k in state_dict if k not in own]
        new = [k for k in own if k not in loadable]
        self.load_state_dict(loadable, strict=False)
        dsm_keys = set(self.dsm_keys())
        self.pretrained_report = dict(checkpoint=path, loaded=list(loadable), new=new,
                                      dropped=dropped, mismatched=mismatched)
        name = type(self).__name__
        replaced = ', '.join(f'{k} ({up} -> {d}-DSM)' for k, (up, d) in self.replaced.items())
        logger.info(f'{name}: loaded {len(loadable)}/{len(own)} tensors from {path}. '
                    f'Replaced down-samplers: {replaced or "none"}.')
        logger.info(f'{name}: {len(new)} keys NEW (initialised fresh, not in the checkpoint): '
                    f'{new}')
        logger.info(f'{name}: {len(dropped)} checkpoint keys DROPPED (no such key in the '
                    f'retrofit): {dropped}')
        if mismatched:
            logger.warning(f'{name}: {len(mismatched)} checkpoint keys with a different shape, '
                           f'not loaded: {mismatched}')
        stray = [k for k in new if k not in dsm_keys]
        if stray:
            logger.warning(f'{name}: {len(stray)} new keys outside the replaced down-samplers '
                           f'(the checkpoint is not a plain {name[:-3]} of this shape?): {stray}')
        return self.pretrained_report


@register_model
class SwinTransformerDSM(_DSMRetrofitMixin, SwinTransformer):
    """MMDetection's ``SwinTransformer`` with its patch merging layers replaced by DSMs.

    Takes every argument of ``mmdet.models.SwinTransformer`` (also used by MMSegmentation's
    configs), plus:

    Args:
        dsms (sequence): one entry per patch merging layer (``stages.0/1/2.downsample``, which
            open stages 1, 2, 3): a DSM name (``'L'``, ``'LG'``, ``'G'``), a ``build_dsm``
            config dict, or ``None`` to keep the upstream ``PatchMerging``. Default: the
            paper's rule ``('L', 'LG', 'LG')``.
        dsm_head_dim (int): attention head width of the LG/G DSMs. Default: 32.

    ``forward`` returns a tuple (upstream: a list) so the backbone also serves MMPretrain's
    necks and heads, and ``train()`` / ``eval()`` return the module (upstream: ``None``).
    Output shapes and strides equal upstream's at any input size.
    """

    def __init__(self, *args, dsms=DEFAULT_DSMS, dsm_head_dim=32, **kwargs):
        super().__init__(*args, **kwargs)
        self.replaced = OrderedDict()
        self.pretrained_report = None
        dsms = _dsm_entries(dsms, len(self.stages) - 1, type(self).__name__)
        for i, dsm in enumerate(dsms):
            if dsm is not None:
                self._replace(f'stages.{i}.downsample', self.stages[i].downsample, dsm,
                              dsm_head_dim, 'tokens')

    def init_weights(self):
        if self.init_cfg is None:
            # upstream: Linear trunc-normal(0.02), LayerNorm 1/0 -- the DSMs' own init too
            return super().init_weights()
        self._load_pretrained(swin_converter)

    def _adapt_checkpoint(self, state_dict, logger):
        """Upstream's resizing of relative position bias tables (other window size)."""
        own = self.state_dict()
        for key in [k for k in state_dict if 'relative_position_bias_table' in k]:
            if key not in own:
                continue
            table = state_dict[key]
            (L1, nH1), (L2, nH2) = table.shape, own[key].shape
            if nH1 == nH2 and L1 != L2:
                S1, S2 = int(L1 ** 0.5), int(L2 ** 0.5)
                table = F.interpolate(table.permute(1, 0).reshape(1, nH1, S1, S1),
                                      size=(S2, S2), mode='bicubic')
                state_dict[key] = table.view(nH2, L2).permute(1, 0).contiguous()
        return state_dict

    def train(self, mode=True):
        super().train(mode)
        return self  # upstream's train() returns None, so upstream's .eval() does too

    def forward(self, x):
        return tuple(super().forward(x))


@register_model
class PyramidVisionTransformerDSM(_DSMRetrofitMixin, PyramidVisionTransformer):
    """MMDetection's ``PyramidVisionTransformer`` (v1) with the patch embeddings of stages 1-3
    replaced by DSMs.

    Takes every argument of ``mmdet.models.PyramidVisionTransformer``, plus ``dsms`` (one entry
    per patch embedding ``layers.1/2/3.0``; name, config dict, or ``None`` to keep upstream;
    default ``('L', 'LG', 'LG')``) and ``dsm_head_dim`` (default 32). Upstream's patch
    embedding ends with a LayerNorm; the DSM replaces it whole (the blocks are pre-norm).
    ``forward`` returns a tuple.
    """

    def __init__(self, *args, dsms=DEFAULT_DSMS, dsm_head_dim=32, **kwargs):
        super().__init__(*args, **kwargs)
        self.replaced = OrderedDict()
        self.pretrained_report = None
        dsms = _dsm_entries(dsms, len(self.layers) - 1, type(self).__name__)
        for i, dsm in enumerate(dsms, start=1):
            if dsm is not None:
                self._replace(f'layers.{i}.0', self.layers[i][0], dsm, dsm_head_dim, 'map')

    def init_weights(self):
        if self.init_cfg is None:
            return super().init_weights()
        self._load_pretrained(pvt_convert)

    def forward(self, x):
        return tuple(super().forward(x))
