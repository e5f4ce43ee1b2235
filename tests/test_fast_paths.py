"""Fast inference paths give the plain path's outputs (issue: performance): BatchNorm folded
into convolutions, channels_last memory, the deployed form (oneDNN kernels, folded layer scale
and SE gate), torch.compile; on odd, non-square sizes."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from uninet_mm.models import UniNet, deploy_ops
from uninet_mm.models.deploy import DeployedConvGOP, DeployedTokenGOP
from uninet_mm.models.gops import TokenGOP

# every GOP and DSM, so every fuse_conv_bn() method is exercised
MIXED_ARCH = dict(gops=['DWConv', 'Conv', 'SA', 'LSA', 'MLP', 'SA'],
                  dsms=[None, 'L', 'G', 'LG', 'G', 'LG'],
                  widths=[16, 32, 64, 64, 96, 128], repeats=[1, 2, 1, 2, 1, 1],
                  expansions=[1, 2, 3, 2, 2, 2])


def randomised(arch):
    torch.manual_seed(0)
    model = UniNet(arch, out_indices=(0, 1, 2, 3, 4, 5))
    for m in model.modules():  # BN with non-trivial statistics, so folding is really tested
        if isinstance(m, _BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
        if isinstance(m, TokenGOP):  # layer scales of a trained model, not the 1e-6 init
            m.gamma1.data.uniform_(0.2, 0.6)
            m.gamma2.data.uniform_(0.2, 0.6)
        if isinstance(m, torch.nn.Linear) and m.bias is not None:  # not the zero init
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def assert_same(ref, out):
    assert len(ref) == len(out)
    for a, b in zip(ref, out):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('arch', ['b0', MIXED_ARCH])
@pytest.mark.parametrize('size', [(67, 101), (33, 32)])
def test_fused_and_channels_last_match_plain(arch, size):
    model = randomised(arch)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = model(x)
        fused = copy.deepcopy(model).fuse_conv_bn()
        assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
        assert_same(ref, fused(x))
        fast = fused.to(memory_format=torch.channels_last)
        assert_same(ref, fast(x.contiguous(memory_format=torch.channels_last)))
        assert_same(ref, fused.fuse_conv_bn()(x))  # idempotent


def test_fuse_conv_bn_changes_outputs_if_bn_ignored():
    """Guard that the comparison above can fail: dropping BN without folding it differs."""
    model = randomised('b0')
    x = torch.randn(1, 3, 64, 64)
    broken = copy.deepcopy(model)
    broken.stem.norm = torch.nn.Identity()
    with torch.no_grad():
        assert not torch.allclose(model(x)[-1], broken(x)[-1], atol=1e-3)


@pytest.mark.slow
def test_compile_fullgraph_matches_plain(monkeypatch):
    monkeypatch.setattr(deploy_ops, 'ONEDNN_ATTENTION_MIN', 0)  # the custom op, compiled
    model = randomised(MIXED_ARCH)
    x = torch.randn(1, 3, 67, 101)
    compiled = torch.compile(copy.deepcopy(model).fuse_conv_bn(), fullgraph=True)
    deployed = torch.compile(copy.deepcopy(model).switch_to_deploy(), fullgraph=True)
    with torch.no_grad():
        assert_same(model(x), compiled(x))
        assert_same(model(x), deployed(x))


@pytest.mark.parametrize('arch', ['b0', MIXED_ARCH])
@pytest.mark.parametrize('size', [(67, 101), (33, 32)])
def test_deploy_matches_plain(arch, size, monkeypatch):
    # every attention on the oneDNN kernel, also the small ones of these small inputs
    monkeypatch.setattr(deploy_ops, 'ONEDNN_ATTENTION_MIN', 0)
    model = randomised(arch)
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        ref = model(x)
        deployed = copy.deepcopy(model).switch_to_deploy()
        out = deployed(x)
        out_cl = deployed(x.contiguous(memory_format=torch.channels_last))
    assert_same(ref, out)
    assert_same(ref, out_cl)
    # the outputs keep the input's layout (channels_last stays inside the backbone)
    assert all(o.is_contiguous() for o in out)
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in out_cl)
    assert not any(isinstance(m, _BatchNorm) for m in deployed.modules())
    for m in deployed.modules():
        if isinstance(m, DeployedTokenGOP):
            assert not hasattr(m, 'gamma2')  # layer scale folded into the FFN's fc2
    with torch.no_grad():
        assert_same(ref, deployed.switch_to_deploy()(x))  # idempotent


def test_deploy_outside_onednn_conditions_falls_back():
    """With autograd on (or on another device) the deployed blocks use the standard ops: same
    outputs, and gradients flow."""
    model = randomised(MIXED_ARCH)
    x = torch.randn(1, 3, 45, 61, requires_grad=True)
    with torch.no_grad():
        ref = model(x)
    deployed = copy.deepcopy(model).switch_to_deploy()
    out = deployed(x)
    assert_same(ref, out)
    sum(o.sum() for o in out).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.skipif(not deploy_ops.HAS_ONEDNN, reason='this torch has no oneDNN')
@pytest.mark.parametrize('nq, nk', [(700, 700), (190, 760), (513, 1025)])
def test_onednn_attention_matches_sdpa(nq, nk, monkeypatch):
    monkeypatch.setattr(deploy_ops, 'ATTENTION_CHUNK', 128)  # several chunks, a partial last
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, nq, 32), torch.randn(2, 3, nk, 32), torch.randn(2, 3, nk, 32)
    with torch.no_grad():
        assert deploy_ops.onednn_applies(q)
        out = deploy_ops.attention(q * 3, k, v)  # peaked softmax: a wrong scale would show
        ref = F.scaled_dot_product_attention(q * 3, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_deploy_kernels_match_layers():
    """The fused conv+GELU, linear+GELU and gated 1x1 kernels against the layers they fuse."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(16, 16, 3, 2, 1, groups=16)
    dense = torch.nn.Conv2d(16, 24, 1)
    lin = torch.nn.Linear(16, 40)
    x = torch.randn(2, 16, 37, 23).contiguous(memory_format=torch.channels_last)
    gate = torch.rand(2, 16, 1, 1)
    t = torch.randn(2, 300, 16)
    with torch.no_grad():
        torch.testing.assert_close(deploy_ops.conv2d(x, conv, gelu=True), F.gelu(conv(x)))
        torch.testing.assert_close(deploy_ops.conv2d(x, dense), dense(x))
        torch.testing.assert_close(deploy_ops.gated_conv1x1(x, gate, dense), dense(x * gate))
        torch.testing.assert_close(deploy_ops.linear(t, lin, gelu=True), F.gelu(lin(t)))


