"""8N1 UART receiver and transmitter with Amaranth 0.5 byte streams.

``divisor`` is clock cycles per bit (``clock_hz / baud``, at least 4). The receiver synchronises
``rx`` with two flip-flops, takes the start bit's middle and samples every bit there; a byte whose
stop bit is low is dropped and counted in ``framing_errors``; a byte that arrives while the
previous one is still unread is dropped and counted in ``overruns``.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx"]


def _check_divisor(divisor: int) -> int:
    if int(divisor) < 4:
        raise ValueError(f"UART divisor (clock cycles per bit) must be at least 4, got {divisor}")
    return int(divisor)


class UartRx(wiring.Component):
    """UART receiver.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    rx : In(1)
        The serial line (idle high).
    o_byte : Out(stream.Signature(8))
        Received bytes.
    framing_errors, overruns : Out(16)
        Dropped bytes, by reason (wrap around).
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"rx": In(1, init=1), "o_byte": Out(stream.Signature(8)),
                          "framing_errors": Out(16), "overruns": Out(16)})

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        s1, s2 = Signal(init=1), Signal(init=1)
        m.d.sync += [s1.eq(self.rx), s2.eq(s1)]
        cnt = Signal(range(D))
        bit = Signal(range(8))
        sr = Signal(8)
        with m.If(self.o_byte.ready):
            m.d.sync += self.o_byte.valid.eq(0)
        with m.FSM(name="rx"):
            with m.State("IDLE"):
                with m.If(~s2):
                    m.d.sync += cnt.eq(D // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    m.d.sync += [cnt.eq(D - 1), bit.eq(0)]
                    m.next = "DATA"
                    with m.If(s2):          # a glitch, not a start bit
                        m.next = "IDLE"
            with m.State("DATA"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    m.d.sync += [cnt.eq(D - 1), sr.eq(Cat(sr[1:], s2)), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                m.d.sync += cnt.eq(cnt - 1)
                with m.If(cnt == 0):
                    with m.If(~s2):
                        m.d.sync += self.framing_errors.eq(self.framing_errors + 1)
                        m.next = "BREAK"
                    with m.Else():
                        with m.If(self.o_byte.valid & ~self.o_byte.ready):
                            m.d.sync += self.overruns.eq(self.overruns + 1)
                        with m.Else():
                            m.d.sync += [self.o_byte.payload.eq(sr), self.o_byte.valid.eq(1)]
                        m.next = "IDLE"
            with m.State("BREAK"):          # wait for the line to go idle again
                with m.If(s2):
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """UART transmitter.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit.

    Members
    -------
    i_byte : In(stream.Signature(8))
        Bytes to send.
    tx : Out(1)
        The serial line (idle high).
    """

    def __init__(self, divisor: int):
        self.divisor = _check_divisor(divisor)
        super().__init__({"i_byte": In(stream.Signature(8)), "tx": Out(1, init=1)})

    def elaborate(self, platform):
        m = Module()
        D = self.divisor
        cnt = Signal(range(D))
        left = Signal(range(11))
        sr = Signal(10, init=0x3FF)
        m.d.comb += self.tx.eq(sr[0])
        with m.If(left == 0):
            m.d.comb += self.i_byte.ready.eq(1)
            with m.If(self.i_byte.valid):
                m.d.sync += [sr.eq(Cat(0, self.i_byte.payload, 1)), left.eq(10), cnt.eq(D - 1)]
        with m.Else():
            m.d.sync += cnt.eq(cnt - 1)
            with m.If(cnt == 0):
                m.d.sync += [sr.eq(Cat(sr[1:], 1)), left.eq(left - 1), cnt.eq(D - 1)]
        return m
