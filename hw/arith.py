"""Shared integer datapath primitives (docs/integer_semantics.md §IS-5, §IS-7), one definition for
every unit: clamp with a saturation flag, the round-half-up shift by a run-time amount, the
NI-LIF fire and the shift-add decay. Only adds, subtracts, compares and shifts."""

from __future__ import annotations

from amaranth import Const, Mux, Shape, Signal, unsigned

from spiketrack.quant.golden.neuron import LEVEL_BITS, D

__all__ = ["clamp", "shift_round_var", "fire_var", "decay_var", "settle"]


def settle(m, expr, name: str):
    """``expr`` as a combinational signal. Amaranth emits an expression once per use, and the
    helpers below use their operand several times (``clamp`` three times, ``fire_var`` more), so
    nesting them unnamed multiplies the netlist; naming the intermediate values keeps it linear."""
    sig = Signal(Shape.cast(expr.shape()), name=name)
    m.d.comb += sig.eq(expr)
    return sig


def clamp(v, bits: int):
    """``(clamp(v, -2**(bits-1), 2**(bits-1)-1), saturated)`` (§IS-5)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(v < lo, lo, Mux(v > hi, hi, v)), (v < lo) | (v > hi)


def shift_round_var(y, s):
    """§IS-5 with a run-time signed shift ``s`` (6-bit value in [-15, 31]): ``(y + 2**(s-1)) >> s``
    for ``s > 0``, ``y << -s`` otherwise."""
    sp = Mux(s > 0, s, 0).as_unsigned()[:5]
    sn = Mux(s < 0, -s, 0).as_unsigned()[:4]
    half = Mux(s > 0, Const(1, unsigned(32)) << (sp - 1)[:5], 0)
    return ((y + half) >> sp) << sn


def fire_var(u, f_m, half_even=0):
    """NI-LIF fire with a run-time membrane exponent: ``clamp((u + 2**(f_m-1)) >> f_m, 0, D)``; with
    ``half_even`` set, an exact tie (low ``f_m`` bits of ``u`` equal to ``2**(f_m-1)``) drops an odd
    result by one (ties to even, §IS-7)."""
    half = Const(1, unsigned(32)) << (f_m - 1)[:5]
    q = (u + half) >> f_m
    tie = (u.as_unsigned() & ((Const(1, unsigned(33)) << f_m) - 1)) == half
    q = q - (q[0] & tie & half_even)
    return Mux(q < 0, 0, Mux(q > D, D, q))[:3]


def reset_var(u, k, f_m):
    """Soft reset ``u - (k << (f_m - d))`` (§IS-7)."""
    return u - (k << (f_m - LEVEL_BITS)[:5])


def decay_var(h, terms):
    """``Σ_j σ_j (h >> a_j)`` for run-time terms: a list of ``(enable, negative, shift)`` signals;
    each term floored separately by the arithmetic shift (§IS-7)."""
    out = Const(0, 2)
    for en, neg, sh in terms:
        part = h >> sh
        out = out + Mux(en, Mux(neg, -part, part), 0)
    return out


def times_const(x, c: int):
    """``c · x`` for a constant ``c >= 0`` as a sum of shifted copies of ``x`` (no multiplier: a
    ``*`` by a constant can become a DSP block after synthesis merges equal products)."""
    if c < 0:
        raise ValueError(f"times_const takes c >= 0, got {c}")
    terms = [x << i for i in range(c.bit_length()) if c >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0, 1)
