"""Training kernels that keep less for backward: the values, gradients and BatchNorm running
statistics of the plain modules, with fewer activations held between forward and backward.

``bn_gelu(norm, act, x)`` is ``act(norm(x))`` for a BatchNorm followed by a GELU (the stem and
the convolution GOPs, Eq. 1). Plain autograd keeps two maps per pair: the BN input (for the BN
backward) and the BN output (for the GELU backward). :class:`BNGELUFunction` keeps only the BN
input and the per-channel batch statistics and recomputes the normalised map in backward, one
cheap elementwise pass (as InPlace-ABN, Rota Bulo et al. 2018, and timm's memory-efficient
activations). The modules stay the ``nn.BatchNorm2d`` and ``nn.GELU`` of the training path, with
their names and state-dict keys, so checkpoints, SyncBN conversion and ``norm_eval`` see them as
before; where the fused function does not apply exactly (eval mode, no gradient, another norm
class such as SyncBatchNorm, hooks on the modules, autocast, ``torch.compile`` tracing) the plain
composition runs.
"""
import contextlib

import torch
import torch.nn as nn
from torch.autograd.function import once_differentiable

_aten = torch.ops.aten
#: the functions of this module, each on unless turned off by :func:`memory_efficient_training`
FUNCTIONS = ('bn_gelu', 'se_conv')
_ENABLED = dict.fromkeys(FUNCTIONS, True)


@contextlib.contextmanager
def memory_efficient_training(enabled=True, functions=FUNCTIONS):
    """Turn ``functions`` (names in :data:`FUNCTIONS`) of this module on or off inside the
    block (all on by default), e.g. ``with memory_efficient_training(False):`` for the plain
    autograd composition."""
    unknown = set(functions) - set(FUNCTIONS)
    if unknown:
        raise ValueError(f'memory_efficient_training: unknown functions {sorted(unknown)}; '
                         f'choose from {list(FUNCTIONS)}')
    previous = dict(_ENABLED)
    _ENABLED.update(dict.fromkeys(functions, bool(enabled)))
    try:
        yield
    finally:
        _ENABLED.update(previous)


class BNGELUFunction(torch.autograd.Function):
    """``gelu(batch_norm(x))`` in training mode, keeping ``x`` and the batch mean and inverse
    standard deviation only. ``running_mean`` / ``running_var`` (or None) are updated in place by
    the same kernel as ``F.batch_norm``; ``momentum`` is the factor ``nn.BatchNorm2d`` passes."""

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, momentum, eps, approximate):
        out, mean, invstd = _aten.native_batch_norm(x, weight, bias, running_mean, running_var,
                                                    True, momentum, eps)
        _aten.gelu_(out, approximate=approximate)
        ctx.save_for_backward(x, weight, bias, mean, invstd)
        ctx.eps, ctx.approximate = eps, approximate
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, weight, bias, mean, invstd = ctx.saved_tensors
        shape = (1, -1) + (1,) * (x.dim() - 2)
        # the BN output again: x * alpha + beta, alpha = invstd * weight, beta = bias - mean * alpha
        alpha = invstd if weight is None else invstd * weight
        beta = -mean * alpha if bias is None else bias - mean * alpha
        z = torch.addcmul(beta.view(shape), x, alpha.view(shape))
        grad_z = _aten.gelu_backward(grad_out, z, approximate=ctx.approximate)
        del z
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        grad_x, grad_w, grad_b = _aten.native_batch_norm_backward(
            grad_z, x, weight, None, None, mean, invstd, True, ctx.eps,
            [need_x, need_w and weight is not None, need_b and bias is not None])
        return grad_x, grad_w, grad_b, None, None, None, None, None


def _has_hooks(*modules):
    from torch.nn.modules import module as m
    if (m._global_forward_hooks or m._global_forward_pre_hooks
            or getattr(m, '_global_forward_hooks_always_called', None)):
        return True
    return any(mod._forward_hooks or mod._forward_pre_hooks for mod in modules)


def _fused_applies(norm, act, x):
    if not _ENABLED['bn_gelu']:
        return False
    if type(norm) not in (nn.BatchNorm1d, nn.BatchNorm2d) or type(act) is not nn.GELU:
        return False
    if not norm.training or not torch.is_grad_enabled():
        return False
    if torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled(x.device.type):
        return False
    weight = norm.weight
    if not (x.requires_grad or (weight is not None and weight.requires_grad)
            or (norm.bias is not None and norm.bias.requires_grad)):
        return False
    if weight is not None and weight.dtype != x.dtype:
        return False
    # shapes the plain module refuses (or that give one value per channel) take the plain path,
    # which raises the module's own error
    if x.dim() != (4 if type(norm) is nn.BatchNorm2d else 3) or x.shape[1] != norm.num_features:
        return False
    if x.numel() // x.shape[1] <= 1:
        return False
    return not _has_hooks(norm, act)


