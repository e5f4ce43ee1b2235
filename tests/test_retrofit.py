"""DSM retrofits of Swin-T and PVT-Tiny (uninet_mm/models/retrofit.py, docs/retrofit.md).

- parameter counts, exact, and the difference = DSM parameters - replaced layers' parameters;
- output shapes and strides equal the unmodified upstream backbone's at odd, non-square sizes;
- a plain checkpoint (made here from the upstream backbone, in the upstream formats) loads
  everything but the DSMs; the report and the log list exactly the new and the dropped keys;
- one training iteration of the model of each config (cls, det, seg).
"""
import math
import os.path as osp
import uuid
from collections import OrderedDict

import pytest
import torch
from mmdet.models.backbones.pvt import PyramidVisionTransformer
from mmdet.models.backbones.swin import SwinTransformer
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.registry import MODELS as ROOT_MODELS
from mmengine.registry import init_default_scope

import uninet_mm  # noqa: F401  (registers the retrofits)
from uninet_mm.models.retrofit import (
    DEFAULT_DSMS,
    DSMDownsample,
    PyramidVisionTransformerDSM,
    SwinTransformerDSM,
)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PVT_T = dict(num_layers=[2, 2, 2, 2])  # mmdet's PVT-Tiny (configs/pvt/retinanet_pvt-t...)
SWIN_DS = ['stages.0.downsample', 'stages.1.downsample', 'stages.2.downsample']
PVT_DS = ['layers.1.0', 'layers.2.0', 'layers.3.0']


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def keys_under(state_dict, prefixes):
    return [k for k in state_dict if any(k.startswith(p + '.') for p in prefixes)]


@pytest.fixture(scope='module')
def swin_pair():
    torch.manual_seed(0)
    plain = SwinTransformer()
    plain.eval()  # upstream's train() returns None
    dsm = SwinTransformerDSM().eval()
    assert isinstance(dsm, SwinTransformerDSM)
    return plain, dsm


@pytest.fixture(scope='module')
def pvt_pair():
    torch.manual_seed(0)
    return (PyramidVisionTransformer(**PVT_T).eval(),
            PyramidVisionTransformerDSM(**PVT_T).eval())


# ------------------------------------------------------------------------- registry / structure
def test_registered_in_every_registry():
    import mmdet.registry
    import mmpretrain.registry
    import mmseg.registry
    for reg in (ROOT_MODELS, mmdet.registry.MODELS, mmseg.registry.MODELS,
                mmpretrain.registry.MODELS):
        assert reg.get('SwinTransformerDSM') is SwinTransformerDSM, reg.scope
        assert reg.get('PyramidVisionTransformerDSM') is PyramidVisionTransformerDSM, reg.scope
    assert issubclass(SwinTransformerDSM, SwinTransformer)
    assert issubclass(PyramidVisionTransformerDSM, PyramidVisionTransformer)


def test_replaced_layers_follow_the_paper_rule(swin_pair, pvt_pair):
    assert DEFAULT_DSMS == ('L', 'LG', 'LG')
    assert dict(swin_pair[1].replaced) == {
        'stages.0.downsample': ('PatchMerging', 'L'),
        'stages.1.downsample': ('PatchMerging', 'LG'),
        'stages.2.downsample': ('PatchMerging', 'LG')}
    assert dict(pvt_pair[1].replaced) == {
        'layers.1.0': ('PatchEmbed', 'L'), 'layers.2.0': ('PatchEmbed', 'LG'),
        'layers.3.0': ('PatchEmbed', 'LG')}
    swin = swin_pair[1]
    for name, kind in zip(SWIN_DS, ('LocalDSM', 'LocalGlobalDSM', 'LocalGlobalDSM')):
        assert type(swin.get_submodule(name).dsm).__name__ == kind
    # the stem patch embeddings stay upstream
    assert type(swin.patch_embed).__name__ == 'PatchEmbed'
    assert type(pvt_pair[1].layers[0][0]).__name__ == 'PatchEmbed'


