"""Harnesses of :class:`spiketrack.hw.spike_encoder.SpikeEncoder`.

Geometry: ``width = 2`` lanes, ``pos_bits = 1``, ``chan_bits = 2`` (every field of both streams
is free: any levels 0..7, any mask, any ``last``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import Assert, Assume

from spiketrack.hw.counters import COUNTER_LAG
from spiketrack.formal.harness import cycles_since_busy, output_rules, past, under_proof

__all__ = ["GEOMETRY", "stream_rules", "transfers", "counters"]

GEOMETRY = "W=2 lanes, pos 1 bit, chan 2 bits"


def _unit(hw):
    return hw.SpikeEncoder(pos_bits=1, chan_bits=2, width=2)


def _nonzero_lanes(word, width):
    """Existing non-zero lanes of a level word (what becomes one event each)."""
    total = 0
    for j in range(width):
        total = total + ((word.levels[j] != 0) & word.mask[j])
    return total


def stream_rules(hw) -> Module:
    """(a) ``o_events`` keeps ``valid`` until ready and its payload stable, any environment."""
    return output_rules(_unit(hw), "o_events")


def transfers(hw) -> Module:
    """(a) No event is lost or duplicated: every non-zero lane taken leaves as one event, every
    map's last word as one ``last`` event; never more out than in, equal whenever idle."""
    dut = _unit(hw)
    m = under_proof(dut)
    i, o = dut.i_levels, dut.o_events
    take, sent = i.valid & i.ready, o.valid & o.ready
    lanes_in, events_out = Signal(8), Signal(8)
    maps_in, lasts_out = Signal(8), Signal(8)
    m.d.sync += [lanes_in.eq(lanes_in + Mux(take, _nonzero_lanes(i.payload, dut.width), 0)),
                 events_out.eq(events_out + (sent & ~o.payload.empty)),
                 maps_in.eq(maps_in + (take & i.payload.last)),
                 lasts_out.eq(lasts_out + (sent & o.payload.last))]
    m.d.comb += [Assert(events_out <= lanes_in, "o_events.no_duplicate_event"),
                 Assert(lasts_out <= maps_in, "o_events.no_duplicate_last")]
    with m.If(~dut.busy):
        m.d.comb += [Assert(events_out == lanes_in, "o_events.no_lost_event"),
                     Assert(lasts_out == maps_in, "o_events.no_lost_last")]
    return m


def counters(hw) -> Module:
    """(e) ``busy == model + stall_in + stall_out`` after every map, any stream timing.

    Model (:mod:`spiketrack.hw.spike_encoder_cycles`): ``2 + Σ_words max(1, non-zero lanes)``
    per map. Environment: one map at a time (after a map's last word no word is offered until the
    encoder is idle); gaps inside a map and backpressure are free.
    """
    dut = _unit(hw)
    m = under_proof(dut)
    i = dut.i_levels
    take = i.valid & i.ready
    closed = Signal()            # the map's last word is taken
    with m.If(take & i.payload.last):
        m.d.sync += closed.eq(1)
    with m.Elif(~dut.busy):
        m.d.sync += closed.eq(0)
    m.d.comb += Assume(~(closed & i.valid), "env.one_map_at_a_time")
    n = _nonzero_lanes(i.payload, dut.width)
    was_busy = past(m, dut.busy, "busy")
    model = Signal(32)
    m.d.sync += model.eq(model + Mux(take, Mux(n == 0, 1, n) + Mux(was_busy, 0, 2), 0))
    idle = cycles_since_busy(m, dut.busy)
    c = dut.counters
    with m.If(~dut.busy & (idle >= COUNTER_LAG - 1)):
        m.d.comb += Assert(c.busy == (model + c.stall_in + c.stall_out)[:32], "counters.busy_identity")
    return m
