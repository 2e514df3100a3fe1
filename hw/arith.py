"""Shared integer datapath primitives (docs/integer_semantics.md §IS-5): clamp with a saturation
flag and the shift-add constant product. Only adds, subtracts, compares and shifts. The NI-LIF
neuron of the run-time-configured units is :mod:`spiketrack.hw.nilif`."""

from __future__ import annotations

from amaranth import Const, Mux

__all__ = ["clamp", "times_const"]


def clamp(v, bits: int):
    """``(clamp(v, -2**(bits-1), 2**(bits-1)-1), saturated)`` (§IS-5)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(v < lo, lo, Mux(v > hi, hi, v)), (v < lo) | (v > hi)


def times_const(x, c: int):
    """``c · x`` for a constant ``c >= 0`` as a sum of shifted copies of ``x`` (no multiplier: a
    ``*`` by a constant can become a DSP block after synthesis merges equal products)."""
    if c < 0:
        raise ValueError(f"times_const takes c >= 0, got {c}")
    terms = [x << i for i in range(c.bit_length()) if c >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0, 1)
