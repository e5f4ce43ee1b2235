"""Benchmark the search strategies on a tabular benchmark: many seeds, every budget, paired
statistics (uninet_mm/search/benchmark.py; docs/search.md, "Benchmark").

    python tools/search_benchmark.py --nasbench-graph cora --seeds 30 --budgets 100,300 \\
        --noise 0.01 --out work_dirs/bench/cora
    python tools/search_benchmark.py --table my_table.jsonl --strategies ppo,random

Outputs in --out: summary.json (per budget and strategy: mean, sem, values per seed, distinct
architectures; one-sided paired Wilcoxon p-values "a>b"; A12), anytime.png, curves.json; with
several tables one sub-folder each and summary.md with all of them.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'search', 'benchmark.py')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--table', nargs='+', help='JSON Lines table(s) (docs/search.md)')
    src.add_argument('--nasbench-graph', help="NAS-Bench-Graph dataset(s), comma-separated, "
                                              "or 'all' (pip install nas-bench-graph==1.4.0)")
    p.add_argument('--config', default=DEFAULT_CONFIG, help='strategies (default: %(default)s)')
    p.add_argument('--strategies', default='ppo,random,evolution',
                   help='comma-separated names of the config\'s strategies')
    p.add_argument('--seeds', type=int, default=30, help='seeds 0..N-1 (paired)')
    p.add_argument('--budgets', default='100,300', help='comma-separated budgets')
    p.add_argument('--noise', type=float, default=0., help='Gaussian noise sigma added to '
                                                           'each evaluation')
    p.add_argument('--target', type=float, help='FLOPs target of tables with "flops"')
    p.add_argument('--workers', type=int, help='processes (default: all CPUs)')
    p.add_argument('--out', required=True, help='output folder')
    p.add_argument('--cfg-options', nargs='+', default=[], metavar='KEY=VALUE',
                   help='override config keys, e.g. strategies.0.lr=0.02')
    h = p.add_argument_group('headroom (uninet_mm/search/headroom.py): instead of running the '
                             'strategies, model a strategy k times as sample-efficient as '
                             'random search (random search with k x the budget): its mean '
                             'pick and its power against random search; with a summary.json '
                             'of an earlier run in --out, each strategy\'s effective k')
    h.add_argument('--headroom', action='store_true', help='run the headroom model')
    h.add_argument('--factors', default='1,2,4,8,16,32,inf', help='k values (inf: every '
                                                                 'sequence evaluated)')
    h.add_argument('--studies', type=int, default=200,
                   help='simulated studies of --seeds paired seeds per k (power)')
    args = p.parse_args(argv)
    try:
        args.budgets = sorted({int(b) for b in args.budgets.split(',') if b.strip()})
    except ValueError:
        p.error(f'--budgets must be comma-separated integers, got {args.budgets!r}')
    if not args.budgets or args.budgets[0] < 1:
        p.error('--budgets must be positive')
    if args.seeds < 1:
        p.error('--seeds must be >= 1')
    if args.noise < 0:
        p.error('--noise must be >= 0')
    try:
        args.factors = [float(k) for k in args.factors.split(',') if k.strip()]
    except ValueError:
        p.error(f'--factors must be comma-separated numbers or inf, got {args.factors!r}')
    if not any(math.isfinite(k) for k in args.factors) or min(args.factors) < 1:
        p.error('--factors must be >= 1, at least one of them finite')
    if args.studies < 1:
        p.error('--studies must be >= 1')
    return args


def load_config(args):
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        opts = argparse.ArgumentParser()
        opts.add_argument('--o', nargs='+', action=DictAction)
        cfg.merge_from_dict(opts.parse_args(['--o'] + args.cfg_options).o)
    wanted = [s.strip() for s in args.strategies.split(',') if s.strip()]
    by_name = {s.get('name', s['type']): dict(s) for s in cfg.strategies}
    missing = [w for w in wanted if w not in by_name]
    if missing:
        raise SystemExit(f'--strategies: {missing} not in {args.config} ({list(by_name)})')
    return cfg, [by_name[w] for w in wanted]


def tables(args):
    from uninet_mm.search.tabular import load_table
    if args.table:
        for path in args.table:
            yield osp.splitext(osp.basename(path))[0], lambda path=path: load_table(path)
        return
    from uninet_mm.search.nasbench_graph import DATASETS, load_nasbench_graph
    names = DATASETS if args.nasbench_graph == 'all' else \
        [n.strip() for n in args.nasbench_graph.split(',') if n.strip()]
    bad = [n for n in names if n not in DATASETS]
    if bad:
        raise SystemExit(f'--nasbench-graph: unknown dataset(s) {bad}; valid: {list(DATASETS)}')
    for n in names:
        yield n, lambda n=n: load_nasbench_graph(n)


def fmt_k(k):
    return 'inf' if math.isinf(k) else f'{k:g}'


def run_headroom(args):
    """``--headroom``: DIR/headroom.json and a markdown table per --out (one row per table and
    budget: random search's mean pick, then per k the mean pick and the power)."""
    from uninet_mm.search.headroom import effective_factor, headroom
    todo = list(tables(args))
    header = ['| dataset | budget | random | ' + ' | '.join(
        f'k={fmt_k(k)} mean (power)' for k in args.factors) + ' | effective k |',
        '| --- ' * (len(args.factors) + 4) + '|']
    top = max(k for k in args.factors if math.isfinite(k))
    rows = []
    for name, load in todo:
        result = headroom(load(), args.budgets, args.factors, seeds=args.seeds,
                          noise=args.noise, studies=args.studies)
        out = args.out if len(todo) == 1 else osp.join(args.out, name)
        os.makedirs(out, exist_ok=True)
        observed = {}
        if osp.isfile(osp.join(out, 'summary.json')):
            with open(osp.join(out, 'summary.json')) as f:
                observed = json.load(f).get('budgets', {})
        for b in args.budgets:
            res = result[b]
            eff = {s: effective_factor(res, r['mean'])
                   for s, r in observed.get(str(b), {}).items()}
            res['effective_factor'] = eff
            cells = ' | '.join(f'{r["mean"]:.4f} ({r["power"]:.2f})'
                               for r in res['factors'].values())
            effs = ', '.join(f'{s} ' + ('<1' if k is None else f'>{top:g}' if math.isinf(k)
                                         else f'{k:.1f}') for s, k in eff.items())
            rows.append(f'| {name} | {b} | {res["random"]:.4f} | {cells} | {effs or "-"} |')
        with open(osp.join(out, 'headroom.json'), 'w') as f:
            json.dump({str(b): dict(random=r['random'],
                                    effective_factor={s: k if k is None or math.isfinite(k)
                                                      else 'inf'
                                                      for s, k in r['effective_factor'].items()},
                                    factors={fmt_k(k): v for k, v in r['factors'].items()})
                       for b, r in result.items()}, f, indent=1)
        print('\n'.join(header + rows[-len(args.budgets):]), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'headroom.md'), 'w') as f:
        f.write(f'# tools/search_benchmark.py --headroom: {args.seeds} seeds x {args.studies} '
                f'studies, noise {args.noise:g}; power: one-sided paired Wilcoxon p < 0.01\n\n'
                + '\n'.join(header + rows) + '\n')
    print(f'headroom: {osp.join(args.out, "headroom.md")}')
    return 0


