"""Host routines shared by the simulated board (cocotb, amaranth.sim) and a real board."""

from __future__ import annotations

from spiketrack.hw.accel.protocol import MEM_IDS, Op, header
from spiketrack.hw.link.protocol import LinkErr, encode_frame
from spiketrack.sim.link_transport import LinkError

__all__ = ["corrupted_frame_check"]


def corrupted_frame_check(drv, tr) -> dict:
    """Send a WRITE of ``lv`` row 0 with one payload bit flipped; require a ``bad CRC`` rejection,
    and that row 0 still holds what it held before (the frame was not executed)."""
    before = drv.read("lv", 0, 1)[0]
    w = drv.widths["lv"]
    row = (before ^ 1) & ((1 << w) - 1)
    words = [header(Op.WRITE, MEM_IDS["lv"], 1), 0, row & 0xFFFFFFFF]
    frame = bytearray(encode_frame(Op.WRITE, b"".join(x.to_bytes(4, "little") for x in words)))
    frame[-4] ^= 0x08                                   # one bit of the payload's last byte
    tr.send_raw(bytes(frame))
    try:
        tr.recv(1)
    except LinkError as e:
        if e.code != LinkErr.CRC:
            raise
        after = drv.read("lv", 0, 1)[0]
        if after != before:
            raise AssertionError(f"a rejected frame changed lv row 0: {before:#x} -> {after:#x}")
        return {"rejected": str(e), "unchanged": True}
    raise AssertionError("a corrupted frame was not rejected")
