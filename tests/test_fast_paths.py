"""Fast inference paths give the plain path's outputs (issue: performance): BatchNorm folded
into convolutions, channels_last memory, torch.compile; on odd, non-square sizes."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from uninet_mm.models import UniNet

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
def test_compile_fullgraph_matches_plain():
    model = randomised(MIXED_ARCH)
    x = torch.randn(1, 3, 67, 101)
    compiled = torch.compile(copy.deepcopy(model).fuse_conv_bn(), fullgraph=True)
    with torch.no_grad():
        assert_same(model(x), compiled(x))
