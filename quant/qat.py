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
``Retrieve``        :class:`QuantRetrieve`: ``Q·M·2**-σ`` rounded to the stream grid (§IS-8); a
                    non-power-of-two scale becomes ``m·2**-k`` (``m`` applied by shift-adds, §IS-12).
``Upsample``        bilinear: :class:`QuantUpsample`, rounded half-up to the stream grid (§IS-13).
==================  ==========================================================================

``MemoryBuild``, nearest ``Upsample`` and ``MeanFusion`` are exact already. The paper's softmax
gate has no integer form and is refused.

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
from spiketrack.quant.fake_quant import FixedPoint, floor_ste, nearest_shift_add, round_half_up_ste, scale_constant
from spiketrack.quant.golden.neuron import Decay

warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")

from brevitas.core.zero_point import ZeroZeroPoint  # noqa: E402
from brevitas.inject.enum import RestrictValueType, ScalingImplType  # noqa: E402
from brevitas.nn import QuantConv2d  # noqa: E402
from brevitas.quant.base import UintQuant  # noqa: E402
from brevitas.quant.fixed_point import Int8WeightPerChannelFixedPoint  # noqa: E402
from brevitas.quant.scaled_int import Int32Bias  # noqa: E402
from brevitas.quant.solver.act import ActQuantSolver  # noqa: E402

__all__ = ["QuantFormat", "WEIGHT_PLANS", "QAT_KEY", "qat_payload", "freeze_for_qat", "quantized_from_payload", "mixed_weight_bits", "weight_bytes", "quantize_model", "QuantConvBN", "QuantNILIF", "QuantResidual", "QuantPosEmbed",
           "QuantAvgPool", "QuantRetrieve", "QuantUpsample", "UnsupportedLayerError", "IMAGENET_MEAN", "IMAGENET_STD"]

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


WEIGHT_PLANS = ("8", "4", "mixed")
"""Named weight-precision plans: int8 everywhere, int4 everywhere, or :func:`mixed_weight_bits`."""


def mixed_weight_bits(path: str, conv: nn.Conv2d) -> int:
    """The ``mixed`` plan: int4 for dense 1x1 convolutions in the backbone and MRMs, int8 elsewhere.

    Dense 1x1 convolutions (SepConv pointwise, MLP, attention and MRM projections) hold most of
    the weights; the stem, depthwise, k x k and prediction-head convolutions stay int8.

    Parameters
    ----------
    path : the module path of the ``ConvBN`` in the float model (e.g. ``backbone.stages.0.1.sep.pw1``).
    conv : the (folded) convolution.

    Returns
    -------
    int
        4 or 8.
    """
    head = path.startswith(("head.", "decoder."))
    one_by_one = tuple(conv.kernel_size) == (1, 1) and conv.groups == 1
    return 4 if one_by_one and not head else 8