def test_dsm_list_entries_none_dict_and_errors():
    small = dict(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8))
    m = SwinTransformerDSM(**small, dsms=(None, dict(type='G', head_dim=16), 'L'))
    assert type(m.stages[0].downsample).__name__ == 'PatchMerging'
    assert m.stages[1].downsample.dsm.head_dim == 16
    assert type(m.stages[1].downsample.dsm).__name__ == 'GlobalDSM'
    assert list(m.replaced) == ['stages.1.downsample', 'stages.2.downsample']
    with pytest.raises(ValueError, match='one entry per replaced'):
        SwinTransformerDSM(**small, dsms=('L', 'LG'))
    with pytest.raises(KeyError, match='unknown DSM'):
        PyramidVisionTransformerDSM(num_layers=[1, 1, 1, 1], dsms=('L', 'X', 'LG'))


# ------------------------------------------------------------------------------- parameters
def test_param_counts_swin_t(swin_pair):
    plain, dsm = swin_pair
    assert n_params(plain) == 27_520_698  # backbone, 4 output norms (Swin-T, mmdet)
    assert n_params(dsm) == 28_233_402
    removed = [n_params(plain.get_submodule(n)) for n in SWIN_DS]
    added = [n_params(dsm.get_submodule(n)) for n in SWIN_DS]
    assert removed == [74_496, 296_448, 1_182_720]  # LN(4C) + Linear(4C, 2C) w/o bias
    assert added == [38_400, 447_744, 1_780_224]  # L 96->192, LG 192->384, LG 384->768
    assert n_params(dsm) - n_params(plain) == sum(added) - sum(removed) == 712_704


def test_param_counts_pvt_tiny(pvt_pair):
    plain, dsm = pvt_pair
    assert n_params(plain) == 12_714_240
    assert n_params(dsm) == 13_072_640
    removed = [n_params(plain.get_submodule(n)) for n in PVT_DS]
    added = [n_params(dsm.get_submodule(n)) for n in PVT_DS]
    assert removed == [33_152, 164_800, 656_896]  # conv 2x2 + LN
    assert added == [17_408, 270_272, 925_568]  # L 64->128, LG 128->320, LG 320->512
    assert n_params(dsm) - n_params(plain) == sum(added) - sum(removed) == 358_400


# ------------------------------------------------------------------------- shapes and strides
@pytest.mark.parametrize('hw', [(97, 131), (224, 224), (100, 140), (75, 93), (33, 65)])
@pytest.mark.parametrize('which', ['swin', 'pvt'])
def test_output_shapes_equal_upstream(which, hw, swin_pair, pvt_pair):
    plain, dsm = swin_pair if which == 'swin' else pvt_pair
    x = torch.randn(1, 3, *hw)
    with torch.no_grad():
        ref, out = plain(x), dsm(x)
    assert isinstance(out, tuple) and len(out) == len(ref) == 4
    assert [o.shape for o in out] == [r.shape for r in ref]
    # strides 4, 8, 16, 32 with upstream's rounding: Swin pads (ceil), PVT v1's convs floor
    rnd = math.ceil if which == 'swin' else math.floor
    size = list(hw)
    for i, o in enumerate(out):
        size = [rnd(s / (4 if i == 0 else 2)) for s in size]
        assert list(o.shape[2:]) == size, (i, o.shape)


def test_adapter_matches_upstream_rounding():
    # (B, C, 13, 9) map: a floor-type layer (conv 2x2 s2 p0) gives 6x4, an adaptive ('corner')
    # one 7x5; a 3x3 s2 p1 conv 7x5; the DSM alone gives ceil = 7x5
    x = torch.randn(2, 32, 13, 9)
    for padding, kernel, want in ((0, 2, (6, 4)), ('corner', 2, (7, 5)), (1, 3, (7, 5))):
        m = DSMDownsample('L', 32, 64, stride=2, layout='map', kernel_size=kernel,
                          padding=padding).eval()
        tokens, hw = m(x)
        assert hw == want and tokens.shape == (2, want[0] * want[1], 64)
        assert tokens.is_contiguous()
    # floor-type: the dropped last row/column never reaches the DSM
    m = DSMDownsample('LG', 32, 64, stride=2, layout='map', kernel_size=2, padding=0).eval()
    y = x.clone()
    y[:, :, 12, :] = 1e3
    y[:, :, :, 8] = -1e3
    with torch.no_grad():
        assert torch.equal(m(x)[0], m(y)[0])
    # token layout: (B, H*W, C) + (H, W), the count is checked
    t = DSMDownsample('L', 32, 64, stride=2, layout='tokens')
    out, hw = t(x.flatten(2).transpose(1, 2), (13, 9))
    assert hw == (7, 5) and out.shape == (2, 35, 64)
    with pytest.raises(ValueError, match='117 tokens for a 9x14 map'):
        t(x.flatten(2).transpose(1, 2), (9, 14))


