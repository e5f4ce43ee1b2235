"""Inference kernels behind the deployed modules of :mod:`~uninet_mm.models.deploy`.

Each function computes exactly what the plain layers compute (fp32, within rounding) and picks
the fastest kernel for the tensor it gets:

- On CPU, fp32 (or bf16 under bf16 autocast), without autograd, the dense layers go through
  oneDNN, with GELU fused into the convolution or linear layer
  (``torch.ops.mkldnn._convolution_pointwise`` / ``_linear_pointwise``, the kernels that
  inductor's CPU backend emits). PyTorch's own
  ``F.linear`` and ``matmul`` call MKL's SGEMM, which runs at about half of oneDNN's speed on
  AVX-512 AMD CPUs (measured 174 vs 365 GFLOP/s, 2 threads); the attention GEMMs are the
  largest part of UniNet at detection resolution, so attention is computed query-chunk by
  query-chunk with oneDNN matmuls and an exact softmax (no approximation).
- Anywhere else (CUDA, fp16 autocast, gradients, ``torch.compile``, ONNX export / tracing),
  the standard PyTorch ops: cuDNN, SDPA, inductor's own fusions, exportable graphs.
"""
import torch
import torch.nn.functional as F

_MKLDNN = getattr(torch.ops, 'mkldnn', None)
HAS_ONEDNN = bool(torch.backends.mkldnn.is_available() and _MKLDNN is not None
                  and hasattr(_MKLDNN, '_linear_pointwise')
                  and hasattr(_MKLDNN, '_convolution_pointwise'))
HAS_ONEDNN_BF16 = bool(HAS_ONEDNN and hasattr(_MKLDNN, '_is_mkldnn_bf16_supported')
                       and _MKLDNN._is_mkldnn_bf16_supported())

#: queries per oneDNN attention chunk: the (chunk x N) score block stays in the L2/L3 cache
ATTENTION_CHUNK = 512
#: below this many query-key pairs (and above 64 sample-heads) SDPA is as fast: use it
ONEDNN_ATTENTION_MIN = 256 * 256


def kernel_dtype(x):
    """The dtype in which the oneDNN kernels compute ``x``: float32 for fp32 CPU inference,
    bfloat16 under CPU bf16 autocast; None where they do not apply (gradients, other devices,
    other dtypes, tracing: ONNX export and TorchScript record the standard ops)."""
    if not (HAS_ONEDNN and x.device.type == 'cpu' and not torch.is_grad_enabled()
            and not torch.jit.is_tracing()):
        return None
    if torch.is_autocast_enabled('cpu'):
        bf16 = torch.get_autocast_dtype('cpu') == torch.bfloat16 and HAS_ONEDNN_BF16
        return torch.bfloat16 if bf16 and x.is_floating_point() else None
    return torch.float32 if x.dtype == torch.float32 else None


def _dense_dtype(x):
    """:func:`kernel_dtype` for the convolutions and linear layers, which are left to inductor
    under ``torch.compile`` (the attention stays on oneDNN as an opaque custom op)."""
    return None if torch.compiler.is_compiling() else kernel_dtype(x)


def onednn_applies(x):
    """True when the convolution and linear kernels take ``x`` (see :func:`kernel_dtype`)."""
    return _dense_dtype(x) is not None


def _cast(dtype, *tensors):
    return [None if t is None else t.to(dtype) for t in tensors]


def conv2d(x, conv, gelu=False, weight=None):
    """``conv(x)`` (an ``nn.Conv2d``, zero padding), optionally with ``weight`` in place of
    ``conv.weight``, followed by exact (erf) GELU when ``gelu``: one oneDNN kernel on CPU."""
    weight = conv.weight if weight is None else weight
    dtype = _dense_dtype(x)
    if dtype is not None:
        x, weight, bias = _cast(dtype, x, weight, conv.bias)
        return _MKLDNN._convolution_pointwise(
            x, weight, bias, list(conv.padding), list(conv.stride), list(conv.dilation),
            conv.groups, 'gelu' if gelu else 'none', [], 'none' if gelu else '')
    out = F.conv2d(x, weight, conv.bias, conv.stride, conv.padding, conv.dilation, conv.groups)
    return F.gelu(out) if gelu else out


def linear(x, layer, gelu=False):
    """``layer(x)`` (an ``nn.Linear``), with exact GELU fused when ``gelu``."""
    dtype = _dense_dtype(x)
    if dtype is not None:
        x, weight, bias = _cast(dtype, x, layer.weight, layer.bias)
        return _MKLDNN._linear_pointwise(x, weight, bias, 'gelu' if gelu else 'none', [],
                                         'none' if gelu else '')
    out = F.linear(x, layer.weight, layer.bias)
    return F.gelu(out) if gelu else out


def gated_conv1x1(x, gate, conv):
    """``conv(x * gate)`` for a 1x1 ``conv`` and a per-sample, per-channel ``gate`` (B, C, 1, 1)
    (squeeze-excitation): the gate scales the conv's input-channel weights instead of the large
    feature map, one sample at a time."""
    outs = [conv2d(x[i:i + 1], conv, weight=conv.weight * gate[i].reshape(1, -1, 1, 1))
            for i in range(x.shape[0])]
    return outs[0] if len(outs) == 1 else torch.cat(outs)


def attention(q, k, v, attn_mask=None):
    """``softmax(q k^T / sqrt(d)) v`` for (B, heads, N, d) tensors (Eq. 2): the oneDNN kernel
    :func:`onednn_attention` for unmasked CPU inference (in :func:`kernel_dtype`, also inside
    ``torch.compile``) with large token counts, ``F.scaled_dot_product_attention``
    elsewhere (and for an ``attn_mask``)."""
    B, H, Nq, _ = q.shape
    dtype = kernel_dtype(q)
    if (attn_mask is not None or dtype is None or Nq * k.shape[-2] < ONEDNN_ATTENTION_MIN
            or B * H > 64):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return onednn_attention(*_cast(dtype, q, k, v))


@torch.library.custom_op('uninet_mm::onednn_attention', mutates_args=())
def onednn_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Per sample and head, chunks of :data:`ATTENTION_CHUNK` queries: two oneDNN matmuls and
    an exact softmax each. A custom op, so that ``torch.compile`` keeps it as one kernel."""
    B, H, Nq, d = q.shape
    out = q.new_empty(B, H, Nq, v.shape[-1])
    q = q * d ** -0.5
    for b in range(B):
        for h in range(H):
            qh, kh = q[b, h].contiguous(), k[b, h].contiguous()
            vt = v[b, h].t().contiguous()
            for s in range(0, Nq, ATTENTION_CHUNK):
                scores = _MKLDNN._linear_pointwise(qh[s:s + ATTENTION_CHUNK], kh, None,
                                                   'none', [], '')
                out[b, h, s:s + ATTENTION_CHUNK] = _MKLDNN._linear_pointwise(
                    scores.softmax(-1), vt, None, 'none', [], '')
    return out


@onednn_attention.register_fake
def _(q, k, v):
    return q.new_empty(*q.shape[:-1], v.shape[-1])
