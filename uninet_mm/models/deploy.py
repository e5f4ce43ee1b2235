"""Inference form of UniNet: deployed modules and the structural reparameterisation that
builds them (as mmpretrain's RepVGG / MobileOne ``switch_to_deploy``).

The training modules (``gops.py``, ``dsms.py``) are plain PyTorch. :func:`reparameterize`
replaces each of them, outermost first, by its deployed module, which holds only what inference
needs and computes through the :mod:`~uninet_mm.models.deploy_ops` kernels:

=========================  ===============================  ========================================
training module            deployed module                  folded / fused
=========================  ===============================  ========================================
stem (conv, BN, GELU)      :class:`DeployedStem`            BN; GELU; input to channels_last memory
``ConvGOP`` (Eq. 1)        :class:`DeployedConvGOP`         pre-norm and BNs; GELU; SE gate into
                                                            the projection's weights
``TokenGOP`` (Eq. 2-4)     :class:`DeployedTokenGOP`        layer scales into the mixer's output
                                                            projection and the FFN's fc2; GELU
                                                            into fc1
``LocalDSM``               :class:`DeployedLocalDSM`        BN into the depth-wise conv
``LocalGlobalDSM``,        :class:`DeployedLocalGlobalDSM`, BN into the query conv; oneDNN
``GlobalDSM``              :class:`DeployedGlobalDSM`       attention
=========================  ===============================  ========================================

Outputs equal the training modules' in eval mode within fp32 rounding. ``UniNet(deploy=True)``
builds the same structure directly (:meth:`UniNet.__init__`), so a checkpoint saved after the
switch (``tools/model_converters/reparameterize_model.py``) loads into it strictly.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

from . import deploy_ops
from .dsms import GlobalDSM, LocalDSM, LocalGlobalDSM
from .gops import (
    FFN,
    ConvGOP,
    GlobalAttention,
    TokenGOP,
    WindowAttention,
    WindowTokenMLP,
    window_partition,
    window_reverse,
)
from .layers import (
    fold_bn_before_conv,
    fold_bn_into_conv,
    fold_scale_into_linear,
    map_to_tokens,
    tokens_to_map,
)

#: training class -> function(module, **kwargs) returning its inference form
_INFERENCE_FORMS = {}


def register_inference_form(training_cls, convert=None):
    """Declare the inference form of ``training_cls``: ``convert(module) -> deployed module``,
    or, used as a class decorator without ``convert``, the class's ``from_training``."""
    if convert is not None:
        _INFERENCE_FORMS[training_cls] = convert
        return convert

    def _register(deployed_cls):
        _INFERENCE_FORMS[training_cls] = deployed_cls.from_training
        return deployed_cls

    return _register


def inference_form_of(module):
    """The converter of ``module``'s class (nearest registered base class), or None."""
    for cls in type(module).__mro__:
        if cls in _INFERENCE_FORMS:
            return _INFERENCE_FORMS[cls]
    return None


def reparameterize(model):
    """The inference form of every part of ``model`` that has one, outermost first: each such
    module is replaced by its deployed module (a module that switches in place, the UniNet
    backbone, returns itself). Returns ``model`` or, if ``model`` itself has a form, its form.
    Inference only and one-way; load the trained weights first."""
    convert = inference_form_of(model)
    if convert is not None:
        return convert(model)
    for name, child in list(model.named_children()):
        deployed = reparameterize(child)
        if deployed is not child:
            setattr(model, name, deployed)
    return model


def fuse_conv_bn(model):
    """BatchNorm folded into the adjacent convolutions, in place, by the outermost modules
    that define ``fuse_conv_bn()`` (UniNet, DSMs: also a BN before a 1x1 conv, which
    ``mmcv.cnn.fuse_conv_bn`` does not fold). Returns ``model``."""
    if callable(getattr(model, 'fuse_conv_bn', None)):
        model.fuse_conv_bn()
        return model
    for child in model.children():
        fuse_conv_bn(child)
    return model


@torch.no_grad()
def reset_parameters(model):
    """Standard PyTorch initialisation of every deployed layer of ``model`` (for a model built
    empty with ``deploy=True``, before its checkpoint is loaded)."""
    for m in model.modules():
        if m is not model and callable(getattr(m, 'reset_parameters', None)):
            m.reset_parameters()


