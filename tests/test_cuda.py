"""The backbone on a CUDA device (run by tools/gpu_check.sh where a GPU is lent): outputs and
gradients equal the CPU's, the deployed form equals the plain one on the GPU, AMP stays close to
fp32. Skipped, with the reason printed, where torch sees no CUDA device."""
import copy

import pytest
import torch

from uninet_mm.models import UniNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason='needs a CUDA device (none visible to torch here)')

#: every GOP and DSM in one small arch
ARCH = dict(gops=['DWConv', 'Conv', 'LSA', 'MLP', 'SA', 'SA'],
            dsms=[None, 'L', 'LG', 'G', 'LG', 'L'], strides=[1, 2, 2, 2, 1, 2],
            widths=[16, 24, 32, 48, 48, 64], repeats=[1, 1, 2, 1, 1, 1],
            expansions=[1, 2, 2, 2, 2, 2], stem_width=16, head_dim=16, window_size=4)


@pytest.fixture(autouse=True)
def exact_fp32():
    """No TF32 in matmuls and convolutions, so the GPU's fp32 is comparable with the CPU's."""
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def build(arch):
    torch.manual_seed(0)
    return UniNet(arch, out_indices=(0, 1, 2, 3, 4, 5))


@pytest.mark.parametrize('arch', ['b0', ARCH])
def test_train_step_on_gpu_equals_cpu(arch):
    cpu = build(arch).train()
    gpu = copy.deepcopy(cpu).cuda()
    x = torch.randn(2, 3, 67, 101)
    loss_cpu = sum(o.square().mean() for o in cpu(x))
    loss_gpu = sum(o.square().mean() for o in gpu(x.cuda()))
    loss_cpu.backward()
    loss_gpu.backward()
    torch.testing.assert_close(loss_gpu.cpu(), loss_cpu, rtol=1e-4, atol=1e-5)
    for (name, p), q in zip(cpu.named_parameters(), gpu.parameters()):
        assert q.grad is not None, name
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-5, msg=name)
    for (name, b), c in zip(cpu.named_buffers(), gpu.buffers()):
        torch.testing.assert_close(c.cpu(), b, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize('arch', ['b0', ARCH])
def test_deployed_on_gpu_equals_plain(arch):
    model = build(arch).cuda().eval()
    x = torch.randn(2, 3, 67, 101, device='cuda')
    with torch.no_grad():
        ref = model(x)
        deployed = copy.deepcopy(model)
        deployed.switch_to_deploy()
        out = deployed(x)
    for a, b in zip(ref, out):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)


def test_amp_forward_close_to_fp32():
    model = build('b1').cuda().eval()
    x = torch.randn(1, 3, 256, 320, device='cuda')
    with torch.no_grad():
        ref = model(x)
        with torch.autocast('cuda', dtype=torch.float16):
            out = model(x)
    for a, b in zip(ref, out):
        assert torch.isfinite(b).all()
        rel = (b.float() - a).norm() / a.norm()
        assert rel < 2e-2, float(rel)
