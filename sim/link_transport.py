"""Host side of the UART link: the accelerator driver's transport over framed bytes.

:class:`LinkTransport` turns :class:`~spiketrack.sim.accel_driver.AccelDriver`'s ``send(words)`` /
``recv(n)`` into frames (:mod:`spiketrack.hw.link.protocol`) over any *byte port*: an object with
``write(bytes)`` and ``read(n) -> bytes`` (returns fewer bytes on timeout). A real board's port is
a ``serial.Serial`` (pyserial; :func:`open_serial`); the simulated board top's port is
:class:`QueuePort`, fed by the cocotb testbench (``sim/board_cocotb_tb.py``). The driver and the
frames are the same code in both cases.
"""

from __future__ import annotations

import queue
import time

from spiketrack.hw.link.protocol import KIND_ERR, KIND_RSP, MAX_WORDS, FrameParser, LinkErr, encode_frame

__all__ = ["LinkError", "LinkTransport", "QueuePort", "open_serial"]


class LinkError(RuntimeError):
    """The link rejected a frame (``code``: :class:`~spiketrack.hw.link.protocol.LinkErr`), or the
    reply stream broke."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class QueuePort:
    """A byte port made of two queues (the simulated serial line's host end)."""

    def __init__(self):
        self.to_dev: queue.Queue = queue.Queue()
        self.from_dev: queue.Queue = queue.Queue()
        self.timeout = 600.0

    def write(self, data: bytes) -> int:
        for b in data:
            self.to_dev.put(b)
        return len(data)

    def read(self, n: int) -> bytes:
        out = bytearray()
        deadline = time.monotonic() + self.timeout
        while len(out) < n:
            try:
                out.append(self.from_dev.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return bytes(out)


def open_serial(device: str, baud: int, timeout: float = 5.0):
    """A pyserial port (8N1, no flow control); a clear error when it cannot be opened."""
    try:
        import serial
    except ImportError as e:  # pragma: no cover - pyserial is a pinned dependency
        raise LinkError("pyserial is not installed (pip install pyserial)") from e
    try:
        return serial.Serial(device, baudrate=baud, timeout=timeout)
    except (OSError, serial.SerialException) as e:
        raise LinkError(f"cannot open serial port {device!r}: {e}") from e


class LinkTransport:
    """Framed transport for :class:`~spiketrack.sim.accel_driver.AccelDriver`.

    ``send(words)`` sends one command as one frame (kind = the command's op); ``recv(n)`` returns
    the next ``n`` response words, reading ``KIND_RSP`` frames as needed. A ``KIND_ERR`` frame
    raises :class:`LinkError` naming the reason; so does a reply that stops (``read`` timeout).
    """

    max_words = MAX_WORDS

    def __init__(self, port):
        self.port = port
        self.parser = FrameParser()
        self.words: list[int] = []
        self.frames_sent = 0

    def send(self, words) -> None:
        words = [int(w) & 0xFFFFFFFF for w in words]
        if not 2 <= len(words) <= MAX_WORDS:
            raise ValueError(f"a command frame carries 2..{MAX_WORDS} words, got {len(words)}")
        self.send_frame(words[0] & 15, b"".join(w.to_bytes(4, "little") for w in words))

    def send_frame(self, kind: int, payload: bytes) -> None:
        self.send_raw(encode_frame(kind, payload))

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests use it to send corrupted frames)."""
        self.port.write(data)
        self.frames_sent += 1

    def _pump(self) -> None:
        data = self.port.read(1)
        if not data:
            raise LinkError("no reply from the device (serial read timed out)")
        waiting = getattr(self.port, "in_waiting", 0)
        if waiting:
            data += self.port.read(waiting)
        try:
            frames = self.parser.feed(data)
        except ValueError as e:
            raise LinkError(str(e)) from None
        for kind, payload in frames:
            if kind == KIND_ERR:
                code = payload[0]
                raise LinkError(f"the device rejected a frame: {LinkErr.NAMES.get(code, code)} "
                                f"(kind {payload[1]:#04x}, length {int.from_bytes(payload[2:4], 'little')})", code)
            if kind != KIND_RSP or len(payload) % 4:
                raise LinkError(f"unexpected reply frame kind {kind:#04x} with {len(payload)} bytes")
            self.words += [int.from_bytes(payload[i:i + 4], "little") for i in range(0, len(payload), 4)]

    def recv(self, n: int) -> list[int]:
        while len(self.words) < n:
            self._pump()
        out, self.words = self.words[:n], self.words[n:]
        return out


class UartLine:
    """The simulated serial line between a :class:`QueuePort` and a design's ``rx``/``tx`` pins,
    one clock cycle per :meth:`step` (8N1, ``divisor`` cycles per bit; samples mid-bit)."""

    def __init__(self, port: QueuePort, divisor: int):
        self.port, self.divisor = port, divisor
        self.out_bits: list[int] = []     # bits still to send on the design's rx (with repeats)
        self.rx_bits = 0                  # >0: receiving from tx, bits left
        self.rx_cnt = 0
        self.rx_sr = 0
        self.prev_tx = 1
        self.bytes_in = self.bytes_out = 0
        self.framing_errors = 0

    def active(self) -> bool:
        """A byte is on the line in either direction."""
        return bool(self.out_bits) or self.rx_bits > 0

    def next_rx(self, block: float = 0.0) -> int:
        """The level to drive on the design's ``rx`` this cycle (``block``: seconds to wait for a
        host byte when none is queued)."""
        if not self.out_bits:
            try:
                b = self.port.to_dev.get(timeout=block) if block else self.port.to_dev.get_nowait()
            except queue.Empty:
                return 1
            bits = [0] + [(b >> i) & 1 for i in range(8)] + [1]
            self.out_bits = [v for v in bits for _ in range(self.divisor)]
            self.bytes_out += 1
        return self.out_bits.pop(0)

    def sample_tx(self, tx: int) -> None:
        """The design's ``tx`` this cycle."""
        tx = int(tx)
        if self.rx_bits == 0:
            if self.prev_tx == 1 and tx == 0:
                self.rx_bits, self.rx_cnt, self.rx_sr = 10, self.divisor // 2, 0
        else:
            self.rx_cnt -= 1
            if self.rx_cnt == 0:
                self.rx_cnt = self.divisor
                self.rx_bits -= 1
                if self.rx_bits == 9 and tx != 0:
                    self.rx_bits = 0                       # a glitch, not a start bit
                elif 1 <= self.rx_bits <= 8:
                    self.rx_sr |= tx << (8 - self.rx_bits)
                elif self.rx_bits == 0:
                    if tx == 1:
                        self.port.from_dev.put(self.rx_sr)
                        self.bytes_in += 1
                    else:
                        self.framing_errors += 1
        self.prev_tx = tx
