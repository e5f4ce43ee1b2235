# Ablation (paper Sec. 6.2, Table 6): UniNet-B0 with one fixed DSM, LG-DSM, in every stage
# that down-samples (stages 1-5; stage 0 follows the stem directly) instead of the searched
# [L, L, L, LG, LG]. Everything else is UniNet-B0 and its recipe (uninet_b0_in1k.py, 160x160).
# Parameters and FLOPs: docs/ablations.md (python tools/get_flops.py THIS_CONFIG --shape 160).
_base_ = ['./uninet_b0_in1k.py']

model = dict(
    backbone=dict(arch=dict(
        _delete_=True,  # replaces the preset name of the base config
        gops=['DWConv', 'DWConv', 'DWConv', 'DWConv', 'SA', 'SA'],
        dsms=[None, 'LG', 'LG', 'LG', 'LG', 'LG'],
        strides=[1, 2, 2, 2, 1, 2],
        expansions=[1, 4, 6, 3, 2, 5],
        widths=[24, 48, 80, 128, 128, 256],
        repeats=[1, 2, 4, 4, 4, 8],
        stem_width=32,
        head_dim=32,
        window_size=7,
        input_size=160)))
