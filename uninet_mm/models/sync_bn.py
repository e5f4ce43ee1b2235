"""Synchronised BatchNorm for processes without a GPU (CPU tensors, gloo or MPI process groups).

``torch.nn.SyncBatchNorm`` refuses CPU tensors. :class:`CPUSyncBatchNorm` has its math: in
training, per channel, the statistics are those of the global batch (all ranks of the group),

    n = sum_r n_r,   mean = sum(x) / n,   var = sum(x^2) / n - mean^2      (one all_reduce)
    y = weight * (x - mean) / sqrt(var + eps) + bias,

the running statistics are updated with the global mean and the unbiased global variance
``var * n / (n - 1)``, and the backward is that of BatchNorm over the global batch: with
``x_hat = (x - mean) / sqrt(var + eps)`` and ``g = dL/dy`` of this rank,

    dL/dx = weight / sqrt(var + eps) * (g - sum(g) / n - x_hat * sum(g * x_hat) / n)

where both sums run over the global batch (a second all_reduce), while ``dL/dweight =
sum(g * x_hat)`` and ``dL/dbias = sum(g)`` stay local: DistributedDataParallel averages them
over the ranks like every other gradient (as for torch's SyncBatchNorm). The sums are
accumulated in float64. Outside training, or without an initialised process group of more than
one rank, it is a plain BatchNorm. Its state dict is BatchNorm's.
"""
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm


def _channel_view(t, dim):
    return t.view([1, -1] + [1] * (dim - 2))


class _SyncBatchNormFunction(torch.autograd.Function):

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, eps, momentum, group):
        x = x.contiguous()
        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        count = x.numel() // max(channels, 1)
        stats = torch.cat([
            x.sum(dims, dtype=torch.float64),
            (x * x).sum(dims, dtype=torch.float64),
            torch.tensor([count], dtype=torch.float64)])
        dist.all_reduce(stats, group=group)
        n = stats[-1].item()
        if n <= 1:
            raise ValueError(f'CPUSyncBatchNorm: expected more than 1 value per channel over the '
                             f'global batch in training, got {int(n)} (input size {list(x.shape)})')
        mean = stats[:channels] / n
        var = (stats[channels:2 * channels] / n - mean * mean).clamp_(min=0)
        invstd = torch.rsqrt(var + eps)
        if running_mean is not None:
            running_mean.mul_(1 - momentum).add_(mean.to(running_mean.dtype), alpha=momentum)
        if running_var is not None:
            running_var.mul_(1 - momentum).add_((var * (n / (n - 1))).to(running_var.dtype),
                                                alpha=momentum)
        mean, invstd = mean.to(x.dtype), invstd.to(x.dtype)
        x_hat = (x - _channel_view(mean, x.dim())) * _channel_view(invstd, x.dim())
        y = x_hat
        if weight is not None:
            y = y * _channel_view(weight, x.dim())
        if bias is not None:
            y = y + _channel_view(bias, x.dim())
        ctx.save_for_backward(x_hat, weight, invstd)
        ctx.n = n
        ctx.group = group
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx, grad_out):
        x_hat, weight, invstd = ctx.saved_tensors
        g = grad_out.contiguous()
        channels = g.shape[1]
        dims = [0] + list(range(2, g.dim()))
        sums = torch.cat([g.sum(dims, dtype=torch.float64),
                          (g * x_hat).sum(dims, dtype=torch.float64)])
        # copies: ``sums`` is all-reduced in place below (``.to`` of float64 would alias it)
        grad_bias = sums[:channels].to(g.dtype, copy=True) if ctx.has_bias else None
        grad_weight = sums[channels:].to(g.dtype, copy=True) if weight is not None else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            dist.all_reduce(sums, group=ctx.group)
            mean_g = (sums[:channels] / ctx.n).to(g.dtype)
            mean_gx = (sums[channels:] / ctx.n).to(g.dtype)
            scale = invstd if weight is None else invstd * weight
            grad_x = (g - _channel_view(mean_g, g.dim()) -
                      x_hat * _channel_view(mean_gx, g.dim())) * _channel_view(scale, g.dim())
        return grad_x, grad_weight, grad_bias, None, None, None, None, None


class CPUSyncBatchNorm(_BatchNorm):
    """BatchNorm over the global batch of a CPU process group (``torch.nn.SyncBatchNorm``'s math).

    Args are those of ``torch.nn.SyncBatchNorm``; ``process_group`` defaults to the world.
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None):
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device=device, dtype=dtype)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError(f'expected at least 2D input (got {input.dim()}D input)')

    def _world_size(self):
        if not (dist.is_available() and dist.is_initialized()):
            return 1
        return dist.get_world_size(self.process_group or dist.group.WORLD)

    def forward(self, input):
        self._check_input_dim(input)
        # momentum and num_batches_tracked exactly as torch.nn.BatchNorm / SyncBatchNorm
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        running_mean = self.running_mean if use_running else None
        running_var = self.running_var if use_running else None
        if not bn_training or self._world_size() == 1:
            return F.batch_norm(input, running_mean, running_var, self.weight, self.bias,
                                bn_training, factor, self.eps)
        group = self.process_group or dist.group.WORLD
        return _SyncBatchNormFunction.apply(input, self.weight, self.bias, running_mean,
                                            running_var, self.eps, factor, group)


def convert_to_cpu_sync_bn(module, types=(nn.SyncBatchNorm, )):
    """Replace every module of ``types`` (default: torch's SyncBatchNorm, which cannot run on
    CPU tensors) in ``module`` by a :class:`CPUSyncBatchNorm` holding the same parameters and
    buffers; returns the converted module."""
    out = module
    if isinstance(module, types) and not isinstance(module, CPUSyncBatchNorm):
        out = CPUSyncBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                               module.track_running_stats,
                               process_group=getattr(module, 'process_group', None))
        if module.affine:
            out.weight = module.weight
            out.bias = module.bias
        out.running_mean = module.running_mean
        out.running_var = module.running_var
        out.num_batches_tracked = module.num_batches_tracked
        out.training = module.training
        if hasattr(module, 'qconfig'):
            out.qconfig = module.qconfig
    for name, child in module.named_children():
        out.add_module(name, convert_to_cpu_sync_bn(child, types))
    return out
