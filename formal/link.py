"""Harnesses of the UART host link :class:`spiketrack.hw.link.frames.FrameLink`.

Geometry: the words per row of the memories of an 8-lane accelerator with 4-bit addresses (as
:class:`~spiketrack.hw.accel.board.LinkedAccelerator` builds them), ``gap_cycles = 4``,
response chunk 2 words, ``quiet = 2``; the frame buffer has its full :data:`MAX_WORDS` words.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume

from spiketrack.formal.harness import any_environment, elaborate_with_probes, fsm_in, output_rules, signal_named
from spiketrack.hw.accel.protocol import MEM_IDS, Op, words_per_row
from spiketrack.hw.accel.top import mem_widths
from spiketrack.hw.link.protocol import MAX_WORDS, SOF, crc16_byte

__all__ = ["GEOMETRY", "GAP", "stream_rules", "rejects", "crc_step", "crc16_ref", "uart_stream"]

GAP = 4
GEOMETRY = f"row words of P=8, 4-bit addresses; gap_cycles={GAP}, chunk 2, quiet 2, {MAX_WORDS}-word buffer"
ROW_WORDS = {MEM_IDS[n]: words_per_row(w) for n, w in mem_widths(8, 4).items()}


def _unit(hw):
    return hw.FrameLink(ROW_WORDS, gap_cycles=GAP, chunk=2, quiet=2)


def stream_rules(hw) -> Module:
    """(a) ``o_cmd`` (to the accelerator) and ``o_byte`` (to the UART) keep ``valid`` until ready
    and their payload stable, any byte and response streams."""
    return output_rules(_unit(hw), "o_cmd", "o_byte")


def crc16_ref(crc, byte):
    """CRC-16/CCITT-FALSE of ``crc`` after ``byte`` as XORs of input bits: the map is linear over
    GF(2), its columns taken from the host's :func:`~spiketrack.hw.link.protocol.crc16_byte`
    (an implementation independent of the RTL's shift steps)."""
    out = Const(0, 16)
    for i in range(16):
        out = out ^ Mux(crc[i], crc16_byte(1 << i, 0), 0)
    for j in range(8):
        out = out ^ Mux(byte[j], crc16_byte(0, 1 << j), 0)
    return out


def rejects(hw) -> Module:
    """A frame whose CRC fails, whose kind is no command, whose header disagrees with its kind or
    whose length is not its command's is never executed: no word of it reaches ``o_cmd``.

    Environment: one frame from reset (a SOF byte, then length, kind, payload and CRC bytes, every
    one free), with at most ``GAP - 2`` idle cycles between its bytes (a longer gap truncates the
    frame, and the bytes after it would be parsed as a new one); nothing after it. The harness
    computes the frame's checks itself from the bytes it sent (its own CRC, :func:`crc16_ref`)
    and asserts that ``o_cmd.valid`` is never high for a frame that fails one.

    A WRITE's length is its header, its address word and its rows: this proof found the link
    executing a one-word WRITE of 0 rows (no address word; the accelerator then took the next
    frame's header as its address), fixed in ``hw/link/frames.py``.
    """
    m = Module()
    dut = _unit(hw)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    ib = dut.i_byte
    byte, got = ib.payload, ib.valid
    pos = Signal(16)                       # bytes of the frame sent so far
    length, kind, hdr = Signal(16), Signal(8), Signal(32)
    crc, crc_rx = Signal(16, init=0xFFFF), Signal(16)
    idle = Signal(range(GAP))
    total = length + 6                     # SOF, length (2), kind, payload, CRC (2)
    started, done = pos != 0, (pos >= 3) & (pos == total)
    with m.If(got):
        m.d.sync += [pos.eq(pos + 1), idle.eq(0)]
        with m.If((pos >= 1) & (pos < length + 4)):   # length, kind and payload bytes: in the CRC
            m.d.sync += crc.eq(crc16_ref(crc, byte))
        with m.Switch(pos):
            with m.Case(1):
                m.d.sync += length[:8].eq(byte)
            with m.Case(2):
                m.d.sync += length[8:].eq(byte)
            with m.Case(3):
                m.d.sync += kind.eq(byte)
        for b in range(4):
            with m.If(pos == 4 + b):
                m.d.sync += hdr[8 * b:8 * b + 8].eq(byte)
        with m.If(pos == length + 4):
            m.d.sync += crc_rx[:8].eq(byte)
        with m.If(pos == length + 5):
            m.d.sync += crc_rx[8:].eq(byte)
    with m.Elif(started & ~done):
        m.d.sync += idle.eq(idle + 1)
    m.d.comb += [Assume(~got | started | (byte == SOF), "env.frame_starts_with_sof"),
                 Assume(~(got & done), "env.one_frame"),
                 Assume(got | ~started | done | (idle < GAP - 2), "env.no_truncating_gap")]

    # lemma (helps the solver, proved like the properties): while the link receives this frame,
    # its CRC register equals the harness's, step by step (the link's first CRC step, crc_rx_0,
    # is its register XOR the byte in the high half)
    receiving = fsm_in(body, "rx", "LEN0", "LEN1", "KIND", "PAY", "CRC0", "CRC1", "CHECK")
    link_crc = signal_named(body, "crc_rx_0") ^ Cat(Const(0, 8), byte)
    with m.If(receiving):
        m.d.comb += Assert(link_crc == crc, "lemma.crc_register")

    words = length[2:]
    count = hdr[8:]
    is_write, write_ok = Signal(), Signal()   # a WRITE of a known memory: 2 + count * row words
    with m.Switch(hdr[4:8]):
        for mem_id, n in ROW_WORDS.items():
            with m.Case(mem_id):
                m.d.comb += [is_write.eq(hdr[:4] == Op.WRITE),
                             write_ok.eq((count < MAX_WORDS) & (words == 2 + count[:9] * n))]
    length_ok = ((length != 0) & (length[:2] == 0) & (length <= 4 * MAX_WORDS)
                 & Mux(is_write, write_ok, words == 2))
    with m.If(dut.o_cmd.valid):
        m.d.comb += [Assert(done, "o_cmd.only_after_whole_frame"),
                     Assert(crc == crc_rx, "o_cmd.never_bad_crc"),
                     Assert(kind <= Op.GUARD, "o_cmd.never_unknown_command"),
                     Assert(hdr[:4] == kind, "o_cmd.header_matches_kind"),
                     Assert(length_ok, "o_cmd.never_bad_length")]
    return m


def crc_step(hw) -> Module:
    """The RTL's CRC step (``crc16_step``, the eight shift steps) equals CRC-16/CCITT-FALSE of the
    host (:func:`crc16_ref`, from ``protocol.crc16_byte``) for every register value and byte."""
    m = Module()
    crc, byte = Signal(16), Signal(8)
    m.d.comb += [crc.eq(AnySeq(16)), byte.eq(AnySeq(8))]
    m.d.comb += Assert(hw.crc16_step(m, crc, byte, "rtl_crc") == crc16_ref(crc, byte), "crc.step_matches_host")
    return m


def uart_stream(hw) -> Module:
    """(a) The UART receiver's ``o_byte`` keeps ``valid`` until ready and its byte stable (a byte
    that completes while the previous one is stalled is dropped, not written over it); any line."""
    return output_rules(hw.UartRx(divisor=4), "o_byte")
