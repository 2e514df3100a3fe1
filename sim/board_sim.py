"""The accelerator behind its UART link (:class:`~spiketrack.hw.accel.board.LinkedAccelerator`) in
amaranth.sim, driven by the host driver over framed bytes on a simulated serial line.

:func:`run_link_session` runs ``fn(driver, transport, state)`` in a host thread against the design;
the testbench moves the line one cycle at a time (:class:`~spiketrack.sim.link_transport.UartLine`).
"""

from __future__ import annotations

import threading

from spiketrack.hw.accel.board import LinkedAccelerator
from spiketrack.hw.accel.protocol import COUNTERS
from spiketrack.hw.accel.top import UNITS
from spiketrack.sim.accel_driver import AccelDriver
from spiketrack.sim.link_transport import LinkTransport, QueuePort, UartLine
from spiketrack.sim.unit_sim import run_simulator

__all__ = ["run_link_session"]


def run_link_session(fn, *, lanes: int = 8, depths: dict | None = None, divisor: int = 4, gap_cycles: int = 400,
                     preload: dict | None = None, vcd: str | None = None, addr_bits: int = 16, units: tuple = UNITS,
                     counters: tuple = COUNTERS, ext: str | None = None, ext_init=(), ext_depth: int | None = None,
                     second_port_rows: dict | None = None, cst_bits: int = 16, read_registers: str = "data"):
    """Run ``fn(driver, transport, state)`` against the simulated :class:`LinkedAccelerator`;
    returns ``fn``'s result (``state["cycle"]``: cycles so far, ``state["line"]``: the line).
    ``addr_bits``, ``units``, ``counters``, ``ext``, ``ext_init``, ``ext_depth``, ``second_port_rows``, ``cst_bits``,
    ``read_registers``: the accelerator's
    configuration (``Accelerator``'s arguments; ``ext="model"``: an external memory holding
    ``ext_init``, or empty for the host to load)."""
    from amaranth.sim import Simulator

    dut = LinkedAccelerator(lanes, depths, addr_bits, divisor=divisor, gap_cycles=gap_cycles, units=units,
                            counters=counters, ext=ext, ext_init=ext_init, ext_depth=ext_depth,
                            second_port_rows=second_port_rows, cst_bits=cst_bits, read_registers=read_registers)
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    port = QueuePort()
    port.timeout = 900.0
    line = UartLine(port, divisor)
    state: dict = {"cycle": 0, "line": line}
    done = threading.Event()
    result: dict = {}

    def host():
        try:
            tr = LinkTransport(port)
            result["value"] = fn(AccelDriver(tr, dut.accel.widths), tr, state)
        except BaseException as e:
            result["error"] = e
        finally:
            done.set()

    async def tb(ctx):
        for name, rows in (preload or {}).items():
            for i, row in enumerate(rows):
                ctx.set(dut.accel.mems[name].row(i), dut.accel.stored_row(name, row))
        thread = threading.Thread(target=host, daemon=True)
        thread.start()
        quiet, last_rx = 0, None
        patience = gap_cycles + 32 * divisor
        while not done.is_set():
            rx = line.next_rx(0.05 if quiet > patience else 0.0)
            if rx != last_rx:
                ctx.set(dut.rx, rx)
                last_rx = rx
            _, _, tx, busy = await ctx.tick().sample(dut.tx, dut.busy)
            state["cycle"] += 1
            line.sample_tx(tx)
            quiet = 0 if (busy or line.active() or tx == 0) else quiet + 1
        thread.join()

    sim.add_testbench(tb)
    run_simulator(sim, vcd)
    if "error" in result:
        raise result["error"]
    return result.get("value")
