"""UniNet backbone (Liu et al., "UniNet: Unified Architecture Search with Convolution,
Transformer, and MLP", ECCV 2022).

A stem (3x3 conv stride 2, BN, GELU) and stages; stage ``i`` is an optional DSM (in -> width_i,
stride_i) followed by ``repeats_i`` GOP blocks of one type at width_i with expansion_i (paper
Sec. 3.4, Table 3; layout of the released code). ``stem_patch=p`` makes the stem a p x p,
stride-p patchifying conv (BN, GELU) and, with stages without DSMs, expresses the isotropic
networks of the paper's Table 1 (ViT-, Mixer-like). ``arch`` is a preset name or an arch dict,
decoded by :func:`uninet_mm.models.arch.arch_spec` into one record per stage whatever its origin
(preset, config, search).
"""
import contextlib
import os.path as osp
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.runner.checkpoint import CheckpointLoader
from torch.nn.modules.batchnorm import _BatchNorm

from ..registry import CHECKPOINT_CONVERTERS, build_dsm, build_gop, register_model
from ..utils.state_dict import strip_prefix
from .arch import arch_spec
from .deploy import DeployedStem, register_inference_form, reparameterize, reset_parameters
from .layers import fuse_conv_bn_pairs
from .train_ops import ConvBNGELU
from .validate import (
    check_drop_path_rate,
    check_in_channels,
    normalize_out_indices,
    partial_load_message,
)


class UniNetStage(BaseModule):
    """One stage: ``downsample`` (a DSM, or None) then ``blocks`` (GOPs)."""

    def __init__(self, downsample, blocks, with_cp=False):
        super().__init__()
        self.downsample = downsample
        self.blocks = nn.ModuleList(blocks)
        self.with_cp = with_cp

    def forward(self, x):
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