@pytest.mark.parametrize('which', ['swin', 'pvt'])
def test_no_replacement_is_exactly_upstream(which):
    """``dsms=(None,) * 3`` (configs/cls/swin_tiny_mmdet-impl_in1k.py) is the upstream
    backbone: same state dict, same outputs."""
    if which == 'swin':
        kw = dict(embed_dims=32, depths=(1, 1, 2, 1), num_heads=(1, 2, 4, 8))
        up, ours = SwinTransformer(**kw), SwinTransformerDSM(dsms=(None,) * 3, **kw)
    else:
        kw = dict(num_layers=[1, 1, 1, 1], embed_dims=32)
        up, ours = PyramidVisionTransformer(**kw), PyramidVisionTransformerDSM(dsms=(None,) * 3,
                                                                              **kw)
    sd = up.state_dict()
    assert list(ours.state_dict()) == list(sd) and not ours.replaced
    ours.load_state_dict(sd)
    up.eval()
    ours.eval()
    x = torch.randn(1, 3, 75, 93)
    with torch.no_grad():
        for a, b in zip(up(x), ours(x), strict=True):
            assert torch.equal(a, b)


def test_frozen_stages_freeze_the_dsm():
    m = SwinTransformerDSM(embed_dims=32, depths=(1, 1, 1, 1), num_heads=(1, 2, 4, 8),
                           frozen_stages=1)
    m.train()
    ds = m.stages[0].downsample
    assert all(not p.requires_grad for p in ds.parameters())
    assert not ds.dsm.local.norm.training
    assert all(p.requires_grad for p in m.stages[1].downsample.parameters())