class QuantFormat:
    """The stream/membrane fixed-point format ``(frac, bits)`` and the weight width(s).

    Parameters
    ----------
    frac : fractional bits ``f`` of the stream, membranes and requantised accumulators.
    bits : their signed width ``B``.
    weight_bits : 8 or 4, the weight width of every convolution; or ``"mixed"`` for
        :func:`mixed_weight_bits` (then ``weight_bits`` reads 8, the widest width used).
    levels : spike levels ``D``.
    layer_weight_bits : optional per-layer plan, ``callable(path, conv) -> 4 | 8`` (``path`` is the
        float model's module path of the convolution); overrides ``weight_bits`` per layer.
    """

    def __init__(self, frac: int = 8, bits: int = 16, weight_bits: int | str = 8, levels: int = 4,
                 layer_weight_bits=None):
        if isinstance(weight_bits, str):
            if weight_bits not in WEIGHT_PLANS:
                raise ValueError(f"weight plan must be one of {', '.join(WEIGHT_PLANS)}, got {weight_bits!r}")
            if weight_bits == "mixed":
                if layer_weight_bits is not None:
                    raise ValueError("weight plan 'mixed' and an explicit layer_weight_bits are exclusive")
                layer_weight_bits = mixed_weight_bits
                weight_bits = 8
            weight_bits = int(weight_bits)
        if weight_bits not in (4, 8):
            raise ValueError(f"weight bits must be 8 or 4, got {weight_bits}")
        if frac < 2:
            raise ValueError(f"stream exponent must be >= 2 to hold spikes k/4, got {frac}")
        if layer_weight_bits is not None and not callable(layer_weight_bits):
            raise ValueError("layer_weight_bits must be a callable (path, conv) -> 4 or 8")
        self.frac, self.bits, self.weight_bits, self.levels = frac, bits, weight_bits, levels
        self.layer_weight_bits = layer_weight_bits
        self.plan = "mixed" if layer_weight_bits is mixed_weight_bits else (
            "custom" if layer_weight_bits is not None else str(weight_bits))

    def spec(self) -> dict:
        """The format as a plain dict (stored in QAT checkpoints; :meth:`from_spec` reads it back).

        Raises
        ------
        ValueError
            For a custom per-layer plan, which has no stored form.
        """
        if self.plan == "custom":
            raise ValueError("a custom layer_weight_bits plan cannot be stored; use weight bits 8, 4 or 'mixed'")
        return {"frac": self.frac, "bits": self.bits, "weight_bits": self.plan, "levels": self.levels}

    @classmethod
    def from_spec(cls, spec: dict) -> "QuantFormat":
        """The format stored by :meth:`spec`; ValueError naming a missing or bad field."""
        if not isinstance(spec, dict):
            raise ValueError(f"quantisation format must be a dict, got {type(spec).__name__}")
        missing = [k for k in ("frac", "bits", "weight_bits") if k not in spec]
        if missing:
            raise ValueError(f"quantisation format lacks {', '.join(missing)}")
        return cls(int(spec["frac"]), int(spec["bits"]), str(spec["weight_bits"]), int(spec.get("levels", 4)))

    def weight_bits_for(self, path: str, conv: nn.Conv2d) -> int:
        """The weight width of the convolution at module ``path``."""
        if self.layer_weight_bits is None:
            return self.weight_bits
        b = self.layer_weight_bits(path, conv)
        if b not in (4, 8):
            raise ValueError(f"{path}: weight bits must be 8 or 4, got {b!r}")
        return int(b)

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

    def __init__(self, convbn: ConvBN | nn.Conv2d, fmt: QuantFormat, pixels: bool = False,
                 weight_bits: int | None = None):
        super().__init__()
        folded = convbn.fold() if isinstance(convbn, ConvBN) else convbn
        self.pixels = pixels
        self.weight_bits = int(weight_bits or fmt.weight_bits)
        if self.weight_bits not in (4, 8):
            raise ValueError(f"weight bits must be 8 or 4, got {self.weight_bits}")
        weight = folded.weight.detach().clone()
        bias = folded.bias.detach().clone() if folded.bias is not None else torch.zeros(folded.out_channels)
        if pixels:  # (p/255 - mean)/std = p * a_c + b_c
            a = torch.tensor([1 / (255 * s) for s in IMAGENET_STD], dtype=weight.dtype)
            b = torch.tensor([-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)], dtype=weight.dtype)
            bias = bias + (weight * b.view(1, -1, 1, 1)).sum(dim=(1, 2, 3))
            weight = weight * a.view(1, -1, 1, 1)
        wq = Int8WeightPerChannelFixedPoint if self.weight_bits == 8 else Int4WeightPerChannelFixedPoint
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
    """``Q · M · scale`` then requantisation to the stream format (§IS-8).

    A power-of-two scale ``2**-σ`` is an exponent (``sigma``, ``mult = 1``). Any other scale (the
    paper's ``2·d_h**-0.5`` for ``d_h = 8, 24``) is replaced by the constant ``mult · 2**-mult_frac``
    of :func:`~spiketrack.quant.fake_quant.scale_constant` (§IS-12): ``sigma = 0``, and the integer
    network multiplies by ``mult`` with shift-adds before the requantisation.
    """

    def __init__(self, src: Retrieve, fmt: QuantFormat):
        m, k = scale_constant(src.scale)
        super().__init__(src.heads, m * 2.0 ** -k)
        self.float_scale = src.scale
        self.sigma, self.mult, self.mult_frac = (k, 1, 0) if m == 1 else (0, m, k)
        self.out = fmt.fixed_point()

    def forward(self, q, m):
        return self.out(super().forward(q, m))