# ------------------------------------------------------------------------- deployed layers
class FusedConv2d(nn.Conv2d):
    """A convolution with its BatchNorm folded in and, with ``gelu``, the exact GELU after
    it: one oneDNN kernel on CPU (:func:`deploy_ops.conv2d`)."""

    def __init__(self, *args, gelu=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.gelu = gelu

    def forward(self, x):
        return deploy_ops.conv2d(x, self, gelu=self.gelu)

    def extra_repr(self):
        return super().extra_repr() + (', gelu=True' if self.gelu else '')


class DeployedStem(FusedConv2d):
    """The stem (3x3 conv stride 2, BN, GELU) as one kernel. It also moves the image to
    channels_last memory, in which the whole deployed backbone computes, so that the map <->
    token switches of the token blocks are views."""

    @classmethod
    def from_training(cls, stem):
        return fused_conv(stem.conv, stem.norm, cls=cls, gelu=True)

    def forward(self, x):
        return super().forward(x.contiguous(memory_format=torch.channels_last))


class SEGatedConv2d(nn.Conv2d):
    """The 1x1 projection of a ConvGOP after its squeeze-excitation, ``conv(x * se.gate(x))``:
    the gate scales the conv's input-channel weights instead of the expanded map
    (:func:`deploy_ops.gated_conv1x1`)."""

    def __init__(self, *args, se=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.se = se

    def forward(self, x):
        return deploy_ops.gated_conv1x1(x, self.se.gate(x), self)


class FusedLinear(nn.Linear):
    """A linear layer (layer scale folded in) with, for ``gelu``, the exact GELU after it:
    one oneDNN kernel on CPU (:func:`deploy_ops.linear`)."""

    def __init__(self, *args, gelu=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.gelu = gelu

    def forward(self, x):
        return deploy_ops.linear(x, self, gelu=self.gelu)

    def extra_repr(self):
        return super().extra_repr() + (', gelu=True' if self.gelu else '')


@torch.no_grad()
def fused_conv(conv, norm=None, pre_norm=None, cls=None, **kwargs):
    """A new convolution of class ``cls`` (default ``type(conv)``, with ``kwargs``) computing
    ``norm(conv(pre_norm(x)))``: BatchNorms folded (:func:`layers.fold_bn_into_conv`,
    :func:`layers.fold_bn_before_conv`); a norm that is not a BatchNorm (already folded) is
    skipped."""
    cls = cls or type(conv)
    out = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
              conv.dilation, conv.groups, bias=True, device=conv.weight.device,
              dtype=conv.weight.dtype, **kwargs)
    out.weight.copy_(conv.weight)
    if conv.bias is None:
        out.bias.zero_()
    else:
        out.bias.copy_(conv.bias)
    if isinstance(pre_norm, _BatchNorm):
        fold_bn_before_conv(pre_norm, out)
    if isinstance(norm, _BatchNorm):
        fold_bn_into_conv(out, norm)
    return out


@torch.no_grad()
def fused_linear(layer, scale=None, gelu=False):
    """A :class:`FusedLinear` computing ``scale * layer(x)`` (then GELU for ``gelu``)."""
    out = FusedLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                      gelu=gelu, device=layer.weight.device, dtype=layer.weight.dtype)
    out.weight.copy_(layer.weight)
    if layer.bias is not None:
        out.bias.copy_(layer.bias)
    if scale is not None:
        fold_scale_into_linear(out, scale)
    return out


def _deployed_mlp(mlp, scale=None):
    """``fc2(GELU(fc1(x)))`` as two kernels, GELU fused into fc1, ``scale`` into fc2."""
    return nn.Sequential(OrderedDict(fc1=fused_linear(mlp.fc1, gelu=True),
                                     fc2=fused_linear(mlp.fc2, scale)))


register_inference_form(FFN, lambda ffn, layer_scale=None: _deployed_mlp(ffn, layer_scale))


def _deployed_branch(branch):
    """The L-DSM branch / query maker (depth-wise conv, BN, 1x1 conv), BN folded."""
    return nn.Sequential(OrderedDict(dw_conv=fused_conv(branch.dw_conv, branch.norm),
                                     pw_conv=branch.pw_conv))


# ------------------------------------------------------------------------------ GOPs
@register_inference_form(ConvGOP)
class DeployedConvGOP(nn.Module):
    """Inference form of :class:`~.gops.ConvGOP` (Eq. 1): ``shortcut(x) + project(conv(
    expand(x)))``; expand and conv are :class:`FusedConv2d` with GELU, project a
    :class:`SEGatedConv2d`. No expansion conv at expansion 1; an identity shortcut is None."""

    def __init__(self, shortcut, expand, conv, project):
        super().__init__()
        self.shortcut = shortcut
        self.expand = expand
        self.conv = conv
        self.project = project

    @classmethod
    def from_training(cls, block):
        expand = None
        if isinstance(block.expand, nn.Sequential):
            e = block.expand
            expand = fused_conv(e.conv, e.norm, e.pre_norm, cls=FusedConv2d, gelu=True)
        shortcut = None if isinstance(block.shortcut, nn.Identity) else block.shortcut
        return cls(shortcut, expand, fused_conv(block.conv, block.norm, cls=FusedConv2d, gelu=True),
                   fused_conv(block.project, block.project_norm, cls=SEGatedConv2d, se=block.se))

    def forward(self, x):
        out = x if self.expand is None else self.expand(x)
        out = self.project(self.conv(out))
        return (x if self.shortcut is None else self.shortcut(x)) + out


@register_inference_form(GlobalAttention)
class DeployedGlobalAttention(nn.Module):
    """Inference form of :class:`~.gops.GlobalAttention` (Eq. 2): :class:`FusedLinear`
    projections (the block's layer scale folded into ``proj``), attention through
    :func:`deploy_ops.attention`."""

    def __init__(self, qkv, proj, num_heads, head_dim):
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.num_heads, self.head_dim = num_heads, head_dim

    @classmethod
    def from_training(cls, attn, layer_scale=None):
        return cls(fused_linear(attn.qkv), fused_linear(attn.proj, layer_scale), attn.num_heads,
                   attn.head_dim)

    def attend(self, x, attn_mask=None):
        """x: (B, N, C) -> (B, N, C)."""
        B, N, C = x.shape
        qkv = self.qkv(x)
        qkv = qkv.reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        out = deploy_ops.attention(qkv[0], qkv[1], qkv[2], attn_mask=attn_mask)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))

    def forward(self, x, hw_shape):
        return self.attend(x)


