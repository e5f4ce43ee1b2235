"""Independent references for the operators: every GOP and DSM the backbone builds (through the
``GOPS`` / ``DSMS`` registries) against a naive re-implementation written from the paper's
equations with explicit loops -- windows gathered token by token, attention per window and head
with an explicit softmax, convolutions as sums over kernel taps, BN / LN / GELU / hard-sigmoid
as formulas. Only the *weights* are taken from the module (randomised first, so that no term
hides behind a zero init: layer scales 1e-6, zero projection BN, zero biases).

Each test is aimed at a one-line bug that the shape/finiteness/deploy-agreement tests miss
(issue 18): the LSA padding mask dropped, windows without the ``transpose(2, 3)``, G-DSM padding
at the front of the sequence, one drop-path rate for every block, a wrong SE gate.
"""
import math

import pytest
import torch

from uninet_mm.models import gops as gops_mod
from uninet_mm.models.uninet import UniNet
from uninet_mm.registry import build_dsm, build_gop

pytestmark = pytest.mark.usefixtures('one_thread')

DT = torch.float64  # references and modules in double: differences are bugs, not rounding
TOL = dict(rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------- naive primitives
def randomize(module, seed=0):
    """Every parameter and BN statistic random (and well away from the init values)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) * 0.5)
            if name.endswith(('gamma1', 'gamma2')) or 'norm' in name and name.endswith('weight'):
                p.copy_(1 + torch.rand(p.shape, generator=g, dtype=p.dtype))
        for name, b in module.named_buffers():
            if name.endswith('running_mean'):
                b.copy_(torch.randn(b.shape, generator=g, dtype=b.dtype) * 0.2)
            elif name.endswith('running_var'):
                b.copy_(0.5 + torch.rand(b.shape, generator=g, dtype=b.dtype))
    return module.eval()


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def layer_norm(x, ln):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def batch_norm(x, bn):
    """Eval-mode BN over dim 1 of (B, C, ...)."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return ((x - bn.running_mean.view(shape)) / torch.sqrt(bn.running_var.view(shape) + bn.eps)
            * bn.weight.view(shape) + bn.bias.view(shape))


def linear(x, layer):
    out = x @ layer.weight.t()
    return out + layer.bias if layer.bias is not None else out


def conv2d(x, conv):
    """Naive convolution: one output pixel at a time, one kernel tap at a time."""
    B, C, H, W = x.shape
    weight, groups = conv.weight, conv.groups
    O, Cg, kh, kw = weight.shape
    (sh, sw), (ph, pw) = conv.stride, conv.padding
    Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = torch.zeros(B, O, Ho, Wo, dtype=x.dtype)
    per_group = O // groups
    for i in range(Ho):
        for j in range(Wo):
            for a in range(kh):
                for b in range(kw):
                    y, xx = i * sh + a - ph, j * sw + b - pw
                    if not (0 <= y < H and 0 <= xx < W):
                        continue  # zero padding
                    pix = x[:, :, y, xx].reshape(B, groups, Cg)  # (B, groups, C / groups)
                    w_tap = weight[:, :, a, b].reshape(groups, per_group, Cg)
                    out[:, :, i, j] += (pix[:, :, None, :] * w_tap).sum(-1).reshape(B, O)
    if conv.bias is not None:
        out += conv.bias.view(1, -1, 1, 1)
    return out


def max_pool3x3(x, stride):
    """3x3 max-pool with padding 1 (padding never wins: -inf)."""
    B, C, H, W = x.shape
    Ho, Wo = (H - 1) // stride + 1, (W - 1) // stride + 1
    out = torch.empty(B, C, Ho, Wo, dtype=x.dtype)
    for i in range(Ho):
        for j in range(Wo):
            ys = range(max(0, i * stride - 1), min(H, i * stride + 2))
            xs = range(max(0, j * stride - 1), min(W, j * stride + 2))
            out[:, :, i, j] = torch.stack([x[:, :, y, q] for y in ys for q in xs]).amax(0)
    return out


def attention(q, k, v, num_heads):
    """Multi-head attention with an explicit softmax; q (Nq, C), k and v (Nk, C)."""
    d = q.shape[-1] // num_heads
    heads = []
    for h in range(num_heads):
        sl = slice(h * d, (h + 1) * d)
        logits = q[:, sl] @ k[:, sl].t() / math.sqrt(d)
        weights = torch.exp(logits - logits.max(-1, keepdim=True).values)
        heads.append(weights / weights.sum(-1, keepdim=True) @ v[:, sl])
    return torch.cat(heads, -1)


