"""Issue 17: attention at any width (heads from the width), every (GOP, DSM) pair at narrow
widths (plain, backward, deployed), the ablation configs (paper Tables 1, 5, 6) and the proxy
study's helpers. Expected counts are hand formulas, not outputs of the code under test."""
import copy
import math

import pytest
import torch
from mmengine.config import Config
from torch.nn.modules.batchnorm import _BatchNorm

import uninet_mm  # noqa: F401  (registers the models)
from uninet_mm.models import UniNet, deploy_ops
from uninet_mm.models.arch import ARCH_PRESETS, parse_arch
from uninet_mm.models.dsms import AttentionDSM
from uninet_mm.models.gops import GlobalAttention, TokenGOP
from uninet_mm.models.layers import attention_heads
from uninet_mm.registry import build_dsm, build_gop

pytestmark = pytest.mark.usefixtures('one_thread')

#: the paper's operators (Sec. 3), as the arch dicts spell them
GOP_TYPES = ('DWConv', 'Conv', 'SA', 'LSA', 'MLP')
DSM_TYPES = ('L', 'LG', 'G')

# -- the heads rule -------------------------------------------------------------------------------
#: width -> heads, worked out by hand from the documented rule (the divisor of the width closest
#: to width / head_dim, ties to more heads)
HEADS_32 = {16: 1, 24: 1, 32: 1, 48: 2, 56: 2, 64: 2, 80: 2, 96: 3, 112: 4, 128: 4, 160: 5,
            192: 6, 224: 7, 256: 8, 288: 9, 296: 8, 352: 11, 448: 14, 512: 16}
HEADS_16 = {8: 1, 16: 1, 24: 2, 40: 2, 48: 3, 64: 4, 128: 8}


@pytest.mark.parametrize('head_dim,table', [(32, HEADS_32), (16, HEADS_16),
                                            (64, {384: 6, 200: 4, 96: 2})])
def test_heads_rule_hand_listed(head_dim, table):
    got = {w: attention_heads(w, head_dim) for w in table}
    assert got == table


def test_heads_rule_keeps_todays_heads_for_multiples():
    # every attention width of the presets is a multiple of 32: today's width // 32 heads
    for w in range(32, 1025, 32):
        assert attention_heads(w, 32) == w // 32
    with pytest.raises(ValueError, match='>= 1'):
        attention_heads(0, 32)


def naive_attention(x, qkv, proj, heads):
    """Multi-head attention by loops over heads, channels split evenly (Eq. 2)."""
    B, N, C = x.shape
    d = C // heads
    q, k, v = (x @ qkv.weight.t() + qkv.bias).split(C, dim=-1)
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        a = (q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)).softmax(-1)
        outs.append(a @ v[..., sl])
    return torch.cat(outs, -1) @ proj.weight.t() + proj.bias