class QuantUpsample(Upsample):
    """Bilinear upsampling by a power of two, rounded half-up to the stream grid (§IS-13)."""

    def __init__(self, src: Upsample, fmt: QuantFormat):
        super().__init__(src.p, src.mode)
        if src.mode != "bilinear" or src.p < 2 or src.p & (src.p - 1):
            raise UnsupportedLayerError(f"{src.mode} upsampling by {src.p}: only nearest, or bilinear by a power "
                                        f"of two, has an integer form")
        self.out = fmt.fixed_point()

    def forward(self, x):
        return self.out(super().forward(x))


def quantize_model(model: nn.Module, fmt: QuantFormat | None = None) -> nn.Module:
    """A quantisation-aware copy of a float SpikeTrack model (the original is untouched).

    A model that is already quantisation-aware (it has ``quant_format``, e.g. loaded from a QAT
    checkpoint) is copied as it is; asking for a different ``fmt`` is a ValueError.

    Raises
    ------
    UnsupportedLayerError
        For an ANN twin, the paper's softmax gate (T > 1) or a non-power-of-two pool.
    """
    existing = getattr(model, "quant_format", None)
    if existing is not None:  # already quantisation-aware (e.g. a QAT checkpoint): keep its format
        if fmt is not None and fmt.spec() != existing.spec():
            raise ValueError(f"the model is already quantised with {existing.spec()}; cannot requantise it "
                             f"with {fmt.spec()}")
        return copy.deepcopy(model).eval()
    fmt = fmt or QuantFormat()
    cfg = getattr(model, "cfg", None)
    if cfg is not None and getattr(cfg, "ann", False):
        raise UnsupportedLayerError("an ANN twin has no spiking neurons to quantise; quantise the spiking variant")
    q = copy.deepcopy(model).eval()
    stem = _find_stem(q)
    _swap(q, fmt, stem, "", getattr(cfg, "timesteps", 1))
    q.quant_format = fmt
    return q


QAT_KEY = "quant"  #: the ``extra`` entry that marks a checkpoint as quantisation-aware (its format spec)


def qat_payload(qmodel: nn.Module, step: int, info: dict | None = None) -> dict:
    """A checkpoint dict holding a quantisation-aware model (``extra["quant"]`` = its format spec).

    ``spiketrack.model.checkpoint.model_from_checkpoint`` rebuilds such a checkpoint with
    :func:`quantized_from_payload`, so eval, track, quantize and energy run the QAT model as it is.
    ``info`` (e.g. the float parent checkpoint and the QAT recipe) goes to ``extra["qat"]``.
    """
    from spiketrack.model.checkpoint import make_payload

    return make_payload(qmodel, None, step, {QAT_KEY: qmodel.quant_format.spec(), "qat": dict(info or {})})


