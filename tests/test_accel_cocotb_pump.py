"""The accelerator's Verilog under cocotb + Verilator: the C++ stream pump (sim/cocotb_pump.py,
sim/verilator_main.cpp) and the testbench's word-per-cycle loop run the same host plan to the same
report, and the pump is what runs when no gaps or backpressure are asked for."""

import torch

from spiketrack.compiler.accel import lower_to_accel
from spiketrack.sim.accel_cocotb import run_plan_cocotb
from spiketrack.sim.accel_sim import build_plan
from spiketrack.sim.reduced import reduced_network


#: counters that count the host's side too: the free-running cycle counter (the host's time between
#: the two STATUS commands around a run) and the response stream's backpressure
HOST_TIMED = ("cycles", "rsp_stall")


def _per_pass(report):
    """Each pass's run cycles, prediction and counters, less those of :data:`HOST_TIMED`."""
    return {k: (v["cycles"], v["predicted_cycles"], {c: n for c, n in v["counters"].items() if c not in HOST_TIMED})
            for k, v in report["per_pass"].items()}


def test_the_stream_pump_and_the_testbench_loop_give_the_same_report():
    net, cfg = reduced_network()
    ap = lower_to_accel(net, 8)
    g = torch.Generator().manual_seed(5)
    inputs = [(torch.randint(0, 256, (cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size), generator=g),
               torch.randint(0, 256, (1, 1, 3, cfg.search_size, cfg.search_size), generator=g))]
    plan = build_plan(net, ap, inputs, check="outputs", load=False)
    init = {m: ap.images[m] for m in ("prog", "w", "tab", "cst")}
    runs = {"pump": run_plan_cocotb(ap, plan, init=init),
            "loop": run_plan_cocotb(ap, plan, init=init, pump=False),
            "loop, gaps and backpressure": run_plan_cocotb(ap, plan, init=init, gaps=0.3, stall=0.3, seed=4)}
    assert [r["stream_pump"] for r in runs.values()] == [True, False, False]
    for name, r in runs.items():
        assert r["mismatches"] == 0 and r["checks"] > 0 and r["cycle_model_exact"], name
    assert set(runs["pump"]["per_pass"]) == {"template_update", "search_frame_0"}
    assert _per_pass(runs["pump"]) == _per_pass(runs["loop"]) == _per_pass(runs["loop, gaps and backpressure"])
    stalls = {name: sum(v["counters"]["rsp_stall"] for v in r["per_pass"].values()) for name, r in runs.items()}
    assert stalls["pump"] == stalls["loop"] == 0 < stalls["loop, gaps and backpressure"]
    # the host's words took no more cycles through the pump than one at a time through Python
    assert runs["pump"]["cycles_simulated"] <= runs["loop"]["cycles_simulated"]
