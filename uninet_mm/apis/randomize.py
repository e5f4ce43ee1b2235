"""Parameter randomisers for parity checks (the converter, inference-form and export tests)."""
import torch
import torch.nn as nn

#: weights of the BN that ends a residual branch (zero-initialised in training), released and ours
_BRANCH_END_NORMS = ('b2.5.weight', 'project_norm.weight')


def randomize_(model, generator=None, calib_input=None):
    """Fill every parameter and BatchNorm running statistic with random values (in place), so
    that a parity check exercises every tensor (layer scales and zero-initialised BN weights
    included). Returns the model, in eval mode.

    Weights get fan-in scaling. With ``calib_input`` (a batch), the BN running statistics are
    first measured on it (one training-mode pass) and then perturbed at random, so activations
    and logits stay O(1) even through deep models; without it they are drawn at random."""
    g = generator

    def randn(shape):
        return torch.randn(shape, generator=g)

    def rand(shape):
        return torch.rand(shape, generator=g)

    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    with torch.no_grad():
        for name, p in model.named_parameters():
            leaf = name.rsplit('.', 1)[-1]
            if p.ndim > 1:                      # conv / linear weights: fan-in scaling
                # the position encodings add to their own input without a norm: keep small
                scale = 0.2 if 'pos_embed' in name else 1.0
                p.copy_(scale * randn(p.shape) / p[0].numel() ** 0.5)
            elif name.endswith(_BRANCH_END_NORMS):   # last BN of a residual branch: small,
                p.copy_(0.25 + 0.05 * randn(p.shape))  # so deep stacks stay O(1-10)
            elif leaf == 'weight':              # norm weights around 1
                p.copy_(1 + 0.2 * randn(p.shape))
            elif leaf.startswith('gamma'):      # layer scales: large enough to matter
                p.copy_(0.2 * randn(p.shape))
            else:                               # biases
                p.copy_(0.1 * randn(p.shape))
        if calib_input is not None:
            momenta = [m.momentum for m in bns]
            for m in bns:
                m.reset_running_stats()
                m.momentum = None               # cumulative average over the batch
            model.train()
            model(calib_input)
            for m, mom in zip(bns, momenta):
                m.momentum = mom
        for m in bns:
            if calib_input is None:
                m.running_mean.copy_(0.1 * randn(m.running_mean.shape))
                m.running_var.copy_(rand(m.running_var.shape) + 0.5)
            else:
                std = m.running_var.sqrt()
                m.running_mean.add_(0.1 * std * randn(m.running_mean.shape))
                m.running_var.mul_(0.7 + 0.6 * rand(m.running_var.shape))
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
    return model.eval()


__all__ = ['randomize_']
