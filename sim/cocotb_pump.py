"""The accelerator's command and response streams moved by the simulator's C++ main.

Under Verilator with the C++ clock and the stream pump (``run_cocotb(..., cpp_clock_ns=...,
cpp_stream_pump=True)``, ``sim/verilator_main.cpp``), :func:`pump_streams` replaces the
testbench's word-per-cycle loop: Python hands whole queues of command words to C++ and takes the
collected response words, and the simulator runs between those hand-overs without waking Python
on any cycle. The transfer rules are the testbench loop's with no gaps and no backpressure
(response ``ready`` held high); random gaps and backpressure stay with the Python loop
(``sim/accel_cocotb_tb.py``). The device's behaviour does not depend on when the host's words
arrive (a program's cycles are counted by the device from the RUN command's acceptance), so the
reports are the same, only faster to get.
"""

from __future__ import annotations

import ctypes
import queue

from cocotb.triggers import FallingEdge, First, ReadOnly, Timer
from cocotb.utils import get_sim_time

__all__ = ["CppPump", "memory_reader", "pump_available", "pump_streams"]

#: the exported functions of the pump (``sim/verilator_main.cpp``)
_FUNCS = {"spiketrack_pump_enable": ([ctypes.c_int], None),
          "spiketrack_pump_push": ([ctypes.POINTER(ctypes.c_uint32), ctypes.c_int], None),
          "spiketrack_pump_pending": ([], ctypes.c_int),
          "spiketrack_pump_available": ([], ctypes.c_int),
          "spiketrack_pump_take": ([ctypes.POINTER(ctypes.c_uint32), ctypes.c_int], ctypes.c_int),
          "spiketrack_pump_busy_falls": ([], ctypes.c_uint64),
          "spiketrack_pump_busy": ([], ctypes.c_int),
          "spiketrack_peek_rows": ([ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                    ctypes.POINTER(ctypes.c_uint32)], ctypes.c_int)}


def pump_available() -> bool:
    """Whether this simulator process has the pump compiled in (its symbols exported)."""
    try:
        return hasattr(ctypes.CDLL(None), "spiketrack_pump_enable")
    except OSError:
        return False


class CppPump:
    """The C++ stream pump of this simulator process, through ctypes."""

    def __init__(self):
        lib = ctypes.CDLL(None)
        if not hasattr(lib, "spiketrack_pump_enable"):
            raise RuntimeError("this simulator was not built with the stream pump "
                               "(run_cocotb(..., cpp_stream_pump=True))")
        for name, (args, res) in _FUNCS.items():
            f = getattr(lib, name)
            f.argtypes, f.restype = args, res
            setattr(self, name.removeprefix("spiketrack_pump_").removeprefix("spiketrack_"), f)

    def push_words(self, words: list[int]) -> None:
        if words:
            self.push((ctypes.c_uint32 * len(words))(*words), len(words))

    def take_words(self) -> list[int]:
        n = self.available()
        if not n:
            return []
        buf = (ctypes.c_uint32 * n)()
        got = self.take(buf, n)
        return list(buf[:got])


def memory_reader(pump: CppPump, depths: dict[str, int], widths: dict[str, int], top: str = "accel",
                  bank_rows: int | None = None):
    """A backdoor reader ``read(mem, addr, n) -> rows`` of the accelerator's memories
    (:attr:`SimTransport.peek_reader <spiketrack.sim.accel_driver.SimTransport.peek_reader>`): the
    rows straight from the simulator's block-RAM arrays (``accel.mem_<mem>.bank<b>``, made readable
    by ``run_cocotb(verilator_readable=...)``), where :func:`~spiketrack.hw.banked_memory.bank_spans`
    puts them (``bank_rows``: the design's, ``Accelerator(bank_rows=...)``). Costs no simulated
    cycle; call it only while the simulation stands still."""
    from spiketrack.hw.banked_memory import BANK_ROWS, bank_spans

    bank_rows = bank_rows or BANK_ROWS

    def read(mem: str, addr: int, n: int) -> list[int]:
        if not depths.get(mem):
            raise ValueError(f"backdoor read of memory {mem!r}: not in this design")
        k = -(-widths[mem] // 32)
        rows: list[int] = []
        for bank, first, cnt in bank_spans(depths[mem], addr, n, bank_rows):
            buf = (ctypes.c_uint32 * (cnt * k))()
            rc = pump.peek_rows(f"{top}.mem_{mem}.{bank}".encode(), first, cnt, k, buf)
            if rc:
                raise RuntimeError(f"backdoor read of {top}.mem_{mem}.{bank} rows {first}..{first + cnt - 1} "
                                   f"failed ({'no such array: not built readable' if rc == -1 else 'row outside it'})")
            raw = bytes(buf)
            rows += [int.from_bytes(raw[4 * k * r:4 * k * (r + 1)], "little") for r in range(cnt)]
        return rows

    return read


#: first and largest number of cycles the simulator runs between two looks while the host waits
#: for response words
_WAIT_FIRST, _WAIT_MOST = 32, 4096


async def pump_streams(dut, tr, state: dict, free_run_cycles: int, period_ns: int = 10) -> None:
    """Move the words between the host transport ``tr`` (:class:`~spiketrack.sim.accel_driver.SimTransport`)
    and the design through the C++ pump until the host closes the transport. ``state["cycle"]``
    follows the simulator's cycle; every fall of ``busy`` is reported to ``tr``."""
    pump = CppPump()
    await FallingEdge(dut.clk)
    dut.i_cmd__valid.value = 0
    dut.o_rsp__ready.value = 0
    await ReadOnly()
    pump.enable(1)
    falls = pump.busy_falls()
    wait = _WAIT_FIRST
    try:
        while True:
            tr.kick.clear()
            words = []
            while True:
                try:
                    words.append(tr.to_dev.get_nowait())
                except queue.Empty:
                    break
            pump.push_words(words)
            pending, busy = pump.pending(), bool(pump.busy())
            receiving = tr.undelivered_wanted() > 0
            if not pending and not busy and not tr.peeks.empty():   # idle, every command taken
                tr.serve_peeks()
                continue
            if pending:
                await Timer((pending + 16) * period_ns, "ns")
            elif busy and not receiving:
                await First(FallingEdge(dut.busy), Timer(free_run_cycles * period_ns, "ns"))
                await FallingEdge(dut.clk)   # where the pump has counted the fall
            elif receiving or busy:
                await Timer(wait * period_ns, "ns")
            elif tr.closed.is_set():
                break
            else:   # nothing to do until the host sends or waits for something: time stands still
                tr.kick.wait(0.05)
                continue
            state["cycle"] = int(get_sim_time("ns")) // period_ns
            got = pump.take_words()
            tr.deliver(got)
            wait = _WAIT_FIRST if got or pending else min(2 * wait, _WAIT_MOST)
            now = pump.busy_falls()
            for _ in range(now - falls):
                tr.note_busy_fell()
            falls = now
            tr.was_busy = bool(pump.busy())
    finally:
        pump.enable(0)
