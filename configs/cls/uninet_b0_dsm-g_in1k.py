# Ablation (paper Sec. 6.2, Table 6): UniNet-B0 with one fixed DSM, G-DSM, in every stage
# that down-samples (stages 1-5; stage 0 follows the stem directly) instead of the searched
# [L, L, L, LG, LG]. Everything else is UniNet-B0 and its recipe (uninet_b0_in1k.py, 160x160).
# Parameters and FLOPs: docs/ablations.md (python tools/get_flops.py THIS_CONFIG --shape 160).
_base_ = ['./uninet_b0_dsm-l_in1k.py']  # UniNet-B0 spelled out; only the DSMs differ

model = dict(backbone=dict(arch=dict(dsms=[None, 'G', 'G', 'G', 'G', 'G'])))
