"""Context-aware down-sampling modules (DSMs) of UniNet (paper Sec. 3.3, Fig. 3).

One constructor signature and one layout for all three::

    DSMS.build(dict(type=NAME, in_channels=c_in, out_channels=c_out, stride=s, head_dim=32))
    (B, c_in, H, W) -> (B, c_out, ceil(H / s), ceil(W / s))

- ``L``  (L-DSM, local): depth-wise 3x3 conv with stride s, BN, 1x1 conv; plus the shortcut.
- ``LG`` (LG-DSM, local-global): queries from the L-DSM branch (strided 2-D conv) attend over
  all input tokens; plus the shortcut.
- ``G``  (G-DSM, global): as LG-DSM, but the queries come from a strided 1-D convolution over
  the flattened token sequence, so they carry no 2-D local context.

Shortcut of all three: max-pool 3x3 with stride s (padding 1), then a 1x1 conv (for s = 1 the
conv alone), as in the released code.
"""
import math
from collections import OrderedDict

import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..registry import DSMS
from .layers import (
    attention_heads,
    fuse_conv_bn_pairs,
    init_linear_and_norm,
    map_to_tokens,
    tokens_to_map,
)


class DSMBase(BaseModule):
    """Shared shortcut and argument checks of the DSMs."""

    # what the arch parser and the search space read (see uninet_mm.registry)
    needs_heads = False
    operates_on = 'maps'

    def __init__(self, in_channels, out_channels, stride=2, head_dim=32, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        if stride < 1:
            raise ValueError(f'{type(self).__name__}: stride must be >= 1, got {stride}')
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        shortcut = OrderedDict()
        if stride > 1:
            shortcut['pool'] = nn.MaxPool2d(3, stride, 1)
        shortcut['proj'] = nn.Conv2d(in_channels, out_channels, 1)
        self.shortcut = nn.Sequential(shortcut)

    def fuse_conv_bn(self):
        """Fold the BatchNorm of the local/query branch into its depth-wise conv."""
        for branch in (getattr(self, 'local', None), getattr(self, 'query', None)):
            if branch is not None:
                fuse_conv_bn_pairs(branch, [('dw_conv', 'norm')])

    def local_branch(self, in_channels, out_channels, stride):
        """Strided depth-wise 3x3 conv (with bias), BN, 1x1 conv: the L-DSM main branch and
        the LG-DSM query maker."""
        return nn.Sequential(OrderedDict(
            dw_conv=nn.Conv2d(in_channels, in_channels, 3, stride, 1, groups=in_channels),
            norm=nn.BatchNorm2d(in_channels),
            pw_conv=nn.Conv2d(in_channels, out_channels, 1)))


@DSMS.register_module(name='L')
class LocalDSM(DSMBase):
    """L-DSM: local down-sampling by a strided depth-wise convolution (Fig. 3a)."""

    def __init__(self, in_channels, out_channels, stride=2, head_dim=32, init_cfg=None):
        super().__init__(in_channels, out_channels, stride, head_dim, init_cfg)
        self.local = self.local_branch(in_channels, out_channels, stride)

    def forward(self, x):
        return self.local(x) + self.shortcut(x)


class AttentionDSM(DSMBase):
    """Down-sampled queries attend over all input tokens (Fig. 3b, 3c). Subclasses define
    :meth:`make_queries` returning ``(B, Nq, C_out)`` tokens and their ``(Hq, Wq)``."""

    needs_heads = True
    operates_on = 'tokens'

    def __init__(self, in_channels, out_channels, stride=2, head_dim=32, init_cfg=None):
        super().__init__(in_channels, out_channels, stride, head_dim, init_cfg)
        self.num_heads = attention_heads(out_channels, head_dim)  # any width
        self.head_dim = out_channels // self.num_heads
        self.q_norm = nn.LayerNorm(out_channels)
        self.kv_norm = nn.LayerNorm(in_channels)
        self.kv = nn.Linear(in_channels, out_channels * 2)
        self.proj = nn.Linear(out_channels, out_channels)
        init_linear_and_norm(self)

    def make_queries(self, x):
        raise NotImplementedError

    def forward(self, x):
        B = x.shape[0]
        q, q_shape = self.make_queries(x)
        q = self.q_norm(q)
        kv = self.kv(self.kv_norm(map_to_tokens(x)))
        kv = kv.reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = q.reshape(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, kv[0], kv[1])
        out = self.proj(out.transpose(1, 2).reshape(B, -1, self.out_channels))
        return tokens_to_map(out, q_shape) + self.shortcut(x)


@DSMS.register_module(name='LG')
class LocalGlobalDSM(AttentionDSM):
    """LG-DSM: queries from a strided 2-D depth-wise conv (local context), keys and values
    from all input tokens (global context) (Fig. 3b)."""

    def __init__(self, in_channels, out_channels, stride=2, head_dim=32, init_cfg=None):
        super().__init__(in_channels, out_channels, stride, head_dim, init_cfg)
        self.query = self.local_branch(in_channels, out_channels, stride)

    def make_queries(self, x):
        q = self.query(x)
        return map_to_tokens(q), q.shape[2:]


@DSMS.register_module(name='G')
class GlobalDSM(AttentionDSM):
    """G-DSM: queries from a strided 1-D conv over the flattened tokens (Fig. 3c).

    Token count: the paper does not say how the 1-D conv yields exactly
    ``ceil(H/s) * ceil(W/s)`` queries. Here the raster-order sequence of ``N = H*W`` tokens is
    zero-padded at its end to ``Nq * s^2`` (``Nq = ceil(H/s) * ceil(W/s)``) and a depth-wise
    1-D conv with kernel = stride = ``s^2`` turns each run of ``s^2`` consecutive tokens into
    one query (BN, 1x1 conv to ``out_channels`` follow, as in the L branch). Query ``i`` then sits
    at raster position ``i`` of the ``(ceil(H/s), ceil(W/s))`` output grid. Runs wrap across
    rows, so the queries see 1-D, not 2-D, neighbourhoods, which is the point of G-DSM.
    """

    def __init__(self, in_channels, out_channels, stride=2, head_dim=32, init_cfg=None):
        super().__init__(in_channels, out_channels, stride, head_dim, init_cfg)
        k = stride * stride
        self.query = nn.Sequential(OrderedDict(
            dw_conv=nn.Conv1d(in_channels, in_channels, k, k, groups=in_channels),
            norm=nn.BatchNorm1d(in_channels),
            pw_conv=nn.Conv1d(in_channels, out_channels, 1)))

    def make_queries(self, x):
        B, C, H, W = x.shape
        s = self.stride
        q_shape = (math.ceil(H / s), math.ceil(W / s))
        seq = x.flatten(2)
        pad = q_shape[0] * q_shape[1] * s * s - H * W
        if pad:
            seq = F.pad(seq, (0, pad))
        q = self.query(seq)                     # (B, C_out, Nq)
        return q.transpose(1, 2), q_shape
