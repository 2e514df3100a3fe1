"""Golden NI-LIF neuron and temporal mean fusion (docs/integer_semantics.md §IS-7, §IS-10).

The hardware neuron unit (``spiketrack.hw.neuron_unit``) is verified against these functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spiketrack.quant.golden.arith import check_int, requantize, saturate

__all__ = ["D", "LEVEL_BITS", "ROUNDINGS", "Decay", "fire", "decay", "ni_lif", "neuron_layer", "mean_fusion"]

D = 4          #: spike levels (§IS-1)
LEVEL_BITS = 2  #: d = log2(D)


@dataclass(frozen=True)
class Decay:
    """A shift-add decay constant ``beta = sum(sign * 2**-shift for sign, shift in terms)`` (§IS-7).

    At most two terms; every shift is at least 1 (so ``|beta| < 1`` per term).
    """

    terms: tuple[tuple[int, int], ...] = ((1, 2),)  # default beta = 0.25 = 2**-2

    def __post_init__(self):
        if not 1 <= len(self.terms) <= 2:
            raise ValueError(f"decay needs 1 or 2 shift-add terms, got {len(self.terms)}")
        for sign, shift in self.terms:
            if sign not in (1, -1) or int(shift) < 1:
                raise ValueError(f"bad decay term (sign={sign}, shift={shift}): sign must be +-1, shift >= 1")

    @property
    def value(self) -> float:
        """The constant as a float (documentation and QAT only; never used by the golden model)."""
        return sum(s * 2.0 ** -a for s, a in self.terms)


ROUNDINGS = ("half_up", "half_even")  #: fire rounding modes (§IS-7)


def fire(u: torch.Tensor, f_m: int, rounding: str = "half_up") -> torch.Tensor:
    """Spike level of membrane ``u`` (exponent ``f_m``), §IS-7.

    ``half_up``: ``clamp((u + 2**(f_m-1)) >> f_m, 0, D)``. ``half_even``: the same except that an
    exact tie (``u mod 2**f_m == 2**(f_m-1)``) rounds to the even level:
    ``r = (u + 2**(f_m-1)) >> f_m; r -= (r & 1) & [u mod 2**f_m == 2**(f_m-1)]``.
    """
    u = check_int(u, "u")
    r = (u + (1 << (f_m - 1))) >> f_m
    if rounding == "half_even":
        tie = (u & ((1 << f_m) - 1)) == (1 << (f_m - 1))
        r = r - (r & 1) * tie.to(r.dtype)
    elif rounding != "half_up":
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
    return r.clamp(0, D)


def decay(h: torch.Tensor, beta: Decay) -> torch.Tensor:
    """``sum(sign * (h >> shift))``: each term floored separately by the arithmetic shift."""
    h = check_int(h, "h")
    out = torch.zeros_like(h)
    for sign, shift in beta.terms:
        out = out + sign * (h >> shift)
    return out


def ni_lif(x: torch.Tensor, f_m: int, bits: int, betas: tuple[Decay, ...] = (),
           rounding: str = "half_up") -> tuple[torch.Tensor, torch.Tensor, int]:
    """Run the NI-LIF neuron over time-first input ``x`` [T, ...] at exponent ``f_m`` (§IS-7).

    Parameters
    ----------
    x : int tensor [T, ...], already requantised to ``(f_m, bits)``.
    f_m : membrane fractional bits, ``f_m >= LEVEL_BITS``.
    bits : membrane width ``B_m``.
    betas : one :class:`Decay` per step ``t = 1..T-1``.
    rounding : fire rounding, ``"half_up"`` or ``"half_even"`` (:func:`fire`).

    Returns
    -------
    (k, u, n_sat) : spike levels [T, ...] (0..D), membranes [T, ...], saturation count.
    """
    x = check_int(x, "x")
    if f_m < LEVEL_BITS:
        raise ValueError(f"membrane exponent f_m={f_m} must be >= {LEVEL_BITS} to represent S = k/D")
    T = x.shape[0]
    if len(betas) < T - 1:
        raise ValueError(f"{T} timesteps need {T - 1} decay constants, got {len(betas)}")
    ks, us, n_sat = [], [], 0
    u = x[0]
    for t in range(T):
        if t > 0:
            h = u - (ks[-1] << (f_m - LEVEL_BITS))
            u, n = saturate(decay(h, betas[t - 1]) + x[t], bits)
            n_sat += n
        ks.append(fire(u, f_m, rounding))
        us.append(u)
    return torch.stack(ks), torch.stack(us), n_sat


def neuron_layer(acc: torch.Tensor, shift, f_m: int, bits: int, residual: torch.Tensor | None = None,
                 betas: tuple[Decay, ...] = (), rounding: str = "half_up") -> tuple[torch.Tensor, torch.Tensor, int]:
    """What the hardware neuron unit computes from a synaptic core's accumulators.

    ``acc`` [T, C, ...] already includes the bias (§IS-4). Per timestep: requantise by ``shift``
    (``f_acc - f_m``, int or per-channel tensor broadcastable to ``acc[t]``) to ``(f_m, bits)``,
    add ``residual`` [T, C, ...] with saturation (§IS-6), then run :func:`ni_lif` (``rounding``: its fire rounding).
    Returns ``(k, u, n_saturated)``.
    """
    acc = check_int(acc, "acc")
    x, n_sat = requantize(acc, shift, bits)
    if residual is not None:
        x, n = saturate(x + check_int(residual, "residual"), bits)
        n_sat += n
    k, u, n = ni_lif(x, f_m, bits, betas, rounding)
    return k, u, n_sat + n


def mean_fusion(k: torch.Tensor) -> torch.Tensor:
    """Fuse spike levels over time (dim 0) by compare only (§IS-10)."""
    k = check_int(k, "k")
    T = k.shape[0]
    total2 = 2 * k.sum(dim=0)
    return sum((total2 >= (2 * j - 1) * T).to(torch.int64) for j in range(1, D + 1))