def freeze_for_qat(qmodel: nn.Module, spec: str | None) -> list[str]:
    """Freeze parts of a quantisation-aware model for QAT; returns the frozen parameter names.

    ``spec`` is a comma list of ``stem`` (the pixel convolution, whose weights are folded with the
    ImageNet normalisation and so ~30x smaller than any other: AdamW's scale-blind step moves them
    relatively furthest) and module-path prefixes of the model (e.g. ``backbone.stages.0``, a whole
    path component each). Frozen parameters get ``requires_grad = False``, so the training loop's
    optimiser leaves them out. ``None``, ``""`` or ``"none"`` freezes nothing.

    Raises
    ------
    ValueError
        For a part that names no parameter of the model.
    """
    parts = [p.strip() for p in (spec or "").split(",") if p.strip() and p.strip() != "none"]
    if not parts:
        return []
    stems = [n for n, m in qmodel.named_modules() if isinstance(m, QuantConvBN) and m.pixels]
    names = []
    for part in parts:
        prefixes = stems if part == "stem" else [part]
        hit = [n for n, _ in qmodel.named_parameters()
               if any(n.startswith(pre + ".") for pre in prefixes)]
        if not hit:
            raise ValueError(f"--qat-freeze {part!r} names no parameter of the model"
                             + ("" if part == "stem" else " (use 'stem' or a module path such as backbone.stages.0)"))
        names += [n for n in hit if n not in names]
    params = dict(qmodel.named_parameters())
    for n in names:
        params[n].requires_grad_(False)
    return names


def quantized_from_payload(ck: dict, build) -> nn.Module:
    """The quantisation-aware model of a :func:`qat_payload` checkpoint, without its weights loaded.

    ``build(variant)`` makes the float model; the structure is :func:`quantize_model` of it with the
    stored format. The caller loads ``ck["model"]`` into it.
    """
    fmt = QuantFormat.from_spec(ck["extra"][QAT_KEY])
    return quantize_model(build(ck["variant"]).eval(), fmt)


def weight_bytes(qmodel: nn.Module) -> dict:
    """Weight storage of a quantised model: bytes at each layer's own width, and per width.

    Shared modules count once (weight sharing between the branches). Biases are not included.

    Returns
    -------
    dict
        ``{"bytes": total, "by_bits": {"8": bytes, "4": bytes}, "weights": count}``.
    """
    by_bits: dict[str, float] = {}
    count = 0
    for m in {id(m): m for m in qmodel.modules() if isinstance(m, QuantConvBN)}.values():
        n = m.conv.weight.numel()
        count += n
        by_bits[str(m.weight_bits)] = by_bits.get(str(m.weight_bits), 0) + n * m.weight_bits / 8
    return {"bytes": int(math.ceil(sum(by_bits.values()))), "by_bits": {k: int(math.ceil(v)) for k, v in by_bits.items()},
            "weights": count}


def _find_stem(model: nn.Module) -> ConvBN:
    """The first ConvBN in registration order is the stem on pixels."""
    for m in model.modules():
        if isinstance(m, ConvBN):
            return m
    raise UnsupportedLayerError("model has no ConvBN stem: quantize_model needs a SpikeTrack model built from model/layers.py")


def _swap(module: nn.Module, fmt: QuantFormat, stem: ConvBN, prefix: str, timesteps: int = 1) -> None:
    from spiketrack.model.mrm import GateFusion

    for name, child in list(module.named_children()):
        new = None
        path = f"{prefix}{name}"
        if isinstance(child, (ConvBN, nn.Conv2d)):
            conv = child.conv if isinstance(child, ConvBN) else child
            new = QuantConvBN(child, fmt, pixels=child is stem, weight_bits=fmt.weight_bits_for(path, conv))
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
            new = QuantUpsample(child, fmt)
        elif isinstance(child, GateFusion):
            if timesteps > 1:
                raise UnsupportedLayerError(f"{name}: the softmax temporal gate has no integer form; use mean fusion")
            continue  # T = 1: the gate is never run (one template step, nothing to fuse); left as it is
        elif isinstance(child, (nn.Conv1d, nn.Linear, nn.BatchNorm2d, nn.BatchNorm1d)):
            raise UnsupportedLayerError(f"{name}: bare {type(child).__name__} outside a ConvBN is not supported")
        if new is not None:
            setattr(module, name, new)
        else:
            _swap(child, fmt, stem, path + ".", timesteps)