def main(argv=None):
    args = parse_args(argv)
    if args.headroom:
        return run_headroom(args)
    from uninet_mm.search.benchmark import (
        markdown_header,
        markdown_rows,
        run_benchmark,
        write_summary,
    )
    cfg, strategies = load_config(args)
    s = cfg.get('search', {})
    r = cfg.get('reward', {})
    target = args.target or float(r.get('target_flops', 1.0))
    todo = list(tables(args))
    rows, header = [], None
    for name, load in todo:
        table = load()
        summary = run_benchmark(table, strategies, seeds=args.seeds, budgets=args.budgets,
                                noise=args.noise, workers=args.workers,
                                batch_size=int(s.get('batch_size', 10)), target=target,
                                alpha=float(r.get('alpha', -0.07)),
                                failure_reward=float(s.get('failure_reward', 0.)),
                                log=lambda m, name=name: print(f'[{name}] {m}', flush=True))
        out = args.out if len(todo) == 1 else osp.join(args.out, name)
        write_summary(summary, out, plot_title=f'{name}, noise {args.noise:g}, '
                                               f'{args.seeds} seeds (mean +- sem)')
        header = header or markdown_header(summary)
        new = markdown_rows(summary, name)
        rows += new
        print('\n'.join(header + new), flush=True)
    os.makedirs(args.out, exist_ok=True)
    with open(osp.join(args.out, 'summary.md'), 'w') as f:
        f.write(f'# tools/search_benchmark.py: {args.seeds} seeds, noise {args.noise:g}, '
                f'strategies {args.strategies}\n\n' + '\n'.join(header + rows) + '\n')
    print(f'summary: {osp.join(args.out, "summary.md")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
