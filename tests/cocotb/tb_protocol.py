"""cocotb testbench: StreamSink must flag a DUT that drops valid before the transfer."""

import cocotb

from spiketrack.sim.cocotb_streams import StreamSink, reset, start_clock, wait_cycles


@cocotb.test()
async def test_sink_checks_protocol(dut):
    start_clock(dut)
    await reset(dut)
    StreamSink(dut, "o_stream", seed=3, ready_prob=0.3)
    await wait_cycles(dut, 50)
