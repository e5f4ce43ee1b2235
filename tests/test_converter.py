"""Released checkpoint -> ours: a model with the released layout (uninet_mm/apis/released.py,
written from the facts in issue 3) is randomised (every parameter and BN statistic), converted,
loaded strictly into UniNet + UniNetClsHead, and must give the same logits (atol 1e-5)."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import uninet_mm  # noqa: F401
from uninet_mm.apis import ReleasedUniNet, load_tool, randomize_
from uninet_mm.converters import block_plan, convert_official, is_official
from uninet_mm.converters.official import RENAME_TABLES, _rename, unwrap
from uninet_mm.models import UniNet, UniNetClsHead
from uninet_mm.utils.flops import BackboneWithHead

pytestmark = pytest.mark.usefixtures('one_thread')

ATOL = 1e-5


def _released(arch, seed=0, num_classes=1000, calib=(2, 3, 64, 64)):
    g = torch.Generator().manual_seed(seed)
    model = ReleasedUniNet(arch, num_classes=num_classes)
    return randomize_(model, g, torch.randn(*calib, generator=g)), g


def _ours(arch, num_classes=1000):
    backbone = UniNet(arch, out_indices=(-1,))
    head = UniNetClsHead(num_classes, backbone.arch['widths'][-1])
    return BackboneWithHead(backbone, head).eval()


def _max_diff(a, b):
    return (a - b).abs().max().item()


def test_converter_parity_b1():
    ref, g = _released('b1')
    sd = ref.state_dict()
    assert is_official(sd)
    converted = convert_official(sd, 'b1')
    assert len(converted) == len(sd)
    ours = _ours('b1')
    ours.load_state_dict(converted, strict=True)
    for x in (torch.randn(2, 3, 224, 224, generator=g), torch.randn(1, 3, 97, 131, generator=g)):
        with torch.no_grad():
            a, b = ref(x), ours(x)
        diff = _max_diff(a, b)
        print(f'B1 {tuple(x.shape)}: max |logit diff| {diff:.2e} (logit std {a.std():.2f})')
        assert a.std() > .1                   # non-trivial logits
        assert diff <= ATOL


def test_converter_parity_detects_a_wrong_mapping():
    """The parity check can fail: swapping two same-shaped tensors changes the logits."""
    ref, g = _released('b0')
    converted = convert_official(ref.state_dict(), 'b0')
    k1 = 'backbone.stages.5.blocks.0.mixer.qkv.weight'
    k2 = 'backbone.stages.5.blocks.1.mixer.qkv.weight'
    converted[k1], converted[k2] = converted[k2], converted[k1]
    ours = _ours('b0')
    ours.load_state_dict(converted, strict=True)
    x = torch.randn(1, 3, 160, 160, generator=g)
    with torch.no_grad():
        assert _max_diff(ref(x), ours(x)) > 100 * ATOL


@st.composite
def released_arch(draw):
    """Random archs made of the released operators (DWConv / SA GOPs, L / LG DSMs)."""
    n = draw(st.integers(2, 5))
    arch = dict(gops=[], dsms=[], strides=[], widths=[], repeats=[], expansions=[],
                head_dim=16, stem_width=draw(st.sampled_from([8, 16])))
    for i in range(n):
        gop = 'DWConv' if i == 0 else draw(st.sampled_from(['DWConv', 'SA']))
        dsm = None if i == 0 else draw(st.sampled_from(['L', 'LG']))
        width = 16 * draw(st.integers(1, 3)) if (gop == 'SA' or dsm == 'LG') else \
            draw(st.integers(4, 40))
        for key, value in zip(('gops', 'dsms', 'strides', 'widths', 'repeats', 'expansions'),
                              (gop, dsm, 1 if i == 0 else draw(st.sampled_from([1, 2])),
                               width, draw(st.integers(1 if i == 0 else 0, 2)),
                               draw(st.integers(1, 4)))):
            arch[key].append(value)
    return arch


@settings(max_examples=12, deadline=None, derandomize=True)
@given(released_arch(), st.integers(33, 70), st.integers(33, 70))
def test_converter_parity_random_released_archs(arch, h, w):
    ref, g = _released(arch, num_classes=7, calib=(2, 3, 48, 48))
    ours = _ours(arch, num_classes=7)
    ours.load_state_dict(convert_official(ref.state_dict(), arch), strict=True)
    x = torch.randn(2, 3, h, w, generator=g)
    with torch.no_grad():
        assert _max_diff(ref(x), ours(x)) <= ATOL


def test_converter_parity_through_mmpretrain_image_classifier():
    """Our ImageClassifier with MMPretrain's data preprocessor (ImageNet mean/std) on uint8
    images vs the released-layout model on the same normalised input."""
    from mmpretrain.registry import MODELS
    from mmpretrain.structures import DataSample
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    ref, g = _released('b1')
    classifier = MODELS.build(dict(
        type='mmpretrain.ImageClassifier',
        data_preprocessor=dict(type='mmpretrain.ClsDataPreprocessor', mean=mean, std=std,
                               to_rgb=False),
        backbone=dict(type='UniNet', arch='b1', out_indices=(-1,)),
        head=dict(type='UniNetClsHead', num_classes=1000, in_channels=256))).eval()
    classifier.load_state_dict(convert_official(ref.state_dict(), 'b1'), strict=True)

    imgs = [torch.randint(0, 256, (3, 224, 224), generator=g, dtype=torch.uint8)
            for _ in range(2)]
    data = classifier.data_preprocessor(
        dict(inputs=imgs, data_samples=[DataSample() for _ in imgs]), False)
    with torch.no_grad():
        ours = classifier(data['inputs'], mode='tensor')
        normalised = (torch.stack(imgs).float() - torch.tensor(mean).view(1, 3, 1, 1)) / \
            torch.tensor(std).view(1, 3, 1, 1)
        released = ref(normalised)
        preds = classifier.test_step(dict(inputs=imgs, data_samples=[DataSample() for _ in imgs]))
    diff = _max_diff(ours, released)
    print(f'ImageClassifier B1: max |logit diff| {diff:.2e}')
    assert diff <= ATOL
    assert [int(p.pred_label) for p in preds] == released.argmax(1).tolist()
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]),
                               released.softmax(1), atol=1e-5, rtol=1e-4)


def test_checkpoint_wrappers_and_ddp_prefix():
    ref, _ = _released('b0')
    sd = ref.state_dict()
    plain = convert_official(sd, 'b0')
    for wrapped in ({'model': sd, 'epoch': 300},
                    {'state_dict': {f'module.{k}': v for k, v in sd.items()}}):
        assert is_official(wrapped)
        out = convert_official(wrapped, 'b0')
        assert list(out) == list(plain)
        assert all(torch.equal(out[k], plain[k]) for k in out)


def test_released_checkpoint_loads_through_pretrained_init(tmp_path):
    """UniNet(init_cfg=Pretrained, converter='released') converts a released checkpoint on
    load (an explicit step: the backbone imports no converter)."""
    ref, _ = _released('b0')
    path = tmp_path / 'released_b0.pth'
    torch.save({'model': ref.state_dict()}, path)
    model = UniNet('b0', init_cfg=dict(type='Pretrained', checkpoint=str(path),
                                       converter='released'))
    model.init_weights()
    converted = convert_official(ref.state_dict(), 'b0')
    own = model.state_dict()
    assert len(own) == sum(k.startswith('backbone.') for k in converted)
    for k, v in own.items():
        assert torch.equal(v, converted[f'backbone.{k}']), k


def test_is_official():
    ours = UniNet('b0').state_dict()
    assert not is_official(ours)
    assert not is_official({f'backbone.{k}': v for k, v in ours.items()})
    assert not is_official({'conv1.weight': torch.zeros(1)})
    assert not is_official(torch.zeros(3))
    assert is_official({'stem.0.weight': torch.zeros(1), 'blocks.0.b2.0.weight': torch.zeros(1)})
    # both parts are needed, and any key of ours makes it not the released layout
    assert not is_official({'stem.0.weight': torch.zeros(1)})
    assert not is_official({'blocks.0.b2.0.weight': torch.zeros(1)})
    for ours_key in ('stages.0.weight', 'backbone.x', 'stem.conv.weight'):
        assert not is_official({'stem.0.weight': torch.zeros(1),
                                'blocks.0.b2.0.weight': torch.zeros(1), ours_key: torch.zeros(1)})
    with pytest.raises(TypeError, match='expected a state dict'):
        unwrap(torch.zeros(3))


def test_rename_takes_the_longest_matching_entry():
    table = {'a': 'x', 'a.b': 'y'}      # no released table nests entries yet; a new one may
    assert _rename('a.b.w', table) == 'y.w'
    assert _rename('a.c', table) == 'x.c'
    assert _rename('ab.w', table) is None


def test_unmatched_released_keys_raise():
    ref, _ = _released('b0')
    sd = dict(ref.state_dict())
    sd['blocks.3.bogus.weight'] = torch.zeros(1)
    sd['extra_head.weight'] = torch.zeros(1)
    with pytest.raises(ValueError, match='match no renaming rule') as e:
        convert_official(sd, 'b0')
    assert 'blocks.3.bogus.weight' in str(e.value) and 'extra_head.weight' in str(e.value)


def test_wrong_arch_names_the_block_count():
    ref, _ = _released('b0')
    with pytest.raises(ValueError, match=r"28 blocks .* b2 has 40.*\['b0', 'b1'\]"):
        convert_official(ref.state_dict(), 'b2')


def test_not_released_layout_raises_with_key_sample():
    ours = {f'backbone.{k}': v for k, v in UniNet('b0').state_dict().items()}
    with pytest.raises(ValueError, match=r"not a released UniNet checkpoint: its keys look like "
                                         r"\['backbone.stem.conv.weight'"):
        convert_official(ours, 'b0')


def test_arch_with_operators_the_release_lacks():
    sd = {'stem.0.weight': torch.zeros(1), 'blocks.0.b2.0.weight': torch.zeros(1)}
    arch = dict(gops=['DWConv', 'MLP'], dsms=[None, 'G'], strides=[1, 2], widths=[16, 32],
                repeats=[1, 1], expansions=[1, 2], head_dim=16)
    with pytest.raises(ValueError, match="'MLP' GOP, which the released code does not have"):
        convert_official(sd, arch)


def test_rename_tables_cover_every_released_key():
    """Every tensor of every released module type is renamed (B0 has all four types)."""
    ref = ReleasedUniNet('b0')
    kinds = {kind for _, _, kind in block_plan('b0')}
    assert kinds == set(RENAME_TABLES)
    converted = convert_official(ref.state_dict(), 'b0')
    assert set(converted) == set(_ours('b0').state_dict())


def test_convert_tool(tmp_path, capsys):
    tool = load_tool('convert_official')
    ref, g = _released('b0')
    src, dst = tmp_path / 'uninet_b0.pth', tmp_path / 'out' / 'uninet_b0_mm.pth'
    torch.save({'model': ref.state_dict(), 'epoch': 299}, src)
    tool.main([str(src), str(dst), '--arch', 'b0'])
    out = capsys.readouterr().out
    assert 'verified: strict load into ImageClassifier' in out
    saved = torch.load(dst, weights_only=True)
    assert set(saved) == {'state_dict', 'meta'}
    assert saved['meta']['arch'] == 'b0' and saved['meta']['num_classes'] == 1000
    # the converted file initialises a detector-style backbone through prefix='backbone.'
    backbone = UniNet('b0', init_cfg=dict(type='Pretrained', checkpoint=str(dst),
                                          prefix='backbone.'))
    backbone.init_weights()
    backbone.eval()
    ours = _ours('b0')
    ours.load_state_dict(saved['state_dict'])
    x = torch.randn(1, 3, 96, 96, generator=g)
    with torch.no_grad():
        assert _max_diff(ref(x), ours(x)) <= ATOL
        torch.testing.assert_close(backbone(x)[-1], ours.backbone(x)[-1])

    with pytest.raises(SystemExit, match='--num-classes 10 but the checkpoint classifier has '
                                         '1000'):
        tool.main([str(src), str(tmp_path / 'x.pth'), '--arch', 'b0', '--num-classes', '10'])
    with pytest.raises(SystemExit, match=r"not a released UniNet checkpoint: its keys look like "
                                         r"\['backbone.stem"):
        tool.main([str(dst), str(tmp_path / 'y.pth'), '--arch', 'b0'])
    with pytest.raises(SystemExit, match='28 blocks'):
        tool.main([str(src), str(tmp_path / 'z.pth'), '--arch', 'b3'])
    headless = {k: v for k, v in ref.state_dict().items()
                if not k.startswith(('head.', 'classifier.'))}
    torch.save(headless, tmp_path / 'headless.pth')
    tool.main([str(tmp_path / 'headless.pth'), str(tmp_path / 'bb.pth'), '--arch', 'b0'])
    assert 'UniNet b0 backbone (checkpoint without classifier)' in capsys.readouterr().out