@register_inference_form(WindowAttention)
class DeployedWindowAttention(DeployedGlobalAttention):
    """Inference form of :class:`~.gops.WindowAttention`: windows and padding mask as in
    training, attention as :class:`DeployedGlobalAttention`."""

    def __init__(self, qkv, proj, num_heads, head_dim, window_size):
        super().__init__(qkv, proj, num_heads, head_dim)
        self.window_size = window_size

    @classmethod
    def from_training(cls, attn, layer_scale=None):
        return cls(fused_linear(attn.qkv), fused_linear(attn.proj, layer_scale), attn.num_heads,
                   attn.head_dim, attn.window_size)

    forward = WindowAttention.forward  # the same partition, mask and reverse as in training


@register_inference_form(WindowTokenMLP)
class DeployedTokenMLP(nn.Module):
    """Inference form of :class:`~.gops.WindowTokenMLP` (Eq. 3), GELU fused into fc1. The
    block's layer scale acts on channels after the token mixing, so it cannot fold into these
    token-mixing layers; it is applied here."""

    def __init__(self, fc1, fc2, window_size, layer_scale=None):
        super().__init__()
        self.fc1, self.fc2 = fc1, fc2
        self.window_size = window_size
        self.layer_scale = None if layer_scale is None else nn.Parameter(layer_scale.detach())

    @classmethod
    def from_training(cls, mlp, layer_scale=None):
        mixer = _deployed_mlp(mlp)
        return cls(mixer.fc1, mixer.fc2, mlp.window_size, layer_scale)

    def reset_parameters(self):
        if self.layer_scale is not None:
            nn.init.ones_(self.layer_scale)

    def forward(self, x, hw_shape):
        windows, padded, _ = window_partition(x, hw_shape, self.window_size)
        mixed = self.fc2(self.fc1(windows.transpose(1, 2))).transpose(1, 2)
        out = window_reverse(mixed, hw_shape, padded, self.window_size)
        return out if self.layer_scale is None else self.layer_scale * out


