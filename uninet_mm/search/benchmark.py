"""The benchmark harness: real strategies, through the real search loop
(:class:`~uninet_mm.search.loop.SearchRun`: caching, failure handling, budgets, checkpoints),
against a tabular evaluator, for many seeds in parallel processes.

One run per (strategy, seed) goes to the largest budget; the pick at every smaller budget is
read from it (the candidate with the best observed reward among the first ``b`` proposals,
scored by the table's ``test`` field, else its noise-free ``value``). Seeds are paired: seed
``s`` of every strategy sees the same evaluation noise for the same architecture.
``tools/search_benchmark.py`` is the command line.
"""
import concurrent.futures as cf
import json
import math
import multiprocessing as mp
import os
import os.path as osp
import tempfile
import time

from .stats import a12, mean_sem, wilcoxon_greater
from .tabular import TabularEvaluator, TabularSpace

_TABLE = None  # the table of the current benchmark, inherited by forked workers


def _scratch_dir():
    return '/dev/shm' if osp.isdir('/dev/shm') and os.access('/dev/shm', os.W_OK) else None


def run_one(job):
    """One strategy, one seed, up to the largest budget: the best-so-far curve."""
    import torch
    torch.set_num_threads(1)
    from .loop import SearchRun
    table = _TABLE if job.get('table') is None else job['table']
    space = TabularSpace(table)
    evaluator = TabularEvaluator(table, noise=job['noise'], noise_seed=job['seed'])
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix='uninet_bench_', dir=_scratch_dir()) as d:
        run = SearchRun(space, job['strategy'], evaluator, d, job['budget'],
                        target_flops=job['target'], alpha=job['alpha'],
                        batch_size=job['batch_size'], seed=job['seed'],
                        failure_reward=job['failure_reward'], durable=False,
                        checkpoint=False)
        records = run.run()
        history = run.history
    return dict(name=job['name'], seed=job['seed'], time=time.time() - t0,
                **pick_curve(records, table.worst_score()),
                entropy=[h['entropy'] for h in history if 'entropy' in h])


def _warm_up(num_choices):
    """One controller update in the parent: torch imports its lazily loaded modules once,
    before the workers are forked, not once per worker."""
    from .controller import PPOController
    c = PPOController(num_choices, seed=0, ppo_epochs=1)
    tokens, logp = c.sample(2, per_token=True)
    c.update(tokens, [0., 1.], logp)


def pick_curve(records, worst):
    """Per proposal ``i`` (1-based): the score of the pick among the first ``i`` (the best
    observed reward so far; ``worst`` before any success) and the number of distinct
    architectures evaluated so far (records not served from the cache)."""
    best, score, value, seen = -math.inf, worst, None, 0
    curve, values, distinct, failed = [], [], [], 0
    for r in sorted(records, key=lambda r: r['index']):
        if r.get('status') == 'ok' and r.get('reward') is not None and r['reward'] > best:
            best, score, value = r['reward'], r.get('score', r['reward']), r.get('value')
        if r.get('status') != 'ok':
            failed += 1
        if not r.get('cached_from'):
            seen += 1
        curve.append(score)
        values.append(value)
        distinct.append(seen)
    return dict(curve=curve, value_curve=values, distinct=distinct, failed=failed)


def run_benchmark(table, strategies, seeds=30, budgets=(100, 300), noise=0., workers=None,
                  batch_size=10, target=1.0, alpha=-0.07, failure_reward=0., log=None):
    """All strategies x seeds on one table; returns the summary dict (see
    :func:`summarise`) with the per-seed curves under ``'curves'``."""
    global _TABLE
    budgets = sorted({int(b) for b in budgets})
    names = [s.get('name', s['type']) for s in strategies]
    if len(set(names)) != len(names):
        raise ValueError(f'benchmark: strategy names {names} are not unique; give a name=')
    jobs = [dict(name=n, strategy=dict(s), seed=seed, budget=budgets[-1], noise=noise,
                 batch_size=batch_size, target=target, alpha=alpha,
                 failure_reward=failure_reward)
            for seed in range(seeds) for n, s in zip(names, strategies)]
    workers = workers or os.cpu_count() or 1
    t0 = time.time()
    results = []
    if workers == 1:
        for job in jobs:
            results.append(run_one(dict(job, table=table)))
    else:
        _warm_up(table.num_choices)
        _TABLE = table
        try:
            ctx = mp.get_context('fork')
            with cf.ProcessPoolExecutor(workers, mp_context=ctx) as ex:
                for r in ex.map(run_one, jobs, chunksize=1):
                    results.append(r)
        finally:
            _TABLE = None
    wall = time.time() - t0
    if log:
        log(f'{len(jobs)} runs ({len(names)} strategies x {seeds} seeds x {budgets[-1]} '
            f'proposals) in {wall:.1f} s on {workers} processes')
    curves = {n: {} for n in names}
    for r in results:
        curves[r['name']][r['seed']] = r
    out = summarise(curves, budgets, names, seeds)
    out.update(table=table.name, noise=noise, seeds=seeds, workers=workers,
               wall_seconds=wall, num_architectures=TabularSpace(table).num_architectures,
               table_best=table.best_score(), strategies=strategies, batch_size=batch_size)
    out['curves'] = {n: [curves[n][s]['curve'] for s in range(seeds)] for n in names}
    return out


