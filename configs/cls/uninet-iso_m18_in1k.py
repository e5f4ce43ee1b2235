# Ablation (paper Table 1): operator combinations in an isotropic network of about 22M
# parameters and 4.5 GFLOPs at 224x224: Mixer-like: 18 MLP blocks (MLP GOP, global token
# mixing: one 14x14 window).
# Built from the same GOP classes as UniNet: a 16x16 patchifying stem (stem_patch=16, 14x14
# tokens at 224), stages without DSMs (the width never changes), width 384, 6 heads of 64, FFN
# expansion 4; head: UniNetClsHead with mid_channels = the width. Recipe: uninet_b1_in1k.py
# (the UniNet recipe at 224x224). Parameters and FLOPs: docs/ablations.md.
_base_ = ['./uninet-iso_t12_in1k.py']  # the same isotropic network, other blocks

model = dict(backbone=dict(arch=dict(gops=['MLP'], repeats=[18])))
