"""Memory-efficient training kernels (issue 14) against the plain PyTorch composition
(``nn.BatchNorm2d`` then ``nn.GELU`` under autograd) as the independent reference: outputs,
gradients, updated weights and BN running statistics equal within 1e-5 (fp32) on odd sizes;
less is kept for backward; the modules, their names and state-dict keys are unchanged."""
import copy

import pytest
import torch
import torch.nn as nn

from uninet_mm.apis import load_tool, randomize_
from uninet_mm.models import UniNet, train_ops
from uninet_mm.models.layers import SqueezeExcite
from uninet_mm.models.train_ops import (
    BNGELUFunction,
    GatedConvFunction,
    bn_gelu,
    memory_efficient_training,
    se_conv,
)
from uninet_mm.utils.memory import saved_tensor_bytes

pytestmark = pytest.mark.usefixtures('one_thread')

TOL = dict(rtol=1e-5, atol=1e-5)


saved_bytes = saved_tensor_bytes  # the instrument, shared with the benchmark's --kept


def plain_pair(bn):
    return nn.Sequential(bn, nn.GELU(approximate='none'))


@pytest.mark.parametrize('kind', ['2d', '2d_channels_last', '1d', 'cumulative', 'no_affine',
                                  'no_stats', 'tanh'])
def test_bn_gelu_matches_plain_modules(kind):
    torch.manual_seed(0)
    one_d = kind == '1d'
    bn = (nn.BatchNorm1d if one_d else nn.BatchNorm2d)(
        5, momentum=None if kind == 'cumulative' else 0.1, affine=kind != 'no_affine',
        track_running_stats=kind != 'no_stats')
    if bn.affine:
        with torch.no_grad():
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    act = nn.GELU(approximate='tanh' if kind == 'tanh' else 'none')
    ref_bn, ref_act = copy.deepcopy(bn), copy.deepcopy(act)
    shape = (3, 5, 37) if one_d else (2, 5, 13, 7)
    for step in range(3):  # running statistics over several batches
        x = (torch.randn(*shape) * 2 + 1).requires_grad_()
        if kind == '2d_channels_last':
            x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        g = torch.randn(*shape)
        out = bn_gelu(bn, act, x)
        assert out.grad_fn is not None and 'BNGELUFunction' in type(out.grad_fn).__name__
        ref = ref_act(ref_bn(x_ref))
        torch.testing.assert_close(out, ref, **TOL)
        out.backward(g)
        ref.backward(g)
        torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
        if bn.affine:
            torch.testing.assert_close(bn.weight.grad, ref_bn.weight.grad, **TOL)
            torch.testing.assert_close(bn.bias.grad, ref_bn.bias.grad, **TOL)
        for a, b in zip(bn.buffers(), ref_bn.buffers()):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
        if kind == '2d_channels_last':
            assert x.grad.is_contiguous(memory_format=torch.channels_last)


def test_bn_gelu_keeps_only_its_input():
    torch.manual_seed(0)
    bn, act = nn.BatchNorm2d(8), nn.GELU()
    x = torch.randn(2, 8, 32, 32, requires_grad=True)
    map_bytes = x.numel() * 4
    _, fused = saved_bytes(lambda: bn_gelu(bn, act, x))
    with memory_efficient_training(False):
        _, plain = saved_bytes(lambda: bn_gelu(bn, act, x))
    assert plain >= 2 * map_bytes        # BN input and BN output
    assert map_bytes <= fused < 1.1 * map_bytes  # the input (+ per-channel statistics)


def test_bn_gelu_falls_back_where_not_exact(monkeypatch):
    bn, act = nn.BatchNorm2d(4), nn.GELU()
    x = torch.randn(2, 4, 5, 3, requires_grad=True)

    def refuse(*args):
        raise AssertionError('fused path taken')

    monkeypatch.setattr(BNGELUFunction, 'apply', refuse)
    bn.eval()
    torch.testing.assert_close(bn_gelu(bn, act, x), act(bn(x)))       # eval: running stats
    bn.train()
    with torch.no_grad():
        bn_gelu(bn, act, x)                                              # no gradient
    with torch.autocast('cpu', dtype=torch.bfloat16):
        bn_gelu(bn, act, x)                                              # autocast
    with memory_efficient_training(False):
        bn_gelu(bn, act, x)
    calls = []
    h = bn.register_forward_hook(lambda *a: calls.append(1))
    bn_gelu(bn, act, x)                                                  # hooks still run
    h.remove()
    assert calls == [1]
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        bn_gelu(bn, act, torch.randn(1, 4, 1, 1, requires_grad=True))   # the module's error
    sync = nn.SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(bn))[0]
    assert not train_ops._fused_applies(sync, act, x)