def test_deployed_backbone_refuses_training():
    model = UniNet('b0').switch_to_deploy()
    with pytest.raises(RuntimeError, match='inference form.*build the model again'):
        model.train()
    model.eval()  # evaluation mode stays allowed
    assert isinstance(model.stages[1].blocks[0], DeployedConvGOP) and model.deploy



@pytest.mark.skipif(not deploy_ops.HAS_ONEDNN_BF16, reason='no oneDNN bf16 on this CPU')
@pytest.mark.parametrize('arch', ['b0', MIXED_ARCH])
def test_deploy_under_bf16_autocast_is_as_accurate_as_stock_bf16(arch, monkeypatch):
    """Under CPU bf16 autocast the deployed kernels compute in bf16; their error against fp32
    stays at the level of PyTorch's own bf16 autocast."""
    monkeypatch.setattr(deploy_ops, 'ONEDNN_ATTENTION_MIN', 0)
    model = randomised(arch)
    deployed = copy.deepcopy(model).switch_to_deploy()
    x = torch.randn(2, 3, 67, 101)

    def rel_err(outs, ref):
        return max(((o.float() - r).abs().max() / r.abs().max()).item()
                   for o, r in zip(outs, ref))

    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            assert deploy_ops.kernel_dtype(x) == torch.bfloat16
            stock, fast = model(x), deployed(x)
    assert any(o.dtype == torch.bfloat16 for o in fast)  # really computed in bf16
    assert rel_err(fast, ref) <= 2 * rel_err(stock, ref) + 1e-3
