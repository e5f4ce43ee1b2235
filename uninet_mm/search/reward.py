"""The search reward (paper Sec. 3.5), defined once: MnasNet's weighted product

    reward = accuracy * (flops / target) ** alpha,   alpha = -0.07

so the reward equals the accuracy at the target and falls as FLOPs rise. The paper prints
``(t / f) ** alpha``, which with a negative alpha would reward larger models. A candidate
without a FLOPs count (a tabular benchmark without costs) is rewarded by its accuracy.
"""

#: the paper's FLOPs target and exponent
PAPER_TARGET_FLOPS = 550e6
PAPER_TARGET_RESOLUTION = 160  # UniNet-B0's input size: B0 has 0.555 GFLOPs there
PAPER_ALPHA = -0.07


def compute_reward(accuracy, flops, target, alpha=PAPER_ALPHA):
    """``accuracy * (flops / target) ** alpha`` (MnasNet form; see the module doc)."""
    if target <= 0:
        raise ValueError(f'reward: the FLOPs target must be positive, got {target}')
    if flops is None or flops <= 0:
        raise ValueError(f'reward: FLOPs must be positive, got {flops}')
    return float(accuracy) * (float(flops) / float(target)) ** alpha


def scale_target(target_flops, target_resolution, proxy_resolution):
    """A FLOPs target given at ``target_resolution`` moved to the proxy resolution (FLOPs of a
    convolutional network grow with the number of pixels)."""
    return target_flops * (proxy_resolution / target_resolution) ** 2
