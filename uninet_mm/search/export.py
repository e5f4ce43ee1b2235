"""Outputs of a search: the top-k architectures as ready-to-train configs (ImageNet
classification with MMPretrain, Mask R-CNN on COCO with MMDetection), the Pareto plot
(accuracy vs FLOPs, PNG) and the summary tables.

The exported configs inherit the project's own recipes, ``configs/cls/uninet_b0_in1k.py``
(160x160, the resolution of the paper's 550 MFLOPs target) and
``configs/mmdet/mask_rcnn_uninet_b1_1x.py``, by absolute path, and only put in the searched
arch (a complete arch dict that ``UniNet`` builds as is), the head width, the dense-prediction
``out_indices`` and the FPN's input widths.
"""
import json
import math
import os
import os.path as osp
import pprint

from ..utils.paths import find_config

CLS_BASE = 'configs/cls/uninet_b0_in1k.py'
DET_BASE = 'configs/mmdet/mask_rcnn_uninet_b1_1x.py'


def ok_records(records):
    return [r for r in records if r.get('status') == 'ok' and r.get('reward') is not None]


def top_k(records, k):
    """The ``k`` best distinct architectures by reward (trained records, not cache copies);
    none for ``k <= 0``."""
    seen, out = set(), []
    if k <= 0:
        return out
    for r in sorted(ok_records(records), key=lambda r: -r['reward']):
        key = tuple(r['tokens'])
        if key in seen:
            continue
        seen.add(key)
        out.append(r)
        if len(out) == k:
            break
    return out


def dense_out_indices(arch):
    """The last stage at each overall stride 4, 8, 16, 32 (the stem has stride 2)."""
    stride, last = 2, {}
    for i, s in enumerate(arch['strides']):
        stride *= s
        last[stride] = i
    missing = [s for s in (4, 8, 16, 32) if s not in last]
    if missing:
        raise ValueError(f'export: the arch has no stage at stride(s) {missing} (strides '
                         f'{arch["strides"]}); a Mask R-CNN + FPN needs 1/4 .. 1/32 maps')
    return tuple(last[s] for s in (4, 8, 16, 32))


def _fmt(obj):
    return pprint.pformat(obj, width=96, sort_dicts=False)


def cls_config(arch, rec, base=CLS_BASE):
    base_path = find_config(base)
    metric = f"{rec.get('metric', 'accuracy')} {rec['accuracy']:.4f}"
    return f"""# Searched UniNet {rec['id']} (reward {rec['reward']:.4f}; proxy {metric},
# {rec['flops'] / 1e6:.2f} MFLOPs at the proxy resolution) on ImageNet-1k at 160x160, with
# the UniNet-B0 recipe. Checkpoints go to work_dirs/<this file's name>/.
#   python tools/train.py THIS_FILE
_base_ = [{base_path!r}]

searched_arch = {_fmt(arch)}

model = dict(
    backbone=dict(arch=dict(_delete_=True, **searched_arch)),
    head=dict(in_channels={arch['widths'][-1]}))
"""


def det_config(arch, rec, cls_name, base=DET_BASE):
    base_path = find_config(base)
    idx = dense_out_indices(arch)
    widths = [arch['widths'][i] for i in idx]
    return f"""# Mask R-CNN + FPN on COCO (1x) with the searched UniNet {rec['id']} as backbone, the
# recipe of configs/mmdet/mask_rcnn_uninet_b1_1x.py. Train {cls_name} (beside this file)
# first: `pretrained` is its last checkpoint; or train from scratch with
#   --cfg-options model.backbone.init_cfg=None
_base_ = {base_path!r}

searched_arch = {_fmt(arch)}

pretrained = 'work_dirs/{osp.splitext(cls_name)[0]}/epoch_300.pth'

model = dict(
    backbone=dict(
        arch=dict(_delete_=True, **searched_arch),
        out_indices={idx},  # strides 4, 8, 16, 32
        init_cfg=dict(type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(in_channels={widths}))
"""


def export_topk(records, k, out_dir):
    """Write ``rank<r>_<id>/{arch.json, uninet_search_<id>_in1k.py,
    mask_rcnn_uninet_search_<id>_1x.py}`` for the top ``k``; returns the written folders
    (``k <= 0``: nothing, not even ``out_dir``)."""
    if k <= 0:
        return []
    os.makedirs(out_dir, exist_ok=True)
    folders = []
    for rank, rec in enumerate(top_k(records, k), 1):
        arch = rec['arch']
        folder = osp.join(out_dir, f'rank{rank}_{rec["id"]}')
        os.makedirs(folder, exist_ok=True)
        with open(osp.join(folder, 'arch.json'), 'w') as f:
            json.dump({k: rec.get(k) for k in ('id', 'strategy', 'tokens', 'arch', 'accuracy',
                                               'metric', 'flops', 'params', 'reward')},
                      f, indent=1)
        cls_name = f'uninet_search_{rec["id"]}_in1k.py'
        with open(osp.join(folder, cls_name), 'w') as f:
            f.write(cls_config(arch, rec).replace('THIS_FILE', osp.join(folder, cls_name)))
        try:
            det = det_config(arch, rec, cls_name)
        except ValueError as e:
            det = f'# no Mask R-CNN config: {e}\n'
        with open(osp.join(folder, f'mask_rcnn_uninet_search_{rec["id"]}_1x.py'), 'w') as f:
            f.write(det)
        folders.append(folder)
    return folders


