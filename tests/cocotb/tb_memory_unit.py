"""cocotb testbench for hw/memory_unit.py and hw/retrieval_neuron.py (generated Verilog), driven by
tests/test_hw_memory_unit.py and tests/test_hw_retrieval_neuron.py (both have the same command
interface and counters; the output stream is ``o_acc`` or ``o_spk``).

tb_params: ``commands``: list of {template_mode, cmd (packed), events (packed ints),
expected (packed output beats), predicted (busy cycles without stalls)}; ``valid_prob``, ``ready_prob``,
``output`` (default ``o_acc``).
Checks every beat bit-exactly and ``busy == predicted + stall_in + stall_out`` per command.
"""

import cocotb
from cocotb.triggers import FallingEdge, ReadOnly

from spiketrack.hw.counters import COUNTER_LAG
from spiketrack.sim.cocotb_streams import StreamSink, StreamSource, reset, start_clock, tb_params


def _counters(dut):
    v = dut.counters.value.to_unsigned()
    return {k: (v >> (32 * i)) & 0xFFFFFFFF for i, k in enumerate(("busy", "stall_in", "stall_out", "events"))}


@cocotb.test()
async def test_commands_bit_and_cycle_exact(dut):
    p = tb_params()
    start_clock(dut)
    dut.template_mode.value = 0
    for name in ("cmd", "i_events"):
        getattr(dut, f"{name}__valid").value = 0
        getattr(dut, f"{name}__payload").value = 0
    output = p.get("output", "o_acc")
    getattr(dut, f"{output}__ready").value = 0
    await reset(dut)
    cmd_src = StreamSource(dut, "cmd", seed=1, valid_prob=1.0)
    ev_src = StreamSource(dut, "i_events", seed=2, valid_prob=p.get("valid_prob", 0.6))
    snk = StreamSink(dut, output, seed=3, ready_prob=p.get("ready_prob", 0.5))
    for i, c in enumerate(p["commands"]):
        before = _counters(dut)
        dut.template_mode.value = c["template_mode"]
        cmd_src.send_all([c["cmd"]])
        ev_src.send_all(c["events"])
        await cmd_src.wait_idle()
        snk.received.clear()     # receive(n) returns the first n items in total
        got = await snk.receive(len(c["expected"]), timeout_cycles=20000) if c["expected"] else []
        for _ in range(20000):
            await FallingEdge(dut.clk)
            await ReadOnly()
            if int(dut.busy.value) == 0:
                break
        for _ in range(COUNTER_LAG):   # the counter bank's registered increments
            await FallingEdge(dut.clk)
        after = _counters(dut)
        d = {k: after[k] - before[k] for k in after}
        assert got == c["expected"], f"command {i}: beats differ: {got[:4]} vs {c['expected'][:4]}"
        assert d["busy"] == c["predicted"] + d["stall_in"] + d["stall_out"], f"command {i}: cycles {d} vs {c['predicted']}"
        dut._log.info("command %d ok: %s", i, d)
