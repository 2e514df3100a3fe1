"""cocotb testbench of the simulation-speed benchmark (``benchmarks/sim_speed.py``): hand the baked
conv engine its descriptor, then let the clock (10 ns) run ``chunk`` cycles at a time until it is idle; the
cycles and the wall seconds of that free run go to the ``report`` file."""

import json
import time

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly, Timer

from spiketrack.sim.cocotb_streams import reset, start_clock, tb_params


@cocotb.test()
async def free_run(dut):
    p = tb_params()
    start_clock(dut)
    dut.i_desc__valid.value = 0
    await reset(dut)
    t0 = time.perf_counter()
    dut.i_desc__payload.value = p["desc"]
    dut.i_desc__valid.value = 1
    while True:
        await ReadOnly()
        taken = int(dut.i_desc__ready.value)
        await FallingEdge(dut.clk)
        if taken:
            break
    dut.i_desc__valid.value = 0
    n = 0
    while n < p["max_cycles"]:
        await Timer(10 * p["chunk"], "ns")   # the clock runs in the simulator: no Python per cycle
        n += p["chunk"]
        await ReadOnly()
        if not int(dut.busy.value):
            break
    seconds = time.perf_counter() - t0
    with open(p["report"], "w") as fh:
        json.dump({"cycles": n, "seconds": seconds}, fh)
    assert n < p["max_cycles"], f"the engine was still busy after {n} cycles"
