"""cocotb testbench of the accelerator behind its UART link (``LinkedAccelerator``): the host
driver (a thread, the same ``AccelDriver`` + ``LinkTransport`` a board uses) executes a host plan
over framed bytes; this coroutine is the serial line. It drives ``rx`` one bit per ``divisor``
clock periods (``Timer``: the simulator runs freely in between), waits for ``tx``'s falling edge
and samples it mid-bit.

Parameters (``tb_params``): ``plan`` (a JSON plan of ``sim/accel_sim.build_plan``), ``lanes``,
``divisor``, ``report`` (output path), and ``corrupt``: send one corrupted frame first and
require its rejection.
"""

import json
import threading

import cocotb
from cocotb.triggers import FallingEdge, Timer
from cocotb.utils import get_sim_time

from spiketrack.hw.accel.top import mem_widths
from spiketrack.sim.accel_driver import AccelDriver
from spiketrack.sim.cocotb_streams import reset, start_clock, tb_params
from spiketrack.sim.link_transport import LinkTransport, QueuePort

PERIOD_NS = 10


@cocotb.test()
async def run_plan_over_uart(dut):
    from spiketrack.sim.accel_sim import execute_plan
    from spiketrack.sim.board_host import corrupted_frame_check

    p = tb_params()
    with open(p["plan"]) as fh:
        plan = json.load(fh)
    bit_ns = p["divisor"] * PERIOD_NS
    start_clock(dut, period_ns=PERIOD_NS)
    dut.rx.value = 1
    await reset(dut)
    port = QueuePort()
    done = threading.Event()
    result: dict = {}

    def cycle():
        return int(get_sim_time("ns")) // PERIOD_NS

    def host():
        try:
            tr = LinkTransport(port)
            drv = AccelDriver(tr, mem_widths(p["lanes"]))
            out = {}
            if p.get("corrupt"):
                out["corrupt"] = corrupted_frame_check(drv, tr)
            out["plan"] = execute_plan(drv, plan, p["lanes"], cycle)
            out["frames_sent"] = tr.frames_sent
            result["value"] = out
        except BaseException as e:  # reported by the coroutine below
            result["error"] = repr(e)
        finally:
            done.set()

    async def line_to_device():
        while not done.is_set():
            try:
                b = port.to_dev.get_nowait()
            except Exception:
                await Timer(8 * bit_ns, "ns")
                continue
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                dut.rx.value = bit
                await Timer(bit_ns, "ns")

    async def line_from_device():
        while not done.is_set():
            if int(dut.tx.value):
                await FallingEdge(dut.tx)             # no Python wake-ups while the line is idle
            await Timer(bit_ns // 2, "ns")            # middle of the start bit
            byte = 0
            for i in range(8):
                await Timer(bit_ns, "ns")
                byte |= int(dut.tx.value) << i
            await Timer(bit_ns, "ns")
            assert int(dut.tx.value) == 1, "tx: stop bit low"
            port.from_dev.put(byte)

    thread = threading.Thread(target=host, daemon=True)
    thread.start()
    cocotb.start_soon(line_to_device())
    cocotb.start_soon(line_from_device())
    while not done.is_set():
        await Timer(2000 * PERIOD_NS, "ns")
    thread.join()
    with open(p["report"], "w") as fh:
        json.dump({**result, "cycles_simulated": cycle()}, fh)
    assert "error" not in result, result.get("error")