def summarise(curves, budgets, names, seeds):
    """``{"budgets": {b: {name: {mean, sem, values, distinct}}}, "p_values": {b: {"a>b": p}},
    "a12": {b: {"a>b": A12}}}``."""
    out = dict(budgets={}, p_values={}, a12={})
    for b in budgets:
        per = {}
        for n in names:
            values = [curves[n][s]['curve'][b - 1] for s in range(seeds)]
            distinct = [curves[n][s]['distinct'][b - 1] for s in range(seeds)]
            m, se = mean_sem(values)
            per[n] = dict(mean=m, sem=se, values=values,
                          distinct_mean=sum(distinct) / len(distinct))
            picked = [curves[n][s].get('value_curve', [None] * b)[b - 1] for s in range(seeds)]
            if all(v is not None for v in picked):  # the pick's noise-free value (diagnostic)
                per[n]['value_mean'] = sum(picked) / len(picked)
        out['budgets'][str(b)] = per
        ps, es = {}, {}
        for x in names:
            for y in names:
                if x != y:
                    ps[f'{x}>{y}'] = wilcoxon_greater(per[x]['values'], per[y]['values'])
                    es[f'{x}>{y}'] = a12(per[x]['values'], per[y]['values'])
        out['p_values'][str(b)] = ps
        out['a12'][str(b)] = es
    return out


def run_seeds(space, strategies, evaluator, work_dir, seeds, budget, target, alpha,
              batch_size=4, executor=None, failure_reward=0., budgets=None, log=None):
    """Strategies x seeds with any evaluator (no table: the pick is scored by its own
    reward), serially through :class:`SearchRun` in ``work_dir/seed<s>/`` (results and
    checkpoints kept, so ``resume`` continues); returns :func:`summarise`'s dict."""
    from .loop import SearchRun
    names = [s.get('name', s['type']) for s in strategies]
    curves = {n: {} for n in names}
    for seed in range(seeds):
        for n, st in zip(names, strategies):
            d = osp.join(work_dir, f'seed{seed}')
            run = SearchRun(space, st, evaluator, d, budget, target_flops=target, alpha=alpha,
                            batch_size=batch_size, executor=executor, seed=seed,
                            failure_reward=failure_reward)
            done = osp.isfile(run.ckpt_path)
            records = run.run(resume=done)
            curves[n][seed] = pick_curve(records, 0.)
            if log:
                log(f'seed {seed} {n}: best reward {curves[n][seed]["curve"][-1]:.4f}')
    out = summarise(curves, sorted(set(budgets or [budget])), names, seeds)
    out['curves'] = {n: [curves[n][s]['curve'] for s in range(seeds)] for n in names}
    return out


def anytime_plot(summary, path, title=None):
    """Best-so-far score vs proposals, mean over seeds with a +-1 sem band, per strategy."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, runs in summary['curves'].items():
        arr = np.asarray(runs, dtype=float)
        x = np.arange(1, arr.shape[1] + 1)
        m = arr.mean(0)
        se = arr.std(0, ddof=1) / math.sqrt(len(arr)) if len(arr) > 1 else 0 * m
        ax.plot(x, m, label=name)
        ax.fill_between(x, m - se, m + se, alpha=0.25)
    lo = min(np.asarray(r)[:, min(9, len(r[0]) - 1)].mean() for r in summary['curves'].values())
    hi = summary.get('table_best')
    if hi is not None:
        ax.axhline(hi, color='k', lw=0.5, ls='--', label='table best')
        ax.set_ylim(lo, hi + 0.1 * (hi - lo) + 1e-9)
    ax.set_xlabel('proposals (evaluations, cached repeats included)')
    ax.set_ylabel('score of the pick (test, else value)')
    ax.set_title(title or summary.get('table', ''), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def markdown_rows(summary, name=None, ref='ppo'):
    """One markdown row per budget: mean +- sem per strategy, then the p-values of ``ref``."""
    rows = []
    names = list(next(iter(summary['budgets'].values())))
    for b, per in summary['budgets'].items():
        cells = [name or summary.get('table', ''), f'{summary.get("noise", 0):g}', b]
        cells += [f'{per[n]["mean"]:.4f} +- {per[n]["sem"]:.4f}' for n in names]
        if ref in names:
            ps = summary['p_values'][b]
            cells += [f'{ps[f"{ref}>{n}"]:.2g} / {ps[f"{n}>{ref}"]:.2g}'
                      for n in names if n != ref]
        rows.append('| ' + ' | '.join(cells) + ' |')
    return rows


def markdown_header(summary, ref='ppo'):
    names = list(next(iter(summary['budgets'].values())))
    cols = ['table', 'noise', 'budget'] + [f'{n} mean +- sem' for n in names]
    if ref in names:
        cols += [f'p {ref}>{n} / {n}>{ref}' for n in names if n != ref]
    return ['| ' + ' | '.join(cols) + ' |', '|' + ' --- |' * len(cols)]


def write_summary(summary, out_dir, plot_title=None):
    os.makedirs(out_dir, exist_ok=True)
    plot = anytime_plot(summary, osp.join(out_dir, 'anytime.png'), plot_title)
    slim = {k: v for k, v in summary.items() if k != 'curves'}
    slim['anytime_plot'] = plot
    with open(osp.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(slim, f, indent=1)
    with open(osp.join(out_dir, 'curves.json'), 'w') as f:
        json.dump(summary['curves'], f)
    return slim
