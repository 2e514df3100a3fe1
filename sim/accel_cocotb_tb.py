"""cocotb testbench of the accelerator top: executes a host plan (``sim/accel_sim.build_plan``) or a
host job (``job``: ``"module:function"`` called with the driver; ``spiketrack track --backend rtl``)
through the host driver, UART-free, on the generated Verilog (Icarus or Verilator).

The driver runs in a thread; this coroutine moves the command and response words (under
Verilator built with the stream pump and with no gaps or backpressure asked for, whole queues of
them through the simulator's C++ main: ``sim/cocotb_pump.py``; otherwise here), one cycle at a
time while words flow (while a program runs and the host has nothing to send, the simulator runs
freely until ``busy`` falls, at most :data:`FREE_RUN_CYCLES` at a time), with random gaps on the command stream and random backpressure on the response stream
(``gaps``, ``stall``), and checks the response stream's rules (valid held and payload stable
while stalled). The report is written to the ``report`` path of the testbench parameters.
"""

import json
import random

import cocotb
from cocotb.triggers import FallingEdge, First, ReadOnly, Timer
from cocotb.utils import get_sim_time

from spiketrack.hw.accel.top import mem_widths
from spiketrack.sim.accel_driver import AccelDriver, SimTransport
from spiketrack.sim.cocotb_streams import reset, start_clock, tb_params


#: Most cycles the simulator runs on its own while a program runs (it wakes the testbench earlier
#: when ``busy`` falls); then the testbench looks at the host's queue and ``busy`` again.
FREE_RUN_CYCLES = 100_000


@cocotb.test()
async def run_plan(dut):
    from spiketrack.sim.accel_sim import execute_plan

    p = tb_params()
    plan = None
    if p.get("plan"):
        with open(p["plan"]) as fh:
            plan = json.load(fh)
    lanes, addr_bits = p["lanes"], p["addr_bits"]
    gaps, stall, timeout = p.get("gaps", 0.0), p.get("stall", 0.0), p["timeout"]
    rng = random.Random(p.get("seed", 0))
    start_clock(dut)
    dut.i_cmd__valid.value = 0
    dut.o_rsp__ready.value = 0
    await reset(dut)
    tr = SimTransport()
    state = {"cycle": 0}
    drv = AccelDriver(tr, mem_widths(lanes, addr_bits))
    if p.get("depths"):   # backdoor reads of the memories (built readable, with the C++ pump)
        from spiketrack.sim.cocotb_pump import CppPump, memory_reader, pump_available

        if pump_available():
            tr.peek_reader = memory_reader(CppPump(), p["depths"], drv.widths, bank_rows=p.get("bank_rows"))
    if plan is not None:
        thread = tr.start_host(lambda: execute_plan(
            drv, plan, lanes, lambda: state["cycle"],
            lambda i, n: dut._log.info(f"run {i}/{n} done at cycle {state['cycle']}"),
            readback=p.get("readback", "host")))
    else:   # a host job: "module:function" called as fn(driver, cycle, **kwargs), its value reported
        import importlib

        mod, _, fn = p["job"].partition(":")
        job = getattr(importlib.import_module(mod), fn)
        thread = tr.start_host(lambda: job(drv, lambda: state["cycle"], **p.get("kwargs", {})))
    use_pump = bool(p.get("pump")) and gaps == 0 and stall == 0
    if use_pump:
        # Verilator with the C++ stream pump: whole word queues handed to C++ (sim/cocotb_pump.py)
        from spiketrack.sim.cocotb_pump import pump_streams

        await pump_streams(dut, tr, state, FREE_RUN_CYCLES)
    cur, quiet, io_quiet, stalled = None, 0, 0, None
    free_ns = FREE_RUN_CYCLES * 10
    clk, busy_h = dut.clk, dut.busy
    cmd_valid, cmd_payload, cmd_ready = dut.i_cmd__valid, dut.i_cmd__payload, dut.i_cmd__ready
    rsp_valid, rsp_payload, rsp_ready = dut.o_rsp__valid, dut.o_rsp__payload, dut.o_rsp__ready
    driven = [0, None, 0]   # the values last written to valid, payload, ready: a write only on change
    while not tr.closed.is_set():
        if cur is None and tr.to_dev.empty() and not tr.peeks.empty() and not int(busy_h.value):
            tr.serve_peeks()   # idle and every command taken: the simulation stands still here
        if (cur is None and stalled is None and io_quiet > 4 and int(busy_h.value) and tr.to_dev.empty()
                and not int(rsp_valid.value)):
            # a program runs and the host has nothing to send: let the simulator run freely
            # (response held: ready low) until busy falls, then look again
            await FallingEdge(clk)
            cmd_valid.value = 0
            rsp_ready.value = 0
            driven[0] = driven[2] = 0
            await First(FallingEdge(busy_h), Timer(free_ns, "ns"))
            await ReadOnly()
            state["cycle"] = int(get_sim_time("ns")) // 10
            tr.observe_busy(bool(int(busy_h.value)))
            continue
        await FallingEdge(clk)
        if cur is None:
            cur = tr.next_word(quiet, timeout + 32)
        drive = int(cur is not None and (gaps == 0 or rng.random() >= gaps))
        if driven[0] != drive:
            cmd_valid.value = driven[0] = drive
        if drive and driven[1] != cur:
            cmd_payload.value = driven[1] = cur
        ready = int(stall == 0 or rng.random() >= stall)
        if driven[2] != ready:
            rsp_ready.value = driven[2] = ready
        await ReadOnly()
        state["cycle"] = int(get_sim_time("ns")) // 10
        if drive and int(cmd_ready.value):
            cur = None
        valid = int(rsp_valid.value)
        if stalled is not None:
            assert valid and int(rsp_payload.value) == stalled, "o_rsp: valid or payload changed while stalled"
        if valid:
            word = int(rsp_payload.value)
            if ready:
                tr.deliver((word,))
                stalled = None
            else:
                stalled = word
        else:
            stalled = None
        busy = bool(int(busy_h.value))
        quiet = 0 if (cur is not None or valid or busy) else quiet + 1
        io_quiet = 0 if (cur is not None or valid) else io_quiet + 1
        tr.observe_busy(busy)
    thread.join()
    out = {"report": tr.result} if tr.error is None else {"error": repr(tr.error)}
    if tr.error is None and int(dut.collided.value):   # sticky since reset (hw/accel/top.py)
        tr.error = RuntimeError("a memory read collided with a write to the same row: its data are "
                                "undefined on the board (hw/banked_memory.py)")
        out = {"error": repr(tr.error)}
    with open(p["report"], "w") as fh:
        json.dump({**out, "cycles_simulated": state["cycle"], "stream_pump": use_pump}, fh)
    assert tr.error is None, repr(tr.error)
