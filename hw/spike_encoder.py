"""Spike event encoder: a dense stream of level words -> the non-zero spike events (§IS-1).

Input: a spike map (levels 0..D, §IS-1) as a **dense stream of level words**
(:func:`level_word_layout`): each word holds ``W`` levels of consecutive channels
``chan .. chan + W - 1`` at one position ``pos``, with a ``mask`` of the lanes that exist and
``last`` on the map's final word. This is exactly what :class:`spiketrack.hw.neuron_unit.NeuronUnit`
emits (``W = P``), so a neuron unit feeds the next layer's encoder directly; a host or a memory
reader produces the same words for the network input (e.g. the stem's bit planes, §IS-11).

Output: the :mod:`spiketrack.hw.events` packet of the map: one event per non-zero lane, in word
order and lane order within a word (position-major, channel ascending, like
:func:`spiketrack.hw.events.packet_from_levels`), ``last`` on the final event, and the single
``empty`` event for an all-zero map.

Timing: a word with ``n`` non-zero lanes occupies the encoder ``max(1, n)`` cycles (a priority
encoder picks the lowest remaining lane each cycle), so the cycles grow with the number of events,
and all-zero words cost one cycle per ``W`` levels. Because ``last`` must sit on the final *event*,
an event waits in a one-entry holding register (``pend``) until the next event or the end of the
map is known. Exact cycles: :mod:`spiketrack.hw.spike_encoder_cycles`.
"""

from __future__ import annotations

import torch
from amaranth import Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.events import LEVEL_SHAPE, event_stream

__all__ = ["SpikeEncoder", "level_word_layout", "words_from_levels", "ENCODER_COUNTERS"]

ENCODER_COUNTERS = ("busy", "stall_in", "stall_out", "words", "events")


def level_word_layout(pos_bits: int, chan_bits: int, width: int) -> data.StructLayout:
    """Payload of one dense level word.

    Members
    -------
    pos : unsigned(pos_bits)
        Position (``y · W + x``, or token).
    chan : unsigned(chan_bits)
        Channel of lane 0 (lane ``i`` is channel ``chan + i``).
    levels : ArrayLayout(unsigned(3), width)
        Spike levels 0..D.
    mask : unsigned(width)
        Lanes that exist (levels of other lanes are ignored).
    last : 1
        Final word of the map.
    """
    return data.StructLayout({
        "pos": max(1, pos_bits),
        "chan": max(1, chan_bits),
        "levels": data.ArrayLayout(LEVEL_SHAPE, width),
        "mask": width,
        "last": 1,
    })


def words_from_levels(levels: torch.Tensor, width: int) -> list[dict]:
    """Spike map ``levels[C, N]`` -> dense level words (position-major, ``W`` channels a word)."""
    lv = torch.as_tensor(levels)
    C, N = lv.shape
    words = []
    for n in range(N):
        for c0 in range(0, C, width):
            lanes = [int(lv[c, n]) if c < C else 0 for c in range(c0, c0 + width)]
            words.append({"pos": n, "chan": c0, "levels": lanes,
                          "mask": (1 << min(width, C - c0)) - 1, "last": 0})
    words[-1]["last"] = 1
    return words


