"""The accelerator's Verilog under cocotb + Verilator: the C++ stream pump (sim/cocotb_pump.py,
sim/verilator_main.cpp) and the testbench's word-per-cycle loop run the same host plan to the same
report, and the pump is what runs when no gaps or backpressure are asked for."""

import torch

from spiketrack.compiler.accel import lower_to_accel
from spiketrack.hw.banked_memory import BANK_ROWS
from spiketrack.sim.accel_cocotb import SHORT_RUN_BANK_ROWS, run_plan_cocotb
from spiketrack.sim.accel_sim import build_plan
from spiketrack.sim.reduced import reduced_network


#: counters that count the host's side too: the free-running cycle counter (the host's time between
#: the two STATUS commands around a run) and the response stream's backpressure
HOST_TIMED = ("cycles", "rsp_stall")


def _per_pass(report):
    """Each pass's run cycles, prediction and counters, less those of :data:`HOST_TIMED`."""
    return {k: (v["cycles"], v["predicted_cycles"], {c: n for c, n in v["counters"].items() if c not in HOST_TIMED})
            for k, v in report["per_pass"].items()}


def _reduced_plan(seed: int, check: str):
    """The reduced network compiled for P = 8, a host plan of one template pass and one search
    frame of random pixels (images baked in: ``init``)."""
    net, cfg = reduced_network()
    ap = lower_to_accel(net, 8)
    g = torch.Generator().manual_seed(seed)
    inputs = [(torch.randint(0, 256, (cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size), generator=g),
               torch.randint(0, 256, (1, 1, 3, cfg.search_size, cfg.search_size), generator=g))]
    return ap, build_plan(net, ap, inputs, check=check, load=False), {m: ap.images[m] for m in ("prog", "w", "tab", "cst")}


def test_the_stream_pump_and_the_testbench_loop_give_the_same_report():
    ap, plan, init = _reduced_plan(5, "outputs")
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


def test_backdoor_reads_check_every_layer_as_the_host_reads_do():
    """`readback="peek"`: every hardware op's output read straight from the simulator's block-RAM
    arrays (no READ command) is compared like a host read: 0 mismatches over every layer on the
    true expectations, and on expectations with rows changed (in three memories, one across the
    two banks of the template memory) exactly the changed rows differ, as with READ commands.
    The reduced network's Verilator builds use banks of ``SHORT_RUN_BANK_ROWS`` rows
    (``sim_bank_rows``; the boards' ``BANK_ROWS`` would hold each of its memories in one bank)."""
    ap, plan, init = _reduced_plan(6, "layers")
    assert ap.depths["tm"] > SHORT_RUN_BANK_ROWS and SHORT_RUN_BANK_ROWS < BANK_ROWS
    r = run_plan_cocotb(ap, plan, init=init, readback="peek")
    assert r["bank_rows"] == SHORT_RUN_BANK_ROWS
    assert r["readback"] == "peek" and r["mismatches"] == 0 and r["cycle_model_exact"]
    assert r["layers_checked"] == sum(len(n.layers) for n in ap.nodes) and r["outputs_checked"] == 0
    # a template memory that spans both banks of `tm` (512 + 384 rows)
    checks = [s for s in plan if s["op"] == "check"]
    crossing = [s for s in checks if s["mem"] == "tm" and any(b < SHORT_RUN_BANK_ROWS < b + n for b, n in s["spans"])]
    assert crossing, "no checked tensor crosses a bank boundary"
    changed = 0
    for s in [crossing[0]] + [next(c for c in checks if c["mem"] == m) for m in ("lv", "st")]:
        for i in sorted({0, len(s["expected"]) // 2, len(s["expected"]) - 1}):
            s["expected"][i] ^= 1
            changed += 1
    bad = {rb: run_plan_cocotb(ap, plan, init=init, readback=rb) for rb in ("peek", "host")}
    assert bad["peek"]["mismatches"] == bad["host"]["mismatches"] == changed
    assert bad["peek"]["first_mismatch"]["tensor"] == bad["host"]["first_mismatch"]["tensor"]
    # the backdoor reads took no simulated cycles: fewer cycles than with READ commands
    assert bad["peek"]["cycles_simulated"] < bad["host"]["cycles_simulated"]
    assert _per_pass(bad["peek"]) == _per_pass(r)


def test_simulate_refuses_backdoor_reads_without_verilator(capsys):
    """`spiketrack simulate --read peek` on amaranth.sim: a clear error naming the option, before
    anything is simulated."""
    from spiketrack.cli import main

    assert main(["simulate", "--reduced", "--sim", "amaranth", "--read", "peek", "--json"]) == 2
    err = capsys.readouterr().err
    assert "--read peek" in err and "--sim verilator" in err


def test_simulate_refuses_a_bank_size_that_is_not_a_power_of_two(capsys):
    from spiketrack.cli import main

    assert main(["simulate", "--reduced", "--sim", "verilator", "--bank-rows", "1000", "--json"]) == 2
    assert "--bank-rows must be a power of two, got 1000" in capsys.readouterr().err


def test_short_programs_compile_at_o1_and_long_ones_at_o2():
    """build_env: the reduced network's activation memories (lv + st rows) are under
    SHORT_RUN_ROWS, so its Verilator build is at -O1; the shipped default's (30,720 rows) at -O2;
    the two builds live in different folders."""
    from types import SimpleNamespace

    from spiketrack.sim.accel_cocotb import BUILD_ENV, SHORT_RUN_ROWS, build_env, build_name

    short = lower_to_accel(reduced_network()[0], 8)
    long = SimpleNamespace(depths={"lv": 24576, "st": 6144})
    assert short.depths["lv"] + short.depths["st"] <= SHORT_RUN_ROWS < 24576 + 6144
    assert "OPT_FAST=-O1" in build_env("verilator", short)["MAKEFLAGS"]
    assert build_env("verilator", long) == BUILD_ENV["verilator"] and "OPT_FAST=-O2" in BUILD_ENV["verilator"]["MAKEFLAGS"]
    assert build_name("accel", "verilator", build_env("verilator", short)) != build_name("accel", "verilator")
    assert build_env("icarus", short) is None
