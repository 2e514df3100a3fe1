"""cocotb testbench for the StreamAdder of tests/test_sim_cocotb_runner.py.

tb_params: ``vectors`` (path of a JSON list of [a, b] pairs) or ``n``/``seed`` for random
pairs; ``width``; ``expect_offset`` (added to the expected sums: nonzero = deliberately wrong
expectation, used to prove failures propagate); ``valid_prob`` / ``ready_prob``.
"""

import json
import random

import cocotb

from spiketrack.sim.cocotb_streams import StreamSink, StreamSource, reset, start_clock, tb_params


@cocotb.test()
async def test_sums_under_backpressure(dut):
    p = tb_params()
    width = int(p.get("width", 8))
    if "vectors" in p:
        with open(p["vectors"]) as fh:
            pairs = [tuple(v) for v in json.load(fh)]
    else:
        rng = random.Random(p.get("seed", 0))
        pairs = [(rng.randrange(1 << width), rng.randrange(1 << width)) for _ in range(p.get("n", 40))]
    start_clock(dut)
    await reset(dut)
    src = StreamSource(dut, "i_stream", seed=1, valid_prob=p.get("valid_prob", 0.6))
    snk = StreamSink(dut, "o_stream", seed=2, ready_prob=p.get("ready_prob", 0.5))
    src.send_all(a | (b << width) for a, b in pairs)  # struct payload: field a in the LSBs
    got = await snk.receive(len(pairs), timeout_cycles=50 * len(pairs) + 100)
    expected = [a + b + int(p.get("expect_offset", 0)) for a, b in pairs]
    mismatches = [(i, g, e) for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert not mismatches, f"{len(mismatches)} wrong sums, first (index, got, expected): {mismatches[:3]}"
    dut._log.info("%d sums ok in %d sink cycles", len(got), snk.cycles)


@cocotb.test()
async def test_reset_clears_output_valid(dut):
    start_clock(dut)
    await reset(dut)
    assert int(dut.o_stream__valid.value) == 0