# -------------------------------------------------------------------------- pretrained loading
def swin_to_original(sd):
    """Inverse of mmdet's ``swin_converter``: mmdet keys -> the Swin repository's."""
    def unfold_reduction(x):  # inverse of correct_unfold_reduction_order
        out_c, in_c = x.shape
        return x.reshape(out_c, in_c // 4, 4).transpose(1, 2)[:, [0, 2, 1, 3]].reshape(
            out_c, in_c)

    def unfold_norm(x):
        return x.reshape(x.shape[0] // 4, 4).transpose(0, 1)[[0, 2, 1, 3]].reshape(-1)

    out = OrderedDict()
    for k, v in sd.items():
        if k.startswith('norm'):  # per-output norms: not in the original layout
            continue
        if k.startswith('stages'):
            k = k.replace('stages', 'layers', 1).replace('attn.w_msa.', 'attn.')
            k = k.replace('ffn.layers.0.0.', 'mlp.fc1.').replace('ffn.layers.1.', 'mlp.fc2.')
            if 'downsample.reduction.' in k:
                v = unfold_reduction(v)
            elif 'downsample.norm.' in k:
                v = unfold_norm(v)
        k = k.replace('patch_embed.projection', 'patch_embed.proj')
        out[k] = v
    out['norm.weight'] = torch.ones(768)
    out['norm.bias'] = torch.zeros(768)
    out['head.weight'] = torch.zeros(1000, 768)
    out['head.bias'] = torch.zeros(1000)
    return out


def pvt_to_original(sd):
    """Inverse of mmdet's ``pvt_convert``: mmdet keys -> the PVT repository's."""
    out = OrderedDict()
    for k, v in sd.items():
        parts = k.split('.')
        s, sub = int(parts[1]) + 1, parts[2]
        if sub == '0':
            out[f'patch_embed{s}.' + '.'.join(parts[3:]).replace('projection', 'proj')] = v
        elif sub == '1' and parts[3] == '0':  # pos_embed; stage 4 had the cls token in front
            out[f'pos_embed{s}'] = torch.cat([v[:, :1] * 0, v], 1) if s == 4 else v
        elif sub == '1':
            pre, tail = f'block{s}.{int(parts[3]) - 1}.', '.'.join(parts[4:])
            if tail.startswith('attn.attn.in_proj_'):
                kind, c = tail.rsplit('_', 1)[1], v.shape[0] // 3
                out[pre + 'attn.q.' + kind], out[pre + 'attn.kv.' + kind] = v[:c], v[c:]
            elif tail.startswith('attn.attn.out_proj.'):
                out[pre + 'attn.proj.' + parts[-1]] = v
            elif tail.startswith('ffn.layers.'):
                fc = {'0': 'fc1', '3': 'fc2'}[parts[6]]
                out[pre + f'mlp.{fc}.' + parts[-1]] = v.flatten(1) if v.ndim == 4 else v
            else:
                out[pre + tail] = v
    out['cls_token'] = torch.zeros(1, 1, 512)
    out['norm.weight'] = torch.ones(512)
    out['norm.bias'] = torch.zeros(512)
    out['head.weight'] = torch.zeros(1000, 512)
    out['head.bias'] = torch.zeros(1000)
    return out


def load_into(cls, ckpt_path, tmp_path, **kwargs):
    """Build ``cls`` with a Pretrained init_cfg, init it, return (model, log text)."""
    log_file = tmp_path / f'{uuid.uuid4().hex}.log'
    MMLogger.get_instance(f'retrofit-{uuid.uuid4().hex}', log_file=str(log_file),
                          log_level='INFO')
    torch.manual_seed(1)
    model = cls(init_cfg=dict(type='Pretrained', checkpoint=str(ckpt_path)), **kwargs)
    model.init_weights()
    return model, log_file.read_text()


def check_loaded(model, source_sd, log, replaced, extra_new=(), extra_dropped=()):
    """New keys = the DSMs' (+ ``extra_new``), dropped = the replaced upstream layers' (+
    ``extra_dropped``), every other tensor equal to the source; the log names them all."""
    report = model.pretrained_report
    own = model.state_dict()
    dsm_keys = keys_under(own, replaced)
    assert dsm_keys and dsm_keys == model.dsm_keys()
    assert sorted(report['new']) == sorted(dsm_keys + list(extra_new))
    assert sorted(report['dropped']) == sorted(keys_under(source_sd, replaced)
                                               + list(extra_dropped))
    assert report['mismatched'] == []
    for k, v in own.items():
        if k in dsm_keys or k in extra_new:
            continue
        assert torch.equal(v, source_sd[k]), k
    assert f'{len(report["new"])} keys NEW' in log and f'{len(report["dropped"])} checkpoint ' \
        'keys DROPPED' in log
    for k in report['new'] + report['dropped']:
        assert repr(k) in log, k


def test_load_plain_swin_mmdet_format(swin_pair, tmp_path):
    plain = swin_pair[0]
    src = plain.state_dict()
    ckpt = {'backbone.' + k: v for k, v in src.items()}
    ckpt['neck.lateral_convs.0.conv.weight'] = torch.zeros(256, 96, 1, 1)  # a detector's
    torch.save({'meta': {}, 'state_dict': ckpt}, tmp_path / 'swin_t_mmdet.pth')
    model, log = load_into(SwinTransformerDSM, tmp_path / 'swin_t_mmdet.pth', tmp_path)
    check_loaded(model, src, log, SWIN_DS)
    assert model.pretrained_report['dropped'] == [
        'stages.0.downsample.norm.weight', 'stages.0.downsample.norm.bias',
        'stages.0.downsample.reduction.weight', 'stages.1.downsample.norm.weight',
        'stages.1.downsample.norm.bias', 'stages.1.downsample.reduction.weight',
        'stages.2.downsample.norm.weight', 'stages.2.downsample.norm.bias',
        'stages.2.downsample.reduction.weight']
    assert 'new keys outside' not in log


def test_load_plain_swin_original_format(swin_pair, tmp_path):
    plain = swin_pair[0]
    src = plain.state_dict()
    torch.save({'model': swin_to_original(src)}, tmp_path / 'swin_tiny_patch4_window7_224.pth')
    # keep one upstream PatchMerging: its unfold-order conversion must round-trip exactly
    model, log = load_into(SwinTransformerDSM, tmp_path / 'swin_tiny_patch4_window7_224.pth',
                           tmp_path, convert_weights=True, dsms=(None, 'LG', 'LG'))
    # the original layout has no per-output norms (upstream leaves norm0..3 fresh as well)
    norms = [k for k in src if k.startswith('norm')]
    check_loaded(model, src, log, SWIN_DS[1:], extra_new=norms,
                 extra_dropped=['norm.weight', 'norm.bias'])  # the classifier's final norm
    assert 'new keys outside the replaced down-samplers' in log  # the norms, said so


def test_load_plain_swin_mmpretrain_classifier(tmp_path):
    """A checkpoint of configs/cls/swin_tiny_in1k.py (MMPretrain's Swin-T) feeds the
    retrofit of configs/cls/swin_tiny_dsm_in1k.py."""
    from mmpretrain.models.backbones import SwinTransformer as MMPretrainSwin
    torch.manual_seed(0)
    src = MMPretrainSwin(arch='tiny', img_size=224).state_dict()
    ckpt = {'backbone.' + k: v for k, v in src.items()}
    ckpt.update({'head.fc.weight': torch.zeros(1000, 768), 'head.fc.bias': torch.zeros(1000)})
    torch.save({'state_dict': ckpt}, tmp_path / 'swin_tiny_in1k.pth')
    model, log = load_into(SwinTransformerDSM, tmp_path / 'swin_tiny_in1k.pth', tmp_path,
                           out_indices=(3, ))
    check_loaded(model, src, log, SWIN_DS)


def test_load_plain_pvt_original_format(pvt_pair, tmp_path):
    plain = pvt_pair[0]
    src = plain.state_dict()
    torch.save(pvt_to_original(src), tmp_path / 'pvt_tiny.pth')
    # convert_weights=True is upstream's default (configs/pvt/retinanet_pvt-t_fpn_1x_coco.py)
    model, log = load_into(PyramidVisionTransformerDSM, tmp_path / 'pvt_tiny.pth', tmp_path,
                           **PVT_T)
    check_loaded(model, src, log, PVT_DS)
    assert len(model.pretrained_report['dropped']) == 12  # 3 x (conv w, b, LN w, b)


def test_load_plain_pvt_mmdet_format(pvt_pair, tmp_path):
    plain = pvt_pair[0]
    src = plain.state_dict()
    torch.save({'state_dict': {'backbone.' + k: v for k, v in src.items()}},
               tmp_path / 'pvt_t_mmdet.pth')
    model, log = load_into(PyramidVisionTransformerDSM, tmp_path / 'pvt_t_mmdet.pth', tmp_path,
                           convert_weights=False, **PVT_T)
    check_loaded(model, src, log, PVT_DS)


# ------------------------------------------------------------------------- training iterations
def build_from_config(path, scope):
    cfg = Config.fromfile(osp.join(REPO, path))
    assert cfg.custom_imports == dict(imports=['uninet_mm'], allow_failed_imports=False)
    init_default_scope(scope)
    cfg.model.backbone.init_cfg = None  # no download; initialised by upstream's scratch init
    if cfg.get('data_preprocessor') is not None:  # as Runner.build_model does
        cfg.model.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg, cfg.model


def one_iteration(model, data):
    """One training iteration as ``model.train_step`` runs it (pre-process, loss, backward,
    SGD step), keeping the backbone's gradients to look at."""
    model.train()
    optim = torch.optim.SGD(model.parameters(), lr=0.01)
    data = model.data_preprocessor(data, True)
    loss, log_vars = model.parse_losses(model._run_forward(data, mode='loss'))
    optim.zero_grad()
    loss.backward()
    grads = {n: p.grad for n, p in model.backbone.named_parameters()}
    optim.step()
    return log_vars, grads


def check_iteration(model, log_vars, grads):
    loss = float(log_vars['loss'])
    assert math.isfinite(loss) and loss > 0
    # every DSM parameter gets a gradient -- except the bias of the depth-wise conv in front
    # of a BatchNorm in training mode: BN removes any constant, so that gradient is 0
    dsm_params = [n for n in grads
                  if any(n.startswith(r + '.') for r in model.backbone.replaced)
                  and not n.endswith('dw_conv.bias')]
    assert len(dsm_params) > 10
    for n in dsm_params:
        assert grads[n] is not None and grads[n].abs().sum() > 0, n
    stem = [n for n in grads if n.startswith(('patch_embed.', 'layers.0.0.'))]
    assert stem and all(grads[n].abs().sum() > 0 for n in stem)


def build(path, scope):
    cfg, model_cfg = build_from_config(path, scope)
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    torch.manual_seed(0)
    model = registry.build(model_cfg)
    model.init_weights()
    return cfg, model


@pytest.mark.parametrize('path', ['configs/cls/swin_tiny_dsm_in1k.py'])
def test_train_iteration_cls(path):
    from mmpretrain.structures import DataSample
    cfg, model = build(path, 'mmpretrain')
    assert type(model.backbone).__name__ == 'SwinTransformerDSM'
    assert list(model.backbone.replaced.values()) == [('PatchMerging', 'L'),
                                                      ('PatchMerging', 'LG'),
                                                      ('PatchMerging', 'LG')]
    torch.manual_seed(0)
    data = dict(inputs=[torch.randint(0, 255, (3, 65, 57), dtype=torch.uint8) for _ in range(2)],
                data_samples=[DataSample().set_gt_label(i) for i in (3, 917)])
    # MMPretrain's recipe crops to 224 in the pipeline; here two odd-sized images of one size
    check_iteration(model, *one_iteration(model, data))


@pytest.mark.parametrize('path,neck_in', [
    ('configs/mmdet/mask_rcnn_swin_t_dsm_1x.py', [96, 192, 384, 768]),
    ('configs/mmdet/retinanet_pvt_t_dsm_1x.py', [64, 128, 320, 512])])
def test_train_iteration_det(path, neck_in):
    from mmdet.testing import demo_mm_inputs
    cfg, model = build(path, 'mmdet')
    assert cfg.model.neck.in_channels == neck_in
    torch.manual_seed(0)
    data = demo_mm_inputs(2, [[3, 97, 131], [3, 90, 120]], num_items=[3, 2], num_classes=80,
                          with_mask='mask' in path)
    check_iteration(model, *one_iteration(model, data))


def test_train_iteration_seg():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg, model_cfg = build_from_config('configs/mmseg/upernet_swin_t_dsm_160k_ade20k.py',
                                       'mmseg')
    # CPU: plain BN for the heads' SyncBN, 64x64 crops instead of 512x512
    for head in (model_cfg.decode_head, model_cfg.auxiliary_head):
        head.norm_cfg = dict(type='BN', requires_grad=True)
    model_cfg.data_preprocessor.size = (64, 64)
    import mmseg.registry
    torch.manual_seed(0)
    model = mmseg.registry.MODELS.build(model_cfg)
    model.init_weights()
    assert type(model.backbone).__name__ == 'SwinTransformerDSM'
    samples = []
    for _ in range(2):
        s = SegDataSample(metainfo=dict(img_shape=(61, 59), ori_shape=(61, 59),
                                        pad_shape=(64, 64)))
        s.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, 61, 59)))
        samples.append(s)
    data = dict(inputs=[torch.randint(0, 255, (3, 61, 59), dtype=torch.uint8)
                        for _ in range(2)], data_samples=samples)
    check_iteration(model, *one_iteration(model, data))


