"""The external-memory bus: how the accelerator reaches a board's SDRAM (or, in simulation, a
fixed-latency model of it).

One master (the accelerator) and one memory. Three streams (``amaranth.lib.stream``), all in the
core clock domain, named from the master's side (:class:`ExtBusSignature`):

``cmd`` (master → memory), payload :data:`ext_cmd_layout`:
    ``addr`` (first 16-bit word), ``count`` (words, 1 or more; a command with ``count == 0``
    moves nothing) and ``write``.
``wdata`` (master → memory), 16-bit words:
    a write command's ``count`` words, in address order, after (or with) its ``cmd`` transfer.
``rdata`` (memory → master), 16-bit words:
    a read command's ``count`` words, in address order.

Commands complete in the order they were accepted: every word of a read reaches ``rdata``
before any word of a later read. Every stream follows the Amaranth stream rules (valid is not
withdrawn before ready; the payload is stable while valid waits), in both directions, so either
side may stall.

:class:`ExtMemoryModel` is the memory of the simulations: a read's first word is offered
:data:`MODEL_LATENCY` cycles after its command is accepted and one word follows every cycle while
the master takes it; a write takes one word per cycle. It is deterministic, so the accelerator's
cycle model stays exact with it. A board's SDRAM controller (``hw/sdram/``) has the same bus
and its own timing (refresh, row opens), which the cycle model does not predict.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["EXT_ADDR_BITS", "EXT_DATA_BITS", "EXT_COUNT_BITS", "MODEL_LATENCY", "ext_cmd_layout", "ExtBusSignature",
           "ExtMemoryModel"]

EXT_ADDR_BITS = 24    #: 16-bit word address: 16 M words (the ULX3S's 32 MB)
EXT_DATA_BITS = 16    #: the x16 data bus of the boards' SDRAM / DDR3 parts
EXT_COUNT_BITS = 16   #: words per command
MODEL_LATENCY = 4     #: :class:`ExtMemoryModel`: cycles from a read command's acceptance to its first word

ext_cmd_layout = data.StructLayout({"addr": EXT_ADDR_BITS, "count": EXT_COUNT_BITS, "write": 1})


class ExtBusSignature(wiring.Signature):
    """The external-memory bus seen from the master (see the module docstring); the memory side is
    ``ExtBusSignature().flip()``."""

    def __init__(self):
        super().__init__({
            "cmd": Out(stream.Signature(ext_cmd_layout)),
            "wdata": Out(stream.Signature(EXT_DATA_BITS)),
            "rdata": In(stream.Signature(EXT_DATA_BITS)),
        })


class ExtMemoryModel(wiring.Component):
    """A deterministic external memory for simulation: ``depth`` 16-bit words.

    A read command is accepted when no read is in progress; its first word is valid
    :data:`MODEL_LATENCY` cycles later (``latency``), and one word follows in every cycle after a
    transfer. A write command is accepted likewise and takes one ``wdata`` word per cycle. An
    address at or beyond ``depth`` reads 0 and is not written (the model wraps nothing).

    Parameters
    ----------
    depth : int
        Words.
    init : list of int, optional
        Initial words (the rest 0).
    latency : int
        Cycles from a read command's acceptance to its first word (at least 2).

    Members
    -------
    bus : In(ExtBusSignature())
    """

    def __init__(self, depth: int, init=(), latency: int = MODEL_LATENCY):
        if depth < 1 or depth > 1 << EXT_ADDR_BITS:
            raise ValueError(f"external memory depth {depth} outside 1..{1 << EXT_ADDR_BITS}")
        if latency < 2:
            raise ValueError(f"latency {latency} below 2")
        if len(init) > depth:
            raise ValueError(f"{len(init)} initial words for a memory of {depth}")
        self.depth, self.init, self.latency = depth, list(init), latency
        super().__init__({"bus": In(ExtBusSignature())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.mem = mem = Memory(shape=EXT_DATA_BITS, depth=self.depth, init=self.init)
        rd, wr = mem.read_port(), mem.write_port()
        bus = self.bus
        addr = Signal(EXT_ADDR_BITS)             # the next word to write or to fetch
        left = Signal(EXT_COUNT_BITS)            # words of the command not yet moved
        to_fetch = Signal(EXT_COUNT_BITS)        # words of a read not yet fetched
        writing = Signal()
        wait = Signal(range(self.latency + 1))   # a read's latency, counted down to its first fetch
        out_valid, out_ok = Signal(), Signal()
        taken = bus.rdata.valid & bus.rdata.ready
        m.d.comb += rd.en.eq(0)   # a read port's enable is 1 unless driven: the word offered must hold

        with m.If(left == 0):
            m.d.comb += bus.cmd.ready.eq(1)
            with m.If(bus.cmd.valid):
                p = bus.cmd.payload
                m.d.sync += [addr.eq(p.addr), left.eq(p.count), writing.eq(p.write),
                             to_fetch.eq(Mux(p.write, 0, p.count)), wait.eq(self.latency - 1)]
        with m.Elif(writing):
            m.d.comb += bus.wdata.ready.eq(1)
            with m.If(bus.wdata.valid):
                m.d.comb += [wr.addr.eq(addr), wr.data.eq(bus.wdata.payload), wr.en.eq(addr < self.depth)]
                m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
        with m.Else():
            with m.If(taken):
                m.d.sync += left.eq(left - 1)
            with m.If(wait > 1):
                m.d.sync += wait.eq(wait - 1)
            # a word is fetched when the latency has run out, or when the word offered is taken
            fetch = (to_fetch != 0) & Mux(wait != 0, wait == 1, taken)
            with m.If(fetch):
                m.d.comb += [rd.addr.eq(addr), rd.en.eq(1)]
                m.d.sync += [addr.eq(addr + 1), to_fetch.eq(to_fetch - 1), wait.eq(0),
                             out_valid.eq(1), out_ok.eq(addr < self.depth)]
            with m.Elif(taken):
                m.d.sync += out_valid.eq(0)
        m.d.comb += [bus.rdata.valid.eq(out_valid), bus.rdata.payload.eq(Mux(out_ok, rd.data, 0))]
        return m
