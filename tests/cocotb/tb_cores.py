"""cocotb testbench for the synaptic core / neuron unit Verilog (vectors from sim/cocotb_cores.py)."""

import cocotb
from cocotb.triggers import FallingEdge

from spiketrack.sim.cocotb_streams import StreamSink, StreamSource, reset, start_clock, tb_params


def _counter(dut, index):
    return (int(dut.counters.value) >> (32 * index)) & 0xFFFFFFFF


async def _run(dut, valid_prob, ready_prob):
    p = tb_params()
    start_clock(dut)
    await reset(dut)
    before = [_counter(dut, i) for i in range(3)]
    src = StreamSource(dut, p["i_name"], seed=p["seed"], valid_prob=valid_prob)
    snk = StreamSink(dut, p["o_name"], seed=p["seed"] + 1, ready_prob=ready_prob)
    src.send_all(p["inputs"])
    got = await snk.receive(len(p["expected"]), timeout_cycles=200_000)
    assert got == p["expected"], "output beats differ from the golden model"
    for _ in range(4):
        await FallingEdge(dut.clk)
    busy, stall_in, stall_out = (_counter(dut, i) - before[i] for i in range(3))
    assert busy == p["model"] + stall_in + stall_out, (busy, p["model"], stall_in, stall_out)


@cocotb.test()
async def test_no_backpressure(dut):
    await _run(dut, 1.0, 1.0)


@cocotb.test()
async def test_random_backpressure(dut):
    await _run(dut, 0.6, 0.5)
