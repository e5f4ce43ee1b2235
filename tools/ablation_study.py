"""The paper's DSM ablation (Sec. 6.2, Table 6) on the MNIST proxy: the demo UniNet with its own
DSMs (the released pattern L, L, L, LG, LG) against one fixed DSM (L, G or LG) in every stage that
has one, several seeds each; mean and standard deviation of top-1, Welch's t-test of every
fixed-DSM setting against the preset DSMs.

    OMP_NUM_THREADS=1 python tools/ablation_study.py --work-dir work_dirs/ablation_dsm
    OMP_NUM_THREADS=1 python tools/ablation_study.py --seeds 0 --epochs 1   # a quick look

Each run is the search's proxy trainer (:class:`uninet_mm.search.ProxyTrainEvaluator`:
MMEngine's Runner, MMPretrain's ImageClassifier, the recipe of ``--config``) on the demo arch of
that config with only ``dsms`` changed. Every finished run is appended to
``WORK_DIR/runs.jsonl`` at once; a second call with the same work dir skips the runs it holds.
The table goes to ``WORK_DIR/summary.md`` and ``summary.json``.
"""
import argparse
import json
import math
import os
import os.path as osp
import statistics
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

#: the four settings of Table 6; None: the config's own DSMs
SETTINGS = {'preset': None, 'all-L': 'L', 'all-G': 'G', 'all-LG': 'LG'}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config', default='configs/cls/uninet_mnist_demo.py',
                   help='MMPretrain config with a UniNet backbone (its arch and recipe)')
    p.add_argument('--settings', nargs='+', default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--epochs', type=int, default=None,
                   help="training epochs (default: the config's max_epochs)")
    p.add_argument('--train-subset', type=int, default=None,
                   help='train on this many samples (evenly spaced; default all)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run')
    p.add_argument('--work-dir', default='work_dirs/ablation_dsm')
    return p.parse_args(argv)


def setting_arch(base_arch, dsm):
    """``base_arch`` with ``dsm`` in every stage that has a DSM (None: unchanged)."""
    arch = dict(base_arch, dsms=list(base_arch['dsms']))
    if dsm is not None:
        arch['dsms'] = [None if d is None else dsm for d in arch['dsms']]
    return arch


def welch_t(a, b):
    """Welch's t statistic and two-sided p (Student-t with Welch-Satterthwaite d.o.f.; scipy
    when installed, else None for p) of mean(a) - mean(b)."""
    if len(a) < 2 or len(b) < 2:
        return None, None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    if va + vb == 0:
        return None, None
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    try:
        from scipy import stats
        return t, float(2 * stats.t.sf(abs(t), dof))
    except ImportError:
        return t, None


def summarize(runs, settings):
    rows = []
    ref = [r['accuracy'] for r in runs if r['setting'] == 'preset']
    for name in settings:
        accs = [r['accuracy'] for r in runs if r['setting'] == name]
        if not accs:
            continue
        t, p = welch_t(accs, ref) if name != 'preset' else (None, None)
        rows.append(dict(
            setting=name, dsms=next(r['dsms'] for r in runs if r['setting'] == name),
            n=len(accs), mean=statistics.mean(accs),
            std=statistics.stdev(accs) if len(accs) > 1 else 0.,
            accs=accs, params=next(r['params'] for r in runs if r['setting'] == name),
            flops=next(r['flops'] for r in runs if r['setting'] == name),
            minutes=sum(r['seconds'] for r in runs if r['setting'] == name) / 60,
            t_vs_preset=t, p_vs_preset=p))
    return rows


def markdown(rows, command):
    lines = [f'`{command}`', '',
             '| setting | DSMs | params | FLOPs (32x32) | top-1 mean | std | seeds | '
             't vs preset | p |', '|---|---|---|---|---|---|---|---|---|']
    for r in rows:
        t = '' if r['t_vs_preset'] is None else f'{r["t_vs_preset"]:+.2f}'
        p = '' if r['p_vs_preset'] is None else f'{r["p_vs_preset"]:.3f}'
        dsms = ', '.join('-' if d is None else d for d in r['dsms'])
        lines.append(f'| {r["setting"]} | {dsms} | {r["params"] / 1e3:.1f}k | '
                     f'{r["flops"] / 1e6:.2f}M | {100 * r["mean"]:.2f}% | '
                     f'{100 * r["std"]:.2f} | {r["n"]} | {t} | {p} |')
    return '\n'.join(lines) + '\n'


def main(argv=None):
    args = parse_args(argv)
    from mmengine.config import Config

    from uninet_mm.search.evaluators import ProxyTrainEvaluator

    cfg = Config.fromfile(args.config)
    base_arch = cfg.model.backbone.arch.to_dict()
    epochs = args.epochs or cfg.train_cfg.max_epochs
    n_train = len(cfg.train_dataloader.dataset.get('indices') or []) or None
    iters_per_epoch = math.ceil((args.train_subset or n_train or 4000)
                                / cfg.train_dataloader.batch_size)
    evaluator = ProxyTrainEvaluator(
        base_config=args.config, epochs=epochs, train_subset=args.train_subset,
        warmup_iters=iters_per_epoch, num_threads=args.threads)
    os.makedirs(args.work_dir, exist_ok=True)
    runs_file = osp.join(args.work_dir, 'runs.jsonl')
    runs = []
    if osp.isfile(runs_file):
        with open(runs_file) as f:
            runs = [json.loads(line) for line in f if line.strip()]
    done = {(r['setting'], r['seed'], r['epochs']) for r in runs}
    for name in args.settings:
        arch = setting_arch(base_arch, SETTINGS[name])
        for seed in args.seeds:
            if (name, seed, epochs) in done:
                continue
            t0 = time.time()
            res = evaluator(arch, seed=seed)
            rec = dict(setting=name, seed=seed, epochs=epochs, dsms=arch['dsms'],
                       accuracy=res['accuracy'], params=res['params'], flops=res['flops'],
                       seconds=round(time.time() - t0, 1))
            print(json.dumps(rec), flush=True)
            with open(runs_file, 'a') as f:
                f.write(json.dumps(rec) + '\n')
            runs.append(rec)
    runs = [r for r in runs if r['epochs'] == epochs and r['seed'] in args.seeds]
    rows = summarize(runs, args.settings)
    command = 'OMP_NUM_THREADS=1 python tools/ablation_study.py ' + ' '.join(
        argv if argv is not None else sys.argv[1:])
    text = markdown(rows, command.strip())
    print(text)
    with open(osp.join(args.work_dir, 'summary.md'), 'w') as f:
        f.write(text)
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(dict(command=command, epochs=epochs, rows=rows), f, indent=1)
    return rows


if __name__ == '__main__':
    main()
