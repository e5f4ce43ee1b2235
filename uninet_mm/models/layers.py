"""Small layers shared by the GOPs and DSMs: layout changes, squeeze-excitation, drop path."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model.weight_init import trunc_normal_


def map_to_tokens(x):
    """(B, C, H, W) -> (B, H*W, C). With channels_last memory this is a view."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_map(x, hw_shape):
    """(B, H*W, C) -> (B, C, H, W); ``hw_shape`` travels with the tokens, never guessed."""
    H, W = hw_shape
    return x.transpose(1, 2).reshape(x.shape[0], -1, H, W)


def make_divisible(value, divisor=8, min_value=None, round_limit=0.9):
    """Round ``value`` to the nearest multiple of ``divisor`` (halves up), at least
    ``min_value``, adding one ``divisor`` if rounding lost more than 10% (the released code)."""
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < round_limit * value:
        new_value += divisor
    return new_value


def attention_heads(width, head_dim):
    """Number of attention heads of a ``width``-channel attention (GOPs SA/LSA, LG/G-DSMs).

    Rule: the divisor of ``width`` closest to ``width / head_dim`` (a tie goes to more heads),
    so the width is split evenly into heads of ``width // heads`` channels. Exact for widths that
    are multiples of ``head_dim`` (``width // head_dim`` heads of ``head_dim``: all attention
    stages of the presets B0..B6, the released layout); narrower or odd widths get the nearest
    even split, e.g. with ``head_dim=32``: 16 and 24 -> 1 head, 48 -> 2 x 24, 80 -> 2 x 40,
    112 -> 4 x 28 (docs/ablations.md).
    """
    if width < 1 or head_dim < 1:
        raise ValueError(f'attention_heads: width and head_dim must be >= 1, got {width} and '
                         f'{head_dim}')
    # |h - width / head_dim| compared as |h * head_dim - width| (exact integers)
    divisors = [h for h in range(1, width + 1) if width % h == 0]
    return min(divisors, key=lambda h: (abs(h * head_dim - width), -h))


class SqueezeExcite(nn.Module):
    """SE of the released DWConv block: avg-pool, 1x1 conv to ``make_divisible(C // 4)``, ReLU,
    1x1 conv back, gate ``relu6(x + 3) / 6`` (hard sigmoid)."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        squeezed = make_divisible(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def gate(self, x):
        """The per-sample, per-channel gate (B, C, 1, 1)."""
        s = x.mean((2, 3), keepdim=True)
        return F.hardsigmoid(self.fc2(self.act(self.fc1(s))))

    def forward(self, x):
        return x * self.gate(x)


class DropPath(nn.Module):
    """Stochastic depth per sample (identity at inference or for ``drop_prob == 0``)."""

    def __init__(self, drop_prob=0.):
        super().__init__()
        self.drop_prob = float(drop_prob)

    def forward(self, x):
        if self.drop_prob == 0. or not self.training:
            return x
        keep = 1 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self):
        return f'drop_prob={self.drop_prob}'


def init_linear_and_norm(module):
    """Released init: Linear weights trunc-normal (std 0.02) with zero bias, LayerNorm 1 / 0."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@torch.no_grad()
def fold_bn_into_conv(conv, bn):
    """Fold an eval-mode BatchNorm that FOLLOWS ``conv`` into the conv's weight and bias
    (``BN(W x + b) = (s W) x + s (b - mean) + beta``, ``s = gamma / sqrt(var + eps)``)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    conv.weight.copy_(conv.weight * scale.reshape(-1, *([1] * (conv.weight.ndim - 1))))
    conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias)


@torch.no_grad()
def fold_bn_before_conv(bn, conv):
    """Fold an eval-mode BatchNorm that PRECEDES a 1x1 ``conv`` (no padding, so exact):
    ``W (s x + t) + b = (W s) x + (W t + b)``."""
    if conv.kernel_size != (1, 1) or conv.groups != 1:
        raise ValueError('only a dense 1x1 convolution absorbs a preceding BatchNorm exactly')
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shift = bn.bias - bn.running_mean * scale
    weight = conv.weight[:, :, 0, 0]
    bias = conv.bias if conv.bias is not None else weight.new_zeros(weight.shape[0])
    conv.bias = nn.Parameter(bias + weight @ shift)
    conv.weight.copy_((weight * scale)[:, :, None, None])


@torch.no_grad()
def fold_scale_into_linear(layer, scale):
    """``scale * layer(x) = layer'(x)`` for a per-output-channel ``scale`` (layer scale)."""
    layer.weight.mul_(scale[:, None])
    if layer.bias is not None:
        layer.bias.mul_(scale)


def fuse_conv_bn_pairs(parent, pairs):
    """For each ``(conv_name, bn_name)``, fold ``parent.<bn>`` (which follows the conv) into
    ``parent.<conv>`` and replace the BN by ``nn.Identity``. Inference only; idempotent."""
    for conv_name, bn_name in pairs:
        bn = getattr(parent, bn_name)
        if not isinstance(bn, nn.Identity):
            fold_bn_into_conv(getattr(parent, conv_name), bn)
            setattr(parent, bn_name, nn.Identity())
