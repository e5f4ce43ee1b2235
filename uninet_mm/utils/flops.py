"""Parameters and FLOPs of any model, with one convention: a multiply-add counts once.

:func:`count_flops` runs one forward pass under :class:`torch.utils.flop_counter.FlopCounterMode`
and reports, in multiply-adds (MACs, "FLOPs" as the UniNet paper and fvcore/mmcv count them):

- convolutions, linear layers and matrix products: what ``FlopCounterMode`` counts (it reports
  2 FLOPs per multiply-add; we halve it), biases not counted;
- attention of ``F.scaled_dot_product_attention``: the two matrix products,
  ``B * heads * Nq * Nk * d`` multiply-adds each, whatever backend runs it. ``FlopCounterMode``
  knows the CUDA kernels but not the CPU one (``_scaled_dot_product_flash_attention_for_cpu``),
  so a formula for it is registered, and every SDPA call is also checked at the functional level
  (a ``TorchFunctionMode``): if the dispatch-level count of a call falls short of the two
  products (a backend nobody registered), the difference is added. A backend that decomposes
  SDPA into ``bmm`` (the math path) is counted once, never twice;
- normalisation and pooling by the fvcore convention: BatchNorm in eval mode 2 per element (1
  without affine), BatchNorm in training, LayerNorm, GroupNorm and InstanceNorm 5 per element
  (4 without affine), average pooling and ``mean`` 1 per input element, bilinear up-sampling 4
  and nearest up-sampling 1 per output element;
- element-wise ops (activations, additions, layer scales, softmax inside the kernels) and max
  pooling: not counted (fvcore ignores them too).

With this convention UniNet B0..B6 at their input sizes give the FLOPs the authors report
(within 0.07%), see ``tools/get_flops.py --all-presets``.

Models and inputs on the ``meta`` device are counted too (shapes only, no compute: what
:func:`preset_flops` does by default); there SDPA runs its math decomposition, whose ``bmm``
products FlopCounterMode counts, and the count equals the CPU one.

Usage::

    flops, params = count_flops(model, (1, 3, 224, 224))   # or a tensor, or a tuple of args
    flops, params, by_op = count_flops(model, x, by_op=True)
"""
import math
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten

# All formulas below return values in FlopCounterMode's unit (2 per multiply-add), so that one
# division by 2 at the end yields multiply-adds for everything. A norm "element" of the fvcore
# convention therefore counts 2 here.


def _numel(shape):
    return math.prod(shape) if shape is not None else 0


def _batch_norm(input_shape, weight_shape=None, bias_shape=None, running_mean=None,
                running_var=None, training=False, *args, out_shape=None, **kwargs):
    affine = weight_shape is not None
    if training:
        per_element = 5 if affine else 4
    else:
        per_element = 2 if affine else 1
    return 2 * per_element * _numel(input_shape)


def _batch_norm_no_training(input_shape, weight_shape=None, *args, out_shape=None, **kwargs):
    return 2 * (2 if weight_shape is not None else 1) * _numel(input_shape)


def _layer_norm(input_shape, normalized_shape=None, weight_shape=None, *args, out_shape=None,
                **kwargs):
    return 2 * (5 if weight_shape is not None else 4) * _numel(input_shape)


def _group_norm(input_shape, weight_shape=None, *args, out_shape=None, **kwargs):
    return 2 * (5 if weight_shape is not None else 4) * _numel(input_shape)


def _per_input_element(input_shape, *args, out_shape=None, **kwargs):
    return 2 * _numel(input_shape)


def _per_output_element(factor):
    def formula(*args, out_shape=None, **kwargs):
        return 2 * factor * _numel(out_shape)
    return formula


def _sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs):
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape, *args,
                       out_shape=None, **kwargs):
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _optional_ops(*names):
    return [getattr(aten, n) for n in names if hasattr(aten, n)]


