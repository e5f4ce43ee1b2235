#!/usr/bin/env bash
# The full strategy study of docs/search.md ("Benchmark results"): PPO vs random search vs
# regularised evolution on the 9 NAS-Bench-Graph datasets (cora: the tuning table; the other 8
# held out), 30 paired seeds, budgets 100 and 300, noise 0 and 0.01.
#   bash tools/search_study.sh [OUT=work_dirs/search_study] [DATASETS=all] [SEEDS=30]
# Needs nas-bench-graph==1.4.0 (requirements/search.txt). Writes OUT/noise<sigma>/<dataset>/
# (summary.json, anytime.png) and OUT/study.md (all tables, with the targets' tallies).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
OUT=${1:-work_dirs/search_study}
DATASETS=${2:-all}
SEEDS=${3:-30}
PY=${PYTHON:-python}
export OMP_NUM_THREADS=1
if [ "$DATASETS" = all ]; then
  DATASETS=cora,citeseer,pubmed,cs,physics,photo,computers,arxiv,proteins
fi
for ds in ${DATASETS//,/ }; do
  for noise in 0 0.01; do
    [ -f "$OUT/noise$noise/$ds/summary.json" ] && continue   # done before: rerun continues
    "$PY" tools/search_benchmark.py --nasbench-graph "$ds" --seeds "$SEEDS" \
      --budgets 100,300 --noise "$noise" --out "$OUT/noise$noise/$ds"
  done
done
"$PY" - "$OUT" <<'PY'
import glob, json, os.path as osp, sys
out = sys.argv[1]
lines = ['| noise | dataset | budget | PPO | random | evolution | p ppo>random | '
         'p ppo>evolution | p evolution>ppo | A12 ppo>random |', '|' + ' --- |' * 10]
tally = {}
for path in sorted(glob.glob(osp.join(out, 'noise*', '*', 'summary.json'))):
    s = json.load(open(path))
    noise, name = s['noise'], osp.basename(osp.dirname(path))
    for b, per in s['budgets'].items():
        p, a = s['p_values'][b], s['a12'][b]
        cell = lambda n: f'{per[n]["mean"]:.4f} +- {per[n]["sem"]:.4f}'
        lines.append(f'| {noise:g} | {name} | {b} | {cell("ppo")} | {cell("random")} | '
                     f'{cell("evolution")} | {p["ppo>random"]:.2g} | {p["ppo>evolution"]:.2g} '
                     f'| {p["evolution>ppo"]:.2g} | {a["ppo>random"]:.2f} |')
        if name != 'cora':
            t = tally.setdefault((noise, b), dict(n=0, beats_random=0, ge_evo=0, worse=0))
            t['n'] += 1
            t['beats_random'] += p['ppo>random'] < 0.01
            t['ge_evo'] += per['ppo']['mean'] >= per['evolution']['mean']
            t['worse'] += p['evolution>ppo'] < 0.05
lines += ['', 'Held-out tallies (targets: PPO > random at p < 0.01 on >= 6 of 8 at both '
          'budgets; at 300 PPO mean >= evolution on >= half, significantly worse on <= 2):', '',
          '| noise | budget | held-out tables | PPO > random (p<0.01) | PPO mean >= evolution '
          '| evolution > PPO (p<0.05) |', '|' + ' --- |' * 6]
for (noise, b), t in sorted(tally.items()):
    lines.append(f'| {noise:g} | {b} | {t["n"]} | {t["beats_random"]} | {t["ge_evo"]} | '
                 f'{t["worse"]} |')
open(osp.join(out, 'study.md'), 'w').write('\n'.join(lines) + '\n')
print('\n'.join(lines))
PY