@pytest.mark.slow
@pytest.mark.parametrize('path,scope,backbone', [
    ('configs/cls/swin_tiny_in1k.py', 'mmpretrain', 'SwinTransformer'),
    ('configs/cls/swin_tiny_mmdet-impl_in1k.py', 'mmpretrain', 'SwinTransformerDSM'),
    ('configs/mmdet/mask_rcnn_swin_t_1x.py', 'mmdet', 'SwinTransformer'),
    ('configs/mmdet/retinanet_pvt_t_1x.py', 'mmdet', 'PyramidVisionTransformer'),
    ('configs/mmseg/upernet_swin_t_160k_ade20k.py', 'mmseg', 'SwinTransformer')])
def test_plain_configs_build_beside_the_dsm_ones(path, scope, backbone):
    """The plain configs beside the DSM ones build, with the same numbers of parameters
    outside the backbone (so the two differ in the backbone only)."""
    _, plain = build(path, scope)
    assert type(plain.backbone).__name__ == backbone
    dsm_path = path.replace('_in1k', '_dsm_in1k').replace('mmdet-impl_', '').replace(
        '_1x', '_dsm_1x').replace('_160k', '_dsm_160k')
    _, dsm = build(dsm_path, scope)
    assert type(dsm.backbone).__name__ == (
        'PyramidVisionTransformerDSM' if 'pvt' in path else 'SwinTransformerDSM')
    assert dsm.backbone.replaced
    assert n_params(plain) - n_params(plain.backbone) == n_params(dsm) - n_params(dsm.backbone)