def _custom_mapping():
    """Formulas that ``FlopCounterMode`` lacks, keyed by aten op packet."""
    mapping = {}
    for op in _optional_ops('_scaled_dot_product_flash_attention_for_cpu',
                            '_scaled_dot_product_fused_attention_overrideable'):
        mapping[op] = _sdpa_cpu
    for op in _optional_ops('_scaled_dot_product_flash_attention_for_cpu_backward',
                            '_scaled_dot_product_fused_attention_overrideable_backward'):
        mapping[op] = _sdpa_cpu_backward
    # batch norm: (input, weight, bias, running_mean, running_var, training, momentum, eps)
    for op in _optional_ops('native_batch_norm', '_native_batch_norm_legit',
                            '_native_batch_norm_legit_functional', 'cudnn_batch_norm',
                            'miopen_batch_norm'):
        mapping[op] = _batch_norm
    for op in _optional_ops('_native_batch_norm_legit_no_training'):
        mapping[op] = _batch_norm_no_training
    mapping[aten.native_layer_norm] = _layer_norm
    mapping[aten.native_group_norm] = _group_norm
    for op in _optional_ops('mean', 'avg_pool1d', 'avg_pool2d', 'avg_pool3d',
                            '_adaptive_avg_pool2d', '_adaptive_avg_pool3d',
                            'adaptive_avg_pool1d'):
        mapping[op] = _per_input_element
    for op in _optional_ops('upsample_bilinear2d', '_upsample_bilinear2d_aa'):
        mapping[op] = _per_output_element(4)
    for op in _optional_ops('upsample_nearest2d', '_upsample_nearest_exact2d',
                            'upsample_nearest1d', 'upsample_nearest3d'):
        mapping[op] = _per_output_element(1)
    return mapping


def _sdpa_expected(args, kwargs):
    """Two matrix products of one SDPA call, in FlopCounterMode units (2 per multiply-add)."""
    q, k, v = (args + (None,) * 3)[:3]
    q = kwargs.get('query', q)
    k = kwargs.get('key', k)
    v = kwargs.get('value', v)
    *batch_q, nq, d = q.shape
    nk, dv = k.shape[-2], v.shape[-1]
    batch = math.prod(torch.broadcast_shapes(tuple(batch_q), tuple(k.shape[:-2])))
    return 2 * batch * nq * nk * (d + dv)


class _SDPAGuard(TorchFunctionMode):
    """Checks every ``F.scaled_dot_product_attention`` call against the dispatch-level count
    and adds what the backend's op did not report."""

    def __init__(self, counter):
        super().__init__()
        self.counter = counter
        self.added = 0
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.scaled_dot_product_attention:
            return func(*args, **kwargs)
        before = self.counter.get_total_flops()
        out = func(*args, **kwargs)
        counted = self.counter.get_total_flops() - before
        expected = _sdpa_expected(tuple(args), kwargs)
        self.calls += 1
        if counted < expected:
            missing = expected - counted
            self.added += missing
            self.counter.flop_counts['Global']['scaled_dot_product_attention(uncounted)'] += \
                missing
        return out


def make_inputs(inputs_or_shape, model=None):
    """A shape tuple ``(B, C, H, W)`` / ``(C, H, W)`` / ``(H, W)`` -> a random tensor on the
    model's device; a tensor (or a tuple/list of forward args) is used as it is."""
    if isinstance(inputs_or_shape, torch.Tensor):
        return (inputs_or_shape,)
    if isinstance(inputs_or_shape, (tuple, list)) and inputs_or_shape and all(
            isinstance(s, int) for s in inputs_or_shape):
        shape = tuple(inputs_or_shape)
        if len(shape) == 2:
            shape = (1, 3) + shape
        elif len(shape) == 3:
            shape = (1,) + shape
        device = 'cpu'
        if model is not None:
            p = next(iter(model.parameters()), None)
            device = p.device if p is not None else 'cpu'
        return (torch.randn(shape, device=device),)
    if isinstance(inputs_or_shape, (tuple, list)):
        return tuple(inputs_or_shape)
    raise TypeError(f'count_flops: expected a shape tuple, a tensor or a tuple of forward '
                    f'arguments, got {type(inputs_or_shape)}')