@register_inference_form(TokenGOP)
class DeployedTokenGOP(nn.Module):
    """Inference form of :class:`~.gops.TokenGOP` (Eq. 2-4): CPE, ``t + Mix(LN(t))``,
    ``t + FFN(LN(t))`` with the layer scales inside the deployed mixer and FFN."""

    def __init__(self, in_proj, pos_embed, norm1, mixer, norm2, ffn):
        super().__init__()
        self.in_proj = in_proj
        self.pos_embed = pos_embed
        self.norm1, self.mixer = norm1, mixer
        self.norm2, self.ffn = norm2, ffn

    @classmethod
    def from_training(cls, block):
        in_proj = None if isinstance(block.in_proj, nn.Identity) else block.in_proj
        mixer = inference_form_of(block.mixer)(block.mixer, layer_scale=block.gamma1)
        ffn = inference_form_of(block.ffn)(block.ffn, layer_scale=block.gamma2)
        return cls(in_proj, block.pos_embed, block.norm1, mixer, block.norm2, ffn)

    def forward(self, x):
        if self.in_proj is not None:
            x = self.in_proj(x)
        x = x + self.pos_embed(x)
        hw_shape = x.shape[2:]
        t = map_to_tokens(x)
        t = t + self.mixer(self.norm1(t), hw_shape)
        t = t + self.ffn(self.norm2(t))
        return tokens_to_map(t, hw_shape)


# ------------------------------------------------------------------------------ DSMs
@register_inference_form(LocalDSM)
class DeployedLocalDSM(nn.Module):
    """Inference form of :class:`~.dsms.LocalDSM` (Fig. 3a), BN folded into the depth-wise
    conv."""

    def __init__(self, local, shortcut):
        super().__init__()
        self.local, self.shortcut = local, shortcut

    @classmethod
    def from_training(cls, dsm):
        return cls(_deployed_branch(dsm.local), dsm.shortcut)

    def forward(self, x):
        return self.local(x) + self.shortcut(x)


class DeployedAttentionDSM(nn.Module):
    """Inference form of :class:`~.dsms.AttentionDSM` (Fig. 3b, 3c): the query maker's BN
    folded, :class:`FusedLinear` projections, attention through :func:`deploy_ops.attention`.
    Subclasses make the queries exactly as their training class does."""

    def __init__(self, query, q_norm, kv_norm, kv, proj, shortcut, num_heads, head_dim,
                 stride):
        super().__init__()
        self.query, self.q_norm, self.kv_norm = query, q_norm, kv_norm
        self.kv, self.proj, self.shortcut = kv, proj, shortcut
        self.num_heads, self.head_dim, self.stride = num_heads, head_dim, stride
        self.out_channels = proj.out_features

    @classmethod
    def from_training(cls, dsm):
        return cls(_deployed_branch(dsm.query), dsm.q_norm, dsm.kv_norm, fused_linear(dsm.kv),
                   fused_linear(dsm.proj), dsm.shortcut, dsm.num_heads, dsm.head_dim,
                   dsm.stride)

    def make_queries(self, x):
        raise NotImplementedError

    def forward(self, x):
        B = x.shape[0]
        q, q_shape = self.make_queries(x)
        q = self.q_norm(q)
        kv = self.kv(self.kv_norm(map_to_tokens(x)))
        kv = kv.reshape(B, -1, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = q.reshape(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
        out = deploy_ops.attention(q, kv[0], kv[1])
        out = self.proj(out.transpose(1, 2).reshape(B, -1, self.out_channels))
        return tokens_to_map(out, q_shape) + self.shortcut(x)


@register_inference_form(LocalGlobalDSM)
class DeployedLocalGlobalDSM(DeployedAttentionDSM):
    """Inference form of :class:`~.dsms.LocalGlobalDSM` (Fig. 3b)."""
    make_queries = LocalGlobalDSM.make_queries


@register_inference_form(GlobalDSM)
class DeployedGlobalDSM(DeployedAttentionDSM):
    """Inference form of :class:`~.dsms.GlobalDSM` (Fig. 3c)."""
    make_queries = GlobalDSM.make_queries
