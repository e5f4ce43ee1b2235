"""General operators (GOPs) of UniNet (paper Sec. 3.2, Eq. 1-4).

Every GOP is one block in inverted-residual form and shares one constructor signature::

    GOPS.build(dict(type=NAME, in_channels=c_in, out_channels=c, expansion=e,
                    drop_path=p, head_dim=32, window_size=7))

and one layout: a ``(B, C, H, W)`` map in, a ``(B, C', H, W)`` map out. Token operators flatten
the map internally with the map's own H and W, so no size is ever guessed.

- ``DWConv`` / ``Conv``: ``x + Proj(ec->c)(Conv(Proj(c->ec)(x)))`` (Eq. 1) with a depth-wise or a
  dense 3x3 convolution, BN, GELU and squeeze-excitation, as in the released UniNet code.
- ``SA`` / ``LSA`` / ``MLP``: ``y' = x + Mix(x)``, ``y = y' + FFN(y')`` (Eq. 2-4), pre-norm with
  layer scale, after a conditional position encoding ``x + DWConv3x3(x)``. ``SA`` mixes all
  tokens, ``LSA`` tokens inside non-overlapping windows, ``MLP`` mixes tokens inside windows with
  a transposed FFN (token-mixing MLP); windows pad the map so that any size works.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModule

from ..registry import GOPS
from .layers import (
    DropPath,
    SqueezeExcite,
    attention_heads,
    fold_bn_before_conv,
    fuse_conv_bn_pairs,
    init_linear_and_norm,
    map_to_tokens,
    tokens_to_map,
)
from .train_ops import ExpandBNGELU, bn_gelu, se_conv


class ConvGOP(BaseModule):
    """Inverted-residual convolution block (Eq. 1), the released ``MBConv`` layout.

    hidden = ``in_channels * expansion``. Expansion (only when hidden != in): BN, 1x1 conv, BN,
    GELU. Main: 3x3 conv (depth-wise for ``DWConv``, dense for ``Conv``), BN, GELU, SE,
    1x1 conv to ``out_channels``, BN initialised to zero. Shortcut: identity, or max-pool 3x3
    then 1x1 conv when the width changes. Under autograd, BN + GELU and SE + projection run
    through :mod:`~.train_ops` (same values and gradients, fewer maps kept for backward).
    """

    depthwise = True
    # what the arch parser and the search space read (see uninet_mm.registry)
    needs_heads = False
    operates_on = 'maps'

    def __init__(self, in_channels, out_channels, expansion=4, drop_path=0., head_dim=32,
                 window_size=7, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        hidden = in_channels * expansion
        if in_channels == out_channels:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(OrderedDict(
                pool=nn.MaxPool2d(3, 1, 1),
                proj=nn.Conv2d(in_channels, out_channels, 1)))
        if hidden != in_channels:
            self.expand = ExpandBNGELU(OrderedDict(
                pre_norm=nn.BatchNorm2d(in_channels),
                conv=nn.Conv2d(in_channels, hidden, 1, bias=False),
                norm=nn.BatchNorm2d(hidden),
                act=nn.GELU()))
        else:
            self.expand = nn.Identity()
        groups = hidden if self.depthwise else 1
        self.conv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=groups, bias=False)
        self.norm = nn.BatchNorm2d(hidden)
        self.act = nn.GELU()
        self.se = SqueezeExcite(hidden)
        self.project = nn.Conv2d(hidden, out_channels, 1)
        self.project_norm = nn.BatchNorm2d(out_channels)
        nn.init.zeros_(self.project_norm.weight)  # the block starts as its shortcut
        self.drop_path = DropPath(drop_path)

    def fuse_conv_bn(self):
        """Fold every BatchNorm into its convolution (inference only, same outputs)."""
        if isinstance(self.expand, nn.Sequential):
            if not isinstance(self.expand.pre_norm, nn.Identity):
                fold_bn_before_conv(self.expand.pre_norm, self.expand.conv)
                self.expand.pre_norm = nn.Identity()
            fuse_conv_bn_pairs(self.expand, [('conv', 'norm')])
        fuse_conv_bn_pairs(self, [('conv', 'norm'), ('project', 'project_norm')])

    def forward(self, x):
        out = bn_gelu(self.norm, self.act, self.conv(self.expand(x)))
        out = self.project_norm(se_conv(self.se, self.project, out))
        return self.shortcut(x) + self.drop_path(out)


@GOPS.register_module(name='DWConv')
class DWConvGOP(ConvGOP):
    """Depth-wise convolution GOP (Eq. 1 with a depth-wise 3x3)."""
    depthwise = True


@GOPS.register_module(name='Conv')
class DenseConvGOP(ConvGOP):
    """Dense convolution GOP (Eq. 1 with a full 3x3 convolution in the bottleneck)."""
    depthwise = False


class GlobalAttention(nn.Module):
    """Multi-head self-attention over all tokens (Eq. 2), through
    ``scaled_dot_product_attention``: memory linear in the number of tokens. Any ``dim``
    works: the heads come from :func:`~.layers.attention_heads` (``dim // head_dim`` when it
    divides)."""

    def __init__(self, dim, head_dim=32, window_size=None):
        super().__init__()
        self.num_heads = attention_heads(dim, head_dim)  # any width: see attention_heads
        self.head_dim = dim // self.num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def attend(self, x, attn_mask=None):
        """x: (B, N, C) -> (B, N, C)."""
        B, N, C = x.shape
        qkv = self.qkv(x)
        qkv = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))

    def forward(self, x, hw_shape):
        return self.attend(x)


def window_partition(x, hw_shape, window_size):
    """(B, H*W, C) tokens -> (B*nW, w*w, C) windows, zero-padding H and W up to multiples of
    the window; returns the windows, the padded (Hp, Wp) and the padding (ph, pw)."""
    B, _, C = x.shape
    H, W = hw_shape
    w = window_size
    ph, pw = (-H) % w, (-W) % w
    x = x.view(B, H, W, C)
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    Hp, Wp = H + ph, W + pw
    x = x.view(B, Hp // w, w, Wp // w, w, C).transpose(2, 3).reshape(-1, w * w, C)
    return x, (Hp, Wp), (ph, pw)


def window_reverse(windows, hw_shape, padded_shape, window_size):
    """Inverse of :func:`window_partition`: (B*nW, w*w, C) -> (B, H*W, C)."""
    H, W = hw_shape
    Hp, Wp = padded_shape
    w = window_size
    C = windows.shape[-1]
    x = windows.view(-1, Hp // w, Wp // w, w, w, C).transpose(2, 3).reshape(-1, Hp, Wp, C)
    if Hp != H or Wp != W:
        x = x[:, :H, :W]
    return x.reshape(-1, H * W, C)


def padding_mask(hw_shape, padded_shape, window_size, device):
    """Boolean attention mask (nW, 1, w*w, w*w): True where the key is a real (unpadded) token."""
    H, W = hw_shape
    Hp, Wp = padded_shape
    w = window_size
    valid = torch.zeros(Hp, Wp, dtype=torch.bool, device=device)
    valid[:H, :W] = True
    valid = valid.view(Hp // w, w, Wp // w, w).transpose(1, 2).reshape(-1, 1, 1, w * w)
    return valid.expand(-1, 1, w * w, w * w)


class WindowAttention(GlobalAttention):
    """Local self-attention (LSA) inside non-overlapping windows; padded keys are masked out,
    so the output does not depend on the padding."""

    def __init__(self, dim, head_dim=32, window_size=7):
        super().__init__(dim, head_dim)
        self.window_size = window_size

    def forward(self, x, hw_shape):
        B = x.shape[0]
        windows, padded, (ph, pw) = window_partition(x, hw_shape, self.window_size)
        mask = None
        if ph or pw:
            mask = padding_mask(hw_shape, padded, self.window_size, x.device)
            mask = mask.repeat(B, 1, 1, 1)
        out = self.attend(windows, attn_mask=mask)
        return window_reverse(out, hw_shape, padded, self.window_size)


class WindowTokenMLP(nn.Module):
    """Token-mixing MLP (Eq. 3): transpose, FFN over the w*w tokens of each window, transpose
    back. Fixed-size windows make it work at any input size (zero-padded borders)."""

    def __init__(self, dim, head_dim=32, window_size=7):
        super().__init__()
        self.window_size = window_size
        tokens = window_size * window_size
        self.fc1 = nn.Linear(tokens, tokens)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(tokens, tokens)

    def forward(self, x, hw_shape):
        windows, padded, _ = window_partition(x, hw_shape, self.window_size)
        mixed = self.fc2(self.act(self.fc1(windows.transpose(1, 2)))).transpose(1, 2)
        return window_reverse(mixed, hw_shape, padded, self.window_size)


class FFN(nn.Module):
    """Channel FFN: Linear c -> c*e, GELU, Linear back (Eq. 4)."""

    def __init__(self, dim, expansion):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim * expansion)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(dim * expansion, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TokenGOP(BaseModule):
    """Pre-norm token block: CPE, then ``x + g1 * Mix(LN(x))`` and ``x + g2 * FFN(LN(x))``
    (Eq. 2-4). ``mixer_cls`` picks SA, LSA or the token MLP. When the width changes, a 1x1
    convolution maps ``in_channels`` to ``out_channels`` first (only search candidates whose
    first stage is a token GOP need it; the released models never do)."""

    mixer_cls = GlobalAttention
    # what the arch parser and the search space read (see uninet_mm.registry)
    needs_heads = True
    operates_on = 'tokens'

    def __init__(self, in_channels, out_channels, expansion=4, drop_path=0., head_dim=32,
                 window_size=7, layer_scale_init=1e-6, init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        dim = out_channels
        self.in_proj = (nn.Conv2d(in_channels, dim, 1) if in_channels != dim else nn.Identity())
        self.pos_embed = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.mixer = self.mixer_cls(dim, head_dim=head_dim, window_size=window_size)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = FFN(dim, expansion)
        self.gamma1 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.gamma2 = nn.Parameter(torch.full((dim,), float(layer_scale_init)))
        self.drop_path = DropPath(drop_path)
        init_linear_and_norm(self)

    def forward(self, x):
        x = self.in_proj(x)
        x = x + self.pos_embed(x)
        hw_shape = x.shape[2:]
        t = map_to_tokens(x)
        t = t + self.drop_path(self.gamma1 * self.mixer(self.norm1(t), hw_shape))
        t = t + self.drop_path(self.gamma2 * self.ffn(self.norm2(t)))
        return tokens_to_map(t, hw_shape)


@GOPS.register_module(name='SA')
class SAGOP(TokenGOP):
    """Transformer GOP with global self-attention (Eq. 2, 4)."""
    mixer_cls = GlobalAttention


@GOPS.register_module(name='LSA')
class LSAGOP(TokenGOP):
    """Transformer GOP with local (windowed) self-attention."""
    mixer_cls = WindowAttention


@GOPS.register_module(name='MLP')
class MLPGOP(TokenGOP):
    """MLP GOP: token-mixing MLP inside windows (Eq. 3), then the channel FFN (Eq. 4)."""
    mixer_cls = WindowTokenMLP
    needs_heads = False  # token mixing has no heads: any width works