def count_params(model, trainable_only=False):
    """Number of parameters (shared parameters counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_flops(model, inputs_or_shape, forward=None, by_op=False, train=False):
    """Multiply-adds of one forward pass and the number of parameters.

    Args:
        model (nn.Module): the model (put in eval mode unless ``train``; its mode is restored).
        inputs_or_shape: an input shape (``(B, C, H, W)``, ``(C, H, W)`` or ``(H, W)`` with 3
            channels and batch 1), a tensor, or a tuple of positional forward arguments.
        forward (callable, optional): ``forward(model, *inputs)`` to run instead of
            ``model(*inputs)`` (e.g. ``lambda m, x: m.extract_feat(x)``).
        by_op (bool): also return ``{op name: multiply-adds}``.
        train (bool): count in training mode (BatchNorm uses batch statistics: 5 per element).

    Returns:
        ``(flops, params)`` or ``(flops, params, by_op)``: ``flops`` in multiply-adds (int).
    """
    inputs = make_inputs(inputs_or_shape, model)
    was_training = model.training
    model.train(train)
    mapping = _custom_mapping()
    counter = FlopCounterMode(display=False, custom_mapping=mapping)
    # FlopCounterMode decomposes every op whose *overload* is not a registry key (its keys are
    # packets), e.g. upsample_nearest2d.default into index ops that nobody counts; registering
    # the overloads of our ops too makes it count them as they are.
    for packet in mapping:
        for name in packet.overloads():
            counter.flop_registry[getattr(packet, name)] = counter.flop_registry[packet]
    guard = _SDPAGuard(counter)
    try:
        with torch.no_grad() if not train else nullcontext(), counter, guard:
            if forward is None:
                model(*inputs)
            else:
                forward(model, *inputs)
    finally:
        model.train(was_training)
    total = counter.get_total_flops()
    flops = total // 2
    params = count_params(model)
    if not by_op:
        return flops, params
    ops = {str(k): v / 2 for k, v in counter.get_flop_counts().get('Global', {}).items()}
    return flops, params, ops


def format_count(n, unit=''):
    """``1234567 -> '1.235M'``."""
    for div, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'K')):
        if abs(n) >= div:
            return f'{n / div:.3f}{suffix}{unit}'
    return f'{n}{unit}'


class BackboneWithHead(nn.Module):
    """UniNet + UniNetClsHead as one plain module: what the released classification models
    compute (used to count their parameters and FLOPs without MMPretrain's data path)."""

    def __init__(self, backbone, head):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x):
        return self.head(self.backbone(x))


#: Released figures (the authors' code): params with and without the 1000-class head, and
#: FLOPs (multiply-adds, attention included) at the preset's input size.
RELEASED_FIGURES = {
    'b0': dict(params_head=11_451_000, params=9_840_000, flops=0.555e9, input_size=160),
    'b1': dict(params_head=11_451_000, params=9_840_000, flops=1.118e9, input_size=224),
    'b2': dict(params_head=16_211_000, params=14_600_000, flops=2.159e9, input_size=256),
    'b3': dict(params_head=24_020_000, params=22_368_000, flops=4.258e9, input_size=288),
    'b4': dict(params_head=43_796_000, params=42_062_000, flops=9.429e9, input_size=320),
    'b5': dict(params_head=72_883_000, params=71_026_000, flops=20.423e9, input_size=384),
    'b6': dict(params_head=116_687_000, params=114_748_000, flops=51.035e9, input_size=448),
}


def build_preset(arch, with_head=True, num_classes=1000, device=None):
    """UniNet preset (``'b0'``..``'b6'`` or an arch dict), optionally with the released
    classification head, in eval mode; returns ``(model, input_size)``.

    ``device='meta'`` builds it without memory or initialisation cost: enough to count
    parameters and FLOPs (shapes only), which is how :func:`preset_flops` counts by default."""
    from ..models.arch import parse_arch
    from ..models.uninet import UniNet

    full = parse_arch(arch)
    size = full.get('input_size', 224)
    with torch.device(device) if device is not None else nullcontext():
        backbone = UniNet(arch, out_indices=(-1,))
        if not with_head:
            return backbone.eval(), size
        from ..models.heads import UniNetClsHead
        head = UniNetClsHead(num_classes=num_classes, in_channels=full['widths'][-1])
        return BackboneWithHead(backbone, head).eval(), size


