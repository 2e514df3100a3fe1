"""Frames of the UART host link, shared by the RTL (:mod:`.frames`) and the host
(:mod:`spiketrack.sim.link_transport`).

Both directions use one frame format (bytes; multi-byte fields little-endian)::

    SOF (0x5A) | length (2) | kind (1) | payload (length bytes) | CRC-16 (2)

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial 0xFFFF, no reflection) over the length,
kind and payload bytes.

Host to device: ``kind`` is the accelerator command's op (:class:`~spiketrack.hw.accel.protocol.Op`)
and the payload is exactly that command's 32-bit words (header, address, WRITE rows). The link
executes a frame only after all of it arrived and its CRC, kind and length checked out: the
header's op must equal ``kind`` and the length must be exactly the command's (2 words, or
``2 + count·words_per_row`` for a WRITE), at most :data:`MAX_WORDS` words. A frame that fails any
check is never executed: the link discards bytes until the line has been quiet, then replies with
one ``LINK_ERR`` frame. The host sends a frame only after the previous command's reply.

Device to host: ``kind`` :data:`KIND_RSP` carries the accelerator's response words (a reply may
span several frames; frame boundaries carry no meaning), ``kind`` :data:`KIND_ERR` carries a
rejection: ``code, kind received, length received (2)``.

What the issue's commands are in these terms: *load images* = WRITE of ``prog``/``w``/``tab``/
``cst``; *send template crop* / *send search crop* = WRITE of the crop's ``lv`` rows; *start* =
RUN (template or search); *read results* = READ; *counters* = STATUS.
"""

from __future__ import annotations

__all__ = ["SOF", "KIND_RSP", "KIND_ERR", "MAX_WORDS", "LinkErr", "crc16", "encode_frame", "FrameParser"]

SOF = 0x5A
KIND_RSP = 0x01
KIND_ERR = 0x7F
MAX_WORDS = 256          #: words of one host frame (header and address included)


class LinkErr:
    CRC, LENGTH, KIND, TRUNCATED, OVERRUN = 1, 2, 3, 4, 5
    NAMES = {1: "bad CRC", 2: "bad length", 3: "unknown command", 4: "truncated frame",
             5: "bytes arrived while a frame was executing"}


def crc16_byte(crc: int, byte: int) -> int:
    """One byte into CRC-16/CCITT-FALSE (the RTL builds the same eight steps)."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    for b in data:
        crc = crc16_byte(crc, b)
    return crc


def encode_frame(kind: int, payload: bytes) -> bytes:
    body = len(payload).to_bytes(2, "little") + bytes([kind & 0xFF]) + bytes(payload)
    return bytes([SOF]) + body + crc16(body).to_bytes(2, "little")


class FrameParser:
    """Incremental decoder of device-to-host frames: ``feed(bytes)`` returns the complete frames
    as ``(kind, payload)``. Bytes before a SOF are counted in ``skipped``; a frame whose CRC fails
    raises ``ValueError`` naming it (a corrupted reply is never taken as data)."""

    def __init__(self, max_payload: int = 4 * MAX_WORDS):
        self.buf = bytearray()
        self.skipped = 0
        self.max_payload = max_payload

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self.buf += data
        out = []
        while True:
            i = self.buf.find(SOF)
            if i < 0:
                self.skipped += len(self.buf)
                self.buf.clear()
                return out
            if i:
                self.skipped += i
                del self.buf[:i]
            if len(self.buf) < 4:
                return out
            n = int.from_bytes(self.buf[1:3], "little")
            if n > self.max_payload:
                raise ValueError(f"reply frame of {n} payload bytes (at most {self.max_payload}): link out of step")
            if len(self.buf) < 6 + n:
                return out
            body, crc = bytes(self.buf[1:4 + n]), int.from_bytes(self.buf[4 + n:6 + n], "little")
            if crc16(body) != crc:
                raise ValueError(f"reply frame (kind {body[2]:#04x}, {n} bytes) failed its CRC "
                                 f"({crc:#06x} received, {crc16(body):#06x} computed)")
            out.append((body[2], body[3:]))
            del self.buf[:6 + n]
