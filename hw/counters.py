"""Per-core performance counters: busy, stall and event counts, readable as signals.

Every core of :mod:`spiketrack.hw` (encoder, synaptic core, neuron unit) owns one
:class:`CounterBank`. The bank is a plain group of saturating-free wrap-around counters
(``width`` bits each) with one increment input per counter; the core drives the increments and
exposes the counts as an ``Out(StructLayout)`` member ``counters``. A host link (later) reads them
as a struct of registers; the tests read them with ``ctx.get(dut.counters.<name>)``.

Counter meaning is the same in every core (docs/hw_cores.md, "Counters"):

``busy``       cycles the core has work (a packet or a readout in progress)
``stall_in``   busy cycles lost because the input stream had no valid item when the core needed one
``stall_out``  busy cycles lost because the output stream was not ready (backpressure)
``events``     input items consumed (events, beats or words)
plus core-specific counters (``useful`` accumulations, ``updates``, ``saturated`` elements, ...).

Under any stream timing the cycle models satisfy ``busy == model + stall_in + stall_out``
(see each core's ``*_cycles`` module).
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["CounterBank", "counters_layout", "COUNTER_LAG"]

COUNTER_LAG = 2
"""Cycles after the last increment until it shows in ``counts`` (registered increment, then the add)."""


def counters_layout(names, width: int = 32) -> data.StructLayout:
    """``StructLayout`` with one ``unsigned(width)`` field per counter name."""
    return data.StructLayout({n: width for n in names})


class CounterBank(wiring.Component):
    """A bank of wrap-around event counters.

    Parameters
    ----------
    names : sequence of str
        Counter names (fields of ``counts``).
    width : int
        Bits per counter (default 32; wraps around).
    inc_widths : mapping of str to int, optional
        Width of each increment input (default 1: a strobe). Wider increments add a small
        count per cycle (e.g. the number of useful lanes of one accumulation).

    Members
    -------
    inc : In(StructLayout)
        One field per counter: the amount added this cycle.
    clear : In(1)
        Synchronous clear of every counter (takes precedence over ``inc``).
    counts : Out(StructLayout)
        The counter values (``counters_layout(names, width)``). The increments are registered
        before the adders (the cores' control logic never feeds a 32-bit carry chain in the same
        cycle), so a count includes the increments up to two cycles before; a host reads the
        counts :data:`COUNTER_LAG` cycles after the core has gone idle.
    """

    def __init__(self, names, width: int = 32, inc_widths=None):
        self.names = tuple(names)
        self.width = width
        inc_widths = dict(inc_widths or {})
        super().__init__({
            "inc": In(data.StructLayout({n: inc_widths.get(n, 1) for n in self.names})),
            "clear": In(1),
            "counts": Out(counters_layout(self.names, width)),
        })

    def elaborate(self, platform):
        m = Module()
        for n in self.names:
            c, inc = getattr(self.counts, n), getattr(self.inc, n)
            inc_q = Signal.like(inc, name=f"{n}_inc")
            with m.If(self.clear):
                m.d.sync += [c.eq(0), inc_q.eq(0)]
            with m.Else():
                m.d.sync += [inc_q.eq(inc), c.eq(c + inc_q)]
        return m
