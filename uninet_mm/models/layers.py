"""Small layers shared by the GOPs and DSMs: layout changes, squeeze-excitation, drop path."""
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


class SqueezeExcite(nn.Module):
    """SE of the released DWConv block: avg-pool, 1x1 conv to ``make_divisible(C // 4)``, ReLU,
    1x1 conv back, gate ``relu6(x + 3) / 6`` (hard sigmoid)."""

    def __init__(self, channels, reduction=4):
        super().__init__()
        squeezed = make_divisible(channels // reduction, 8)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        s = self.fc2(self.act(self.fc1(s)))
        return x * F.hardsigmoid(s)


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
