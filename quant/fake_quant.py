"""Float fake-quantisation that reproduces the integer semantics exactly (docs/integer_semantics.md).

The QAT model computes in floating point, but every value it produces lies on the fixed-point grid
that the integer network uses, and every rounding is the one the semantics doc prescribes
(round-half-up, flooring shifts, saturation). Run in float64 the fake-quant model is then equal,
element for element, to the golden integer executor. Gradients pass straight through every
rounding (and are cut outside saturation ranges).
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from spiketrack.quant.golden.neuron import Decay

__all__ = ["round_half_up_ste", "floor_ste", "FixedPoint", "nearest_shift_add", "shift_add_candidates",
           "SCALE_FRAC", "scale_constant"]


class _RoundHalfUp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x + 0.5)

    @staticmethod
    def backward(ctx, g):
        return g


class _Floor(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, g):
        return g


def round_half_up_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x + 1/2)`` forward (§IS-5), identity gradient."""
    return _RoundHalfUp.apply(x)


def floor_ste(x: torch.Tensor) -> torch.Tensor:
    """``floor(x)`` forward (arithmetic right shift of §IS-7), identity gradient."""
    return _Floor.apply(x)


class FixedPoint(nn.Module):
    """Fake-quantise to a signed fixed-point grid ``(f, bits)`` with round-half-up and saturation (§IS-5).

    The exponent ``f`` is an integer buffer. While ``calibrating`` is set the module records the
    largest magnitude it sees; :meth:`freeze` then picks the largest ``f`` (finest grid) whose range
    still holds that magnitude, capped at ``max_frac``.

    Parameters
    ----------
    bits : signed width ``B``.
    frac : initial fractional exponent ``f``.
    max_frac : the largest ``f`` calibration may choose.
    """

    def __init__(self, bits: int = 16, frac: int = 8, max_frac: int = 12):
        super().__init__()
        self.bits = bits
        self.max_frac = max_frac
        self.frac = int(frac)  # a plain int: the format is static (and traceable by torch.export)
        self.register_buffer("observed", torch.tensor(0.0))
        self.calibrating = False
        self.saturations = 0

    @property
    def f(self) -> int:
        return self.frac

    def freeze(self, margin: float = 1.0) -> int:
        """Choose ``f`` from the observed range (times ``margin``); returns it."""
        peak = float(self.observed) * margin
        limit = 2 ** (self.bits - 1) - 1
        f = self.max_frac
        while f > -8 and peak * 2 ** f > limit:
            f -= 1
        self.frac = f
        self.calibrating = False
        return f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.calibrating and not torch.compiler.is_compiling():
            self.observed = torch.maximum(self.observed, x.detach().abs().max().to(self.observed))
        scale = 2.0 ** self.f
        lo, hi = -(2 ** (self.bits - 1)), 2 ** (self.bits - 1) - 1
        q = round_half_up_ste(x * scale)
        if not self.training and not torch.compiler.is_compiling():
            self.saturations += int(((q < lo) | (q > hi)).sum())
        # clamp with a straight-through gradient inside the range only
        q = torch.clamp(q, lo, hi)
        return q / scale

    def extra_repr(self) -> str:
        return f"bits={self.bits}, f={self.f}"


def shift_add_candidates(max_shift: int = 8) -> list[Decay]:
    """Every decay constant with one term ``2**-a`` or two terms ``±2**-a ± 2**-b`` in (0, 1)."""
    out = [Decay(((1, a),)) for a in range(1, max_shift + 1)]
    for a, b in itertools.combinations(range(1, max_shift + 1), 2):
        for sb in (1, -1):
            d = Decay(((1, a), (sb, b)))
            if 0 < d.value < 1:
                out.append(d)
    return out


_CANDIDATES = shift_add_candidates()


def nearest_shift_add(beta: float) -> Decay:
    """The shift-add constant (§IS-7) nearest to ``beta`` (ties: fewer terms first)."""
    if not math.isfinite(beta):
        raise ValueError(f"decay must be finite, got {beta}")
    return min(_CANDIDATES, key=lambda d: (abs(d.value - beta), len(d.terms)))


SCALE_FRAC = 12  #: fractional bits of a non-power-of-two constant scale (§IS-12)


def scale_constant(scale: float, frac: int = SCALE_FRAC) -> tuple[int, int]:
    """A positive constant scale as ``m · 2**-k`` with ``m`` odd (§IS-12).

    A power of two ``2**-σ`` is exact: ``(1, σ)``. Any other scale is rounded half up to ``frac``
    fractional bits, ``m = floor(scale · 2**frac + 1/2)``, then trailing zero bits of ``m`` move into
    ``k``. The integer network multiplies by ``m`` with the shift-adds of its CSD digits
    (:func:`~spiketrack.quant.golden.arith.csd_terms`) and shifts by ``k`` in the requantisation.
    """
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"a constant scale must be positive and finite, got {scale}")
    e = -math.log2(scale)
    if e == int(e):
        return 1, int(e)
    m, k = math.floor(scale * 2 ** frac + 0.5), frac
    if m < 1:
        raise ValueError(f"scale {scale} rounds to zero with {frac} fractional bits")
    while m % 2 == 0:
        m, k = m // 2, k - 1
    return m, k