@pytest.mark.parametrize('channels_last', [False, True])
def test_se_conv_matches_plain_modules(channels_last):
    torch.manual_seed(0)
    se, conv = SqueezeExcite(24), nn.Conv2d(24, 7, 1)
    ref_se, ref_conv = copy.deepcopy(se), copy.deepcopy(conv)
    x = torch.randn(2, 24, 13, 9)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    out, fused = saved_bytes(lambda: se_conv(se, conv, x))
    assert 'GatedConvFunction' in type(out.grad_fn).__name__
    ref, plain = saved_bytes(lambda: ref_conv(ref_se(x_ref)))
    assert fused < plain - 0.9 * x.numel() * 4   # the gated map is not kept
    torch.testing.assert_close(out, ref, **TOL)
    g = torch.randn_like(out)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, x_ref.grad, **TOL)
    for (name, p), q in zip([*se.named_parameters(), *conv.named_parameters()],
                            [*ref_se.parameters(), *ref_conv.parameters()]):
        torch.testing.assert_close(p.grad, q.grad, **TOL, msg=name)


def test_se_conv_falls_back_where_not_exact(monkeypatch):
    se, conv = SqueezeExcite(8), nn.Conv2d(8, 4, 1)
    x = torch.randn(2, 8, 5, 3, requires_grad=True)
    monkeypatch.setattr(GatedConvFunction, 'apply',
                        lambda *a: (_ for _ in ()).throw(AssertionError('fused path taken')))
    with torch.no_grad():
        se_conv(se, conv, x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        se_conv(se, conv, x)
    with memory_efficient_training(False):
        se_conv(se, conv, x)
    h = conv.register_forward_hook(lambda *a: None)
    se_conv(se, conv, x)
    h.remove()


#: biases followed (through a linear map) by a training-mode BatchNorm: the BN subtracts them
#: again, so their exact gradient is 0 and the computed one is rounding noise of either path
CANCELLED_BY_BN = ('.project.bias', '.local.dw_conv.bias', '.query.dw_conv.bias',
                   '.expand.pre_norm.bias')


def assert_close_relative(a, b, msg=None):
    """Equal within 1e-5 relative, norm-wise (``|a - b| <= 1e-5 |b|``), and every element within
    1e-4 of the tensor's largest value: rounding differences of a deep backward pass (and of
    weights one SGD step later) scale with the largest values that flow through it."""
    if not b.is_floating_point():
        assert torch.equal(a, b), msg
        return
    assert (a - b).norm() <= 1e-5 * b.norm() + 1e-12, (msg, ((a - b).norm() / b.norm()).item())
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4 * b.abs().max().item(),
                               msg=lambda m: f'{msg}: {m}')


def train_steps(model, inputs, weights, params_before=None):
    """SGD steps (momentum, weight decay) on a weighted sum of the outputs, one per input;
    returns the outputs and gradients of every step. ``params_before(i)``, if given, returns
    the parameters to start step ``i`` from (the reference's, so that rounding differences of
    one step do not compound into the next)."""
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9, weight_decay=1e-4)
    record = []
    for i, x in enumerate(inputs):
        if params_before is not None:
            with torch.no_grad():
                for p, q in zip(model.parameters(), params_before(i)):
                    p.copy_(q)
        opt.zero_grad(set_to_none=True)
        outs = model(x)
        loss = sum((o * w).sum() for o, w in zip(outs, weights))
        loss.backward()
        record.append(([o.detach() for o in outs],
                       {n: p.grad.clone() for n, p in model.named_parameters()}))
        opt.step()
    return record


