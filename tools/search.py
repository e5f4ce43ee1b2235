"""UniNet architecture search (paper Sec. 3.4-3.5): PPO-trained LSTM controller, random search
and regularised evolution at equal budgets, proxy training through MMEngine's Runner.

    # the embedded demo: two-digit MNIST proxy, 2 CPU cores, <= 15 min, PPO vs random vs evolution
    python tools/search.py --demo
    # the paper's space around UniNet-B0 (prints its size and exits)
    python tools/search.py configs/search/uninet_space.py --print-space
    # a search; after a crash (even kill -9) continue it with --resume
    python tools/search.py configs/search/uninet_space.py --work-dir work_dirs/search_b0
    python tools/search.py configs/search/uninet_space.py --work-dir work_dirs/search_b0 --resume
    # on Ray: local (--executor ray) or an existing cluster
    python tools/search.py CFG --executor ray --ray-address auto

Outputs in the work dir: results.jsonl (every candidate, written as it finishes),
checkpoints/, summary.md and summary.json (per-strategy figures at equal budget, top
architectures), pareto.png (accuracy vs FLOPs), topk/rank*/ (arch.json and ready-to-train
ImageNet and Mask R-CNN configs).
"""
import argparse
import json
import os
import os.path as osp
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEMO_CONFIG = osp.join(REPO, 'configs', 'search', 'mnist_demo.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', nargs='?', help='search config (configs/search/*.py)')
    p.add_argument('--demo', action='store_true',
                   help=f'run the embedded MNIST demo ({osp.relpath(DEMO_CONFIG, REPO)})')
    p.add_argument('--work-dir', help='output folder (default: work_dirs/search_<config>)')
    p.add_argument('--resume', action='store_true',
                   help='continue the search in --work-dir (after a crash or a stop)')
    p.add_argument('--strategies', help='comma-separated subset of the config\'s strategies '
                                        '(ppo, random, evolution)')
    p.add_argument('--budget', type=int, help='candidates per strategy')
    p.add_argument('--batch-size', type=int, help='candidates per proposal / PPO update')
    p.add_argument('--seed', type=int)
    p.add_argument('--executor', choices=['auto', 'serial', 'pool', 'ray'])
    p.add_argument('--ray-address', help="an existing Ray cluster ('auto', 'ray://host:10001')")
    p.add_argument('--num-workers', type=int,
                   help='concurrent candidates (a local Ray or the pool)')
    p.add_argument('--schedule', choices=['auto', 'batch', 'async'],
                   help="'async': propose a candidate as soon as a worker is free (default "
                        "with more than one worker); 'batch': wait for every batch")
    p.add_argument('--topk', type=int, help='architectures to export')
    p.add_argument('--print-space', action='store_true', help='print the space and exit')
    p.add_argument('--no-multiseed', action='store_true',
                   help="skip the config's multi-seed comparison (the demo has one)")
    p.add_argument('--malloc', choices=['keep', 'glibc'], default=None,
                   help="CPU allocator of this process and its Ray workers: 'keep' freed "
                        "memory (default, as tools/train.py) or glibc's default; the default "
                        'comes from $UNINET_MALLOC if set')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='override config keys, e.g. evaluator.epochs=2')
    args = p.parse_args(argv)
    if args.demo and args.config is None:
        args.config = DEMO_CONFIG
    if args.config is None:
        p.error('give a config or --demo')
    if args.topk is not None and args.topk < 0:
        p.error(f'--topk must be >= 0 (0 exports nothing), got {args.topk}')
    return args


def load_config(args):
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        opts = argparse.ArgumentParser()
        opts.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(opts.parse_args(['--o'] + args.cfg_options).o)
    search = cfg.get('search', {})
    for key in ('budget', 'batch_size', 'seed', 'schedule'):
        if getattr(args, key) is not None:
            search[key] = getattr(args, key)
    cfg.search = search
    ex = cfg.get('executor', dict(type='auto'))
    if args.executor:
        ex['type'] = args.executor
    if args.ray_address:
        ex['address'] = args.ray_address
        ex['type'] = 'ray'
    if args.num_workers:
        ex['num_workers'] = args.num_workers
    cfg.executor = ex
    if args.strategies:
        wanted = [s.strip() for s in args.strategies.split(',') if s.strip()]
        by_name = {s.get('name', s['type']): s for s in cfg.strategies}
        missing = [w for w in wanted if w not in by_name]
        if missing:
            raise SystemExit(f'--strategies: {missing} not in the config ({list(by_name)})')
        cfg.strategies = [by_name[w] for w in wanted]
    if args.topk is not None:
        cfg.export = dict(cfg.get('export', {}), topk=args.topk)
    return cfg


