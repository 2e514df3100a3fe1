"""Harnesses of :class:`spiketrack.hw.neuron_unit.NeuronUnit`.

Geometry: ``P = 2`` lanes of signed 10-bit accumulators (any value, any mask), 2 beats per map,
``C_out = 2``, one requantise shift ``s = 2``, membrane ``B_m = 6`` bits with ``f_m = 4``,
``T = 1`` (stateless: no membrane memory), no residual stream. With these widths the requantise
clamp saturates on both sides (``acc/4`` spans -128..128 against -32..31).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.hdl import Assert, Assume
from amaranth.lib import data

from spiketrack.formal.harness import StreamCheck, cycles_since_busy, output_rules, under_proof
from spiketrack.hw.counters import COUNTER_LAG

__all__ = ["GEOMETRY", "stream_rules", "transfers", "saturation", "counters"]

GEOMETRY = "P=2, acc 10 bits, 2 beats/map, shift 2, B_m=6, f_m=4, T=1"
ACC_BITS, SHIFT, BITS = 10, 2, 6


def _unit(hw):
    layout = data.StructLayout({"pos": 1, "chan": 1, "acc": data.ArrayLayout(signed(ACC_BITS), 2),
                                "mask": 2, "last": 1})
    return hw.NeuronUnit(layout, n_beats=2, c_out=2, shift=SHIFT, f_m=4, bits=BITS, T=1)


def stream_rules(hw) -> Module:
    """(a) ``o_spk`` keeps ``valid`` until ready and its payload stable, any environment."""
    return output_rules(_unit(hw), "o_spk")


def transfers(hw) -> Module:
    """(a) One output beat per input beat: never more out than in, equal whenever idle."""
    dut = _unit(hw)
    m = under_proof(dut)
    i, o = StreamCheck(m, dut.i_acc, "i_acc", role="observe"), StreamCheck(m, dut.o_spk, "o_spk")
    m.d.comb += Assert(o.count <= i.count, "o_spk.no_duplicate_beat")
    with m.If(~dut.busy):
        m.d.comb += Assert(o.count == i.count, "o_spk.no_lost_beat")
    return m


def _saturates(acc):
    """Whether requantising ``acc`` (round half up, ``>> SHIFT``) leaves the ``B_m`` range (§IS-5),
    as thresholds on ``acc`` computed here, independently of the unit's clamp."""
    lo, hi = -(1 << (BITS - 1)), (1 << (BITS - 1)) - 1
    half = 1 << (SHIFT - 1)
    return (acc >= ((hi + 1) << SHIFT) - half) | (acc < (lo << SHIFT) - half)


def saturation(hw) -> Module:
    """(c) ``counters.saturated`` counts exactly the clamped elements of the beats taken."""
    dut = _unit(hw)
    m = under_proof(dut)
    i = dut.i_acc
    take = i.valid & i.ready
    n = sum((_saturates(i.payload.acc[j]) & i.payload.mask[j] for j in range(2)), 0)
    expect = Signal(8)
    m.d.sync += expect.eq(expect + Mux(take, n, 0))
    idle = cycles_since_busy(m, dut.busy)
    with m.If(~dut.busy & (idle >= COUNTER_LAG - 1)):
        m.d.comb += Assert(dut.counters.saturated[:8] == expect, "counters.saturated_exact")
    return m


def counters(hw) -> Module:
    """(e) ``busy == model + stall_in + stall_out`` after each map: model ``n_beats + LATENCY``
    (:mod:`spiketrack.hw.neuron_unit_cycles`, ``T = 1``), checked whenever the unit is idle between
    whole maps. Environment: one map at a time (after a map's last beat no beat is offered until
    the unit is idle); gaps inside a map and backpressure are free."""
    dut = _unit(hw)
    m = under_proof(dut)
    i = dut.i_acc
    take = i.valid & i.ready
    beat, closed = Signal(), Signal()
    with m.If(take):
        m.d.sync += beat.eq(~beat)
    with m.If(take & beat):
        m.d.sync += closed.eq(1)
    with m.Elif(~dut.busy):
        m.d.sync += closed.eq(0)
    m.d.comb += Assume(~(closed & i.valid), "env.one_map_at_a_time")
    model = Signal(32)
    m.d.sync += model.eq(model + Mux(take, 1 + Mux(beat, 0, hw.LATENCY), 0))
    idle = cycles_since_busy(m, dut.busy)
    c = dut.counters
    with m.If(~dut.busy & ~beat & (idle >= COUNTER_LAG - 1)):   # after whole maps
        m.d.comb += Assert(c.busy == (model + c.stall_in + c.stall_out)[:32], "counters.busy_identity")
    return m