def preset_flops(arch, size=None, with_head=True, num_classes=1000, device='meta', by_op=False):
    """``(flops, params)`` of a preset at its input size (or ``size``: int or (H, W)).

    By default the model is built and run on the ``meta`` device (shapes only: B6 in about a
    second); ``device='cpu'`` runs real tensors through the CPU kernels and counts the same."""
    model, default = build_preset(arch, with_head, num_classes, device=device)
    size = size or default
    h, w = (size, size) if isinstance(size, int) else size
    x = torch.empty(1, 3, h, w, device=device) if device == 'meta' else \
        torch.randn(1, 3, h, w, device=device)
    return count_flops(model, x, by_op=by_op)


# -- models from config files -------------------------------------------------------------------
def _library_of(cfg):
    """'mmdet' / 'mmseg' / 'mmpretrain': the config's ``default_scope``, else the library whose
    registry knows ``cfg.model.type``."""
    import importlib

    from .config import LIBRARIES
    scope = cfg.get('default_scope')
    if scope in LIBRARIES:
        return scope
    for lib in LIBRARIES:
        try:
            reg = importlib.import_module(f'{lib}.registry').MODELS
        except ImportError:
            continue
        if reg.get(cfg.model['type']) is not None:
            return lib
    raise KeyError(f'get_flops: no OpenMMLab library registers model type '
                   f'{cfg.model["type"]!r} (tried {list(LIBRARIES)})')


def build_model_from_config(cfg):
    """Build ``cfg.model`` through its library's registry (``uninet_mm`` imported, SyncBN
    reverted to BN for CPU); returns ``(model, library)``."""
    import importlib

    from mmengine.config import Config
    from mmengine.model import revert_sync_batchnorm
    from mmengine.registry import init_default_scope

    import uninet_mm  # noqa: F401  (registers UniNet in every library's registry)
    if isinstance(cfg, str):
        cfg = Config.fromfile(cfg)
    lib = _library_of(cfg)
    init_default_scope(lib)
    registry = importlib.import_module(f'{lib}.registry').MODELS
    model = registry.build(cfg.model)
    return revert_sync_batchnorm(model).eval(), lib


def _data_samples(lib, batch, hw):
    meta = dict(img_shape=hw, ori_shape=hw, pad_shape=hw, batch_input_shape=hw,
                scale_factor=(1., 1.), flip=False, flip_direction=None)
    if lib == 'mmdet':
        from mmdet.structures import DetDataSample as Sample
    elif lib == 'mmseg':
        from mmseg.structures import SegDataSample as Sample
    else:
        return None
    return [Sample(metainfo=dict(meta)) for _ in range(batch)]


def config_flops(cfg, shape, by_op=False):
    """FLOPs and params of the model of a config file at ``shape`` = ``(H, W)``.

    Detectors and segmentors run ``model(inputs, data_samples, mode='tensor')``, i.e. their
    ``_forward`` (backbone, neck and heads, no post-processing), as MMDetection's own get_flops
    does; classifiers the backbone and head. If that forward fails (e.g. a head that needs
    ground truth), only ``extract_feat`` is counted and ``what`` says so.

    Returns:
        dict(flops, params, what, library, input_shape[, by_op])
    """
    model, lib = build_model_from_config(cfg)
    h, w = shape
    x = torch.randn(1, 3, h, w)
    what = f'{type(model).__name__}._forward (backbone + neck + heads)' \
        if lib != 'mmpretrain' else f'{type(model).__name__} (backbone + neck + head)'
    try:
        res = count_flops(model, (x, _data_samples(lib, 1, (h, w)), 'tensor'), by_op=by_op)
    except Exception as e:  # noqa: BLE001  (fall back to the feature extractor)
        if not hasattr(model, 'extract_feat'):
            raise
        what = (f'{type(model).__name__}.extract_feat only (the full forward failed: '
                f'{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ""})')
        res = count_flops(model, x, forward=lambda m, t: m.extract_feat(t), by_op=by_op)
    out = dict(flops=res[0], params=res[1], what=what, library=lib, input_shape=(1, 3, h, w))
    if by_op:
        out['by_op'] = res[2]
    return out
