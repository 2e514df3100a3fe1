"""Quantisation-aware SpikeTrack: module swaps that make the float model follow the integer semantics.

:func:`quantize_model` deep-copies a float :class:`~spiketrack.model.spiketrack.SpikeTrack` and
replaces its building blocks (``model/layers.py``) by quantised twins:

==================  ==========================================================================
float module        quantised twin
==================  ==========================================================================
``ConvBN``          :class:`QuantConvBN`: BN folded, Brevitas ``QuantConv2d`` with int8 (or int4)
                    per-output-channel power-of-two weights (``Int8WeightPerChannelFixedPoint``),
                    int32 bias at the accumulator exponent (``Int32Bias``), an exact spike input
                    quantiser (levels k/D, scale 1/D), then :class:`FixedPoint` to the stream
                    format (§IS-4, §IS-5). The stem reads raw uint8 pixels instead (§IS-11).
``NILIF``           :class:`QuantNILIF`: decay on a shift-add grid with flooring shifts, membrane
                    saturation (§IS-7).
``Residual``        :class:`QuantResidual`: saturating add (§IS-6).
``PosEmbed``        :class:`QuantPosEmbed`: embeddings rounded to the stream grid, saturating add.
``AvgPool``         :class:`QuantAvgPool`: window mean rounded half-up to the grid (§IS-10).
``Retrieve``        :class:`QuantRetrieve`: ``Q·M·2**-σ`` rounded to the stream grid (§IS-8).
==================  ==========================================================================

``MemoryBuild``, nearest ``Upsample`` and ``MeanFusion`` are exact already. The paper's softmax
gate and bilinear upsampling have no integer form and are refused.

Every real-valued tensor (residual stream, membranes, requantised accumulators) uses one fixed-point
format ``(frac, bits)`` (default ``f = 8``, 16 bits). Run in float64, the quantised model's values are
exactly the golden model's integers times ``2**-f``.
"""

from __future__ import annotations

import copy
import math
import warnings

import torch
from torch import nn

from spiketrack.model.layers import AvgPool, ConvBN, PosEmbed, Residual, Retrieve, Upsample, _per_frame
from spiketrack.model.neuron import NILIF, ReLUNeuron
from spiketrack.quant.fake_quant import FixedPoint, floor_ste, nearest_shift_add, round_half_up_ste
from spiketrack.quant.golden.neuron import Decay

warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")

from brevitas.core.zero_point import ZeroZeroPoint  # noqa: E402
from brevitas.inject.enum import RestrictValueType, ScalingImplType  # noqa: E402
from brevitas.nn import QuantConv2d  # noqa: E402
from brevitas.quant.base import UintQuant  # noqa: E402
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint  # noqa: E402
from brevitas.quant.scaled_int import Int32Bias  # noqa: E402
from brevitas.quant.solver.act import ActQuantSolver  # noqa: E402

