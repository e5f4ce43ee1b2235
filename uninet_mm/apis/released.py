"""UniNet in the RELEASED layout and key names -- a reference, never used to build models.

This module exists only as the reference for two things:

1. the converter parity test (``tests/test_converter.py``): a model with the authors' module
   names (``stem``, ``blocks``, ``head``, ``classifier``; ``residual``, ``b1``, ``b2``,
   ``downsample``, ``q``, ``q_norm``, ``kv_norm``, ``kv``, ``proj``, ``pos_embed``, ``norm1``,
   ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1``, ``mlp.fc2``, ``gamma_1``, ``gamma_2``) is
   randomised, its state dict converted by :func:`uninet_mm.converters.official.convert_official`
   and loaded into our ``UniNet`` + ``UniNetClsHead``; the logits must agree;
2. the performance comparison "ours vs the released layout" in
   ``tools/benchmark_backbones.py`` (a tool needs it, so it lives in the package, in the
   shared tool code of ``uninet_mm.apis``, rather than under ``tests/``).

It is written from the facts of the released code listed in issue 3, independently of
``uninet_mm.models`` (it imports nothing from there), and keeps the released code's naive
attention: ``softmax(q @ k^T * scale) @ v`` with the full ``N x N`` matrix in memory. Unlike the
released code it carries ``(H, W)`` explicitly instead of assuming square inputs, so any input
size runs. Only the operators of the released models exist here: the ``DWConv`` and ``SA``
GOPs and the ``L`` and ``LG`` DSMs. The package's models and configs never build it.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


def _make_divisible(v, divisor=8, min_value=None, round_limit=.9):
    # the released code's (timm's) rounding of the SE width
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


class SqueezeExcite(nn.Module):
    """``b2.3``: avg-pool, ``fc1`` (conv 1x1 with bias), ReLU, ``fc2``, hard-sigmoid gate."""

    def __init__(self, chs, reduction=4):
        super().__init__()
        reduced = _make_divisible(chs // reduction, 8)
        self.fc1 = nn.Conv2d(chs, reduced, 1, bias=True)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduced, chs, 1, bias=True)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(self.act(self.fc1(s)))
        return x * (F.relu6(s + 3.) / 6.)


class DropPath(nn.Module):
    def __init__(self, p=0.):
        super().__init__()
        self.p = p

    def forward(self, x):
        if self.p == 0. or not self.training:
            return x
        keep = 1 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x.div(keep) * mask


class MBConv(nn.Module):
    """The released DWConv block (names ``residual``, ``b1``, ``b2``)."""

    def __init__(self, inp, oup, expand_ratio, drop_path=0.):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_identity = inp == oup
        if not self.use_res_identity:
            self.residual = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(inp, oup, 1))
        self.has_b1 = hidden != inp
        if self.has_b1:
            self.b1 = nn.Sequential(
                nn.BatchNorm2d(inp), nn.Conv2d(inp, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden), nn.GELU())
        self.b2 = nn.Sequential(
            nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.GELU(), SqueezeExcite(hidden),
            nn.Conv2d(hidden, oup, 1), nn.BatchNorm2d(oup))
        nn.init.zeros_(self.b2[5].weight)
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        shortcut = x if self.use_res_identity else self.residual(x)
        out = self.b1(x) if self.has_b1 else x
        return shortcut + self.drop_path(self.b2(out))


class Attention(nn.Module):
    """Naive multi-head attention of the released code (``attn.qkv``, ``attn.proj``)."""

    def __init__(self, dim, head_dim=32):
        super().__init__()
        self.num_heads = dim // head_dim
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """The released SA block: CPE ``pos_embed``, ``norm1``/``attn``, ``norm2``/``mlp``, layer
    scales ``gamma_1``/``gamma_2``. Maps in, maps out; tokens inside with explicit (H, W)."""

    def __init__(self, dim, mlp_ratio, head_dim=32, drop_path=0., init_values=1e-6):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, head_dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.gamma_1 = nn.Parameter(init_values * torch.ones(dim))
        self.gamma_2 = nn.Parameter(init_values * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x):
        B, C, H, W = x.shape
        x = x + self.pos_embed(x)
        x = x.flatten(2).transpose(1, 2)
        x = x + self.drop_path(self.gamma_1 * self.attn(self.norm1(x)))
        x = x + self.drop_path(self.gamma_2 * self.mlp(self.norm2(x)))
        return x.transpose(1, 2).reshape(B, C, H, W)


def _residual(inp, oup, stride):
    # stride 2: residual.0 = max-pool, residual.1 = conv; stride 1: residual.0 = conv
    if stride > 1:
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), nn.Conv2d(inp, oup, 1))
    return nn.Sequential(nn.Conv2d(inp, oup, 1))


class LocalDownsample(nn.Module):
    """The released L-DSM: ``downsample.{0,1,2}`` + ``residual``."""

    def __init__(self, inp, oup, stride):
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp), nn.BatchNorm2d(inp),
            nn.Conv2d(inp, oup, 1))
        self.residual = _residual(inp, oup, stride)

    def forward(self, x):
        return self.downsample(x) + self.residual(x)


class LocalGlobalDownsample(nn.Module):
    """The released LG-DSM: ``q.{0,1,2}``, ``q_norm``, ``kv_norm``, ``kv``, ``proj``,
    ``residual``; naive attention of the down-sampled queries over all input tokens."""

    def __init__(self, inp, oup, stride, head_dim=32):
        super().__init__()
        self.num_heads = oup // head_dim
        self.scale = head_dim ** -0.5
        self.q = nn.Sequential(
            nn.Conv2d(inp, inp, 3, stride, 1, groups=inp), nn.BatchNorm2d(inp),
            nn.Conv2d(inp, oup, 1))
        self.q_norm = nn.LayerNorm(oup)
        self.kv_norm = nn.LayerNorm(inp)
        self.kv = nn.Linear(inp, oup * 2)
        self.proj = nn.Linear(oup, oup)
        self.residual = _residual(inp, oup, stride)

    def forward(self, x):
        B = x.shape[0]
        q = self.q(x)
        _, C, Hq, Wq = q.shape
        q = self.q_norm(q.flatten(2).transpose(1, 2))
        q = q.reshape(B, Hq * Wq, self.num_heads, C // self.num_heads).transpose(1, 2)
        kv = self.kv(self.kv_norm(x.flatten(2).transpose(1, 2)))
        kv = kv.reshape(B, -1, 2, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = self.proj((attn @ v).transpose(1, 2).reshape(B, Hq * Wq, C))
        return out.transpose(1, 2).reshape(B, C, Hq, Wq) + self.residual(x)


#: Released presets: repeats, widths (all share the rest of the layout below).
RELEASED_PRESETS = {
    'b0': ([1, 2, 4, 4, 4, 8], [24, 48, 80, 128, 128, 256]),
    'b1': ([1, 2, 4, 4, 4, 8], [24, 48, 80, 128, 128, 256]),
    'b2': ([2, 3, 6, 6, 6, 12], [24, 48, 80, 128, 128, 256]),
    'b3': ([2, 3, 7, 7, 7, 14], [24, 56, 96, 160, 160, 288]),
    'b4': ([2, 4, 9, 9, 9, 18], [32, 64, 112, 192, 192, 352]),
    'b5': ([3, 5, 10, 10, 10, 20], [32, 64, 112, 224, 224, 448]),
    'b6': ([4, 6, 12, 12, 12, 24], [48, 96, 160, 256, 256, 512]),
}
RELEASED_GOPS = ['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA']
RELEASED_DSMS = [None, 'L', 'L', 'L', 'LG', 'LG']
RELEASED_STRIDES = [1, 2, 2, 2, 1, 2]
RELEASED_EXPANSIONS = [1, 4, 6, 3, 2, 5]


class ReleasedUniNet(nn.Module):
    """UniNet with the released module names (reference only; see the module docstring).

    Args:
        arch (str | dict): ``'b0'``..``'b6'``, or a dict with per-stage ``repeats``, ``widths``
            and optionally ``gops`` (``'DWConv'``/``'SA'``), ``dsms`` (None/``'L'``/``'LG'``),
            ``strides``, ``expansions``, plus ``stem_width`` and ``head_dim``.
        num_classes (int): classifier outputs; 0 drops the head and classifier (the forward
            then returns the last stage's map).
    """

    def __init__(self, arch='b1', num_classes=1000, in_chans=3, head_width=1280,
                 drop_path_rate=0.):
        super().__init__()
        if isinstance(arch, str):
            repeats, widths = RELEASED_PRESETS[arch.lower()]
            arch = dict(repeats=repeats, widths=widths)
        gops = arch.get('gops', RELEASED_GOPS)
        dsms = arch.get('dsms', RELEASED_DSMS)
        strides = arch.get('strides', RELEASED_STRIDES)
        expansions = arch.get('expansions', RELEASED_EXPANSIONS)
        repeats, widths = arch['repeats'], arch['widths']
        stem_width = arch.get('stem_width', 32)
        head_dim = arch.get('head_dim', 32)
        for g in gops:
            if g not in ('DWConv', 'SA'):
                raise ValueError(f'ReleasedUniNet: the released code has no {g!r} GOP')
        for d in dsms:
            if d not in (None, 'L', 'LG'):
                raise ValueError(f'ReleasedUniNet: the released code has no {d!r} DSM')

        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, stem_width, 3, 2, 1, bias=False), nn.BatchNorm2d(stem_width),
            nn.GELU())
        dpr = [drop_path_rate * i / max(sum(repeats) - 1, 1) for i in range(max(sum(repeats), 1))]
        blocks, inp, k = [], stem_width, 0
        for gop, dsm, stride, e, r, c in zip(gops, dsms, strides, expansions, repeats, widths):
            if dsm == 'L':
                blocks.append(LocalDownsample(inp, c, stride))
                inp = c
            elif dsm == 'LG':
                blocks.append(LocalGlobalDownsample(inp, c, stride, head_dim))
                inp = c
            for _ in range(r):
                if gop == 'DWConv':
                    blocks.append(MBConv(inp, c, e, dpr[k]))
                else:
                    blocks.append(TransformerBlock(c, e, head_dim, dpr[k]))
                inp, k = c, k + 1
        self.blocks = nn.Sequential(*blocks)
        self.num_classes = num_classes
        if num_classes:
            self.head = nn.Sequential(
                nn.Conv2d(inp, head_width, 1, bias=False), nn.BatchNorm2d(head_width),
                nn.GELU())
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.dropout = nn.Dropout(0.)
            self.classifier = nn.Linear(head_width, num_classes)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return self.blocks(self.stem(x))

    def forward(self, x):
        x = self.forward_features(x)
        if not self.num_classes:
            return x
        x = self.avgpool(self.head(x)).flatten(1)
        return self.classifier(self.dropout(x))


__all__ = ['ReleasedUniNet', 'RELEASED_PRESETS']
