# The UniNet search space of the paper (Sec. 3.4, 3.5) as data, and the paper's search set-up.
#   python tools/search.py configs/search/uninet_space.py --print-space   # size: 2.3e16
#   python tools/search.py configs/search/uninet_space.py --work-dir work_dirs/search_b0
#
# Five searchable stages (1..5 of the six-stage UniNet; stage 0, the stem and the head stay as
# in the base network). Per stage five tokens, in this order: GOP, DSM, expansion, width
# multiplier, repeat delta; (5 * 3 * 5 * 5 * 5)^5 = 1875^5 = 2.3e16 architectures (the paper
# counts about 10^16). Decoding the tokens gives a complete arch dict that
# `UniNet(arch=arch)` builds as is (uninet_mm/search/space.py).
#
# Width rule: width = make_divisible(base_width * width_mult, width_divisor=8) for every stage:
# attention of any width picks its heads from the width (models/layers.py: attention_heads),
# so the paper's widths stay (round_attention_widths=True: multiples of head_dim instead).
# Repeats: base_repeats + repeat_delta, at least min_repeats (1).

# UniNet-B0 (the paper's base network): the released layout with B0's widths and depths.
base_arch = dict(
    gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
    dsms=[None, 'L', 'L', 'L', 'LG', 'LG'],
    strides=[1, 2, 2, 2, 1, 2],
    expansions=[1, 4, 6, 3, 2, 5],
    widths=[24, 48, 80, 128, 128, 256],
    repeats=[1, 2, 4, 4, 4, 8],
    stem_width=32,
    head_dim=32,
    window_size=7,
    input_size=160)

search_space = dict(
    base_arch=base_arch,
    searchable_stages=[1, 2, 3, 4, 5],
    choices=dict(
        gop=['SA', 'LSA', 'Conv', 'DWConv', 'MLP'],
        dsm=['L', 'LG', 'G'],
        expansion=[2, 3, 4, 5, 6],
        width_mult=[0.5, 0.75, 1.0, 1.25, 1.5],
        repeat_delta=[-2, -1, 0, 1, 2]),
    stage_choices=dict(),  # e.g. {5: dict(gop=['SA', 'LSA'])} narrows one stage
    width_divisor=8,
    round_attention_widths=False,
    min_repeats=1)

# reward = accuracy * (FLOPs / target)^alpha (MnasNet's form; the paper prints (t/f)^alpha,
# which with alpha < 0 would favour larger models). The target is given at 160x160 (B0's
# resolution, 0.555 GFLOPs) and scaled by the pixel count to the proxy resolution;
# target_flops='base' uses the base network's own FLOPs at the proxy resolution instead.
reward = dict(target_flops=550e6, target_resolution=160, alpha=-0.07)

# Proxy task: a few epochs of the classification config's data (the paper: 5 ImageNet epochs).
# Any MMPretrain config with an ImageClassifier + UniNet backbone works as base_config.
evaluator = dict(
    type='ProxyTrain',
    base_config='configs/cls/uninet_mnist_demo.py',
    epochs=5,
    num_threads=None)

# Every strategy gets the same budget; PPO is the paper's controller.
strategies = [
    # the PPO settings chosen on NAS-Bench-Graph cora (configs/search/benchmark.py)
    dict(type='ppo', hidden_size=64, lr=0.1, clip=0.2, ppo_epochs=4, entropy_coef=1e-2,
         advantage='running', replay=2, unique=True),
    dict(type='random'),
    dict(type='evolution', population_size=64, sample_size=16, mutations=1),
]
search = dict(budget=2000, batch_size=16, seed=0, failure_reward=0., cache=True)

# 'auto': Ray when installed (local, or an existing cluster by address), serial otherwise.
executor = dict(type='auto', address=None, num_workers=None, num_cpus_per_task=1)

export = dict(topk=5)