__all__ = ["QuantFormat", "quantize_model", "QuantConvBN", "QuantNILIF", "QuantResidual", "QuantPosEmbed",
           "QuantAvgPool", "QuantRetrieve", "UnsupportedLayerError", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class UnsupportedLayerError(ValueError):
    """The float model holds a layer the integer network cannot express."""


class SpikeInputQuant(UintQuant, ActQuantSolver):
    """Exact quantiser of normalised spikes ``k / 4``: 3-bit unsigned, constant scale 1/4."""

    bit_width = 3
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_init = 7 / 4
    zero_point_impl = ZeroZeroPoint


class PixelInputQuant(UintQuant, ActQuantSolver):
    """Exact quantiser of raw pixels 0..255: 8-bit unsigned, constant scale 1."""

    bit_width = 8
    scaling_impl_type = ScalingImplType.CONST
    restrict_scaling_type = RestrictValueType.FP
    scaling_init = 255.0
    zero_point_impl = ZeroZeroPoint


class Int4WeightPerChannelFixedPoint(Int8WeightPerChannelFixedPoint):
    """4-bit narrow per-channel power-of-two weights."""

    bit_width = 4


class QuantFormat:
    """The stream/membrane fixed-point format ``(frac, bits)`` and the weight width."""

    def __init__(self, frac: int = 8, bits: int = 16, weight_bits: int = 8, levels: int = 4):
        if weight_bits not in (4, 8):
            raise ValueError(f"weight bits must be 8 or 4, got {weight_bits}")
        if frac < 2:
            raise ValueError(f"stream exponent must be >= 2 to hold spikes k/4, got {frac}")
        self.frac, self.bits, self.weight_bits, self.levels = frac, bits, weight_bits, levels

    def fixed_point(self) -> FixedPoint:
        return FixedPoint(self.bits, self.frac, self.frac)

    def saturate(self, x: torch.Tensor) -> torch.Tensor:
        lim = 2.0 ** (self.bits - 1)
        return torch.clamp(x, -lim / 2 ** self.frac, (lim - 1) / 2 ** self.frac)


class QuantConvBN(nn.Module):
    """Folded conv + BN as a Brevitas ``QuantConv2d``, followed by requantisation to the stream format.

    Parameters
    ----------
    convbn : the float module (in eval mode; its BN running statistics are folded).
    fmt : the stream format.
    pixels : this is the stem: the input is ImageNet-normalised RGB; the layer converts it back to
        uint8 pixels and folds the normalisation into weights and bias (§IS-11).
    """

    def __init__(self, convbn: ConvBN | nn.Conv2d, fmt: QuantFormat, pixels: bool = False):
        super().__init__()
        folded = convbn.fold() if isinstance(convbn, ConvBN) else convbn
        self.pixels = pixels
        weight = folded.weight.detach().clone()
        bias = folded.bias.detach().clone() if folded.bias is not None else torch.zeros(folded.out_channels)
        if pixels:  # (p/255 - mean)/std = p * a_c + b_c
            a = torch.tensor([1 / (255 * s) for s in IMAGENET_STD], dtype=weight.dtype)
            b = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], dtype=weight.dtype)
            bias = bias + (weight * b.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
            weight = weight * a.view(1, -1, 1, 1)
        wq = Int8WeightPerChannelFixedPoint if fmt.weight_bits == 8 else Int4WeightPerChannelFixedPoint
        c = folded
        self.conv = QuantConv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, groups=c.groups,
                                bias=True, weight_quant=wq, bias_quant=Int32Bias,
                                input_quant=PixelInputQuant if pixels else SpikeInputQuant,
                                return_quant_tensor=False)
        with torch.no_grad():
            self.conv.weight.copy_(weight)
            self.conv.bias.copy_(bias if bias is not None else torch.zeros(c.out_channels))
        self.out = fmt.fixed_point()

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the ImageNet normalisation: normalised RGB -> the uint8 pixel values it came from."""
        shape = (1,) * (x.dim() - 3) + (3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype, device=x.device).view(shape)
        return torch.clamp(torch.floor((x * std + mean) * 255 + 0.5), 0, 255).detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [T,B,Cin,H,W] (or [N,Cin,H,W]) -> same rank
        if self.pixels:
            x = self.to_pixels(x)
        return self.out(_per_frame(self.conv, x) if x.dim() == 5 else self.conv(x))

    # --- integer view (used by the lowering) -------------------------------------------------
    @torch.no_grad()
    def integer_params(self) -> dict:
        """Integer weights, per-channel weight exponents ``e_c`` and integer bias (§IS-3)."""
        qw = self.conv.quant_weight()
        x = torch.zeros(1, self.conv.in_channels, 1, 1, dtype=self.conv.weight.dtype)
        qi = self.conv.input_quant(x)
        qb = self.conv.bias_quant(self.conv.bias, qi, qw)
        exps = [-math.log2(float(s)) for s in qw.scale.flatten()]
        if any(e != int(e) for e in exps):
            raise AssertionError("weight scales are not powers of two")
        return {"weight": qw.int().to(torch.int64), "bias": qb.int().to(torch.int64), "exp": [int(e) for e in exps]}


class QuantNILIF(NILIF):
    """NI-LIF on the fixed-point grid with a shift-add decay (§IS-7).

    The decay is the shift-add constant nearest to ``sigmoid(theta_t)``
    (:func:`~spiketrack.quant.fake_quant.nearest_shift_add`); forward uses the constant with each
    term floored separately, backward passes through ``beta_t * h`` so ``theta_t`` keeps learning.
    """

    def __init__(self, src: NILIF, fmt: QuantFormat):
        super().__init__(src.levels, src.rounding)
        self.decay_logit = src.decay_logit
        self.fmt = fmt
        self._constants: dict[int, Decay] = {}
        for t in range(1, self.decay_logit.numel() + 1):
            self.shift_add(t)

    def shift_add(self, t: int) -> Decay:
        """The decay constant of step ``t`` (recomputed from ``theta_t`` eagerly, cached for export)."""
        if not torch.compiler.is_compiling():
            self._constants[t] = nearest_shift_add(float(self.beta(t).detach()))
        return self._constants[t]

    def decay(self, h: torch.Tensor, t: int) -> torch.Tensor:
        scale = 2.0 ** self.fmt.frac
        hq = h * scale
        exact = sum(sign * floor_ste(hq / 2 ** shift) for sign, shift in self.shift_add(t).terms) / scale
        smooth = self.beta(t) * h
        return exact + (smooth - smooth.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        if T == 1:
            return self.quantize(x)
        out, h = [], None
        for t in range(T):
            u = x[t] if t == 0 else self.fmt.saturate(self.decay(h, t) + x[t])
            s = self.quantize(u)
            h = u - s.detach()
            out.append(s)
        return torch.stack(out)


class QuantResidual(Residual):
    """Saturating residual add on the stream format (§IS-6)."""

    def __init__(self, fmt: QuantFormat):
        super().__init__()
        self.fmt = fmt

    def forward(self, x, branch):
        return self.fmt.saturate(x + branch)


class QuantPosEmbed(nn.Module):
    """Positional embeddings rounded to the stream grid (STE), added with saturation."""

    def __init__(self, src: PosEmbed, fmt: QuantFormat):
        super().__init__()
        self.src, self.fmt = src, fmt

    def grid(self, p: torch.Tensor) -> torch.Tensor:
        s = 2.0 ** self.fmt.frac
        return self.fmt.saturate(round_half_up_ste(p * s) / s)

    def table(self, branch: str, T: int) -> torch.Tensor:
        """The embedding added on ``branch``: [T or 1, 1, C, H, W] (search: one slot)."""
        if branch == "search":
            return self.grid(self.src.pos_embed_search).unsqueeze(0)
        slots = self.src.pos_embed_template.shape[0]
        idx = torch.clamp(torch.arange(T), max=slots - 1)
        return self.grid(self.src.pos_embed_template)[idx].unsqueeze(1)

    def forward(self, x, branch):
        return self.fmt.saturate(x + self.table(branch, x.shape[0]).to(x.dtype))


class QuantAvgPool(AvgPool):
    """Power-of-two average pooling rounded half-up to the stream grid (§IS-10)."""

    def __init__(self, src: AvgPool, fmt: QuantFormat):
        super().__init__(src.p)
        if src.p & (src.p - 1):
            raise UnsupportedLayerError(f"average pooling {src.p}x{src.p} is not a power of two")
        self.out = fmt.fixed_point()

    def forward(self, x):
        return self.out(super().forward(x))


class QuantRetrieve(Retrieve):
    """``Q · M · 2**-σ`` then requantisation to the stream format (§IS-8)."""

    def __init__(self, src: Retrieve, fmt: QuantFormat):
        super().__init__(src.heads, src.scale)
        sigma = -math.log2(src.scale)
        if sigma != int(sigma):
            raise UnsupportedLayerError(f"attention scale {src.scale} is not a power of two (d_h must be 4, 16 or 64)")
        self.sigma = int(sigma)
        self.out = fmt.fixed_point()

    def forward(self, q, m):
        return self.out(super().forward(q, m))


def quantize_model(model: nn.Module, fmt: QuantFormat | None = None) -> nn.Module:
    """A quantisation-aware copy of a float SpikeTrack model (the original is untouched).

    Raises
    ------
    UnsupportedLayerError
        For an ANN twin, the paper's softmax gate, bilinear upsampling or a non-power-of-two pool.
    """
    fmt = fmt or QuantFormat()
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "ann", False):
        raise UnsupportedLayerError("an ANN twin has no spiking neurons to quantise; quantise the spiking variant")
    q = copy.deepcopy(model).eval()
    stem = _find_stem(q)
    _swap(q, fmt, stem)
    q.quant_format = fmt
    return q


def _find_stem(model: nn.Module) -> ConvBN:
    """The first ConvBN in registration order is the stem on pixels."""
    for m in model.modules():
        if isinstance(m, ConvBN):
            return m
    raise UnsupportedLayerError("model has no ConvBN stem: quantize_model needs a SpikeTrack model built from model/layers.py")


def _swap(module: nn.Module, fmt: QuantFormat, stem: ConvBN) -> None:
    from spiketrack.model.mrm import GateFusion

    for name, child in list(module.named_children()):
        new = None
        if isinstance(child, (ConvBN, nn.Conv2d)):
            new = QuantConvBN(child, fmt, pixels=child is stem)
        elif isinstance(child, ReLUNeuron):
            raise UnsupportedLayerError(f"{name}: ReLU neurons (ANN twin) have no integer form")
        elif isinstance(child, NILIF):
            new = QuantNILIF(child, fmt)
        elif isinstance(child, Residual):
            new = QuantResidual(fmt)
        elif isinstance(child, PosEmbed):
            new = QuantPosEmbed(child, fmt)
        elif isinstance(child, AvgPool):
            new = QuantAvgPool(child, fmt)
        elif isinstance(child, Retrieve):
            new = QuantRetrieve(child, fmt)
        elif isinstance(child, Upsample) and child.mode != "nearest":
            raise UnsupportedLayerError(f"{name}: {child.mode} upsampling has no integer form; use nearest")
        elif isinstance(child, GateFusion):
            raise UnsupportedLayerError(f"{name}: the softmax temporal gate has no integer form; use mean fusion")
        elif isinstance(child, (nn.Conv1d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
            raise UnsupportedLayerError(f"{name}: bare {type(child).__name__} outside a ConvBN is not supported")
        if new is not None:
            setattr(module, name, new)
        else:
            _swap(child, fmt, stem)
