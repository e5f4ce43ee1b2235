# Strategies of the benchmark harness (tools/search_benchmark.py), equal budgets, on tabular
# benchmarks. The PPO settings were chosen on ONE table, NAS-Bench-Graph cora, and are used
# unchanged on every other table (docs/search.md, "Benchmark").
#   python tools/search_benchmark.py --nasbench-graph cora --seeds 30 --budgets 100,300
strategies = [
    dict(type='ppo', hidden_size=64, lr=0.1, clip=0.2, ppo_epochs=4, entropy_coef=1e-2,
         advantage='running', replay=2, unique=True, batch_size=10),
    dict(type='random'),
    # Real et al. (2019): population 100, tournament 25 (a quarter) for ~20,000 models; at
    # budgets of 100-300 the population is scaled to 20 with the same ratio (tournament 5)
    dict(type='evolution', population_size=20, sample_size=5, mutations=1, batch_size=1),
]
search = dict(batch_size=10, failure_reward=0.)
# a table with FLOPs: reward = value * (flops / target)^alpha
reward = dict(target_flops=1.0, alpha=-0.07)
