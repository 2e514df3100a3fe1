"""The fetch unit: copies rows from external memory into an on-chip memory, one descriptor at a
time (the weight cache: the conv engine's ``w`` memory, when a network's weights live in the
board's SDRAM, ``compiler/accel.py``).

A descriptor (:func:`fetch_desc_layout`) names the first external word ``ext_addr``, the number
of 16-bit ``words`` and the first on-chip row ``row_base``. The unit sends one read command on the
external bus (:mod:`spiketrack.hw.extmem`), gathers ``row_width / 16`` words per row (low word
first) and writes each row as soon as it is complete, to ``row_base``, ``row_base + 1``, … Only
adds and compares: the compiler gives the word count (rows · words per row) as a field.

Cycles (exact against :class:`~spiketrack.hw.extmem.ExtMemoryModel`, whose first word comes
``latency`` cycles after its command): ``words + latency + FETCH_OVERHEAD`` busy cycles, from the descriptor's transfer on
(:func:`fetch_cycles`); a descriptor of 0 words takes 2.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.extmem import EXT_ADDR_BITS, EXT_COUNT_BITS, EXT_DATA_BITS, MODEL_LATENCY, ExtBusSignature
from spiketrack.hw.registers import load_while_idle

__all__ = ["FetchUnit", "fetch_desc_layout", "fetch_cycles", "FETCH_OVERHEAD"]

FETCH_OVERHEAD = 3   #: busy cycles beyond the words and the memory's latency (take, command register, last row's write)


def fetch_desc_layout(addr_bits: int = 16) -> data.StructLayout:
    """The fetch descriptor: external word address, 16-bit words to move, first on-chip row."""
    return data.StructLayout({"ext_addr": EXT_ADDR_BITS, "words": EXT_COUNT_BITS, "row_base": addr_bits})


def fetch_cycles(words: int, latency: int = MODEL_LATENCY) -> int:
    """Busy cycles of one fetch descriptor of ``words`` words (see the module docstring)."""
    return 2 if words == 0 else words + latency + FETCH_OVERHEAD


class FetchUnit(wiring.Component):
    """Copies external words into rows of an on-chip memory (see the module docstring).

    Parameters
    ----------
    row_width : int
        Bits of one on-chip row (a multiple of 16).
    addr_bits : int
        Width of the on-chip row address.

    Members
    -------
    i_desc : In(stream.Signature(fetch_desc_layout))
        One descriptor per copy; taken when the unit is idle.
    ext : Out(ExtBusSignature())
        The external-memory bus (reads only).
    out_addr : Out(addr_bits), out_data : Out(row_width), out_en : Out(1)
        Row writes (registered).
    busy : Out(1)
        From the cycle of the descriptor's transfer to the cycle the last row is written (as the
        other units count it).
    words : Out(32)
        External words received (a counter).
    """

    def __init__(self, row_width: int, addr_bits: int = 16):
        if row_width % EXT_DATA_BITS:
            self._MustUse__silence = True
            raise ValueError(f"row width {row_width} is not a multiple of {EXT_DATA_BITS} bits")
        self.row_width, self.addr_bits = row_width, addr_bits
        self.per_row = row_width // EXT_DATA_BITS
        super().__init__({
            "i_desc": In(stream.Signature(fetch_desc_layout(addr_bits))),
            "ext": Out(ExtBusSignature()),
            "out_addr": Out(addr_bits), "out_data": Out(row_width), "out_en": Out(1),
            "busy": Out(1), "words": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        busy = Signal()
        left = Signal(EXT_COUNT_BITS)            # words still to receive
        widx = Signal(range(self.per_row))       # the next word's place in its row
        row = Signal(self.row_width)
        waddr = Signal(self.addr_bits)
        cmd_valid, cmd = Signal(), Signal(self.ext.cmd.payload.shape())
        take = self.i_desc.valid & ~busy
        m.d.comb += [self.i_desc.ready.eq(~busy), self.busy.eq(busy | take),
                     self.ext.cmd.valid.eq(cmd_valid), self.ext.cmd.payload.eq(cmd),
                     self.ext.wdata.valid.eq(0), self.ext.rdata.ready.eq(busy & ~cmd_valid)]
        m.d.sync += self.out_en.eq(0)
        p = self.i_desc.payload
        with m.If(take):
            m.d.sync += [busy.eq(1), widx.eq(0), cmd_valid.eq(p.words != 0)]
        with m.If(cmd_valid & self.ext.cmd.ready):
            m.d.sync += cmd_valid.eq(0)
        done = busy & ~cmd_valid & (left == 0) & ~self.out_en
        with m.If(done):
            m.d.sync += busy.eq(0)
        # the descriptor's fields load in every idle cycle (so in the take cycle), their clock
        # enables from register copies of "idle" (hw.registers.load_while_idle), not from the
        # controller's descriptor valid (12.0 ns to the command and count registers on ULX3S)
        load_while_idle(m, take, done, [(left, p.words), (waddr, p.row_base), (cmd.addr, p.ext_addr),
                                        (cmd.count, p.words)], name="f_idle")
        r = self.ext.rdata
        with m.If(r.valid & r.ready):
            m.d.sync += [row.eq(Cat(row[EXT_DATA_BITS:], r.payload)), left.eq(left - 1),
                         self.words.eq(self.words + 1)]
            with m.If(widx == self.per_row - 1):
                m.d.sync += [widx.eq(0), self.out_en.eq(1)]
            with m.Else():
                m.d.sync += widx.eq(widx + 1)
        with m.If(self.out_en):
            m.d.sync += waddr.eq(waddr + 1)
        m.d.comb += [self.out_addr.eq(waddr), self.out_data.eq(row)]
        return m
