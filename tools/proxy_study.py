"""Does the search's proxy rank architectures as longer training does? (docs/search.md, "Does
the proxy rank like longer training?"; uninet_mm/search/rank_agreement.py)

    python tools/proxy_study.py --out work_dirs/proxy_study            # run (or resume) + report
    python tools/proxy_study.py --out work_dirs/proxy_study --report-only \\
        --table docs/bench/uninet_demo_40.jsonl                        # statistics + table

1. ``--archs`` architectures of the demo space (``--config``, configs/search/mnist_demo.py),
   stratified over FLOPs: ``--pool-per-bin`` x ``--archs`` random distinct architectures
   (seed 0), sorted by FLOPs, cut into ``--archs`` bins of equal count, one drawn per bin.
2. Each is trained by the config's evaluator (the demo proxy, through the same ProxyTrain
   evaluator, Runner and registry as the search) under ``--seeds`` seeds, and once at the higher
   fidelity (``--high-options``, merged into the evaluator; default 3 epochs on all 4,000
   training digits, validated on all 1,000). ``--proxy-options`` / ``--proxy-name`` define
   another proxy to study (e.g. ``train_subset=4000``; ``base_config=`` another task);
   ``--high-seeds N`` trains the higher fidelity under seeds 0..N-1 (after everything else).
3. Every result is appended to ``OUT/results.jsonl`` (fsync'ed) as it finishes; a rerun skips
   what is there, so a kill loses at most the candidate in training.
4. The report (``OUT/report.json``, printed as markdown): Kendall tau-b and Spearman rho of the
   proxy (seed 0, as a search sees it, and the mean of the seeds) against the higher fidelity,
   with percentile bootstrap 95% intervals over architectures (2,000 resamples, seed 0), the
   top-10% overlap, the seed-to-seed tau, seconds per candidate; with ``--high-seeds`` > 1
   also the higher fidelity's own seed-to-seed tau and seed 0 against the mean of its seeds.
5. ``--table FILE``: the architectures as a table of docs/search.md (JSON Lines: tokens,
   ``value`` = the proxy's accuracy at seed 0, ``test`` = the higher fidelity's where it was
   trained, ``flops``),
   for ``tools/search_benchmark.py --table FILE``.
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DEFAULT_CONFIG = osp.join(REPO, 'configs', 'search', 'mnist_demo.py')
HIGH_OPTIONS = ['epochs=3', 'train_subset=0', 'val_subset=0']
#: what a proxy training measures besides its score (uninet_mm/search/proxy.py, runner.py)
EXTRA_KEYS = ('top1', 'train_loss', 'train_loss_tail', 'val_nll')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default=DEFAULT_CONFIG, help='search config (default: the demo)')
    p.add_argument('--out', required=True, help='work folder (results.jsonl, report.json)')
    p.add_argument('--archs', type=int, default=40, help='architectures (FLOPs strata)')
    p.add_argument('--pool-per-bin', type=int, default=2,
                   help='random architectures drawn per stratum before the stratified pick')
    p.add_argument('--arch-seed', type=int, default=0,
                   help='seed of the architecture draw (another seed: a fresh set, e.g. to '
                        'confirm a proxy chosen on the first)')
    p.add_argument('--seeds', type=int, default=3, help='proxy seeds 0..N-1')
    p.add_argument('--proxy-name', default='demo', help='label of the proxy in the records')
    p.add_argument('--proxy-options', nargs='*', default=[], metavar='KEY=VALUE',
                   help='merged into the config\'s evaluator for the proxy (default: as is)')
    p.add_argument('--high-options', nargs='*', default=HIGH_OPTIONS, metavar='KEY=VALUE',
                   help='the higher fidelity (default: %(default)s; a subset of 0 = all)')
    p.add_argument('--high-seeds', type=int, default=1,
                   help='seeds 0..N-1 of the higher fidelity (N > 1: its own seed-to-seed tau '
                        'and the proxy against the mean of its seeds)')
    p.add_argument('--no-high', action='store_true', help='train only the proxy')
    p.add_argument('--limit', type=int, help='stop after this many new trainings')
    p.add_argument('--part', default='1/1', metavar='K/M',
                   help='train only every M-th missing job from the K-th (run M processes '
                        'with K = 1..M on one OUT to use M cores; results append safely)')
    p.add_argument('--only', help="train only this fidelity's jobs (the proxy's name or "
                                  "'high'), in the study's order")
    p.add_argument('--report-only', action='store_true', help='train nothing, report')
    p.add_argument('--table', help='write the architectures as a JSON Lines table here')
    p.add_argument('--bootstrap', type=int, default=2000, help='bootstrap resamples')
    p.add_argument('--flops-slope', type=float,
                   help='also rank the proxy\'s top-1 extrapolated with this slope, top-1 + '
                        'slope x ln(FLOPs / FLOPS_REF) (uninet_mm/search/proxy.py: extrapolate)')
    args = p.parse_args(argv)
    if args.archs < 2 or args.seeds < 1 or args.pool_per_bin < 1 or args.high_seeds < 1:
        p.error('--archs must be >= 2, --seeds, --high-seeds and --pool-per-bin >= 1')
    k, _, m = args.part.partition('/')
    if not (k.isdigit() and m.isdigit() and 1 <= int(k) <= int(m)):
        p.error(f'--part must be K/M with 1 <= K <= M (e.g. 2/2), got {args.part!r}')
    args.part_k, args.part_m = int(k), int(m)
    return args


def parse_options(items, flag):
    out = {}
    for item in items:
        if '=' not in item:
            raise SystemExit(f'{flag}: expected KEY=VALUE, got {item!r}')
        k, v = item.split('=', 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def stratified_archs(space, complexity, n, per_bin, seed=0):
    """``n`` distinct architectures, one per FLOPs stratum of ``n * per_bin`` random ones."""
    rng = random.Random(seed)
    pool, seen = [], set()
    for _ in range(100 * n * per_bin):
        if len(pool) == n * per_bin:
            break
        tokens = space.sample(rng)
        arch = space.decode(tokens)
        key = space.arch_key(arch)
        if key in seen:
            continue
        seen.add(key)
        pool.append(dict(tokens=list(tokens), arch=arch, flops=float(complexity(arch)[0])))
    if len(pool) < n * per_bin:
        raise SystemExit(f'the space has fewer than {n * per_bin} distinct architectures')
    pool.sort(key=lambda c: c['flops'])
    return [pool[b * per_bin + rng.randrange(per_bin)] for b in range(n)]


def job_list(archs, proxy, seeds, high, high_seeds=1):
    """The trainings, cheapest information first, the architectures in a seeded random order
    (a partial study is an unbiased sample of the strata): the proxy's seeds 0 and 1 of every
    architecture (seed-to-seed agreement), then per architecture the higher fidelity (seed 0)
    and the proxy's remaining seeds, then the higher fidelity's further seeds."""
    order = list(range(len(archs)))
    random.Random(1).shuffle(order)
    jobs = [(proxy, s, i) for i in order for s in range(min(2, seeds))]
    for i in order:
        if high:
            jobs.append(('high', 0, i))
        jobs += [(proxy, s, i) for s in range(2, seeds)]
    if high:
        jobs += [('high', s, i) for s in range(1, high_seeds) for i in order]
    return jobs


def report(archs, records, proxy, seeds, reps=2000, high_seeds=1, flops_slope=None):
    from uninet_mm.search.proxy import extrapolate
    from uninet_mm.search.rank_agreement import agreement, seed_to_seed_tau
    acc = {(r['fidelity'], r['seed'], r['index']): r for r in records}
    done = [i for i in range(len(archs))
            if ('high', 0, i) in acc and all((proxy, s, i) in acc for s in range(seeds))]
    out = dict(proxy=proxy, seeds=seeds, archs=len(archs), complete=len(done),
               seed_to_seed=seed_to_seed_tau(records, proxy, seeds))
    if high_seeds > 1:
        out['high_seeds'] = high_seeds
        out['high_seed_to_seed'] = seed_to_seed_tau(records, 'high', high_seeds)
    for fid in (proxy, 'high'):
        secs = [r['cpu_seconds'] for r in records if r['fidelity'] == fid and r.get('accuracy')
                is not None]
        if secs:
            out[f'seconds_{fid}'] = dict(mean=sum(secs) / len(secs), min=min(secs),
                                         max=max(secs), n=len(secs))
            out[f'options_{fid}'] = next(r['options'] for r in records if r['fidelity'] == fid)
    pair = [i for i in range(len(archs)) if ('high', 0, i) in acc and (proxy, 0, i) in acc]
    if len(pair) < 3:
        return out
    high = [acc[('high', 0, i)]['accuracy'] for i in pair]
    seed0 = [acc[(proxy, 0, i)]['accuracy'] for i in pair]
    out['seed0_vs_high'] = agreement(seed0, high, reps=reps)  # a partial study included
    flops = [acc[('high', 0, i)].get('flops') for i in pair]
    if all(flops):  # what the size alone ranks, and the proxy extrapolated with it
        out['flops_vs_high'] = agreement(flops, high, reps=reps)
        for s in range(seeds) if flops_slope is not None else ():
            have = [k for k, i in enumerate(pair) if (proxy, s, i) in acc]
            if len(have) >= 3:
                runs = [acc[(proxy, s, pair[k])] for k in have]
                score = [extrapolate(r.get('top1', r['accuracy']), flops[k], flops_slope)
                         for r, k in zip(runs, have)]
                out.setdefault('extrapolated_vs_high', {})[str(s)] = dict(
                    agreement(score, [high[k] for k in have], reps=reps), slope=flops_slope)
    if seeds > 1 and len(done) >= 3:
        mean = [sum(acc[(proxy, s, i)]['accuracy'] for s in range(seeds)) / seeds
                for i in done]
        out['mean_vs_high'] = agreement(mean, [acc[('high', 0, i)]['accuracy'] for i in done],
                                        reps=reps)
    both = [i for i in pair if all(('high', s, i) in acc for s in range(high_seeds))]
    if high_seeds > 1 and len(both) >= 3:  # against the mean of the reference's seeds
        out['seed0_vs_high_mean'] = agreement(
            [acc[(proxy, 0, i)]['accuracy'] for i in both],
            [sum(acc[('high', s, i)]['accuracy'] for s in range(high_seeds)) / high_seeds
             for i in both], reps=reps)
    out['proxy_accuracy'] = [min(seed0), max(seed0)]
    out['high_accuracy'] = [min(high), max(high)]
    return out


def markdown(rep):
    lines = [f'{rep["complete"]} of {rep["archs"]} architectures complete ({rep["proxy"]} '
             f'proxy x {rep["seeds"]} seeds + the higher fidelity)']
    for fid in (rep['proxy'], 'high'):
        s = rep.get(f'seconds_{fid}')
        if s:
            opts = ' '.join(f'{k}={v}' for k, v in rep[f'options_{fid}'].items())
            lines.append(f'- {fid} ({opts or "as configured"}): '
                         f'{s["mean"]:.1f} CPU s per candidate ({s["min"]:.1f}-{s["max"]:.1f}, '
                         f'{s["n"]} trainings)')
    rows = [(f'seed {s} + {a["slope"]} ln(FLOPs) vs high', a)
            for s, a in rep.get('extrapolated_vs_high', {}).items()]
    rows += [(what, rep.get(key)) for key, what in (
        ('flops_vs_high', 'FLOPs alone vs high'), ('seed0_vs_high', 'seed 0 vs high'),
        ('mean_vs_high', f'mean of {rep["seeds"]} seeds vs high'),
        ('seed0_vs_high_mean', f'seed 0 vs the mean of {rep.get("high_seeds")} high seeds'))]
    for what, a in rows:
        if a:
            lines.append(f'- {what}: Kendall tau {a["kendall_tau"]:.3f} '
                         f'[{a["kendall_tau_ci"][0]:.3f}, {a["kendall_tau_ci"][1]:.3f}], '
                         f'Spearman rho {a["spearman_rho"]:.3f} [{a["spearman_rho_ci"][0]:.3f}, '
                         f'{a["spearman_rho_ci"][1]:.3f}], top-10% overlap '
                         f'{a["top_overlap"]:.2f} (n = {a["n"]})')
    sa = rep['seed_to_seed']
    if sa.get('pairs'):
        pairs = ', '.join(f'{k}: {p["tau"]:.3f} (n = {p["n"]})' for k, p in sa['pairs'].items())
        lines.append(f'- seed-to-seed tau of the proxy {sa["tau"]:.3f} (seed pairs {pairs}); '
                     f'mean per-architecture sd of its accuracy over seeds {sa["sd"]:.4f} '
                     f'({sa["sd_n"]} architectures)')
    ha = rep.get('high_seed_to_seed', {})
    if ha.get('pairs'):
        pairs = ', '.join(f'{k}: {p["tau"]:.3f} (n = {p["n"]})' for k, p in ha['pairs'].items())
        lines.append(f'- seed-to-seed tau of the higher fidelity {ha["tau"]:.3f} ({pairs}); '
                     f'mean per-architecture sd {ha["sd"]:.4f} ({ha["sd_n"]} architectures)')
    if rep.get('high_accuracy'):
        lines.append(f'- accuracy ranges: proxy {rep["proxy_accuracy"][0]:.3f}-'
                     f'{rep["proxy_accuracy"][1]:.3f}, high {rep["high_accuracy"][0]:.3f}-'
                     f'{rep["high_accuracy"][1]:.3f}')
    return '\n'.join(lines)


def write_table(archs, records, proxy, path, choices):
    """The architectures with the proxy's seed 0 as a table: ``value`` = that accuracy,
    ``test`` = the higher fidelity's where it was trained (a partial study leaves it out)."""
    acc = {(r['fidelity'], r['seed'], r['index']): r['accuracy'] for r in records}
    n = 0
    with open(path, 'w') as f:
        f.write(json.dumps(dict(choices=choices)) + '\n')
        for i, a in enumerate(archs):
            if (proxy, 0, i) not in acc:
                continue
            line = dict(tokens=a['tokens'], value=acc[(proxy, 0, i)])
            if ('high', 0, i) in acc:
                line['test'] = acc[('high', 0, i)]
            line['flops'] = a['flops']
            f.write(json.dumps(line) + '\n')
            n += 1
    return n