def pareto_front(points):
    """Indices of the points (flops, accuracy) not dominated by any other (fewer or equal
    FLOPs and higher or equal accuracy, one of them strictly)."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


STYLE = {'ppo': ('tab:red', 'o'), 'random': ('tab:blue', 's'),
         'evolution': ('tab:green', '^')}


def pareto_plot(records, path, target_flops=None, title=None):
    """Accuracy vs FLOPs of every trained candidate, one colour per strategy, with the Pareto
    front of all of them; saved as a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    recs = [r for r in ok_records(records) if not r.get('cached_from')]
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for name in sorted({r['strategy'] for r in recs}):
        pts = [(r['flops'] / 1e6, r['accuracy']) for r in recs if r['strategy'] == name]
        color, marker = STYLE.get(name, ('tab:gray', 'x'))
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=color, marker=marker, s=22,
                   alpha=0.75, label=f'{name} ({len(pts)})')
    pts = [(r['flops'] / 1e6, r['accuracy']) for r in recs]
    if pts:
        front = [pts[i] for i in pareto_front(pts)]
        ax.plot([p[0] for p in front], [p[1] for p in front], 'k--', lw=1, label='Pareto front')
    if target_flops:
        ax.axvline(target_flops / 1e6, color='gray', lw=0.8, ls=':', label='FLOPs target')
    metric = recs[0].get('metric', 'accuracy') if recs else 'accuracy'
    ax.set_xlabel('MFLOPs (multiply-adds) at the proxy resolution')
    ax.set_ylabel(f'proxy {metric}')
    ax.set_title(title or 'UniNet search: proxy accuracy vs FLOPs')
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def strategy_stats(records, name, top=5):
    """Figures of one strategy at its budget."""
    mine = sorted([r for r in records if r['strategy'] == name], key=lambda r: r['index'])
    ok = ok_records(mine)
    trained = [r for r in mine if not r.get('cached_from')]
    best = max(ok, key=lambda r: r['reward']) if ok else None
    rewards = sorted((r['reward'] for r in ok), reverse=True)
    half = mine[len(mine) // 2:]
    half_ok = ok_records(half)
    return dict(
        strategy=name, candidates=len(mine), trained=len(trained),
        cached=len(mine) - len(trained),
        failed=sum(r['status'] == 'failed' for r in mine),
        best_reward=best['reward'] if best else None,
        best_accuracy=best['accuracy'] if best else None,
        best_mflops=best['flops'] / 1e6 if best else None,
        best_id=best['id'] if best else None,
        found_at=best['index'] + 1 if best else None,
        top_mean_reward=sum(rewards[:top]) / len(rewards[:top]) if rewards else None,
        mean_reward=sum(rewards) / len(rewards) if rewards else None,
        second_half_mean_reward=(sum(r['reward'] for r in half_ok) / len(half_ok)
                                 if half_ok else None),
        seconds_per_trained=(sum(r.get('time', 0.) for r in trained) / len(trained)
                             if trained else None))


def _cell(v, fmt='{:.4f}'):
    if v is None:
        return '-'
    return fmt.format(v) if isinstance(v, float) else str(v)


def summary_table(records, top=5):
    """Markdown: one row per strategy (equal budgets), then the top candidates."""
    names = [n for n in ('ppo', 'random', 'evolution')
             if any(r['strategy'] == n for r in records)]
    names += sorted({r['strategy'] for r in records} - set(names))
    lines = ['| strategy | candidates | trained | cached | failed | best reward | best acc | '
             'best MFLOPs | found at | top-5 mean reward | 2nd-half mean reward | s / trained |',
             '|' + ' --- |' * 12]
    for n in names:
        s = strategy_stats(records, n, 5)
        lines.append(
            f'| {n} | {s["candidates"]} | {s["trained"]} | {s["cached"]} | {s["failed"]} | '
            f'{_cell(s["best_reward"])} | {_cell(s["best_accuracy"])} | '
            f'{_cell(s["best_mflops"], "{:.2f}")} | {_cell(s["found_at"])} | '
            f'{_cell(s["top_mean_reward"])} | {_cell(s["second_half_mean_reward"])} | '
            f'{_cell(s["seconds_per_trained"], "{:.1f}")} |')
    lines += ['', f'Top {top} architectures (all strategies):', '',
              '| rank | id | reward | acc | MFLOPs | Mparams | GOPs | DSMs | widths | repeats | '
              'expansions |', '|' + ' --- |' * 11]
    for i, r in enumerate(top_k(records, top), 1):
        a = r['arch']
        lines.append(f'| {i} | {r["id"]} | {r["reward"]:.4f} | {r["accuracy"]:.4f} | '
                     f'{r["flops"] / 1e6:.2f} | {r["params"] / 1e6:.3f} | '
                     f'{",".join(a["gops"])} | {",".join(str(d) for d in a["dsms"])} | '
                     f'{a["widths"]} | {a["repeats"]} | {a["expansions"]} |')
    return '\n'.join(lines)
