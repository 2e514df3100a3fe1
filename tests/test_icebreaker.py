"""The iCEBreaker configuration (bitstreams/accel_build.REDUCED: the memory builder alone at P = 4,
10-bit addresses, five counters, the memories' read registers in front of their block RAMs; the
controller, host interface and UART link unchanged) runs its
small network, one MRM's template-memory build: the host driver over the simulated serial line
(amaranth.sim, UART in the loop, the program preloaded as the bitstream carries it) writes K and
V, runs the program and reads M back; M equals the golden function's (quant.golden.memory) and
the cycle and access counters equal the cycle model's. What does not fit the configuration is
refused by name."""

import pytest
import torch

from spiketrack.bitstreams import accel_build
from spiketrack.compiler.accel import lower_to_accel, memory_rows
from spiketrack.compiler.fuse import CompileError
from spiketrack.sim.reduced import memory_network

CFG = accel_build.REDUCED["icebreaker"]


def _compile(net):
    return lower_to_accel(net, CFG["lanes"], CFG["addr_bits"], units=CFG["units"])


def test_icebreaker_configuration_builds_a_template_memory_over_the_uart():
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.schedule import programs, run_program
    from spiketrack.quant.golden.memory import memory_build
    from spiketrack.sim.accel_driver import AccelError
    from spiketrack.sim.accel_sim import build_plan, execute_plan
    from spiketrack.sim.board_sim import run_link_session

    net, inputs = memory_network()
    ap = _compile(net)
    assert [n.kind for n in ap.nodes] == ["memory_build"] and ap.units == ("mb",)
    plan = build_plan(net, ap, inputs, "outputs", load=False)
    # the expected template-memory lines are the golden function's M = Kᵀ·V, per timestep and head
    k, v = inputs["k"][:, 0], inputs["v"][:, 0]
    T, heads, dh, dv = net.types["memory"].shape
    golden = torch.stack([memory_build(k[t].reshape(heads, dh, -1), v[t].reshape(heads, dv, -1)) for t in range(T)])
    (check,) = [s for s in plan if s["op"] == "check"]
    assert check["expected"] == memory_rows(golden, ap.lanes) and golden.max() > 0

    def session(drv, tr, st):
        rep = execute_plan(drv, plan, ap.lanes)
        with pytest.raises(AccelError, match="out of range"):     # a memory the configuration leaves out
            drv.read("st", 0, 1)
        return rep

    rep = run_link_session(session, lanes=ap.lanes, depths=ap.depths, addr_bits=ap.addr_bits, units=ap.units,
                           counters=CFG["counters"], read_registers=CFG["read_registers"], divisor=4, gap_cycles=300, preload={"prog": ap.images["prog"]})
    assert rep["runs"] == 1 and rep["checks"] == 1
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["cycle_model_exact"], rep["first_cycle_difference"]
    got = rep["per_pass"]["run"]
    assert got["cycles"] == got["predicted_cycles"] > T * heads * dh * 16
    graph = fuse(net)[0]
    env = run_program(graph, programs(graph)["run"], {n: x[:, :1] for n, x in inputs.items()})
    predicted = ap.predicted_counters(graph, "run", env)
    for name in ("mb_busy", "lv_reads", "tm_writes", "run_cycles"):
        assert got["counters"][name] == predicted[name] > 0, name
    assert got["counters"]["st_reads"] == 0          # a counter the configuration leaves out reads 0


def test_what_the_icebreaker_configuration_cannot_run_is_refused_by_name(tmp_path, capsys):
    from spiketrack.cli import main
    from spiketrack.quant.ir import save_artifact
    from spiketrack.sim.reduced import reduced_network

    # a tracker needs the conv engine and the vector unit
    with pytest.raises(CompileError, match="runs on the conv engine, which this accelerator configuration"):
        _compile(reduced_network()[0])
    # K and V of 7x7 tokens outgrow the 10-bit addresses of the spike-level memory (P = 4: 12-bit words)
    big, _ = memory_network(size=7)
    with pytest.raises(CompileError, match=r"memory 'lv' needs 1176 rows, 152 more than the 1024"):
        _compile(big)
    save_artifact(big, tmp_path / "big")
    assert main(["build", "--board", "icebreaker", "--compiled", str(tmp_path / "big"), "--estimate-only"]) == 2
    assert "memory 'lv' needs 1176 rows" in capsys.readouterr().err


def test_block_ram_and_logic_shortfalls_are_named(monkeypatch):
    est = accel_build.build_accelerator("icebreaker", estimate_only=True, echo=lambda m: None)["estimate"]
    monkeypatch.setitem(accel_build.EBR_TOTAL, ("ice40", "up5k"), est["ebr"] - 3)
    monkeypatch.setitem(accel_build.LUT_TOTAL, ("ice40", "up5k"), est["lut"] - 100)
    with pytest.raises(accel_build.BoardDoesNotFit) as e:
        accel_build.build_accelerator("icebreaker", estimate_only=True, echo=lambda m: None)
    msg = str(e.value)
    assert f"block RAM: {est['ebr']} EBR estimated, 3 more than the {est['ebr'] - 3} of icebreaker" in msg
    assert "(by memory: lv 4, tm 3, " in msg
    assert f"logic: {est['lut']} LUT4 estimated, 100 more than the {est['lut'] - 100} of icebreaker" in msg


def test_an_icebreaker_build_past_its_logic_cells_is_refused(monkeypatch):
    """The iCE40 estimate counts logic cells (0.8 x (LUT4 + FF)): a build whose cells, not its LUT4,
    outgrow the device is refused naming them."""
    est = accel_build.build_accelerator("icebreaker", estimate_only=True, echo=lambda m: None)["estimate"]
    assert est["logic_cells"] == round(accel_build.ICE40_CELLS_PER_LUT_FF * (est["lut"] + est["ff"])) > est["lut"]
    monkeypatch.setitem(accel_build.LUT_TOTAL, ("ice40", "up5k"), est["logic_cells"] - 10)
    with pytest.raises(accel_build.BoardDoesNotFit) as e:
        accel_build.build_accelerator("icebreaker", estimate_only=True, echo=lambda m: None)
    msg = str(e.value)
    assert f"logic: {est['logic_cells']} logic cells estimated (0.8 x (LUT4 + FF)), 10 more than the " in msg
    assert "LUT4 estimated" not in msg            # the LUT4 alone still fit
    monkeypatch.setitem(accel_build.LUT_TOTAL, ("ice40", "up5k"), est["logic_cells"])
    assert accel_build.build_accelerator("icebreaker", estimate_only=True, echo=lambda m: None)["fits"]