@register_model
class UniNet(BaseModule):
    """UniNet backbone.

    Args:
        arch (str | dict): ``'b0'``..``'b6'`` or a dict of per-stage lists (``gops``, ``dsms``,
            ``widths``, ``repeats``, ``expansions``, ``strides``) or of stage records
            (``stages``) plus ``stem_width``, ``head_dim``, ``window_size`` and optionally
            ``stem_patch``; see :mod:`uninet_mm.models.arch`. ``self.arch`` is the complete
            dict of lists. Attention of any width splits it into
            :func:`~.layers.attention_heads` ``(width, head_dim)`` heads.
        in_channels (int): input image channels.
        out_indices (Sequence[int]): stages whose outputs are returned. The default picks the
            1/4, 1/8, 1/16 and 1/32 maps of the released layout for dense prediction.
        frozen_stages (int): -1 freezes nothing; 0 the stem; k the stem and stages 0..k-1
            (eval mode, no gradients), as ResNet.
        norm_eval (bool): keep BatchNorm layers in eval mode while training.
        with_cp (bool): activation checkpointing per block (same outputs and gradients).
        drop_path_rate (float): stochastic depth, rising linearly from 0 over all GOP blocks.
        deploy (bool): build the inference form directly (the structure that
            :meth:`switch_to_deploy` leaves, with freshly initialised weights), e.g. to load a
            checkpoint saved by ``tools/model_converters/reparameterize_model.py`` strictly.
        init_cfg (dict, optional): e.g. ``dict(type='Pretrained', checkpoint=..., prefix=...)``.
            A checkpoint in the released layout needs converting, an explicit step: convert
            the file once with ``tools/convert_official.py``, or add ``converter='released'``
            (a name in ``uninet_mm.registry.CHECKPOINT_CONVERTERS``) to convert on load. A
            checkpoint that leaves a backbone weight unfilled, of another shape, or that holds
            weights the backbone lacks is refused (another arch or model); ``strict=False``
            loads what matches.
    """

    def __init__(self, arch='b1', in_channels=3, out_indices=(1, 2, 4, 5), frozen_stages=-1,
                 norm_eval=False, with_cp=False, drop_path_rate=0., deploy=False,
                 init_cfg=None):
        super().__init__(init_cfg=init_cfg)
        spec = arch_spec(arch)
        self.arch = spec.to_dict()
        self.num_stages = spec.num_stages
        self.out_indices = normalize_out_indices(out_indices, self.num_stages)
        check_in_channels(in_channels)
        drop_path_rate = check_drop_path_rate(drop_path_rate)
        if not -1 <= frozen_stages <= self.num_stages:
            raise ValueError(f'UniNet: frozen_stages={frozen_stages} out of range: -1 (none), '
                             f'0 (stem) .. {self.num_stages} (stem and all stages)')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.out_channels = [spec.stages[i].width for i in self.out_indices]
        self.out_strides = []
        self.deploy = False  # True once in the inference form
        # deploy=True: the training structure, bare (meta tensors), switched to its inference
        # form and given memory, so that both ways to the inference form build one structure
        with torch.device('meta') if deploy else contextlib.nullcontext():
            self._build_layers(spec, in_channels, drop_path_rate, with_cp)
            if deploy:
                self.switch_to_deploy()
        if deploy:
            self.to_empty(device='cpu')
            reset_parameters(self)
            self.to(memory_format=torch.channels_last)
        self._freeze_stages()

    def _build_layers(self, spec, in_channels, drop_path_rate, with_cp):
        stem_width, patch = spec.stem_width, spec.stem_patch
        kernel, stem_stride, pad = (3, 2, 1) if patch is None else (patch, patch, 0)
        self.stem = ConvBNGELU(OrderedDict(
            conv=nn.Conv2d(in_channels, stem_width, kernel, stem_stride, pad, bias=False),
            norm=nn.BatchNorm2d(stem_width),
            act=nn.GELU()))

        total_blocks = sum(stage.depth for stage in spec.stages)
        # device='cpu': the rates are Python floats, also when built under torch.device('meta')
        dpr = (torch.linspace(0, drop_path_rate, total_blocks, device='cpu').tolist()
               if total_blocks else [])
        self.stages = nn.ModuleList()
        in_ch, stride, k = stem_width, stem_stride, 0
        for i, stage in enumerate(spec.stages):
            width = stage.width
            downsample = None
            if stage.dsm is not None:
                downsample = build_dsm(dict(
                    type=stage.dsm, in_channels=in_ch, out_channels=width,
                    stride=stage.stride, head_dim=spec.head_dim))
                in_ch = width
            stride *= stage.stride
            blocks = []
            for _ in range(stage.depth):
                blocks.append(build_gop(dict(
                    type=stage.gop, in_channels=in_ch, out_channels=width,
                    expansion=stage.expansion, drop_path=dpr[k],
                    head_dim=spec.head_dim, window_size=spec.window_size)))
                in_ch, k = width, k + 1
            if in_ch != width:
                raise ValueError(f'UniNet: stage {i} has neither a DSM nor blocks to map width '
                                 f'{in_ch} to {width}; give it a DSM or repeats >= 1')
            self.stages.append(UniNetStage(downsample, blocks, with_cp=with_cp))
            self.out_strides.append(stride)

    # -- weights ------------------------------------------------------------------------------
    def init_weights(self):
        if not (isinstance(self.init_cfg, dict) and self.init_cfg.get('type') == 'Pretrained'):
            super().init_weights()
            return
        self._load_pretrained(self.init_cfg)

    def _load_pretrained(self, init_cfg):
        """Load ``init_cfg.checkpoint`` (optionally under ``prefix``, converted by the
        ``init_cfg.converter`` named, if any); clear errors for a missing file or a checkpoint
        that matches nothing."""
        logger = MMLogger.get_current_instance()
        filename = init_cfg['checkpoint']
        if '://' not in filename and not osp.isfile(filename):
            raise FileNotFoundError(
                f'UniNet: pretrained checkpoint {filename!r} not found. Put the converted '
                f'ImageNet checkpoint there: convert a released UniNet checkpoint with '
                f'`python tools/convert_official.py RELEASED.pth {filename} --arch <preset>`, '
                f'or train one with configs/cls/. To train from scratch instead, run with '
                f'`--cfg-options model.backbone.init_cfg=None`.')
        ckpt = CheckpointLoader.load_checkpoint(filename, map_location='cpu', logger=logger)
        state_dict = ckpt.get('state_dict', ckpt.get('model', ckpt))
        converter = init_cfg.get('converter')
        if converter is not None:
            convert = CHECKPOINT_CONVERTERS.get(converter)
            if convert is None:
                raise KeyError(f'UniNet: unknown checkpoint converter {converter!r} in init_cfg; '
                               f'valid converters are {sorted(CHECKPOINT_CONVERTERS.module_dict)}')
            state_dict = convert(state_dict, self.arch)
        prefix = init_cfg.get('prefix')
        if prefix:
            state_dict = strip_prefix(state_dict, prefix)
        elif not any(k.startswith(('stem.', 'stages.')) for k in state_dict) and any(
                k.startswith('backbone.') for k in state_dict):
            state_dict = strip_prefix(state_dict, 'backbone.')
        own = self.state_dict()
        matched = [k for k in state_dict if k in own and state_dict[k].shape == own[k].shape]
        if not matched:
            sample = list(state_dict)[:5] if state_dict else list(ckpt)[:5]
            raise ValueError(
                f'UniNet: checkpoint {filename!r} matches none of this backbone\'s weights. Its '
                f'keys look like {sample} (prefix={init_cfg.get("prefix")!r}); expected keys '
                f'such as {list(own)[:3]}. Pass the right `prefix` (e.g. "backbone." for an '
                f'MMPretrain classifier), convert a released checkpoint with '
                f'tools/convert_official.py (or load it with converter=\'released\' in '
                f'init_cfg), or check that the arch matches.')
        wrong = [k for k in state_dict if k in own and state_dict[k].shape != own[k].shape]
        extra = [k for k in state_dict if k not in own]
        if (wrong or len(matched) < len(own) or extra) and init_cfg.get('strict', True):
            raise ValueError(partial_load_message(
                filename, len(own), matched, wrong, extra, ckpt.get('meta'), self.arch))
        missing, unexpected = self.load_state_dict(
            {k: state_dict[k] for k in matched}, strict=False)
        logger.info(f'UniNet: loaded {len(matched)}/{len(own)} tensors from {filename}')
        if missing:
            logger.warning(f'UniNet: missing keys in checkpoint (strict=False): {missing}')
        if wrong:
            logger.warning(f'UniNet: shape mismatch, not loaded (strict=False): {wrong}')
        if extra:
            logger.warning(f'UniNet: unexpected keys in checkpoint (strict=False): {extra}')

    # -- inference ----------------------------------------------------------------------------
    def fuse_conv_bn(self):
        """Fold every BatchNorm into the convolution next to it, in place (inference only: the
        outputs stay the same in eval mode; training afterwards would not update BN
        statistics). Used by ``tools/test.py --fuse-conv-bn`` and the benchmark."""
        if self.deploy:  # the inference form has no BatchNorm left
            return self
        fuse_conv_bn_pairs(self.stem, [('conv', 'norm')])
        for m in self.modules():
            if m is not self and hasattr(m, 'fuse_conv_bn'):
                m.fuse_conv_bn()
        return self

    def switch_to_deploy(self):
        """The inference form, in place: the stem and every GOP and DSM are replaced by their
        deployed modules (:mod:`uninet_mm.models.deploy`: BatchNorm, layer scales and the SE
        gate folded, GELU fused, oneDNN kernels on CPU), computing in channels_last memory
        (the outputs come back in the input's layout). Outputs equal the plain model's within
        fp32 rounding. One-way, like mmpretrain's RepVGG: load the checkpoint first; training a
        deployed backbone is refused. ``tools/test.py --deploy`` and
        ``tools/model_converters/reparameterize_model.py`` call it."""
        if self.deploy:
            return self
        self.stem = DeployedStem.from_training(self.stem)
        for stage in self.stages:
            reparameterize(stage)
        self.to(memory_format=torch.channels_last)
        self.deploy = True
        return self

    # -- training behaviour -------------------------------------------------------------------
    def _freeze_stages(self):
        if self.frozen_stages < 0:
            return
        frozen = [self.stem] + [self.stages[i] for i in range(self.frozen_stages)]
        for m in frozen:
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode=True):
        if mode and self.deploy:
            raise RuntimeError(
                'UniNet: this backbone was switched to its inference form (switch_to_deploy: '
                'BatchNorm and layer scales folded) and cannot be trained; build the model '
                'again from its config and load the checkpoint to train')
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, _BatchNorm):
                    m.eval()
        return self

    def _empty_outputs(self, x):
        """Outputs for a batch of 0: empty tensors of the shapes one image gives (found by an
        eval-mode, no-grad forward of one zero image, so the batch statistics stay)."""
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                one = self.forward(x.new_zeros((1,) + tuple(x.shape[1:])))
        finally:
            if was_training:
                self.train()
        return tuple(o.new_empty((0,) + tuple(o.shape[1:])) for o in one)

    def forward(self, x):
        if x.shape[0] == 0:  # a batch of 0 images: empty outputs of the right shapes
            return self._empty_outputs(x)
        # the maps come back in the input's layout (the deployed form computes in
        # channels_last), because not every consumer honours strides (mmcv's CPU RoIAlign
        # reads NCHW-contiguous memory)
        restore_layout = x.is_contiguous()
        x = self.stem(x)
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(x)
            if i in self.out_indices:
                outs.append(x.contiguous() if restore_layout else x)
        return tuple(outs)


register_inference_form(UniNet, UniNet.switch_to_deploy)  # in place, the backbone object stays
