"""Integer arithmetic primitives: round-half-up shifts and saturation (docs/integer_semantics.md §IS-5),
and the exact shift-add product by a constant (§IS-12).

Every function takes and returns integer tensors (``torch.int64``); none uses floating point.
"""

from __future__ import annotations

import torch

__all__ = ["check_int", "shift_round", "saturate", "requantize", "bit_width_signed", "bit_width_unsigned",
           "csd_terms", "times_csd"]


def check_int(x, name: str = "tensor") -> torch.Tensor:
    """Return ``x`` as int64, refusing floating-point tensors (the golden model is integer-only)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype.is_floating_point or x.dtype.is_complex or x.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got {x.dtype}")
    return x.to(torch.int64)


def shift_round(y: torch.Tensor, s) -> torch.Tensor:
    """Drop ``s`` fractional bits with round-half-up (§IS-5).

    ``s > 0``: ``(y + 2**(s-1)) >> s``, the floor of ``y / 2**s + 1/2``; ``s <= 0``: ``y << -s``.
    ``s`` is an int or an integer tensor broadcastable against ``y`` (per-channel shifts).
    """
    y = check_int(y, "y")
    if isinstance(s, int):
        return (y + (1 << (s - 1))) >> s if s > 0 else y << (-s)
    s = check_int(s, "s")
    pos = s.clamp(min=0)
    half = torch.where(pos > 0, torch.ones_like(pos) << (pos - 1).clamp(min=0), torch.zeros_like(pos))
    down = (y + half) >> pos
    return torch.where(s > 0, down, y << (-s).clamp(min=0))


def saturate(x: torch.Tensor, bits: int, signed: bool = True) -> tuple[torch.Tensor, int]:
    """Clamp ``x`` to a ``bits``-wide two's-complement (or unsigned) range.

    Returns
    -------
    (clamped, n_saturated) : the clamped tensor and how many elements were clamped.
    """
    x = check_int(x, "x")
    lo, hi = ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1))
    n = int(((x < lo) | (x > hi)).sum())
    return x.clamp(lo, hi), n


def requantize(y: torch.Tensor, s, bits: int) -> tuple[torch.Tensor, int]:
    """§IS-5 in one call: ``saturate(shift_round(y, s), bits)`` with ``s = f_in - f_out``."""
    return saturate(shift_round(y, s), bits)


def bit_width_signed(max_abs: int) -> int:
    """Smallest two's-complement width holding every value in ``[-max_abs, max_abs]``."""
    return int(max_abs).bit_length() + 1


def bit_width_unsigned(max_value: int) -> int:
    """Smallest unsigned width holding ``max_value`` (at least 1)."""
    return max(1, int(max_value).bit_length())


def csd_terms(m: int) -> list[list[int]]:
    """The canonical signed-digit (non-adjacent) form of ``m >= 1``: ``[[sign, shift], ...]`` with
    ``m = Σ sign · 2**shift``, no two shifts adjacent, lowest shift first (§IS-12)."""
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        raise ValueError(f"a shift-add constant must be an integer >= 1, got {m!r}")
    terms, shift = [], 0
    while m:
        if m & 1:
            digit = 2 - (m & 3)  # +1 if m = 1 (mod 4), -1 if m = 3 (mod 4)
            terms.append([digit, shift])
            m -= digit
        m >>= 1
        shift += 1
    return terms


def times_csd(y: torch.Tensor, terms) -> torch.Tensor:
    """``Σ sign · (y << shift)``: the exact product of ``y`` by a shift-add constant (§IS-12)."""
    y = check_int(y, "y")
    if not terms:
        raise ValueError("a shift-add constant needs at least one term")
    out = torch.zeros_like(y)
    for sign, shift in terms:
        if sign not in (1, -1) or shift < 0:
            raise ValueError(f"bad shift-add term (sign={sign}, shift={shift}): sign must be +-1, shift >= 0")
        out = out + sign * (y << shift)
    return out
