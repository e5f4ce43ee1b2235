"""FLOPs counting (uninet_mm/utils/flops.py, tools/get_flops.py): parity with the released
figures for B0-B6, attention counted on every backend, the fvcore convention for norms and
pooling, odd sizes, meta device, and models built from mmdet/mmseg/mmpretrain config files."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import uninet_mm  # noqa: F401
import uninet_mm.utils.flops as flops_mod
from uninet_mm.apis import load_tool
from uninet_mm.models import UniNet
from uninet_mm.utils.flops import RELEASED_FIGURES, config_flops, count_flops, preset_flops

pytestmark = pytest.mark.usefixtures('one_thread')


def _load_tool():
    return load_tool('get_flops')


# ------------------------------------------------------------------------------ parity B0-B6
@pytest.mark.parametrize('arch', sorted(RELEASED_FIGURES))
def test_flops_and_params_match_release(arch):
    ref = RELEASED_FIGURES[arch]
    flops, params = preset_flops(arch)          # meta device: shapes only
    assert abs(flops / ref['flops'] - 1) < 0.01, (flops, ref['flops'])
    assert round(params / 1e3) == ref['params_head'] / 1e3
    backbone_flops, backbone_params = preset_flops(arch, with_head=False)
    assert round(backbone_params / 1e3) / 1e3 == pytest.approx(ref['params'] / 1e6)
    assert backbone_flops < flops


def test_cpu_count_equals_meta_count_b0():
    """Real tensors through the CPU kernels (SDPA's CPU flash kernel, which FlopCounterMode
    does not know by itself) count exactly what the meta run counts: 0.5554 G for B0."""
    cpu, cpu_params, ops = preset_flops('b0', device='cpu', by_op=True)
    meta, meta_params = preset_flops('b0')
    assert cpu == meta == 555_380_288 and cpu_params == meta_params == 11_450_864
    # attention: 4 blocks at (160/16)^2 = 100 tokens, 4 heads of 32, and 8 blocks at 25 tokens
    # with 8 heads; the two LG-DSMs: 100 queries over 100 keys (4 heads), 25 over 100 (8 heads)
    expected = 2 * (4 * 4 * 100 * 100 * 32 + 8 * 8 * 25 * 25 * 32
                    + 4 * 100 * 100 * 32 + 8 * 25 * 100 * 32)
    assert ops['aten._scaled_dot_product_flash_attention_for_cpu'] == expected


def test_odd_size_cpu_equals_meta(small_arch):
    model = UniNet(small_arch, out_indices=range(6))
    cpu, params = count_flops(model, (1, 3, 33, 47))
    with torch.device('meta'):
        meta_model = UniNet(small_arch, out_indices=range(6))
    meta, meta_params = count_flops(meta_model, torch.empty(1, 3, 33, 47, device='meta'))
    assert cpu == meta > 0 and params == meta_params
    assert count_flops(model, (33, 47)) == (cpu, params)          # (H, W) shorthand
    assert count_flops(model, (1, 3, 66, 94))[0] > 3 * cpu         # grows with the area


# --------------------------------------------------------------------------- attention SDPA
class _Attend(nn.Module):
    def forward(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def _qkv():
    return torch.randn(2, 3, 17, 8), torch.randn(2, 3, 11, 8), torch.randn(2, 3, 11, 8)


SDPA_MACS = 2 * 2 * 3 * 17 * 11 * 8      # two products, B * heads * Nq * Nk * d each


def test_sdpa_counted_on_cpu():
    flops, _, ops = count_flops(_Attend(), _qkv(), by_op=True)
    assert flops == SDPA_MACS
    assert 'scaled_dot_product_attention(uncounted)' not in ops
    mask = torch.rand(17, 11) > .3
    assert count_flops(_Attend(), _qkv() + (mask,))[0] == SDPA_MACS


def test_sdpa_math_backend_counted_once():
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):
        flops, _, ops = count_flops(_Attend(), _qkv(), by_op=True)
    assert flops == SDPA_MACS
    assert 'aten.bmm' in ops


def test_sdpa_unknown_backend_still_counted(monkeypatch):
    """If the backend's aten op has no formula (a new kernel), the functional-level guard adds
    the two products."""
    real = flops_mod._custom_mapping

    def without_sdpa():
        return {k: v for k, v in real().items() if 'scaled_dot_product' not in str(k)}

    monkeypatch.setattr(flops_mod, '_custom_mapping', without_sdpa)
    flops, _, ops = count_flops(_Attend(), _qkv(), by_op=True)
    assert flops == SDPA_MACS
    assert ops['scaled_dot_product_attention(uncounted)'] == SDPA_MACS


# ---------------------------------------------------------------------- fvcore conventions
@pytest.mark.parametrize('module,shape,expected', [
    (nn.Conv2d(8, 16, 3, padding=1), (1, 8, 5, 5), 16 * 25 * 8 * 9),
    (nn.Conv2d(8, 8, 3, padding=1, groups=8), (1, 8, 5, 5), 8 * 25 * 9),
    (nn.Linear(8, 4), (torch.randn(3, 8),), 3 * 8 * 4),
    (nn.BatchNorm2d(8), (1, 8, 5, 5), 2 * 200),              # eval: 2 per element
    (nn.BatchNorm2d(8, affine=False), (1, 8, 5, 5), 200),
    (nn.LayerNorm(8), (2, 10, 8), 5 * 160),
    (nn.GroupNorm(2, 8), (1, 8, 5, 5), 5 * 200),
    (nn.AdaptiveAvgPool2d(1), (1, 8, 5, 5), 200),            # 1 per input element
    (nn.AvgPool2d(2), (1, 8, 6, 6), 288),
    (nn.Upsample(scale_factor=2, mode='bilinear'), (1, 8, 5, 5), 4 * 800),
    (nn.Upsample(scale_factor=2), (1, 8, 5, 5), 800),
    (nn.GELU(), (1, 8, 5, 5), 0),                            # element-wise: not counted
    (nn.MaxPool2d(3, 1, 1), (1, 8, 5, 5), 0),
])
def test_counting_convention(module, shape, expected):
    assert count_flops(module, shape)[0] == expected


def test_mean_and_training_batch_norm():
    class Mean(nn.Module):
        def forward(self, x):
            return x.mean((2, 3))

    assert count_flops(Mean(), (1, 8, 5, 5))[0] == 200
    bn = nn.BatchNorm2d(8).eval()
    assert count_flops(bn, (2, 8, 5, 5), train=True)[0] == 5 * 400   # fvcore: training 5
    assert not bn.training                                            # mode restored
    assert count_flops(bn.train(), (2, 8, 5, 5))[0] == 2 * 400        # counted in eval
    assert bn.training


# --------------------------------------------------------------------------- config files
def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_config_flops_mmpretrain_equals_preset(tmp_path):
    cfg = _write(tmp_path, 'cls.py', """
