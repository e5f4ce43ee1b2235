# The embedded demo: PPO vs random search vs regularised evolution at equal budgets on the MNIST
# proxy (uninet_mm/datasets/digits.py), 2 CPU cores, under 15 minutes.
#   python tools/search.py --demo            # = this config, work_dirs/search_demo
# The space is the paper's (five stages, the same choice lists, 2.3e16 architectures) around a
# small base network for 32x32 inputs: the MNIST demo classifier of configs/cls/ with
# head_dim 16 and 4x4 windows (the maps are 16, 8, 4, 2, 2, 1 pixels wide).
_base_ = ['./uninet_space.py']

search_space = dict(
    base_arch=dict(
        _delete_=True,
        gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
        dsms=[None, 'L', 'L', 'L', 'LG', 'LG'],
        strides=[1, 2, 2, 2, 1, 2],
        widths=[16, 24, 32, 64, 64, 128],
        repeats=[1, 1, 2, 2, 1, 1],
        expansions=[1, 3, 3, 3, 2, 2],
        stem_width=16,
        head_dim=16,
        window_size=4,
        input_size=32))

# Target: the base network's own FLOPs at 32x32 (550 MFLOPs scaled to 32x32 would be ~22 M,
# 13x the base network's, and would only reward the largest candidates).
reward = dict(target_flops='base')

# One epoch on 2,000 of the 4,000 training digits (evenly spaced: 200 per class), top-1 on 500
# of the 1,000 validation digits; one torch thread per candidate.
evaluator = dict(
    _delete_=True,
    type='ProxyTrain',
    base_config='configs/cls/uninet_mnist_demo.py',
    epochs=1,
    train_subset=2000,
    val_subset=500,
    num_threads=1)

strategies = [
    dict(type='ppo', hidden_size=64, lr=1e-2, clip=0.2, ppo_epochs=4, entropy_coef=1e-2,
         baseline_decay=0.5),
    dict(type='random'),
    dict(type='evolution', population_size=8, sample_size=3, mutations=1),
]
search = dict(budget=28, batch_size=4, seed=0)
executor = dict(type='auto', num_workers=2, num_cpus_per_task=1)
export = dict(topk=3)