class SpikeEncoder(wiring.Component):
    """Dense level words in, non-zero spike events out (one event per cycle).

    Parameters
    ----------
    pos_bits, chan_bits : int
        Widths of ``pos`` and ``chan`` (of both streams).
    width : int
        Lanes ``W`` per input word.

    Members
    -------
    i_levels : In(stream.Signature(level_word_layout))
        Dense level words of one map after another.
    o_events : Out(stream.Signature(event_layout))
        Spike events (:mod:`spiketrack.hw.events`), one packet per map.
    busy : Out(1)
        A map is being encoded (a word or an event is held, a word is taken this cycle, or a
        map's words are partly taken).
    counters : Out(StructLayout)
        ``busy``, ``stall_in``, ``stall_out``, ``words`` taken, ``events`` sent.
    """

    def __init__(self, pos_bits: int, chan_bits: int, width: int = 8):
        self.pos_bits, self.chan_bits, self.width = max(1, pos_bits), max(1, chan_bits), width
        super().__init__({
            "i_levels": In(stream.Signature(level_word_layout(pos_bits, chan_bits, width))),
            "o_events": Out(event_stream(pos_bits, chan_bits)),
            "busy": Out(1),
            "counters": Out(counters_layout(ENCODER_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        W = self.width
        m.submodules.ctr = ctr = CounterBank(ENCODER_COUNTERS)
        m.d.comb += self.counters.eq(ctr.counts)
        i, o = self.i_levels, self.o_events

        # current word
        cur_valid, cur_last = Signal(), Signal()
        cur_pos, cur_chan = Signal(self.pos_bits), Signal(self.chan_bits)
        cur_lv = Signal(data.ArrayLayout(LEVEL_SHAPE, W))
        rem = Signal(W)          # non-zero lanes not yet sent
        # holding register: the newest event, sent once the next event (or the map end) is known
        pend_valid, final = Signal(), Signal()
        pend = Signal(o.payload.shape())

        cand = cur_valid & (rem != 0)
        lane = Signal(range(max(2, W)))
        for j in reversed(range(W)):               # lowest set lane (priority encoder)
            with m.If(rem[j]):
                m.d.comb += lane.eq(j)
        rem_next = rem & (rem - 1)
        single = rem_next == 0
        sent = o.valid & o.ready
        m.d.comb += [o.valid.eq(pend_valid & (final | cand)),
                     o.payload.eq(pend), o.payload.last.eq(final)]
        pend_free = ~pend_valid | sent
        blocked = pend_valid & final & ~sent
        move = cand & pend_free
        exhaust = cur_valid & ~blocked & ((rem == 0) | (move & single))
        m.d.comb += i.ready.eq(~cur_valid | exhaust)
        take = i.valid & i.ready

        nz = [(i.payload.levels[j] != 0) & i.payload.mask[j] for j in range(W)]
        with m.If(take):
            m.d.sync += [cur_valid.eq(1), cur_last.eq(i.payload.last), cur_pos.eq(i.payload.pos),
                         cur_chan.eq(i.payload.chan), cur_lv.eq(i.payload.levels),
                         rem.eq(sum((b << j for j, b in enumerate(nz)), 0))]
        with m.Elif(exhaust):
            m.d.sync += cur_valid.eq(0)
        with m.Elif(move):
            m.d.sync += rem.eq(rem_next)

        with m.If(move):
            m.d.sync += [pend_valid.eq(1), final.eq(exhaust & cur_last),
                         pend.pos.eq(cur_pos), pend.chan.eq(cur_chan + lane),
                         pend.level.eq(cur_lv[lane]), pend.empty.eq(0)]
        with m.Elif(exhaust & cur_last):
            m.d.sync += [pend_valid.eq(1), final.eq(1)]
            with m.If(pend_free):   # the map had no non-zero level: the single empty event
                m.d.sync += [pend.pos.eq(0), pend.chan.eq(0), pend.level.eq(0), pend.empty.eq(1)]
        with m.Elif(sent):
            m.d.sync += [pend_valid.eq(0), final.eq(0)]

        in_pkt = Signal()        # a map's words are partly taken
        with m.If(take):
            m.d.sync += in_pkt.eq(~i.payload.last)
        busy = take | cur_valid | pend_valid | in_pkt
        m.d.comb += [
            self.busy.eq(busy),
            ctr.inc.busy.eq(busy),
            ctr.inc.stall_in.eq(i.ready & ~i.valid & in_pkt),
            ctr.inc.stall_out.eq(o.valid & ~o.ready),
            ctr.inc.words.eq(take),
            ctr.inc.events.eq(sent),
        ]
        return m