def windows_of(H, W, w):
    """The windows of an (H, W) map as lists of real (y, x) positions, in the raster order of
    the windows and of the positions inside each window; positions past the map are padding."""
    out = []
    for wy in range(math.ceil(H / w)):
        for wx in range(math.ceil(W / w)):
            out.append([(wy * w + a, wx * w + b) for a in range(w) for b in range(w)])
    return out


def tokens(x):
    """(B, C, H, W) -> {(y, x): (B, C)} of the real positions."""
    return {(i, j): x[:, :, i, j] for i in range(x.shape[2]) for j in range(x.shape[3])}


def token_block(gop, x, mixer):
    """Eq. 2-4: CPE, ``t + g1 * Mix(LN(t))``, ``t + g2 * FFN(LN(t))``, on (B, C, H, W)."""
    x = x + conv2d(x, gop.pos_embed)
    B, C, H, W = x.shape
    t = x.flatten(2).transpose(1, 2)  # raster order
    t = t + gop.gamma1 * mixer(layer_norm(t, gop.norm1), H, W)
    ffn = gop.ffn
    t = t + gop.gamma2 * linear(gelu(linear(layer_norm(t, gop.norm2), ffn.fc1)), ffn.fc2)
    return t.transpose(1, 2).reshape(B, C, H, W)


# ------------------------------------------------------------------------------------ windows
def test_window_partition_contents_and_reverse():
    """Window k holds the w*w tokens of the k-th (row-major) window of the padded map, in raster
    order inside the window; padding is zero; reverse puts every token back."""
    B, H, W, w = 2, 5, 7, 3
    x = torch.arange(1, B * H * W + 1, dtype=DT).view(B, H * W, 1)  # 0 marks padding
    win, padded, pads = gops_mod.window_partition(x, (H, W), w)
    assert padded == (6, 9) and pads == (1, 2)
    expect = []
    for b in range(B):
        for window in windows_of(H, W, w):
            expect.append([b * H * W + y * W + q + 1 if y < H and q < W else 0
                           for y, q in window])
    assert win[..., 0].tolist() == expect
    back = gops_mod.window_reverse(win, (H, W), padded, w)
    assert torch.equal(back, x)