default_scope = 'mmpretrain'
custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
model = dict(type='ImageClassifier',
             backbone=dict(type='UniNet', arch='b0', out_indices=(5,)),
             head=dict(type='UniNetClsHead', num_classes=1000, in_channels=256))
""")
    res = config_flops(cfg, (160, 160))
    assert res['library'] == 'mmpretrain'
    assert (res['flops'], res['params']) == preset_flops('b0')


def test_config_flops_mmdet_and_mmseg(tmp_path):
    det = _write(tmp_path, 'det.py', """
_base_ = 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'
custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='UniNet', arch='b0', out_indices=(2, 4, 5)),
             neck=dict(in_channels=[80, 128, 256], start_level=0))
""")
    res = config_flops(det, (192, 256), by_op=True)
    backbone = count_flops(UniNet('b0', out_indices=(2, 4, 5)), (1, 3, 192, 256))[0]
    assert res['library'] == 'mmdet' and '_forward' in res['what']
    assert res['flops'] > 2 * backbone                    # FPN + RetinaNet head counted
    assert res['by_op']['aten._scaled_dot_product_flash_attention_for_cpu'] > 0

    seg = _write(tmp_path, 'seg.py', """
_base_ = 'mmseg::_base_/models/fpn_r50.py'
custom_imports = dict(imports=['uninet_mm'], allow_failed_imports=False)
default_scope = 'mmseg'
model = dict(data_preprocessor=dict(size=(128, 160)),
             pretrained=None,
             backbone=dict(_delete_=True, type='UniNet', arch='b0'),
             neck=dict(in_channels=[48, 80, 128, 256]),
             decode_head=dict(num_classes=19))
""")
    res = config_flops(seg, (128, 160))
    assert res['library'] == 'mmseg' and '_forward' in res['what']
    assert res['flops'] > count_flops(UniNet('b0'), (1, 3, 128, 160))[0]


# ----------------------------------------------------------------------------------- tool
def test_get_flops_tool(capsys, tmp_path):
    tool = _load_tool()
    tool.main(['--arch', 'b0'])
    out = capsys.readouterr().out
    assert 'params 11,450,864' in out and 'FLOPs 555.380M' in out
    tool.main(['--arch', 'b1', '--no-head', '--shape', '97', '131', '--by-op'])
    out = capsys.readouterr().out
    assert 'at 97x131' in out and 'params 9,839,624' in out
    rows = tool.main(['--all-presets', '--presets', 'b0', 'b3', '--json',
                      str(tmp_path / 'f.json')])
    out = capsys.readouterr().out
    assert [r['arch'] for r in rows] == ['b0', 'b3']
    assert 'B3        288     24,020,184    24,020k' in out
    assert all(abs(r['flops_diff']) < .01 for r in rows)
    assert all(round(r['params'] / 1e3) * 1e3 == r['released_params'] for r in rows)
    assert (tmp_path / 'f.json').exists()
