# Ablation (paper Table 1): operator combinations in an isotropic network of about 22M
# parameters and 4.5 GFLOPs at 224x224: Mixer-like: 18 MLP blocks (MLP GOP, global token
# mixing: one 14x14 window).
# Built from the same GOP classes as UniNet: a 16x16 patchifying stem (stem_patch=16, 14x14
# tokens at 224), stages without DSMs (the width never changes), width 384, 6 heads of 64, FFN
# expansion 4; head: UniNetClsHead with mid_channels = the width. Recipe: uninet_b1_in1k.py
# (the UniNet recipe at 224x224). Parameters and FLOPs: docs/ablations.md.
_base_ = ['./uninet_b1_in1k.py']

model = dict(
    backbone=dict(
        arch=dict(
            _delete_=True,  # replaces the preset name of the base config
            gops=['MLP'],
            dsms=[None],
            strides=[1],
            expansions=[4],
            widths=[384],
            repeats=[18],
            stem_width=384,
            stem_patch=16,
            head_dim=64,
            window_size=14,
            input_size=224),
        out_indices=(0, ),
        drop_path_rate=0.1),
    head=dict(in_channels=384, mid_channels=384))
