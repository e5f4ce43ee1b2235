"""A new GOP is one registered class: this file defines and registers a toy GOP, and the
backbone, the arch parser, the search space and the FLOPs counter accept it without any other
file knowing its name (the GOP and DSM registries are the only list of operators)."""
import pytest
import torch
import torch.nn as nn

import uninet_mm  # noqa: F401  (registers the models)
from uninet_mm.models import UniNet, parse_arch
from uninet_mm.registry import GOPS, operator_names
from uninet_mm.search import build_search_space
from uninet_mm.utils.flops import count_flops, preset_flops

pytestmark = pytest.mark.usefixtures('one_thread')


class PointwiseGOP(nn.Module):
    """Toy GOP: ``x + Conv1x1(x)`` (a 1x1 projection when the width changes). It declares
    ``needs_heads`` so that the parser and the search must round its width to heads."""

    needs_heads = True
    operates_on = 'maps'

    def __init__(self, in_channels, out_channels, expansion=4, drop_path=0., head_dim=32,
                 window_size=7):
        super().__init__()
        self.mix = nn.Conv2d(out_channels, out_channels, 1, bias=False)
        self.in_proj = (nn.Conv2d(in_channels, out_channels, 1, bias=False)
                        if in_channels != out_channels else nn.Identity())

    def forward(self, x):
        x = self.in_proj(x)
        return x + self.mix(x)


@pytest.fixture
def toy_gop():
    """Register the toy GOP for one test, and take it out again afterwards (other tests
    enumerate the registry)."""
    assert 'Pointwise' not in operator_names(GOPS)
    GOPS.register_module(name='Pointwise', module=PointwiseGOP)
    yield 'Pointwise'
    GOPS.module_dict.pop('Pointwise')


def _arch(gop, width=32, depth=2):
    return dict(gops=['DWConv', gop], dsms=[None, 'L'], strides=[1, 2], widths=[16, width],
                repeats=[1, depth], expansions=[1, 2], stem_width=16, head_dim=16)


def test_backbone_builds_and_runs_the_new_gop(toy_gop):
    model = UniNet(_arch(toy_gop), out_indices=(0, 1)).eval()
    blocks = list(model.stages[1].blocks)
    assert len(blocks) == 2 and all(isinstance(b, PointwiseGOP) for b in blocks)
    x = torch.randn(2, 3, 33, 40)
    with torch.no_grad():
        outs = model(x)
        # stage 1 by hand: DSM, then x + W x twice (W the toy's 1x1 weights)
        y = model.stages[1].downsample(outs[0])
        for b in blocks:
            y = y + torch.einsum('oi,bihw->bohw', b.mix.weight[:, :, 0, 0], y)
    assert outs[1].shape == (2, 32, 9, 10)
    torch.testing.assert_close(outs[1], y)


def test_parser_accepts_the_new_gop_at_any_width(toy_gop):
    assert parse_arch(_arch(toy_gop))['gops'] == ['DWConv', toy_gop]
    # attention picks its heads from the width, so the parser refuses no width of a GOP that
    # declares needs_heads (only the search space may round, when asked to)
    assert parse_arch(_arch(toy_gop, width=40))['widths'][1] == 40


def test_unregistered_gop_is_refused():
    with pytest.raises(KeyError, match="unknown GOP 'Pointwise'"):
        parse_arch(_arch('Pointwise'))


def test_search_space_accepts_and_rounds_the_new_gop(toy_gop):
    def space(round_attention_widths):
        return build_search_space(dict(
            base_arch=_arch('DWConv', width=24), searchable_stages=[1],
            choices=dict(gop=[toy_gop, 'DWConv'], dsm=['L'], expansion=[2], width_mult=[1.25],
                         repeat_delta=[0]),
            round_attention_widths=round_attention_widths))

    plain, rounded = space(False), space(True)
    toy, conv = plain.decode([0, 0, 0, 0, 0]), plain.decode([1, 0, 0, 0, 0])
    assert toy['gops'][1] == toy_gop and conv['gops'][1] == 'DWConv'
    assert toy['widths'][1] == 32                                 # 24 * 1.25 = 30 -> 32
    # default: multiples of 8 whatever the operator
    assert plain.stage_width(1, toy_gop, 'L', 1.5) == 40          # 36 -> 40
    # round_attention_widths asks the class: heads of 16 for the toy, multiples of 8 for DWConv
    assert rounded.stage_width(1, toy_gop, 'L', 1.5) == 48        # 36 -> 32 < 0.9 * 36 -> 48
    assert rounded.stage_width(1, 'DWConv', 'L', 1.5) == 40       # 36 -> 40
    model = UniNet(toy, out_indices=(1,))
    assert all(isinstance(b, PointwiseGOP) for b in model.stages[1].blocks)
    with pytest.raises(ValueError, match="unknown GOP"):
        build_search_space(dict(base_arch='b0', choices=dict(gop=['Pointwise2'])))


def test_flops_counter_counts_the_new_gop(toy_gop):
    """One more toy block at width C on an h x w map costs h * w * C * C multiply-adds (the
    1x1 conv; the residual add is not counted), whatever else the network holds."""
    size = 64
    f1, p1 = preset_flops(_arch(toy_gop, width=32, depth=1), size=size, with_head=False)
    f2, p2 = preset_flops(_arch(toy_gop, width=32, depth=2), size=size, with_head=False)
    h = w = size // 4  # stem stride 2, stage 1 stride 2
    assert f2 - f1 == h * w * 32 * 32
    assert p2 - p1 == 32 * 32
    # on the CPU with real tensors, the same count
    model = UniNet(_arch(toy_gop, width=32, depth=2), out_indices=(1,))
    assert count_flops(model, (1, 3, size, size))[0] == f2
