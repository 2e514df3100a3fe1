"""The framed link between a UART's byte streams and the accelerator's word streams
(frame format and checks: :mod:`.protocol`).

Host frames are received whole into a buffer (one block RAM of :data:`~.protocol.MAX_WORDS`
words), checked (CRC, kind, exact length of the command it carries) and only then replayed into
the accelerator's command stream, one word per cycle. Response words are collected in a FIFO and
sent as ``KIND_RSP`` frames of up to ``chunk`` words: a frame leaves when the FIFO holds ``chunk``
words or the response stream has been quiet for ``quiet`` cycles. A rejected frame is answered
with one ``KIND_ERR`` frame once the line has been quiet for ``gap_cycles``.

No multiplier: a WRITE's expected length is checked by counting rows as its words arrive.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spiketrack.hw.accel.protocol import Op
from spiketrack.hw.link.protocol import KIND_ERR, KIND_RSP, MAX_WORDS, SOF, LinkErr

__all__ = ["FrameLink", "crc16_step"]


def crc16_step(m: Module, crc, byte, name: str):
    """CRC-16/CCITT-FALSE of ``crc`` after ``byte`` (the eight steps of
    :func:`~.protocol.crc16_byte`, each a named signal so no expression is duplicated)."""
    c = Signal(16, name=f"{name}_0")
    m.d.comb += c.eq(crc ^ Cat(Const(0, 8), byte))
    for i in range(8):
        n = Signal(16, name=f"{name}_{i + 1}")
        m.d.comb += n.eq(Mux(c[15], Cat(0, c[:15]) ^ 0x1021, Cat(0, c[:15])))
        c = n
    return c


class FrameLink(wiring.Component):
    """Framed host link (see the module docstring).

    Parameters
    ----------
    row_words : dict of int to int
        Words per row of each accelerator memory id (``protocol.MEM_IDS``), for the WRITE length check.
    gap_cycles : int
        Quiet cycles that end a frame early (truncated) or end the draining of a rejected one.
    chunk : int
        Most words in one response frame (the response FIFO's depth).
    quiet : int
        Cycles without a response word after which a partly filled response frame is sent.

    Members
    -------
    i_byte : In(stream.Signature(8)); o_byte : Out(stream.Signature(8))
        The UART side.
    o_cmd : Out(stream.Signature(32)); i_rsp : In(stream.Signature(32))
        The accelerator side.
    frames_ok, frames_bad : Out(16)
        Frames executed and frames rejected (wrap around).
    """

    def __init__(self, row_words: dict[int, int], *, gap_cycles: int = 1 << 16, chunk: int = 64, quiet: int = 16):
        self.row_words = dict(row_words)
        self.gap_cycles, self.chunk, self.quiet = int(gap_cycles), int(chunk), int(quiet)
        super().__init__({
            "i_byte": In(stream.Signature(8)), "o_byte": Out(stream.Signature(8)),
            "o_cmd": Out(stream.Signature(32)), "i_rsp": In(stream.Signature(32)),
            "frames_ok": Out(16), "frames_bad": Out(16),
        })

    def elaborate(self, platform):
        m = Module()
        NW = MAX_WORDS
        m.submodules.buf = buf = Memory(shape=32, depth=NW, init=[])
        wr, rd = buf.write_port(), buf.read_port()

        # ------------------------------------------------------------------ receive and check
        length, kind = Signal(16), Signal(8)
        nbytes = Signal(16)
        word = Signal(32)
        widx = Signal(range(NW + 1))
        hdr = Signal(32)
        wpr, wpr_m1 = Signal(6), Signal(6)   # words per row of the WRITE's memory (0: unknown memory)
        pay_left = Signal(16)        # payload bytes still to come after this one
        in_row, rows = Signal(6), Signal(range(NW + 1))
        crc, crc_rx = Signal(16, init=0xFFFF), Signal(16)
        gap = Signal(range(self.gap_cycles + 1))
        code = Signal(8)
        ridx = Signal(range(NW + 1))
        ridx1 = Signal(range(NW + 2), name="ridx1", init=1)   # ridx + 1, kept as a register: no adder before the
                                                      # frame buffer's read address (14.7 ns on u100l)
        overrun = Signal()
        err_req, err_ack = Signal(), Signal()
        byte = self.i_byte.payload
        got = self.i_byte.valid          # i_byte.ready is always 1: bytes are never held up
        m.d.comb += self.i_byte.ready.eq(1)
        crc_next = crc16_step(m, crc, byte, "crc_rx")
        with m.Switch(hdr[4:8]):
            for mem_id, n in self.row_words.items():
                with m.Case(mem_id):
                    m.d.comb += [wpr.eq(n), wpr_m1.eq(n - 1)]

        def reject(c):
            return [code.eq(c)]

        with m.FSM(name="rx"):
            with m.State("SOF"):
                m.d.sync += [crc.eq(0xFFFF), nbytes.eq(0), widx.eq(0), gap.eq(0), overrun.eq(0),
                             in_row.eq(0), rows.eq(0)]
                with m.If(got & (byte == SOF)):
                    m.next = "LEN0"
            for state, nxt in (("LEN0", "LEN1"), ("LEN1", "KIND"), ("KIND", "PAY"), ("PAY", "CRC0"),
                               ("CRC0", "CRC1"), ("CRC1", "CHECK")):
                with m.State(state):
                    with m.If(got):
                        m.d.sync += gap.eq(0)
                        if state in ("LEN0", "LEN1", "KIND", "PAY"):
                            m.d.sync += crc.eq(crc_next)
                        if state == "LEN0":
                            m.d.sync += length[:8].eq(byte)
                            m.next = nxt
                        elif state == "LEN1":
                            n = Cat(length[:8], byte)
                            m.d.sync += [length[8:].eq(byte), pay_left.eq(n - 1)]
                            with m.If((n == 0) | (n[:2] != 0) | (n > 4 * NW)):
                                m.d.sync += reject(LinkErr.LENGTH)
                                m.next = "DRAIN"
                            with m.Else():
                                m.next = nxt
                        elif state == "KIND":
                            m.d.sync += kind.eq(byte)
                            with m.If(byte > Op.GUARD):
                                m.d.sync += reject(LinkErr.KIND)
                                m.next = "DRAIN"
                            with m.Else():
                                m.next = nxt
                        elif state == "PAY":
                            full = Cat(word[8:], byte)
                            m.d.sync += [word.eq(full), nbytes.eq(nbytes + 1), pay_left.eq(pay_left - 1)]
                            with m.If(nbytes[:2] == 3):
                                m.d.comb += [wr.addr.eq(widx), wr.data.eq(full), wr.en.eq(1)]
                                m.d.sync += widx.eq(widx + 1)
                                with m.If(widx == 0):
                                    m.d.sync += hdr.eq(full)
                                with m.Elif(widx >= 2):
                                    with m.If(in_row == wpr_m1):
                                        m.d.sync += [in_row.eq(0), rows.eq(rows + 1)]
                                    with m.Else():
                                        m.d.sync += in_row.eq(in_row + 1)
                            with m.If(pay_left == 0):
                                m.next = nxt
                        elif state == "CRC0":
                            m.d.sync += crc_rx[:8].eq(byte)
                            m.next = nxt
                        else:
                            m.d.sync += crc_rx[8:].eq(byte)
                            m.next = nxt
                    with m.Else():
                        m.d.sync += gap.eq(gap + 1)
                        with m.If(gap == self.gap_cycles - 1):
                            m.d.sync += reject(LinkErr.TRUNCATED)
                            m.next = "ERR"
            with m.State("CHECK"):
                is_write = hdr[:4] == Op.WRITE
                # a WRITE: the header, the address word, then whole rows (hdr[8:] of them); every
                # other command: the header and one argument word
                length_ok = Mux(is_write & (wpr != 0), (widx >= 2) & (in_row == 0) & (rows == hdr[8:]), widx == 2)
                with m.If(crc != crc_rx):
                    m.d.sync += reject(LinkErr.CRC)
                    m.next = "DRAIN"
                with m.Elif(hdr[:4] != kind):
                    m.d.sync += reject(LinkErr.KIND)
                    m.next = "DRAIN"
                with m.Elif(~length_ok):
                    m.d.sync += reject(LinkErr.LENGTH)
                    m.next = "DRAIN"
                with m.Else():
                    m.d.sync += [ridx.eq(0), ridx1.eq(1)]
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += rd.addr.eq(ridx)
                m.next = "EXEC"
            with m.State("EXEC"):
                take = self.o_cmd.ready
                m.d.comb += [rd.addr.eq(Mux(take, ridx1, ridx)), self.o_cmd.valid.eq(1),
                             self.o_cmd.payload.eq(rd.data)]
                with m.If(take):
                    m.d.sync += [ridx.eq(ridx1), ridx1.eq(ridx1 + 1)]
                    with m.If(ridx1 == widx):
                        m.d.sync += self.frames_ok.eq(self.frames_ok + 1)
                        with m.If(overrun | got):
                            m.d.sync += [reject(LinkErr.OVERRUN), gap.eq(0)]
                            m.next = "DRAIN"
                        with m.Else():
                            m.next = "SOF"
                with m.If(got):
                    m.d.sync += overrun.eq(1)
            with m.State("DRAIN"):      # discard bytes until the line is quiet
                with m.If(got):
                    m.d.sync += gap.eq(0)
                with m.Else():
                    m.d.sync += gap.eq(gap + 1)
                    with m.If(gap == self.gap_cycles - 1):
                        m.next = "ERR"
            with m.State("ERR"):
                m.d.comb += err_req.eq(1)
                with m.If(err_ack):
                    m.d.sync += self.frames_bad.eq(self.frames_bad + 1)
                    m.next = "SOF"

        # ------------------------------------------------------------------ responses
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=32, depth=self.chunk)
        m.d.comb += [fifo.w_data.eq(self.i_rsp.payload), fifo.w_en.eq(self.i_rsp.valid),
                     self.i_rsp.ready.eq(fifo.w_rdy)]
        quiet = Signal(range(self.quiet + 1))
        with m.If(self.i_rsp.valid & self.i_rsp.ready):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.quiet):
            m.d.sync += quiet.eq(quiet + 1)
        tx_kind = Signal(8)
        left = Signal(range(self.chunk + 1))
        k = Signal(2)
        tcrc = Signal(16)
        err_word = Signal(32)
        out = Signal(8)
        txv, crc_byte = Signal(), Signal()   # out holds a byte for the UART; it counts in the CRC
        tcrc_next = crc16_step(m, tcrc, out, "crc_tx")
        # the payload word is registered (pay_word), two cycles after each FIFO read it is current
        pay_word, pay_stale = Signal(32), Signal(2)
        m.d.sync += pay_word.eq(Mux(tx_kind == KIND_ERR, err_word, fifo.r_data))
        with m.If(fifo.r_en):
            m.d.sync += pay_stale.eq(2)
        with m.Elif(pay_stale != 0):
            m.d.sync += pay_stale.eq(pay_stale - 1)
        sent = txv & self.o_byte.ready
        put = ~txv                          # the FSM may put the next byte (one cycle after a send)
        m.d.comb += [self.o_byte.payload.eq(out), self.o_byte.valid.eq(txv)]
        with m.If(sent):
            m.d.sync += txv.eq(0)
            with m.If(crc_byte):
                m.d.sync += tcrc.eq(tcrc_next)
        with m.FSM(name="tx"):
            with m.State("IDLE"):
                with m.If((fifo.r_level != 0) & ((fifo.r_level == self.chunk) | (quiet == self.quiet))):
                    m.d.sync += [tx_kind.eq(KIND_RSP), left.eq(fifo.r_level), tcrc.eq(0xFFFF), k.eq(0)]
                    m.next = "SOF"
                with m.Elif(err_req):
                    m.d.comb += err_ack.eq(1)
                    m.d.sync += [tx_kind.eq(KIND_ERR), left.eq(1), tcrc.eq(0xFFFF), k.eq(0),
                                 err_word.eq(Cat(code, kind, length))]
                    m.next = "SOF"
            steps = (("SOF", Const(SOF, 8), "LEN0"), ("LEN0", Cat(Const(0, 2), left)[:8], "LEN1"),
                     ("LEN1", Cat(Const(0, 2), left)[8:16], "KIND"), ("KIND", tx_kind, "PAY"),
                     ("PAY", pay_word.word_select(k, 8), "CRC0"), ("CRC0", tcrc[:8], "CRC1"),
                     ("CRC1", tcrc[8:], "DONE"))
            for state, value, nxt in steps:
                with m.State(state):
                    with m.If(put & ((pay_stale == 0) if state == "PAY" else 1)):
                        m.d.sync += [out.eq(value), txv.eq(1), crc_byte.eq(state in ("LEN0", "LEN1", "KIND", "PAY"))]
                        if state == "PAY":
                            m.d.sync += k.eq(k + 1)
                            with m.If(k == 3):
                                m.d.comb += fifo.r_en.eq(tx_kind == KIND_RSP)
                                m.d.sync += left.eq(left - 1)
                                with m.If(left == 1):
                                    m.next = nxt
                        else:
                            m.next = nxt
            with m.State("DONE"):            # the last CRC byte has gone to the UART
                with m.If(put):
                    m.next = "IDLE"
        return m