def main(argv=None):
    args = parse_args(argv)
    t_start = time.time()
    import uninet_mm  # noqa: F401  (registers UniNet, its head and the digit datasets)
    from uninet_mm.utils.malloc import MALLOC_ENV, apply_malloc, default_malloc
    try:
        malloc = args.malloc or default_malloc()
    except ValueError as e:
        raise SystemExit(f'error: {e}') from None
    os.environ[MALLOC_ENV] = malloc  # the Ray workers started from here apply the same
    malloc_note = apply_malloc(malloc)
    from uninet_mm.search import (
        Progress,
        ResultsFile,
        SearchRun,
        build_evaluator,
        build_executor,
        build_search_space,
        export_topk,
        pareto_plot,
        resolve_target,
        run_async,
        strategy_stats,
        summary_table,
        worker_utilisation,
    )
    from uninet_mm.search.reward import PAPER_ALPHA

    cfg = load_config(args)
    space = build_search_space(cfg.search_space.to_dict())
    print(space.describe(), flush=True)
    if args.print_space:
        return 0
    print(malloc_note, flush=True)

    work_dir = args.work_dir or osp.join(
        'work_dirs', 'search_demo' if args.demo else
        f'search_{osp.splitext(osp.basename(args.config))[0]}')
    results = ResultsFile(osp.join(work_dir, 'results.jsonl'))
    ckpt_dir = osp.join(work_dir, 'checkpoints')
    has_ckpt = osp.isdir(ckpt_dir) and any(f.endswith(('.pth', '.pkl'))
                                           for f in os.listdir(ckpt_dir))
    if args.resume and not results.exists() and not has_ckpt:
        raise SystemExit(f'--resume: nothing to resume in {work_dir} (no results.jsonl, no '
                         f'checkpoints); run without --resume to start a search there')
    if (results.exists() or has_ckpt) and not args.resume:
        raise SystemExit(f'{work_dir} already holds a search (results.jsonl); pass --resume to '
                         f'continue it or choose another --work-dir')
    config_path = osp.join(work_dir, 'search_config.py')
    if not args.resume:  # the run's original config is written once, never overwritten
        os.makedirs(work_dir, exist_ok=True)
        cfg.dump(config_path)

    s = cfg.search
    budget, batch_size, seed = int(s.get('budget', 100)), int(s.get('batch_size', 4)), \
        int(s.get('seed', 0))
    evaluator = build_evaluator(cfg.evaluator.to_dict())
    target = resolve_target(cfg.get('reward', {}), space, evaluator,
                            proxy_resolution=getattr(evaluator, 'input_size', None))
    alpha = float(cfg.get('reward', {}).get('alpha', PAPER_ALPHA))
    ex_cfg = dict(cfg.executor)
    executor = build_executor(ex_cfg.pop('type', 'auto'), **ex_cfg)
    names = [st.get('name', st['type']) for st in cfg.strategies]
    print(f'search: strategies {names}, {budget} candidates each (batch {batch_size}), '
          f'seed {seed}; reward = acc * (FLOPs / {target / 1e6:.3f} M)^{alpha}; '
          f'executor {executor.kind} x{executor.num_workers}; work dir {work_dir}', flush=True)

    progress = Progress(total=budget * len(cfg.strategies))
    runs = [SearchRun(space, st, evaluator, work_dir, budget, target, alpha=alpha,
                      batch_size=batch_size, executor=executor, seed=seed,
                      failure_reward=float(s.get('failure_reward', 0.)),
                      cache=bool(s.get('cache', True)), progress=progress,
                      schedule=s.get('schedule', 'auto')) for st in cfg.strategies]
    schedule = runs[0].schedule
    t_search = time.time()
    try:
        if schedule == 'async':  # the strategies share the workers: no idle tail between
            run_async(runs, resume=args.resume)
        else:
            for run in runs:
                run.run(resume=args.resume)
    except ValueError as e:  # a resume with other settings, an unreadable checkpoint
        if args.resume:
            raise SystemExit(str(e)) from None
        raise
    # the candidates evaluated by this process (a resume: not the time before the crash)
    timed = [r for r in results.load() if r.get('strategy') in names
             and r.get('t_start', 0) >= t_search - 1]
    utilisation = worker_utilisation(timed, executor.num_workers)
    if utilisation is not None:
        print(f'worker utilisation {100 * utilisation:.1f}% of {executor.num_workers} '
              f'{executor.kind} workers ({schedule} schedule, {len(timed)} candidates '
              f'evaluated, {time.time() - t_search:.0f} s)', flush=True)
    for run in runs:
        ent = [h['entropy'] for h in run.history if 'entropy' in h]
        if ent and hasattr(run.strategy, 'controller'):
            print(f'{run.name}: policy entropy {ent[0]:.2f} -> {ent[-1]:.2f} nats (uniform: '
                  f'{run.strategy.controller.max_entropy():.2f}) over {len(ent)} updates',
                  flush=True)
    multi = None
    if cfg.get('multiseed') and not args.no_multiseed:
        multi = run_multiseed(cfg, space, executor, work_dir, alpha, names, batch_size)
    executor.shutdown()

    records = results.load()
    topk = int(cfg.get('export', {}).get('topk', 5))
    table = summary_table(records, top=topk)
    plot = pareto_plot(records, osp.join(work_dir, 'pareto.png'), target_flops=target,
                       title=f'UniNet search ({osp.basename(args.config)}): proxy accuracy vs '
                             f'FLOPs')
    folders = export_topk(records, topk, osp.join(work_dir, 'topk'))
    stats = {n: strategy_stats(records, n) for n in names}
    elapsed = time.time() - t_start
    with open(osp.join(work_dir, 'summary.md'), 'w') as f:
        f.write(f'# UniNet search: {args.config}\n\nSpace: {space.size:.3e} architectures; '
                f'budget {budget} per strategy; FLOPs target {target / 1e6:.3f} M at the proxy '
                f'resolution; alpha {alpha}; wall time {elapsed:.0f} s.\n\n{table}\n')
    with open(osp.join(work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(config=args.config, space_size=space.size, budget=budget,
                       target_flops=target, alpha=alpha, wall_seconds=elapsed,
                       executor=dict(kind=executor.kind, num_workers=executor.num_workers),
                       schedule=schedule, worker_utilisation=utilisation,
                       strategies=stats, pareto_plot=plot, topk=folders), f, indent=1)
    print('\n' + table + '\n')
    line = [f'{n}: best reward {_f(stats[n]["best_reward"])} (acc '
            f'{_f(stats[n]["best_accuracy"])}, {_f(stats[n]["best_mflops"], 2)} MFLOPs), top-5 '
            f'mean {_f(stats[n]["top_mean_reward"])}' for n in names]
    print(f'equal budget ({budget} candidates each): ' + ' | '.join(line))
    trained = [r for r in records if not r.get('cached_from')]
    if trained:
        print(f'cost per trained candidate: {sum(r["time"] for r in trained) / len(trained):.1f}'
              f' s ({len(trained)} trained, executor {executor.kind})')
    if multi:
        print(multi)
        with open(osp.join(work_dir, 'summary.md'), 'a') as f:
            f.write('\n' + multi + '\n')
    print(f'Pareto plot: {plot}\nsummary: {osp.join(work_dir, "summary.md")}\n'
          + (f'top-{topk} configs: {osp.join(work_dir, "topk")}' if folders else
             'no configs exported (--topk 0)') + f'\nwall time {elapsed:.0f} s')
    return 0


def run_multiseed(cfg, space, executor, work_dir, alpha, names, batch_size):
    """The config's ``multiseed`` part: every strategy for several seeds on a cheap
    evaluator; returns a markdown table (mean +- sem of the best reward, paired p-values)."""
    from uninet_mm.search import build_evaluator, resolve_target
    from uninet_mm.search.benchmark import run_seeds
    m = dict(cfg.multiseed)
    ev_cfg = m['evaluator'].to_dict() if hasattr(m['evaluator'], 'to_dict') else m['evaluator']
    evaluator = build_evaluator(dict(ev_cfg))
    target = resolve_target(cfg.get('reward', {}), space, evaluator,
                            proxy_resolution=getattr(evaluator, 'input_size', None))
    seeds, budget = int(m.get('seeds', 5)), int(m.get('budget', 24))
    print(f'\nmulti-seed comparison: {names}, {seeds} seeds x {budget} candidates, evaluator '
          f'{ev_cfg["type"]} (a cheap proxy; the search above is one seed)', flush=True)
    t0 = time.time()
    out = run_seeds(space, [st for st in cfg.strategies], evaluator,
                    osp.join(work_dir, 'multiseed'), seeds, budget, target, alpha,
                    batch_size=int(m.get('batch_size', batch_size)), executor=executor,
                    log=lambda msg: print(f'  {msg}', flush=True))
    b = str(budget)
    lines = [f'Multi-seed comparison ({ev_cfg["type"]} evaluator, {seeds} seeds x {budget} '
             f'candidates per strategy, {time.time() - t0:.0f} s): best reward, mean +- sem '
             f'over seeds; one-sided paired Wilcoxon p-values, A12.', '',
             '| strategy | mean +- sem | ' + ' | '.join(f'p {n}>{o}' for n in names[:1]
                                                      for o in names[1:]) + ' |',
             '|' + ' --- |' * (1 + len(names))]
    for n in names:
        per = out['budgets'][b][n]
        cells = [f'{out["p_values"][b][f"{n}>{o}"]:.2g} (A12 {out["a12"][b][f"{n}>{o}"]:.2f})'
                 if n == names[0] else '' for o in names[1:]]
        lines.append(f'| {n} | {per["mean"]:.4f} +- {per["sem"]:.4f} | ' + ' | '.join(cells)
                     + ' |')
    return '\n'.join(lines)


def _f(v, digits=4):
    return '-' if v is None else f'{v:.{digits}f}'


if __name__ == '__main__':
    sys.exit(main())
