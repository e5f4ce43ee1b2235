"""UniNet architecture search (paper Sec. 3.4-3.5): PPO-trained LSTM controller, random search
and regularised evolution at equal budgets, proxy training through MMEngine's Runner.

    # the embedded demo: MNIST proxy, 2 CPU cores, <= 15 min, PPO vs random vs evolution
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
    p.add_argument('--executor', choices=['auto', 'serial', 'ray'])
    p.add_argument('--ray-address', help="an existing Ray cluster ('auto', 'ray://host:10001')")
    p.add_argument('--num-workers', type=int, help='concurrent candidates on a local Ray')
    p.add_argument('--topk', type=int, help='architectures to export')
    p.add_argument('--print-space', action='store_true', help='print the space and exit')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='override config keys, e.g. evaluator.epochs=2')
    args = p.parse_args(argv)
    if args.demo and args.config is None:
        args.config = DEMO_CONFIG
    if args.config is None:
        p.error('give a config or --demo')
    return args


def load_config(args):
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        opts = argparse.ArgumentParser()
        opts.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(opts.parse_args(['--o'] + args.cfg_options).o)
    search = cfg.get('search', {})
    for key in ('budget', 'batch_size', 'seed'):
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
    from uninet_mm.search import (Progress, ResultsFile, SearchRun, build_evaluator,
                                  build_executor, build_search_space, export_topk, pareto_plot,
                                  resolve_target, strategy_stats, summary_table)

    cfg = load_config(args)
    space = build_search_space(cfg.search_space.to_dict())
    print(space.describe(), flush=True)
    if args.print_space:
        return 0

    work_dir = args.work_dir or osp.join(
        'work_dirs', 'search_demo' if args.demo else
        f'search_{osp.splitext(osp.basename(args.config))[0]}')
    os.makedirs(work_dir, exist_ok=True)
    results = ResultsFile(osp.join(work_dir, 'results.jsonl'))
    if results.exists() and not args.resume:
        raise SystemExit(f'{work_dir} already holds a search (results.jsonl); pass --resume to '
                         f'continue it or choose another --work-dir')
    cfg.dump(osp.join(work_dir, 'search_config.py'))

    s = cfg.search
    budget, batch_size, seed = int(s.get('budget', 100)), int(s.get('batch_size', 4)), \
        int(s.get('seed', 0))
    evaluator = build_evaluator(cfg.evaluator.to_dict())
    target = resolve_target(cfg.get('reward', {}), space, evaluator,
                            proxy_resolution=getattr(evaluator, 'input_size', None))
    alpha = float(cfg.get('reward', {}).get('alpha', -0.07))
    ex_cfg = dict(cfg.executor)
    executor = build_executor(ex_cfg.pop('type', 'auto'), **ex_cfg)
    names = [st.get('name', st['type']) for st in cfg.strategies]
    print(f'search: strategies {names}, {budget} candidates each (batch {batch_size}), '
          f'seed {seed}; reward = acc * (FLOPs / {target / 1e6:.3f} M)^{alpha}; '
          f'executor {executor.kind} x{executor.num_workers}; work dir {work_dir}', flush=True)

    progress = Progress(total=budget * len(cfg.strategies))
    for st in cfg.strategies:
        run = SearchRun(space, st, evaluator, work_dir, budget, target, alpha=alpha,
                        batch_size=batch_size, executor=executor, seed=seed,
                        failure_reward=float(s.get('failure_reward', 0.)),
                        cache=bool(s.get('cache', True)), progress=progress)
        run.run(resume=args.resume)
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
    print(f'Pareto plot: {plot}\nsummary: {osp.join(work_dir, "summary.md")}\n'
          f'top-{topk} configs: {osp.join(work_dir, "topk")}\nwall time {elapsed:.0f} s')
    return 0


def _f(v, digits=4):
    return '-' if v is None else f'{v:.{digits}f}'


if __name__ == '__main__':
    sys.exit(main())
