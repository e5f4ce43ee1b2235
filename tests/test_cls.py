"""Classification: the UniNet ImageNet configs and the MNIST demo config, the UniNet head, the
ImageClassifier + data-preprocessor route (with logit parity against the released layout), the
embedded digit datasets, and a short real training run through MMEngine's Runner.

Every model here runs with one intra-op thread: on a small shared CPU, several OpenMP threads per
process fight each other and are many times slower than one.
"""
import copy
import functools
import glob
import os.path as osp
import socket

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from mmpretrain.evaluation import Accuracy
from mmpretrain.registry import DATASETS, MODELS
from mmpretrain.structures import DataSample

import uninet_mm  # noqa: F401  (registers UniNet, its head and the datasets)
from uninet_mm.apis import randomize_
from uninet_mm.datasets import digits
from uninet_mm.datasets.digits import MNISTDigits, SklearnDigits, stratified_split
from uninet_mm.models import ARCH_PRESETS, UniNetClsHead

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLS_DIR = osp.join(ROOT, 'configs', 'cls')
PRESETS = ('b0', 'b1', 'b2', 'b3', 'b4', 'b5')
IN1K = [osp.join(CLS_DIR, f'uninet_{p}_in1k.py') for p in PRESETS]
DEMO = osp.join(CLS_DIR, 'uninet_mnist_demo.py')
ALL_CONFIGS = sorted(glob.glob(osp.join(CLS_DIR, 'uninet_*.py')))
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
#: parameters of the released models with the 1000-class head (issue 3, measured on the release)
RELEASED_PARAMS_K = dict(b0=11451, b1=11451, b2=16211, b3=24020, b4=43796, b5=72883)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def mmpretrain_scope():
    """Build under the configs' ``default_scope`` ('mmpretrain'), as MMEngine's Runner does:
    a Runner of an earlier test (or of the user's own code) leaves its scope, e.g. 'mmseg',
    behind, and MMEngine's ``Registry.build`` then looks types up in that library's registry."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


@functools.lru_cache(maxsize=None)
def _load_cfg(path):
    return Config.fromfile(path)


def load_cfg(path):
    return copy.deepcopy(_load_cfg(path))


def build_model(cfg):
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    return model


def seed_all(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)


def name(path):
    return osp.basename(path)[:-3]


def tiny_batch(num_classes, batch=4, size=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = [torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
              for _ in range(batch)]
    labels = torch.randint(0, num_classes, (batch, ), generator=g).tolist()
    return dict(inputs=inputs, data_samples=[DataSample().set_gt_label(y) for y in labels])


# ------------------------------------------------------------------------------------ configs
def test_all_cls_configs_are_tested():
    assert set(IN1K + [DEMO]) <= set(ALL_CONFIGS), ALL_CONFIGS


@pytest.mark.parametrize('path', ALL_CONFIGS, ids=name)
def test_config_loads_and_model_builds(path):
    cfg = load_cfg(path)
    assert cfg.custom_imports == dict(imports=['uninet_mm'], allow_failed_imports=False)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.model.type == 'ImageClassifier'
    assert cfg.model.backbone.type == 'UniNet' and cfg.model.backbone.init_cfg is None
    assert tuple(cfg.model.backbone.out_indices) == (5, )
    # the preprocessor travels inside the model, and equals the top-level one the Runner uses
    assert cfg.model.data_preprocessor == cfg.data_preprocessor
    model = build_model(cfg)
    assert model.head.in_channels == model.backbone.out_channels[-1]
    preset = cfg.model.backbone.arch
    if isinstance(preset, str):  # the released model's parameter count, 1000-class head included
        n = sum(p.numel() for p in model.parameters())
        assert round(n / 1e3) == RELEASED_PARAMS_K[preset], n
    assert model.head.fc.out_features == cfg.model.head.num_classes
    assert model.data_preprocessor.num_classes == cfg.model.head.num_classes
    assert cfg.val_evaluator.type == 'Accuracy'


@pytest.mark.parametrize('preset', PRESETS)
def test_in1k_config_recipe(preset):
    cfg = load_cfg(osp.join(CLS_DIR, f'uninet_{preset}_in1k.py'))
    size = ARCH_PRESETS[preset]['input_size']
    assert cfg.model.backbone.arch == preset
    # data: ImageNet mean/std (RGB), DeiT-style train pipeline at the preset's size,
    # test resize to size / 0.875 then center crop
    dp = cfg.model.data_preprocessor
    assert dp.mean == IMAGENET_MEAN and dp.std == IMAGENET_STD and dp.to_rgb and \
        dp.num_classes == 1000
    train = {t.type: t for t in cfg.train_dataloader.dataset.pipeline}
    assert list(train) == ['LoadImageFromFile', 'RandomResizedCrop', 'RandomFlip', 'RandAugment',
                           'RandomErasing', 'PackInputs']
    assert train['RandomResizedCrop'].scale == size
    assert train['RandAugment'].magnitude_level == 9 and train['RandAugment'].num_policies == 2
    assert train['RandomErasing'].erase_prob == 0.25 and train['RandomErasing'].mode == 'rand'
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        test = {t.type: t for t in loader.dataset.pipeline}
        assert test['ResizeEdge'].scale == int(size / 0.875) and test['ResizeEdge'].edge == 'short'
        assert test['CenterCrop'].crop_size == size
    assert cfg.train_pipeline == cfg.train_dataloader.dataset.pipeline
    # model: label smoothing 0.1, Mixup 0.8 / CutMix 1.0
    assert cfg.model.head.loss == dict(type='LabelSmoothLoss', label_smooth_val=0.1,
                                       mode='original')
    assert [(a.type, a.alpha) for a in cfg.model.train_cfg.augments] == [('Mixup', 0.8),
                                                                        ('CutMix', 1.0)]
    # schedule: AdamW 1e-3 per 1024 images, wd 0.05, 300 epochs, linear warm-up then cosine
    # to 1e-5, both by iteration
    opt = cfg.optim_wrapper.optimizer
    assert opt.type == 'AdamW' and opt.lr == 1e-3 and opt.weight_decay == 0.05
    assert cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.train_cfg.max_epochs == 300
    warm, cos = cfg.param_scheduler
    assert warm.type == 'LinearLR' and warm.begin == 0 and warm.end == cos.begin > 0
    assert cos.type == 'CosineAnnealingLR' and cos.eta_min == 1e-5 and cos.end == 300
    assert warm.convert_to_iter_based and cos.convert_to_iter_based


def test_drop_path_grows_with_model_size():
    rates = [load_cfg(p).model.backbone.drop_path_rate for p in IN1K]
    assert all(0 < r < 0.5 for r in rates)
    assert rates == sorted(rates) and rates[-1] > rates[0], rates


def test_no_weight_decay_on_norms_biases_pos_embed_and_layer_scales():
    cfg = load_cfg(IN1K[0])
    model = MODELS.build(cfg.model)
    optim = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)).optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    decay = {}
    for group in optim.param_groups:
        for p in group['params']:
            decay[names[id(p)]] = group['weight_decay']
    assert set(decay) == set(names.values())
    norm_types = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.LayerNorm)
    norm_params = {f'{m_name}.{p_name}' for m_name, m in model.named_modules()
                   if isinstance(m, norm_types) for p_name, _ in m.named_parameters()}
    kinds = dict(pos_embed=0, gamma=0, norm=0, bias=0, weight=0)
    for n, wd in decay.items():
        if '.pos_embed.' in n:
            kind = 'pos_embed'
        elif n.endswith(('.gamma1', '.gamma2')):
            kind = 'gamma'
        elif n in norm_params:
            kind = 'norm'
        elif n.endswith('.bias'):
            kind = 'bias'
        else:
            kind = 'weight'
        kinds[kind] += 1
        assert wd == (0.05 if kind == 'weight' else 0.), (n, wd)
    assert all(kinds.values()), kinds  # every kind exists, so every rule was exercised


# ------------------------------------------------------------------- train and evaluate, tiny
@pytest.mark.parametrize('path', ALL_CONFIGS, ids=name)
def test_train_steps_and_evaluation_on_tiny_inputs(path):
    """The config's model, preprocessor (with its batch augments), loss and optimizer; only the
    data is swapped for a fixed tiny batch. The same seed before every step repeats the random
    Mixup/CutMix/drop-path draw, so the loss must fall on this fixed problem."""
    cfg = load_cfg(path)
    num_classes = cfg.model.head.num_classes
    model = build_model(cfg)
    optim_wrapper = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper))
    batch = tiny_batch(num_classes, size=32)
    before = copy.deepcopy(model.state_dict())
    losses = []
    model.train()
    for _ in range(3):
        seed_all(0)
        losses.append(model.train_step(batch, optim_wrapper)['loss'].item())
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < losses[0], losses
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert any(k.startswith('backbone.stem.') for k in changed)
    assert any(k.startswith('head.fc.') for k in changed)

    model.eval()
    with torch.no_grad():
        outputs = model.val_step(batch)
    assert len(outputs) == len(batch['inputs'])
    for out in outputs:
        assert out.pred_score.shape == (num_classes, )
        assert torch.allclose(out.pred_score.sum(), torch.tensor(1.))
        assert 0 <= int(out.pred_label) < num_classes
    metric = Accuracy(topk=(1, ))
    metric.process(None, [o.to_dict() for o in outputs])
    acc = metric.compute_metrics(metric.results)['top1']
    expected = 100. * np.mean([int(o.pred_label) == int(o.gt_label) for o in outputs])
    assert acc == pytest.approx(expected)


# ------------------------------------------------------- the preprocessor route and parity
def test_in1k_data_preprocessor_normalises_bgr_to_imagenet_rgb():
    model = MODELS.build(load_cfg(IN1K[1]).model)
    batch = tiny_batch(1000, batch=2, size=16)
    out = model.data_preprocessor(copy.deepcopy(batch), False)['inputs']
    x = torch.stack(batch['inputs']).float().flip(1)  # BGR -> RGB
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(out, (x - mean) / std)


def test_config_built_classifier_matches_released_model_logits():
    """configs/cls/uninet_b1_in1k.py built as is, loaded with a converted random released B1
    checkpoint, fed uint8 BGR images through its data preprocessor, gives the released model's
    logits on the same images normalised by hand."""
    from uninet_mm.apis import released
    from uninet_mm.converters import official
    cfg = load_cfg(IN1K[1])
    model = MODELS.build(cfg.model).eval()
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    batch = tiny_batch(1000, batch=2, size=96, seed=3)
    rgb = (torch.stack(batch['inputs']).float().flip(1) - mean) / std

    g = torch.Generator().manual_seed(0)
    ref = released.ReleasedUniNet('b1')
    randomize_(ref, generator=g, calib_input=rgb)
    ref.eval()
    converted = official.convert_official(ref.state_dict(), 'b1')
    missing, unexpected = model.load_state_dict(converted, strict=True)
    assert not missing and not unexpected

    with torch.no_grad():
        expected = ref(rgb)
        data = model.data_preprocessor(copy.deepcopy(batch), False)
        logits = model(data['inputs'], mode='tensor')
        preds = model.test_step(copy.deepcopy(batch))
    assert expected.std() > 0.1  # the logits are not trivially small
    diff = (logits - expected).abs().max().item()
    assert diff < 1e-4 * max(1., expected.abs().max().item()), diff
    scores = torch.stack([p.pred_score for p in preds])
    torch.testing.assert_close(scores, expected.softmax(-1), atol=1e-5, rtol=1e-4)
    assert [int(p.pred_label) for p in preds] == expected.argmax(-1).tolist()


# ------------------------------------------------------------------------------------ the head
def test_head_shapes_loss_and_predict():
    torch.manual_seed(0)
    head = UniNetClsHead(num_classes=7, in_channels=16, mid_channels=40, dropout=0.5)
    head.init_weights()
    names = {n for n, _ in head.named_parameters()}
    assert {'pre.conv.weight', 'pre.norm.weight', 'pre.norm.bias', 'fc.weight',
            'fc.bias'} == names  # the 1x1 conv has no bias
    assert head.pre.conv.kernel_size == (1, 1)
    feats = (torch.randn(3, 8, 10, 10), torch.randn(3, 16, 5, 4))
    head.train()
    assert head.pre_logits(feats).shape == (3, 40)
    assert head(feats).shape == (3, 7)
    with pytest.raises(RuntimeError):  # only the last map is used: 8 channels do not fit
        head((feats[1], feats[0]))

    samples = [DataSample().set_gt_label(i) for i in (0, 3, 6)]
    losses = head.loss(feats, samples)
    assert set(losses) >= {'loss'} and losses['loss'].ndim == 0
    assert torch.isfinite(losses['loss']) and losses['loss'] > 0
    losses['loss'].backward()
    assert head.pre.conv.weight.grad.abs().sum() > 0 and head.fc.weight.grad.abs().sum() > 0

    head.eval()  # no dropout: pooled features equal the hand-computed GELU(BN(conv)) mean
    with torch.no_grad():
        pooled = head.pre_logits(feats)
        by_hand = torch.nn.functional.gelu(head.pre.norm(head.pre.conv(feats[-1]))).mean((2, 3))
        torch.testing.assert_close(pooled, by_hand)
        logits = head(feats)
        preds = head.predict(feats)
    assert len(preds) == 3
    torch.testing.assert_close(torch.stack([p.pred_score for p in preds]), logits.softmax(-1))
    assert [int(p.pred_label) for p in preds] == logits.argmax(-1).tolist()


def test_head_rejects_no_classes():
    with pytest.raises(ValueError, match='num_classes'):
        UniNetClsHead(num_classes=0, in_channels=16)


# ---------------------------------------------------------------------------------- datasets
@pytest.fixture
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError('the digit datasets must load offline')

    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


@pytest.mark.parametrize('cls,n_train,n_val,n_total', [
    (MNISTDigits, 4000, 1000, 5000),
    (SklearnDigits, 1438, 359, 1797),
])
def test_digit_datasets(offline, cls, n_train, n_val, n_total):
    digits._mnist_raw.cache_clear()
    digits._sklearn_raw.cache_clear()
    assert DATASETS.get(cls.__name__) is cls
    train = DATASETS.build(dict(type=cls.__name__, split='train'))
    val = DATASETS.build(dict(type=cls.__name__, split='val'))
    assert (len(train), len(val)) == (n_train, n_val)
    assert train.CLASSES == tuple('0123456789')

    idx_train = [train.get_data_info(i)['source_idx'] for i in range(len(train))]
    idx_val = [val.get_data_info(i)['source_idx'] for i in range(len(val))]
    assert not set(idx_train) & set(idx_val)
    assert set(idx_train) | set(idx_val) == set(range(n_total))
    again = cls(split='val')  # deterministic
    assert [again.get_data_info(i)['source_idx'] for i in range(len(again))] == idx_val
    other = cls(split='val', seed=1)
    assert [other.get_data_info(i)['source_idx'] for i in range(len(other))] != idx_val

    labels_train = np.array([train.get_data_info(i)['gt_label'] for i in range(len(train))])
    labels_val = np.array([val.get_data_info(i)['gt_label'] for i in range(len(val))])
    assert set(labels_train) == set(labels_val) == set(range(10))
    counts = np.bincount(labels_val, minlength=10)
    assert counts.max() - counts.min() <= 2  # stratified

    imgs_train = np.stack([train.get_data_info(i)['img'] for i in range(len(train))])
    imgs_val = np.stack([val.get_data_info(i)['img'] for i in range(len(val))])
    assert imgs_train.shape[1:] == (32, 32, 3) and imgs_train.dtype == np.uint8
    assert (imgs_train[..., 0] == imgs_train[..., 2]).all()  # grey replicated
    assert imgs_train.max() == 255 and 0.05 < imgs_train.mean() / 255 < 0.5  # dark background

    # the labels belong to the images: a nearest-class-mean classifier fitted on train
    # recognises most val digits (chance: 10%)
    xt = imgs_train[..., 0].reshape(len(train), -1).astype(np.float32)
    xv = imgs_val[..., 0].reshape(len(val), -1).astype(np.float32)
    means = np.stack([xt[labels_train == c].mean(0) for c in range(10)])
    pred = ((xv[:, None] - means[None]) ** 2).sum(-1).argmin(1)
    assert (pred == labels_val).mean() > 0.6

    sample = val[0]  # the empty pipeline returns the stored dict
    assert sample['img'].shape == (32, 32, 3)


def test_digit_dataset_options_and_errors():
    one = SklearnDigits(split='all', image_size=28, channels=1)
    assert len(one) == 1797
    assert one.get_data_info(0)['img'].shape == (28, 28)
    packed = SklearnDigits(split='val', pipeline=[dict(type='PackInputs')])[0]
    assert packed['inputs'].shape == (3, 32, 32) and packed['inputs'].dtype == torch.uint8
    assert 0 <= int(packed['data_samples'].gt_label) < 10
    with pytest.raises(ValueError, match='split'):
        MNISTDigits(split='test')
    with pytest.raises(ValueError, match='channels'):
        MNISTDigits(channels=2)
    train, val = stratified_split(np.repeat(np.arange(3), 10), val_fraction=0.3, seed=0)
    assert len(val) == 9 and len(train) == 21 and not set(train) & set(val)


# ------------------------------------------------------------------ a real run on real digits
def test_runner_training_on_mnist_raises_accuracy_far_above_chance(tmp_path):
    """The demo config through mmengine's Runner for one epoch (4,000 real MNIST digits, 63
    iterations, ~10-20 s); validation on the val split (1,000 digits) before and after."""
    from mmengine.runner import Runner

    cfg = load_cfg(DEMO)
    cfg.work_dir = str(tmp_path)
    cfg.log_level = 'WARNING'
    cfg.train_cfg.max_epochs = 1
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1, save_last=False)
    cfg.param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
                                end=20)]
    runner = Runner.from_cfg(cfg)
    before = runner.val()['accuracy/top1']
    runner.train()
    after = runner.val()['accuracy/top1']
    print(f'MNIST val top-1: {before:.1f}% before, {after:.1f}% after training')
    assert before < 30, before
    assert after > 50 and after > before + 30, (before, after)