@pytest.mark.parametrize('width,heads', [(24, 1), (48, 2), (80, 2), (112, 4)])
def test_attention_of_odd_width_equals_naive_heads(width, heads):
    torch.manual_seed(0)
    attn = GlobalAttention(width, head_dim=32)
    assert (attn.num_heads, attn.head_dim) == (heads, width // heads)
    assert attn.qkv.weight.shape == (3 * width, width) and attn.proj.weight.shape == (width,) * 2
    x = torch.randn(2, 10, width)
    torch.testing.assert_close(attn(x, (2, 5)), naive_attention(x, attn.qkv, attn.proj, heads),
                               rtol=1e-5, atol=1e-5)


def preset_stage_widths():
    """(in, out, stride) of every DSM position and every width of every preset stage."""
    out = set()
    for p in ARCH_PRESETS.values():
        arch = parse_arch(p)
        c_in = arch['stem_width']
        for w, s in zip(arch['widths'], arch['strides']):
            out.add((c_in, w, s))
            c_in = w
    return sorted(out)


def test_every_op_builds_at_every_preset_width():
    stages = preset_stage_widths()
    with torch.device('meta'):
        for w in sorted({w for _, w, _ in stages}):
            for gop in GOP_TYPES:
                m = build_gop(dict(type=gop, in_channels=w, out_channels=w, expansion=1))
                if isinstance(m, TokenGOP) and hasattr(m.mixer, 'num_heads'):
                    assert m.mixer.num_heads * m.mixer.head_dim == w
                    assert m.mixer.num_heads == HEADS_32[w]
        for c_in, w, s in stages:
            for dsm in DSM_TYPES:
                m = build_dsm(dict(type=dsm, in_channels=c_in, out_channels=w, stride=s))
                if isinstance(m, AttentionDSM):
                    assert m.num_heads * m.head_dim == w
                    assert m.num_heads == HEADS_32[w]


# -- every (GOP, DSM) pair, narrow widths, plain / backward / deployed ----------------------------
def randomise_(model):
    torch.manual_seed(0)
    for m in model.modules():  # non-trivial BN statistics and layer scales (not the init)
        if isinstance(m, _BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
        if isinstance(m, TokenGOP):
            m.gamma1.data.uniform_(0.2, 0.6)
            m.gamma2.data.uniform_(0.2, 0.6)
    return model


def pair_arch(gop, dsm, width):
    # stem 16 -> stage 0 (DWConv 16) -> stage 1: DSM (16 -> width, stride 2) + one GOP block;
    # head_dim 32 (the released one), 3x3 windows (padded on the 5x5 map of a 20x20 input)
    return dict(gops=['DWConv', gop], dsms=[None, dsm], strides=[1, 2], widths=[16, width],
                repeats=[1, 1], expansions=[1, 2], stem_width=16, head_dim=32, window_size=3)


@pytest.mark.parametrize('width', [16, 24, 48, 80])
@pytest.mark.parametrize('dsm', DSM_TYPES)
@pytest.mark.parametrize('gop', GOP_TYPES)
def test_pair_builds_trains_and_deploys(gop, dsm, width, monkeypatch):
    monkeypatch.setattr(deploy_ops, 'ONEDNN_ATTENTION_MIN', 0)  # deployed attention: oneDNN
    model = randomise_(UniNet(pair_arch(gop, dsm, width), out_indices=(1, )))
    x = torch.randn(2, 3, 20, 20)
    out, = model.train()(x)
    assert out.shape == (2, width, 5, 5)
    out.square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        ref, = model(x)
        deployed, = copy.deepcopy(model).switch_to_deploy()(x)
    torch.testing.assert_close(deployed, ref, rtol=1e-4, atol=1e-4)


# -- the stem option of the isotropic networks ----------------------------------------------------
def test_patchifying_stem():
    arch = dict(gops=['SA', 'MLP'], dsms=[None, None], strides=[1, 1], widths=[48, 48],
                repeats=[1, 1], expansions=[2, 2], stem_width=48, stem_patch=4, head_dim=16,
                window_size=8)
    m = UniNet(arch, out_indices=(0, 1))
    assert m.stem.conv.kernel_size == m.stem.conv.stride == (4, 4)
    assert m.stem.conv.padding == (0, 0) and m.out_strides == [4, 4]
    outs = m(torch.randn(1, 3, 32, 32))
    assert [o.shape for o in outs] == [(1, 48, 8, 8)] * 2
    assert m.stages[0].blocks[0].mixer.num_heads == 3
    assert UniNet('b0').stem.conv.kernel_size == (3, 3)  # default: the released stem
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match='stem_patch'):
            UniNet(dict(arch, stem_patch=bad))


# -- the ablation configs -------------------------------------------------------------------------
def build_cfg_model(path):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    with torch.device('meta'):
        return MODELS.build(Config.fromfile(path).model)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


#: UniNet-B0 without head, as the released code counts it (README, test_converter)
B0_BACKBONE = 9_839_624


def dsm_params(kind, c_in, c_out, s):
    """Hand count of one DSM (models/dsms.py layout)."""
    shortcut = c_in * c_out + c_out
    local = 9 * c_in + c_in + 2 * c_in + c_in * c_out + c_out  # dw 3x3 + bias, BN, pw + bias
    if kind == 'L':
        return shortcut + local
    attn = 2 * c_out + 2 * c_in + 2 * c_in * c_out + 2 * c_out + c_out * c_out + c_out
    if kind == 'LG':
        return shortcut + attn + local
    query = s * s * c_in + c_in + 2 * c_in + c_in * c_out + c_out  # 1-D dw (k = s^2), BN, pw
    return shortcut + attn + query


B0_DSMS = [(24, 48, 2), (48, 80, 2), (80, 128, 2), (128, 128, 1), (128, 256, 2)]


@pytest.mark.parametrize('kind', [pytest.param('l', marks=pytest.mark.slow),
                                  pytest.param('g', marks=pytest.mark.slow), 'lg'])
def test_table6_configs(kind):
    model = build_cfg_model(f'configs/cls/uninet_b0_dsm-{kind}_in1k.py')
    bb = model.backbone
    assert bb.arch['dsms'] == [None] + [kind.upper()] * 5
    preset = ['L', 'L', 'L', 'LG', 'LG']
    expected = B0_BACKBONE + sum(dsm_params(k.upper(), *io) - dsm_params(p, *io)
                                 for k, p, io in zip([kind] * 5, preset, B0_DSMS))
    assert n_params(bb) == expected
    # the rest is B0: same blocks, same head (1280-d, 1000 classes)
    b0 = UniNet('b0', out_indices=(5, ))
    assert [n_params(s.blocks) for s in bb.stages] == [n_params(s.blocks) for s in b0.stages]
    assert n_params(model.head) == 256 * 1280 + 2 * 1280 + 1280 * 1000 + 1000
    if kind != 'l':
        # attention DSMs at B0's narrow widths: 48 -> 2 x 24, 80 -> 2 x 40, then 32-wide heads
        heads = [(bb.stages[i].downsample.num_heads, bb.stages[i].downsample.head_dim)
                 for i in range(1, 6)]
        assert heads == [(2, 24), (2, 40), (4, 32), (4, 32), (8, 32)]


def sa_block(d, e):
    """Hand count of one SA GOP at width d: CPE (dw 3x3 + bias), 2 LN, qkv, proj, FFN, 2 layer
    scales."""
    return 10 * d + 2 * d + (3 * d * d + 3 * d) + (d * d + d) + 2 * d + (e * d * d + e * d) \
        + (e * d * d + d) + 2 * d


def mlp_block(d, e, window):
    t = window * window
    return sa_block(d, e) - (4 * d * d + 4 * d) + 2 * (t * t + t)


def iso_expected(blocks, d=384, e=4, patch=16, window=14, mid=384, classes=1000):
    stem = 3 * patch * patch * d + 2 * d
    head = d * mid + 2 * mid + mid * classes + classes
    body = sum(sa_block(d, e) if b == 'SA' else mlp_block(d, e, window) for b in blocks)
    return stem + body + head


@pytest.mark.parametrize('name,blocks', [
    pytest.param('t12', ['SA'] * 12, marks=pytest.mark.slow),
    pytest.param('m18', ['MLP'] * 18, marks=pytest.mark.slow),
    ('t7-m7', ['SA'] * 7 + ['MLP'] * 7),
    pytest.param('m7-t7', ['MLP'] * 7 + ['SA'] * 7, marks=pytest.mark.slow)])
def test_table1_configs(name, blocks):
    model = build_cfg_model(f'configs/cls/uninet-iso_{name}_in1k.py')
    bb = model.backbone
    assert n_params(model) == iso_expected(blocks)
    got = [type(b).__name__ for s in bb.stages for b in s.blocks]
    assert got == [{'SA': 'SAGOP', 'MLP': 'MLPGOP'}[b] for b in blocks]
    assert all(s.downsample is None for s in bb.stages) and bb.out_strides[-1] == 16
    for s in bb.stages:
        for b in s.blocks:
            if hasattr(b.mixer, 'num_heads'):
                assert (b.mixer.num_heads, b.mixer.head_dim) == (6, 64)


@pytest.mark.slow
def test_table1_t12_flops_by_hand():
    from uninet_mm.utils.flops import count_flops
    model = build_cfg_model('configs/cls/uninet-iso_t12_in1k.py')
    d, e, n, m = 384, 4, 14 * 14, 384
    block = (9 * d * n + 2 * 5 * d * n + 3 * d * d * n + 2 * n * n * d + d * d * n
             + 2 * e * d * d * n)
    stem = 3 * 16 * 16 * d * n + 2 * d * n
    head = d * m * n + 2 * m * n + m * n + m * 1000
    flops, _ = count_flops(model.eval(), (1, 3, 224, 224),
                           forward=lambda mod, x: mod(x, mode='tensor'))
    assert flops == stem + 12 * block + head


def test_table5_conv_only_space():
    from uninet_mm.search.space import build_search_space
    cfg = Config.fromfile('configs/search/uninet_conv_only_space.py')
    space = build_search_space(cfg.search_space.to_dict())
    assert space.size == (2 * 3 * 5 * 5 * 5) ** 5
    import random
    rng = random.Random(0)
    for _ in range(4):
        arch = space.decode(space.sample(rng))
        assert set(arch['gops'][1:]) <= {'Conv', 'DWConv'}
        with torch.device('meta'):
            UniNet(arch)
    # the paper's widths are not rounded away: mult 1.0 keeps B0's widths in every stage
    assert space.decode(space.base_tokens())['widths'] == [24, 48, 80, 128, 128, 256]


def test_search_space_keeps_widths_for_attention():
    from uninet_mm.search.space import SearchSpace
    space = SearchSpace('b0')
    # B0's 48 and 80 with an LG-DSM / SA GOP (were rounded to 64 and 96)
    assert space.stage_width(1, 'SA', 'LG', 1.0) == 48
    assert space.stage_width(2, 'LSA', 'G', 1.0) == 80
    assert SearchSpace('b0', round_attention_widths=True).stage_width(1, 'SA', 'LG', 1.0) == 64


# -- the proxy study's helpers --------------------------------------------------------------------
def test_ablation_study_settings_and_welch():
    import importlib.util
    spec = importlib.util.spec_from_file_location('ablation_study', 'tools/ablation_study.py')
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    base = dict(dsms=[None, 'L', 'L', 'L', 'LG', 'LG'], widths=[1] * 6)
    assert mod.setting_arch(base, 'G')['dsms'] == [None] + ['G'] * 5
    assert mod.setting_arch(base, None)['dsms'] == base['dsms']
    assert base['dsms'] == [None, 'L', 'L', 'L', 'LG', 'LG']  # not modified in place
    # by hand: means 2 and 5, variances 1 and 1: t = -3 / sqrt(1/3 + 1/3), 4 d.o.f.
    t, p = mod.welch_t([1., 2., 3.], [4., 5., 6.])
    assert t == pytest.approx(-3 / math.sqrt(2 / 3))
    if p is not None:
        assert p == pytest.approx(0.02131, abs=2e-4)  # Student t, 4 d.o.f., two-sided
