"""The iCEBreaker configuration (bitstreams/accel_build.REDUCED: the vector unit alone at one lane,
10-bit addresses, the controller, host interface and UART link unchanged) runs its small network:
the host driver over the simulated serial line (amaranth.sim, UART in the loop, the program and
tables preloaded as the bitstream carries them), every hardware op's output read back and equal to
the golden functions, every run's cycle counter equal to the cycle model; and what does not fit
that configuration is refused by name."""

import pytest

from spiketrack.bitstreams.accel_build import REDUCED
from spiketrack.compiler.accel import lower_to_accel
from spiketrack.compiler.fuse import CompileError
from spiketrack.sim.reduced import neuron_network

CFG = REDUCED["icebreaker"]


def _compile(net):
    return lower_to_accel(net, CFG["lanes"], CFG["addr_bits"], units=CFG["units"])


def test_icebreaker_configuration_runs_the_neuron_network_over_the_uart():
    from spiketrack.quant.executor import run_network
    from spiketrack.sim.accel_sim import build_plan, execute_plan
    from spiketrack.sim.board_sim import run_link_session

    net, inputs = neuron_network()
    ap = _compile(net)
    assert [n.kind for n in ap.nodes] == ["avg_pool", "add", "neuron", "mean_fusion"]
    plan = build_plan(net, ap, inputs, "layers", load=False)
    # the plan's expected rows are the golden functions' outputs: the same as the integer executor's
    ref = run_network(net, inputs).outputs
    checks = {s["tensor"]: s for s in plan if s["op"] == "check"}
    from spiketrack.compiler.accel import tensor_rows

    for name in net.outputs:
        assert checks[name]["expected"] == tensor_rows(ref[name][:, 0], "levels", ap.lanes)

    def session(drv, tr, st):
        rep = execute_plan(drv, plan, ap.lanes)
        rep["status"] = drv.status()
        return rep

    rep = run_link_session(session, lanes=ap.lanes, depths=ap.depths, addr_bits=ap.addr_bits, units=ap.units,
                           divisor=4, gap_cycles=300, preload={m: ap.images[m] for m in ("prog", "cst")})
    assert rep["runs"] == 4 and rep["checks"] == 4
    assert rep["mismatches"] == 0, rep["first_mismatch"]
    assert rep["cycle_model_exact"], rep["first_cycle_difference"]
    p = rep["per_pass"]["run"]
    assert p["cycles"] == p["predicted_cycles"] > 1000
    assert not rep["status"]["busy"] and rep["status"]["descriptors"] == 4


def test_what_the_icebreaker_configuration_cannot_run_is_refused_by_name(tmp_path, capsys):
    from spiketrack.cli import main
    from spiketrack.quant.ir import save_artifact
    from spiketrack.sim.reduced import reduced_network

    # a tracker needs the conv engine and the memory builder
    with pytest.raises(CompileError, match="runs on the conv engine, which this accelerator configuration"):
        _compile(reduced_network()[0])
    # a network whose stream memory outgrows the 10-bit addresses: the memory and the shortfall
    big, _ = neuron_network(channels=12)
    with pytest.raises(CompileError, match=r"memory 'st' needs 1296 rows, 272 more than the 1024"):
        _compile(big)
    save_artifact(big, tmp_path / "big")
    assert main(["build", "--board", "icebreaker", "--compiled", str(tmp_path / "big"), "--estimate-only"]) == 2
    assert "memory 'st' needs 1296 rows" in capsys.readouterr().err
    # eight lanes of the vector unit: the logic estimate names the shortfall
    assert main(["build", "--board", "icebreaker", "--lanes", "8", "--estimate-only"]) == 2
    err = capsys.readouterr().err
    assert "does not fit icebreaker" in err and "logic" in err and "more than the 5280" in err