# ---------------------------------------------------------------------------------------- LSA
@pytest.mark.parametrize('H,W', [(6, 7), (8, 7), (6, 8)])   # padded: both sides, W, H only
def test_lsa_gop_matches_naive_masked_window_attention(H, W):
    """LSA on a map with 4x4 windows, padded in both or one direction: each window's real tokens
    attend to the real tokens of the same window only (Eq. 2 per window)."""
    C, w = 16, 4
    gop = randomize(build_gop(dict(type='LSA', in_channels=C, out_channels=C, expansion=2,
                                   head_dim=8, window_size=w)).double())
    mix = gop.mixer
    heads = C // 8      # 16 channels, head_dim 8

    def lsa(t, H, W):
        out = torch.zeros_like(t)
        for b in range(t.shape[0]):
            for window in windows_of(H, W, w):
                idx = [y * W + q for y, q in window if y < H and q < W]
                qkv = linear(t[b, idx], mix.qkv)
                att = attention(qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:], heads)
                out[b, idx] = linear(att, mix.proj)
        return out

    x = torch.randn(2, C, H, W, dtype=DT, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(gop(x), token_block(gop, x, lsa), **TOL)


@pytest.mark.parametrize('c_in', [16, 8])   # 8: a 1x1 convolution to the width first
def test_sa_gop_matches_naive_global_attention(c_in):
    C, H, W = 16, 3, 5
    gop = randomize(build_gop(dict(type='SA', in_channels=c_in, out_channels=C, expansion=2,
                                   head_dim=8)).double())
    mix = gop.mixer

    def sa(t, H, W):
        out = []
        for b in range(t.shape[0]):
            qkv = linear(t[b], mix.qkv)
            out.append(linear(attention(qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:], C // 8),
                              mix.proj))
        return torch.stack(out)

    x = torch.randn(2, c_in, H, W, dtype=DT, generator=torch.Generator().manual_seed(2))
    t = x if c_in == C else conv2d(x, gop.in_proj)
    with torch.no_grad():
        torch.testing.assert_close(gop(x), token_block(gop, t, sa), **TOL)


# ---------------------------------------------------------------------------------------- MLP
def test_mlp_gop_matches_naive_token_mixing():
    """MLP GOP (Eq. 3): inside each (zero-padded) window, per channel, the vector of the w*w
    token values goes through fc1 -> GELU -> fc2; real tokens keep their mixed values."""
    C, H, W, w = 12, 5, 6, 4
    gop = randomize(build_gop(dict(type='MLP', in_channels=C, out_channels=C, expansion=2,
                                   head_dim=8, window_size=w)).double())
    mix = gop.mixer

    def token_mlp(t, H, W):
        out = torch.zeros_like(t)
        for b in range(t.shape[0]):
            for window in windows_of(H, W, w):
                for c in range(C):
                    vec = torch.stack([t[b, y * W + q, c] if y < H and q < W
                                       else t.new_zeros(()) for y, q in window])
                    mixed = linear(gelu(linear(vec, mix.fc1)), mix.fc2)
                    for n, (y, q) in enumerate(window):
                        if y < H and q < W:
                            out[b, y * W + q, c] = mixed[n]
        return out

    x = torch.randn(2, C, H, W, dtype=DT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.testing.assert_close(gop(x), token_block(gop, x, token_mlp), **TOL)


# --------------------------------------------------------------------------------- Conv GOPs
def se_gate(x, se):
    """SE gate: mean over the map, fc1, ReLU, fc2, hard sigmoid ``min(max(z + 3, 0), 6) / 6``."""
    s = x.mean((2, 3))
    z = linear(linear(s, _as_linear(se.fc1)).clamp(min=0), _as_linear(se.fc2))
    return (torch.clamp(z + 3, 0, 6) / 6)[:, :, None, None]


class _as_linear:
    def __init__(self, conv1x1):
        self.weight, self.bias = conv1x1.weight[:, :, 0, 0], conv1x1.bias


@pytest.mark.parametrize('kind', ['DWConv', 'Conv'])
@pytest.mark.parametrize('c_in,c_out', [(8, 8), (8, 12)])
def test_conv_gop_matches_naive(kind, c_in, c_out):
    """Eq. 1: expansion (BN, 1x1, BN, GELU), 3x3 conv (depth-wise or dense), BN, GELU, SE,
    1x1 projection, BN; shortcut identity or max-pool + 1x1 when the width changes."""
    gop = randomize(build_gop(dict(type=kind, in_channels=c_in, out_channels=c_out,
                                   expansion=2)).double())
    x = torch.randn(2, c_in, 5, 6, dtype=DT, generator=torch.Generator().manual_seed(4))
    e = gop.expand
    h = gelu(batch_norm(conv2d(batch_norm(x, e.pre_norm), e.conv), e.norm))
    h = gelu(batch_norm(conv2d(h, gop.conv), gop.norm))
    assert gop.conv.groups == (h.shape[1] if kind == 'DWConv' else 1)
    h = h * se_gate(h, gop.se)
    h = batch_norm(conv2d(h, gop.project), gop.project_norm)
    short = x if c_in == c_out else conv2d(max_pool3x3(x, 1), gop.shortcut.proj)
    with torch.no_grad():
        torch.testing.assert_close(gop(x), short + h, **TOL)


@pytest.mark.parametrize('width,head_dim,heads', [
    (16, 8, 2), (64, 32, 2), (96, 32, 3),
    (24, 16, 2),    # 1 and 2 heads equally far (|16 - 24| = |32 - 24|): the larger wins
    (80, 32, 2),    # the divisor h of 80 with h * 32 closest to 80
])
def test_attention_heads_by_hand(width, head_dim, heads):
    from uninet_mm.models.layers import attention_heads
    assert attention_heads(width, head_dim) == heads


def test_default_head_dim_and_divisor_are_the_papers():
    """Head dimension 32 when none is given (LG/G-DSM, SA/LSA GOPs), multiples of 8."""
    from uninet_mm.models.layers import make_divisible
    assert make_divisible(100) == 104
    assert build_dsm(dict(type='LG', in_channels=32, out_channels=64)).num_heads == 2
    gop = build_gop(dict(type='SA', in_channels=64, out_channels=64, expansion=2))
    assert gop.mixer.num_heads == 2


@pytest.mark.parametrize('build,cfg,hw', [
    (build_gop, dict(type='DWConv', in_channels=8, out_channels=16, expansion=3), (7, 9)),
    (build_gop, dict(type='Conv', in_channels=8, out_channels=8, expansion=2), (7, 9)),
    (build_dsm, dict(type='L', in_channels=8, out_channels=16, head_dim=8), (7, 6)),   # local
    (build_dsm, dict(type='LG', in_channels=8, out_channels=16, head_dim=8), (7, 6)),  # query
])
def test_bn_folding_equals_the_unfolded_module(build, cfg, hw):
    """``fuse_conv_bn`` (the inference form) of a GOP or DSM against the same module with its
    BatchNorms."""
    import copy
    module = randomize(build(cfg).double()).eval()
    fused = copy.deepcopy(module)
    fused.fuse_conv_bn()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, cfg['in_channels'], *hw, dtype=DT,
                    generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        torch.testing.assert_close(fused(x), module(x), **TOL)


@pytest.mark.parametrize('value,divisor,expected', [
    (100, 8, 104),   # 12.5 multiples: halves round up
    (20, 8, 24), (17, 8, 16), (60, 16, 64),
    (3, 8, 8),       # at least one divisor
    (11, 8, 16),     # 8 would lose 27% (> 10%): one divisor more
])
def test_make_divisible_by_hand(value, divisor, expected):
    from uninet_mm.models.layers import make_divisible
    assert make_divisible(value, divisor) == expected


@pytest.mark.parametrize('dsm', ['L', 'LG', 'G'])
def test_dsm_keeps_its_init_cfg(dsm):
    init_cfg = dict(type='Constant', layer='Conv2d', val=0.5)
    m = build_dsm(dict(type=dsm, in_channels=8, out_channels=16, head_dim=8,
                       init_cfg=init_cfg))
    assert m.init_cfg == init_cfg


def test_se_gate_by_hand():
    """Hand-computed gate: 8 channels squeeze to make_divisible(8 // 4, 8) = 8; with fc1 = I,
    fc2 = 2 I, zero biases, a channel of mean m gets gate hardsigmoid(2 relu(m))."""
    from uninet_mm.models.layers import SqueezeExcite
    se = SqueezeExcite(8).double()
    assert se.fc1.out_channels == 8
    with torch.no_grad():
        se.fc1.weight.copy_(torch.eye(8, dtype=DT)[:, :, None, None])
        se.fc2.weight.copy_(2 * torch.eye(8, dtype=DT)[:, :, None, None])
        se.fc1.bias.zero_()
        se.fc2.bias.zero_()
    means = torch.tensor([-1., 0., 0.3, 0.75, 1., 1.5, 2., 5.], dtype=DT)
    x = means.view(1, 8, 1, 1).expand(1, 8, 2, 3).clone()
    x[:, :, 0, 0] += 1
    x[:, :, 1, 2] -= 1  # same means
    #            relu(m) * 2 =  0    0    0.6     1.5     2       3  4  10
    gate = torch.tensor([.5, .5, 3.6 / 6, 4.5 / 6, 5 / 6, 1, 1, 1], dtype=DT)
    with torch.no_grad():
        torch.testing.assert_close(se(x), x * gate.view(1, 8, 1, 1), **TOL)


# ---------------------------------------------------------------------------------------- DSMs
def attention_dsm(dsm, x, queries, q_shape):
    """Fig. 3b/c: LN(queries) attend over LN(all input tokens); projection; + shortcut."""
    B = x.shape[0]
    kv_tokens = x.flatten(2).transpose(1, 2)
    C = dsm.proj.out_features
    out = []
    for b in range(B):
        kv = linear(layer_norm(kv_tokens[b], dsm.kv_norm), dsm.kv)
        q = layer_norm(queries[b], dsm.q_norm)
        out.append(linear(attention(q, kv[:, :C], kv[:, C:], dsm.num_heads), dsm.proj))
    out = torch.stack(out).transpose(1, 2).reshape(B, C, *q_shape)
    return out + conv2d(max_pool3x3(x, dsm.stride), dsm.shortcut.proj)


def test_lg_dsm_query_placement():
    """LG-DSM: query (i, j) is the strided depth-wise 3x3 conv centred on input pixel
    (s*i, s*j) (then BN and 1x1), i.e. it comes from the 2-D neighbourhood of that pixel."""
    c_in, c_out, H, W, s = 8, 16, 7, 6, 2
    dsm = randomize(build_dsm(dict(type='LG', in_channels=c_in, out_channels=c_out, stride=s,
                                   head_dim=8)).double())
    x = torch.randn(2, c_in, H, W, dtype=DT, generator=torch.Generator().manual_seed(5))
    Hq, Wq = math.ceil(H / s), math.ceil(W / s)
    dw = dsm.query.dw_conv
    queries = torch.zeros(2, Hq * Wq, c_in, dtype=DT)
    for i in range(Hq):
        for j in range(Wq):
            acc = dw.bias.clone().expand(2, c_in).clone()
            for a in (-1, 0, 1):
                for b in (-1, 0, 1):
                    y, q = s * i + a, s * j + b
                    if 0 <= y < H and 0 <= q < W:
                        acc += x[:, :, y, q] * dw.weight[:, 0, a + 1, b + 1]
            queries[:, i * Wq + j] = acc
    norm = dsm.query.norm
    queries = (queries - norm.running_mean) / torch.sqrt(norm.running_var + norm.eps) * \
        norm.weight + norm.bias
    queries = linear(queries, _as_linear(dsm.query.pw_conv))
    with torch.no_grad():
        torch.testing.assert_close(dsm(x), attention_dsm(dsm, x, queries, (Hq, Wq)), **TOL)


def test_g_dsm_query_placement_pads_at_the_back():
    """G-DSM: query i is the depth-wise 1-D conv (kernel = stride = s^2) over raster tokens
    i*s^2 .. i*s^2 + s^2 - 1 of the flattened map; the sequence is zero-padded at its END up to
    Nq * s^2 (5x5 map, s = 2: 25 tokens, 9 queries, 11 zeros after token 24)."""
    c_in, c_out, H, W, s = 8, 16, 5, 5, 2
    dsm = randomize(build_dsm(dict(type='G', in_channels=c_in, out_channels=c_out, stride=s,
                                   head_dim=8)).double())
    x = torch.randn(2, c_in, H, W, dtype=DT, generator=torch.Generator().manual_seed(6))
    Hq, Wq = math.ceil(H / s), math.ceil(W / s)
    k = s * s
    raster = [x[:, :, n // W, n % W] for n in range(H * W)]  # token n = pixel (n // W, n % W)
    dw = dsm.query.dw_conv
    queries = torch.zeros(2, Hq * Wq, c_in, dtype=DT)
    for i in range(Hq * Wq):
        acc = dw.bias.clone().expand(2, c_in).clone()
        for t in range(k):
            n = i * k + t
            if n < H * W:  # past the end: zero padding
                acc += raster[n] * dw.weight[:, 0, t]
        queries[:, i] = acc
    queries = batch_norm(queries.transpose(1, 2), dsm.query.norm).transpose(1, 2)
    pw = dsm.query.pw_conv
    queries = queries @ pw.weight[:, :, 0].t() + pw.bias
    with torch.no_grad():
        torch.testing.assert_close(dsm(x), attention_dsm(dsm, x, queries, (Hq, Wq)), **TOL)


@pytest.mark.parametrize('s', [2, 1])   # stride 1 (the demo's stage 5): no pooled shortcut
def test_l_dsm_matches_naive(s):
    c_in, c_out, H, W = 8, 12, 7, 6
    dsm = randomize(build_dsm(dict(type='L', in_channels=c_in, out_channels=c_out, stride=s,
                                   head_dim=8)).double())
    x = torch.randn(2, c_in, H, W, dtype=DT, generator=torch.Generator().manual_seed(7))
    loc = dsm.local
    ref = conv2d(batch_norm(conv2d(x, loc.dw_conv), loc.norm), loc.pw_conv)
    ref = ref + conv2d(max_pool3x3(x, s) if s > 1 else x, dsm.shortcut.proj)
    with torch.no_grad():
        torch.testing.assert_close(dsm(x), ref, **TOL)


# ---------------------------------------------------------------------------------- drop path
def test_drop_path_schedule_is_linear_over_all_blocks():
    """Stochastic depth: block k of N (over all stages) gets rate ``rate * k / (N - 1)``."""
    arch = dict(gops=['DWConv', 'LSA', 'MLP'], dsms=[None, 'L', 'G'], strides=[1, 2, 2],
                widths=[8, 16, 16], repeats=[2, 3, 2], expansions=[1, 2, 2], stem_width=8,
                head_dim=8, window_size=4)
    with torch.device('meta'):
        model = UniNet(arch, out_indices=(2,), drop_path_rate=0.3)
    blocks = [b for stage in model.stages for b in stage.blocks]
    rates = [b.drop_path.drop_prob for b in blocks]
    assert rates == pytest.approx([0.3 * k / 6 for k in range(7)], abs=1e-7)


def test_drop_path_drops_whole_samples_and_rescales():
    """Train mode: each sample is either dropped (0) or kept and scaled by 1 / keep_prob;
    the share kept is keep_prob (binomial, 5 sigma); eval mode: identity."""
    from uninet_mm.models.layers import DropPath
    p, n = 0.25, 20000
    dp = DropPath(p).train()
    torch.manual_seed(0)
    x = torch.rand(n, 3, 2, 2) + 0.5
    y = dp(x).flatten(1)
    x = x.flatten(1)
    kept, dropped = (y != 0).all(1), (y == 0).all(1)
    assert (kept ^ dropped).all()  # one decision per sample
    torch.testing.assert_close(y[kept], x[kept] / (1 - p), rtol=1e-6, atol=0)
    share = kept.double().mean().item()
    assert abs(share - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    assert torch.equal(dp.eval()(x), x)


# ------------------------------------------------------------------------- complexity by hand
def test_params_and_flops_of_a_tiny_arch_by_hand():
    """Stem (3 -> 8, 3x3/2), a DWConv block (8, expansion 1), an L-DSM (8 -> 16, /2) and an SA
    block (16, 2 heads of 8, expansion 2) on an 8x8 image: maps 4x4, then 2x2 (4 tokens).
    FLOPs are multiply-adds with the counter's convention (uninet_mm/utils/flops.py): BN in eval
    2 per element, LN 5 per element, mean 1 per input element, attention two products
    ``heads * N * N * d``, element-wise ops 0; biases are parameters but no FLOPs."""
    from uninet_mm.utils.flops import count_flops
    arch = dict(gops=['DWConv', 'SA'], dsms=[None, 'L'], strides=[1, 2], widths=[8, 16],
                repeats=[1, 1], expansions=[1, 2], stem_width=8, head_dim=8, window_size=4)
    model = UniNet(arch, out_indices=(1,)).eval()
    a, n = 16, 4                      # pixels of the 4x4 and 2x2 maps
    bn = lambda c, px: 2 * c * px     # noqa: E731
    ln = lambda c, px: 5 * c * px     # noqa: E731
    stem = dict(params=3 * 8 * 9 + 2 * 8, flops=8 * a * 3 * 9 + bn(8, a))
    se_width = 8                      # make_divisible(8 // 4, 8)
    dwconv = dict(params=8 * 9 + 2 * 8 + 2 * (8 * se_width + se_width) + (8 * 8 + 8) + 2 * 8,
                  flops=8 * a * 9 + bn(8, a) + 8 * a + 2 * 8 * se_width + 8 * 8 * a + bn(8, a))
    ldsm = dict(params=(8 * 9 + 8) + 2 * 8 + (8 * 16 + 16) + (8 * 16 + 16),
                flops=8 * n * 9 + bn(8, n) + 16 * 8 * n + 16 * 8 * n)
    sa = dict(params=(16 * 9 + 16) + 2 * 2 * 16 + (16 * 48 + 48) + (16 * 16 + 16)
              + (16 * 32 + 32) + (32 * 16 + 16) + 2 * 16,
              flops=16 * n * 9 + 2 * ln(16, n) + n * 16 * 48 + 2 * (2 * n * n * 8)
              + n * 16 * 16 + n * 16 * 32 + n * 32 * 16)
    parts = (stem, dwconv, ldsm, sa)
    assert sum(p.numel() for p in model.parameters()) == sum(p['params'] for p in parts)
    flops, params = count_flops(model, (1, 3, 8, 8))
    assert params == sum(p['params'] for p in parts) == 3352
    assert flops == sum(p['flops'] for p in parts) == 17952