def _momentum_step(bn):
    """What ``_BatchNorm.forward`` does in training mode before ``F.batch_norm``: count the
    batch and return the exponential-average factor."""
    factor = 0.0 if bn.momentum is None else bn.momentum
    if bn.track_running_stats and bn.num_batches_tracked is not None:
        bn.num_batches_tracked.add_(1)
        factor = 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum
    return factor


def bn_gelu(norm, act, x):
    """``act(norm(x))``; for a training-mode ``nn.BatchNorm1d/2d`` followed by ``nn.GELU``
    through :class:`BNGELUFunction` (same outputs, gradients and running statistics)."""
    if not _fused_applies(norm, act, x):
        return act(norm(x))
    factor = _momentum_step(norm)
    track = norm.track_running_stats
    return BNGELUFunction.apply(x, norm.weight, norm.bias,
                                norm.running_mean if track else None,
                                norm.running_var if track else None,
                                factor, norm.eps, act.approximate)


class ConvBNGELU(nn.Sequential):
    """``act(norm(conv(x)))`` (the stem), an ``nn.Sequential`` of ``conv``, ``norm``, ``act``
    (keys unchanged) whose BN + GELU run through :func:`bn_gelu`."""

    def forward(self, x):
        return bn_gelu(self.norm, self.act, self.conv(x))


class ExpandBNGELU(nn.Sequential):
    """``act(norm(conv(pre_norm(x))))`` (the expansion of a convolution GOP), an
    ``nn.Sequential`` of ``pre_norm``, ``conv``, ``norm``, ``act``; BN + GELU through
    :func:`bn_gelu`."""

    def forward(self, x):
        return bn_gelu(self.norm, self.act, self.conv(self.pre_norm(x)))


class GatedConvFunction(torch.autograd.Function):
    """``conv2d(x * gate, weight, bias)`` keeping ``x`` and the (B, C, 1, 1) ``gate``, not the
    gated map: the convolution's backward gets ``x * gate`` recomputed (one elementwise pass)."""

    @staticmethod
    def forward(ctx, x, gate, weight, bias, stride, padding, dilation, groups):
        out = torch.nn.functional.conv2d(x * gate, weight, bias, stride, padding, dilation,
                                         groups)
        ctx.save_for_backward(x, gate, weight)
        ctx.conv = (stride, padding, dilation, groups)
        ctx.bias_sizes = None if bias is None else list(bias.shape)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        x, gate, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv
        need_x, need_g, need_w, need_b = ctx.needs_input_grad[:4]
        gated = x * gate
        grad_gated, grad_w, grad_b = _aten.convolution_backward(
            grad_out, gated, weight, ctx.bias_sizes, stride, padding, dilation, False,
            [0] * len(stride), groups,
            [need_x or need_g, need_w, need_b and ctx.bias_sizes is not None])
        del gated
        grad_x = grad_gated * gate if need_x else None
        grad_g = (grad_gated * x).sum((2, 3), keepdim=True) if need_g else None
        return grad_x, grad_g, grad_w, grad_b, None, None, None, None


def _conv_applies(modules, conv, x):
    if not _ENABLED['se_conv'] or type(conv) is not nn.Conv2d or conv.padding_mode != 'zeros':
        return False
    if not torch.is_grad_enabled() or torch.jit.is_scripting() or torch.compiler.is_compiling():
        return False
    if torch.is_autocast_enabled(x.device.type) or x.dim() != 4:
        return False
    if isinstance(conv.padding, str) or conv.weight.dtype != x.dtype:
        return False
    if not (x.requires_grad or conv.weight.requires_grad):
        return False
    return not _has_hooks(conv, *modules)


def se_conv(se, conv, x):
    """``conv(se(x))`` for a squeeze-excitation ``se`` (with a ``gate(x)`` method, ``se(x) =
    x * se.gate(x)``) followed by a convolution; under autograd through
    :class:`GatedConvFunction`, which does not keep the gated map."""
    if not _conv_applies((se,), conv, x):
        return conv(se(x))
    gate = se.gate(x)
    return GatedConvFunction.apply(x, gate, conv.weight, conv.bias, conv.stride, conv.padding,
                                   conv.dilation, conv.groups)
