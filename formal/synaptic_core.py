"""Harnesses of :class:`spiketrack.hw.synaptic_core.SynapticCore`.

Geometry: a 1x1 convolution, ``C_in = C_out = 2`` channels on a 1x2 map, ``P = 2`` lanes (one
accumulator word per position, so the two events of one position update the same word and
exercise the read-modify-write forwarding), int8 weights at the range limits (``±127``), bias
``(5, -3)``; ``acc_bits`` as the core derives it (11). Every event position and channel of the
1-bit fields is in range, so events are free except: level ``<= D`` and no repeated
``(pos, chan)`` within one packet (a spike map has one level per element, §IS-1).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.asserts import AnyConst
from amaranth.hdl import Assert, Assume

from spiketrack.formal.harness import output_rules, under_proof
from spiketrack.quant.golden.neuron import D

__all__ = ["GEOMETRY", "stream_rules", "transfers", "accumulate"]

GEOMETRY = "1x1 conv, C_in=C_out=2, 1x2 map, P=2 lanes, w=±127, acc 11 bits"
WEIGHTS = [[127, 127], [-127, 127]]     # [c_out][c_in]
BIAS = [5, -3]


def _unit(hw):
    import torch

    geom = hw.LayerGeometry(c_in=2, c_out=2, h=1, w=2, k=1)
    return hw.SynapticCore(geom, torch.tensor(WEIGHTS).reshape(2, 2, 1, 1), torch.tensor(BIAS), lanes=2)


def _spike_maps(m, dut):
    """Environment: levels <= D, no repeated (pos, chan) within a packet."""
    ev = dut.i_events
    m.d.comb += Assume(~ev.valid | (ev.payload.level <= D), "env.level_in_range")
    seen = Signal(4)
    key = ev.payload.pos * 2 + ev.payload.chan
    with m.If(ev.valid & ~ev.payload.empty):
        m.d.comb += Assume(~seen.bit_select(key, 1), "env.one_level_per_element")
    with m.If(ev.valid & ev.ready & ev.payload.last):
        m.d.sync += seen.eq(0)
    with m.Elif(ev.valid & ev.ready & ~ev.payload.empty):
        m.d.sync += seen.eq(seen | (1 << key))


def stream_rules(hw) -> Module:
    """(a) ``o_acc`` keeps ``valid`` until ready and its payload stable, any environment."""
    return output_rules(_unit(hw), "o_acc")


def transfers(hw) -> Module:
    """(a) Each packet is read out exactly once: ``n_acc`` beats, ``last`` on the final one only."""
    dut = _unit(hw)
    m = under_proof(dut)
    ev, o = dut.i_events, dut.o_acc
    n_acc = dut.plan.n_acc
    packets, lasts, beats = Signal(4), Signal(4), Signal(8)
    fire = o.valid & o.ready
    m.d.sync += [packets.eq(packets + (ev.valid & ev.ready & ev.payload.last)),
                 lasts.eq(lasts + (fire & o.payload.last)), beats.eq(beats + fire)]
    m.d.comb += Assert(lasts <= packets, "o_acc.no_duplicate_readout")
    with m.If(fire):
        m.d.comb += Assert(o.payload.last == (beats == lasts * n_acc + n_acc - 1), "o_acc.last_on_final_beat")
    with m.If(~dut.busy):
        m.d.comb += [Assert(lasts == packets, "o_acc.no_lost_readout"),
                     Assert(beats == lasts * n_acc, "o_acc.beats_per_readout")]
    return m


def accumulate(hw) -> Module:
    """(c), (d) Every output lane equals ``bias + Σ level · w`` of its packet, exactly.

    The harness keeps that sum for one output (position and lane chosen by the solver,
    ``AnyConst``) in a register wider than the core's accumulator and compares it with the beat.
    Equality shows that no update is lost (however the events hit the same word, back to back
    or with gaps: the forwarding) and that the accumulator never wraps (its width holds every
    sum of the declared input ranges).
    """
    dut = _unit(hw)
    m = under_proof(dut)
    _spike_maps(m, dut)
    ev, o = dut.i_events, dut.o_acc
    t_pos, t_lane = AnyConst(1), AnyConst(1)
    ref = Signal(signed(dut.acc_bits + 4))
    w = Mux(t_lane, Mux(ev.payload.chan, WEIGHTS[1][1], WEIGHTS[1][0]),
            Mux(ev.payload.chan, WEIGHTS[0][1], WEIGHTS[0][0]))
    fire = o.valid & o.ready
    with m.If(fire & o.payload.last):
        m.d.sync += ref.eq(0)
    with m.Elif(ev.valid & ev.ready & ~ev.payload.empty & (ev.payload.pos == t_pos)):
        m.d.sync += ref.eq(ref + ev.payload.level * w)
    with m.If(fire & (o.payload.pos == t_pos)):
        m.d.comb += Assert(o.payload.acc[t_lane] == ref + Mux(t_lane, BIAS[1], BIAS[0]), "o_acc.exact_sum")
    return m