@pytest.mark.parametrize('arch,with_cp', [('b0', False), ('small', False), ('small', True)])
def test_uninet_training_matches_plain_path(arch, with_cp, small_arch):
    torch.manual_seed(0)
    model = UniNet(small_arch if arch == 'small' else arch, out_indices=(0, 1, 2, 3, 4, 5),
                   with_cp=with_cp, drop_path_rate=0.)
    randomize_(model, generator=torch.Generator().manual_seed(1))
    model.train()
    plain = copy.deepcopy(model)
    inputs = [torch.randn(2, 3, 67, 101), torch.randn(2, 3, 67, 101)]
    inputs = [x.requires_grad_() for x in inputs] if with_cp else inputs
    with torch.no_grad():
        weights = [torch.randn_like(o) for o in model(inputs[0])]
    model.load_state_dict(plain.state_dict())  # undo that forward's statistics update
    with memory_efficient_training(False):
        snapshots = []
        plain_rec = train_steps(plain, inputs, weights, lambda i: snapshots.append(
            [p.detach().clone() for p in plain.parameters()]) or plain.parameters())
    fused_rec = train_steps(model, inputs, weights, lambda i: snapshots[i])
    for (out_f, grad_f), (out_p, grad_p) in zip(fused_rec, plain_rec):
        for a, b in zip(out_f, out_p):
            assert_close_relative(a, b)
        assert grad_f.keys() == grad_p.keys()
        largest = max(g.abs().max() for g in grad_p.values())
        for n in grad_p:
            if n.endswith(CANCELLED_BY_BN):  # exact gradient 0: both are rounding noise
                assert grad_f[n].abs().max() <= 1e-6 * largest, n
                assert grad_p[n].abs().max() <= 1e-6 * largest, n
            else:
                assert_close_relative(grad_f[n], grad_p[n], msg=n)
    sd_f, sd_p = model.state_dict(), plain.state_dict()
    assert list(sd_f) == list(sd_p)
    for k in sd_p:  # updated weights and BN running statistics
        assert_close_relative(sd_f[k], sd_p[k], msg=k)


def test_uninet_keeps_less_and_modules_unchanged(small_arch):
    torch.manual_seed(0)
    model = UniNet('b0').train()
    x = torch.randn(1, 3, 96, 128)
    params = list(model.parameters())
    _, fused = saved_bytes(lambda: model(x), params)
    with memory_efficient_training(False):
        _, plain = saved_bytes(lambda: model(x), params)
    assert fused < 0.8 * plain   # activations kept for backward
    # the training path's modules and keys: plain BatchNorm2d / GELU where they were
    assert type(model.stem.norm) is nn.BatchNorm2d and type(model.stem.act) is nn.GELU
    block = model.stages[1].blocks[0]
    assert type(block.expand.norm) is nn.BatchNorm2d and type(block.norm) is nn.BatchNorm2d
    keys = set(model.state_dict())
    assert {'stem.conv.weight', 'stem.norm.running_var', 'stem.norm.num_batches_tracked',
            'stages.1.blocks.0.expand.pre_norm.weight', 'stages.1.blocks.0.expand.conv.weight',
            'stages.1.blocks.0.expand.norm.running_mean', 'stages.1.blocks.0.norm.weight'} <= keys
    # SyncBN conversion finds every BatchNorm; the converted model trains (plain path)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    synced = nn.SyncBatchNorm.convert_sync_batchnorm(copy.deepcopy(model))
    assert sum(isinstance(m, nn.SyncBatchNorm) for m in synced.modules()) == n_bn
    # eval mode: the inference path is unchanged (no fused function)
    model.eval()
    with torch.no_grad():
        ref = model(x)
    with memory_efficient_training(False), torch.no_grad():
        for a, b in zip(ref, model(x)):
            assert torch.equal(a, b)


def test_benchmark_plain_train_switch_reaches_the_measurement():
    """``benchmark_backbones.py --plain-train`` must hold the switch while it measures: the
    plain path keeps more for backward than the memory-efficient one (B0, 64x96)."""
    bench = load_tool('benchmark_backbones')
    kept, threads = {}, torch.get_num_threads()
    for extra in ([], ['--plain-train']):
        args = bench.parse_args(['--models', 'uninet_b0', '--shape', '64', '96', '--modes',
                                 'forward_backward', '--iters', '1', '--warmup', '0',
                                 '--threads', '1', '--kept', *extra])
        kept[bool(extra)] = bench.run_one('uninet_b0', args)['forward_backward'][
            'kept_for_backward_mb']
        assert train_ops._ENABLED == dict.fromkeys(train_ops.FUNCTIONS, True)  # restored
    torch.set_num_threads(threads)
    model, x = UniNet('b0'), torch.randn(1, 3, 64, 96)
    params = list(model.parameters())
    _, fused = saved_bytes(lambda: model(x), params)
    with memory_efficient_training(False):
        _, plain = saved_bytes(lambda: model(x), params)
    assert plain > fused * 1.1
    assert kept[False] == pytest.approx(fused / 2**20)
    assert kept[True] == pytest.approx(plain / 2**20)