def check_draw(path, draw):
    """Resuming, refuse options that would draw other architectures than the recorded ones
    (``OUT/draw.json``; ``archs.json`` would silently keep the first draw). No record (a
    study begun before draw.json existed): unchecked."""
    if osp.isfile(path):
        with open(path) as f:
            before = json.load(f)
        diff = [f'{k} {before.get(k)!r} -> {v!r}' for k, v in draw.items() if before.get(k) != v]
        if diff:
            raise SystemExit(f'{osp.dirname(path)} holds architectures drawn otherwise '
                             f'({", ".join(diff)}): use another --out or the same options')


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, REPO)
    from mmengine.config import Config

    from uninet_mm.search import build_evaluator, build_search_space
    from uninet_mm.search.results import ResultsFile
    from uninet_mm.search.runner import quiet_logger
    cfg = Config.fromfile(args.config)
    space = build_search_space(cfg.search_space.to_dict())
    base_ev = cfg.evaluator.to_dict()
    proxy_opts = parse_options(args.proxy_options, '--proxy-options')
    high_opts = parse_options(args.high_options, '--high-options')
    os.makedirs(args.out, exist_ok=True)
    arch_path, draw_path = osp.join(args.out, 'archs.json'), osp.join(args.out, 'draw.json')
    draw = dict(config=osp.relpath(osp.abspath(args.config), REPO), archs=args.archs,
                pool_per_bin=args.pool_per_bin, arch_seed=args.arch_seed)
    check_draw(draw_path, draw)
    if osp.isfile(arch_path):
        with open(arch_path) as f:
            archs = json.load(f)
    else:
        probe = build_evaluator(dict(base_ev, type='ZeroCost')) if base_ev.get(
            'type') == 'ProxyTrain' else build_evaluator(base_ev)
        t0 = time.time()
        archs = stratified_archs(space, probe.complexity, args.archs, args.pool_per_bin,
                                 seed=args.arch_seed)
        print(f'{len(archs)} architectures stratified over FLOPs '
              f'({archs[0]["flops"] / 1e6:.2f}-{archs[-1]["flops"] / 1e6:.2f} M) in '
              f'{time.time() - t0:.0f} s', flush=True)
        with open(arch_path, 'w') as f:
            json.dump(archs, f)
        with open(draw_path, 'w') as f:  # recorded once the draw is there
            json.dump(draw, f)
    results = ResultsFile(osp.join(args.out, 'results.jsonl'))
    records = results.load()
    if not args.report_only:
        have = {(r['fidelity'], r['seed'], r['index']) for r in records}
        evaluators = {args.proxy_name: (build_evaluator(dict(base_ev, **proxy_opts)), proxy_opts),
                      'high': (build_evaluator(dict(base_ev, **high_opts)), high_opts)}
        todo = [j for j in job_list(archs, args.proxy_name, args.seeds, not args.no_high,
                                    args.high_seeds)
                if j not in have and (args.only is None or j[0] == args.only)]
        todo = todo[args.part_k - 1::args.part_m][:args.limit]
        print(f'{len(todo)} trainings to do ({len(have)} done)', flush=True)
        for k, (fid, seed, i) in enumerate(todo):
            ev, opts = evaluators[fid]
            t0, c0 = time.time(), time.process_time()
            rec = dict(fidelity=fid, seed=seed, index=i, tokens=archs[i]['tokens'],
                       flops=archs[i]['flops'], options=opts)
            try:
                with quiet_logger():
                    r = ev(archs[i]['arch'], archs[i]['tokens'], seed=seed)
                rec.update(accuracy=r['accuracy'], status='ok',
                           **{k: r[k] for k in EXTRA_KEYS if k in r})
            except Exception as e:  # a failed candidate is a result too (reported, not ranked)
                rec.update(accuracy=None, status='failed', error=f'{type(e).__name__}: {e}')
            rec['seconds'], rec['cpu_seconds'] = time.time() - t0, time.process_time() - c0
            results.append(rec)
            print(f'[{k + 1}/{len(todo)}] {fid} seed {seed} arch {i}: {rec["accuracy"]} '
                  f'({rec["seconds"]:.1f} s)', flush=True)
        records = results.load()  # with what other --part processes appended meanwhile
    ok = [r for r in records if r.get('status') == 'ok']
    rep = report(archs, ok, args.proxy_name, args.seeds, reps=args.bootstrap,
                 high_seeds=args.high_seeds, flops_slope=args.flops_slope)
    rep['failed'] = len(records) - len(ok)
    with open(osp.join(args.out, 'report.json'), 'w') as f:
        json.dump(rep, f, indent=1)
    print(markdown(rep), flush=True)
    if args.table:
        os.makedirs(osp.dirname(osp.abspath(args.table)), exist_ok=True)
        n = write_table(archs, ok, args.proxy_name, args.table, space.num_choices)
        print(f'table: {n} architectures -> {args.table}', flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
