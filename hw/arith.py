"""Shared integer datapath primitives (docs/integer_semantics.md §IS-5): clamp with a saturation
flag and the shift-add constant product. Only adds, subtracts, compares and shifts. The NI-LIF
neuron of the run-time-configured units is :mod:`spiketrack.hw.nilif`."""

from __future__ import annotations

from amaranth import Const, Mux, Value

__all__ = ["clamp", "times_const", "at_least"]


def clamp(v, bits: int):
    """``(clamp(v, -2**(bits-1), 2**(bits-1)-1), saturated)`` (§IS-5).

    The range test looks at ``v``'s bits above the result's sign bit instead of comparing with
    the two limits: ``v`` fits in ``bits`` bits exactly when those bits all equal its sign, so
    the test is one reduction of a few LUTs and no carry chain (a residual add followed by two
    compares was the ULX3S build's critical path). The value is the same as the compares'.
    """
    v = Value.cast(v)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    width, signed = len(v), v.shape().signed
    if width < bits or (width == bits and signed):    # every value of v is in range
        return v, Const(0, 1)
    top = v[bits - 1:]                                 # the result's sign bit and everything above it
    if signed:
        neg = v[-1]
        over, under = ~neg & top.any(), neg & ~top.all()
    else:
        over, under = top.any(), Const(0, 1)
    return Mux(under, lo, Mux(over, hi, v[:bits].as_signed())), over | under


def at_least(a, b):
    """``a >= b`` as the sign of ``a - b``: a subtraction, which synthesis maps to the FPGA's carry
    chain. Yosys maps a compare (``$ge``) of two signals on ECP5 to a tree of LUTs
    (``cmp2lcu``): five levels for 20 bits, the NI-LIF's level compares at 13.7 ns on the ULX3S
    (build r1a); the chain takes one LUT and the carry path. Both operands may be signed or
    unsigned: the difference is one bit wider than the wider operand (no overflow)."""
    a, b = Value.cast(a), Value.cast(b)
    return ~(a - b)[-1]


def times_const(x, c: int):
    """``c · x`` for a constant ``c >= 0`` as a sum of shifted copies of ``x`` (no multiplier: a
    ``*`` by a constant can become a DSP block after synthesis merges equal products)."""
    if c < 0:
        raise ValueError(f"times_const takes c >= 0, got {c}")
    terms = [x << i for i in range(c.bit_length()) if c >> i & 1]
    return sum(terms[1:], terms[0]) if terms else Const(0, 1)
