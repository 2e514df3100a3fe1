"""`spiketrack build --estimate-only` and `spiketrack run`'s refusals (the real builds are measured
in docs/boards.md: minutes each, `make bench` territory)."""

import json

import numpy as np
from PIL import Image

from spiketrack.bitstreams.accel_build import ebr_blocks, estimate
from spiketrack.cli import main


def test_build_estimate_fits_ulx3s_and_icebreaker_reduced_and_names_what_does_not_fit(capsys):
    assert main(["build", "--board", "ulx3s-85f", "--estimate-only", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fits"] and rep["board"] == "ulx3s-85f" and rep["search_cycles"] > 0
    assert rep["estimate"]["ebr"] <= rep["ebr_total"] and rep["estimate"]["lut"] <= rep["lut_total"]
    # the iCEBreaker gets its reduced configuration (the memory builder alone) and network
    assert main(["build", "--board", "icebreaker", "--estimate-only", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["fits"] and "template-memory build" in rep["network"] and rep["run_cycles"] > 0
    assert rep["estimate"]["ebr"] <= rep["ebr_total"] and rep["estimate"]["lut"] <= rep["lut_total"]
    # what does not fit is refused by name: tests/test_icebreaker.py


def test_build_with_the_weights_in_the_sdram(capsys):
    """``--external-weights``: the ULX3S estimate keeps the weights off chip (a 576-row cache in two halves, fewer
    EBR, the fetch cycles in the frame); a board whose SDRAM the controller cannot drive is refused
    by name before anything is built."""
    assert main(["build", "--board", "ulx3s-85f", "--estimate-only", "--json"]) == 0
    on_chip = json.loads(capsys.readouterr().out)
    assert main(["build", "--board", "ulx3s-85f", "--estimate-only", "--external-weights", "--json"]) == 0
    ext = json.loads(capsys.readouterr().out)
    assert ext["fits"] and ext["estimate"]["ebr"] < on_chip["estimate"]["ebr"]
    assert ext["estimate"]["lut"] > on_chip["estimate"]["lut"]          # the SDRAM controller
    assert ext["search_cycles"] > on_chip["search_cycles"]              # the fetches
    assert main(["build", "--board", "orangecrab-85f", "--estimate-only", "--external-weights"]) == 2
    err = capsys.readouterr().err
    assert "--external-weights" in err and "orangecrab-85f" in err


def test_ebr_estimate_formula():
    assert ebr_blocks(64, 512, "ecp5") == 2           # 512 x 36 twice
    assert ebr_blocks(24, 960, "ecp5") == 2           # 1024 x 18 twice
    assert ebr_blocks(8, 2048, "ecp5") == 1           # 2048 x 9
    assert ebr_blocks(16, 256, "ice40") == 1
    est = estimate({"lv": 960, "st": 16}, 8, "ecp5")
    assert est["ebr_by_memory"]["lv"] == 2 * ebr_blocks(24, 960, "ecp5")   # two read ports: two copies


def test_run_refuses_a_missing_port_and_a_bad_box(tmp_path, capsys):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(2):
        Image.fromarray(np.zeros((40, 48, 3), np.uint8)).save(frames / f"{i:04d}.png")
    out = tmp_path / "boxes.txt"
    assert main(["run", "--port", str(tmp_path / "no-such-tty"), "--frames", str(frames), "--init", "4,4,10,10",
                 "--out", str(out)]) == 2
    assert "cannot open serial port" in capsys.readouterr().err
    assert main(["run", "--port", "sim", "--frames", str(frames), "--init", "4,4,-3,10", "--out", str(out)]) == 2
    assert "--init" in capsys.readouterr().err
    assert not out.exists()


def _unused(top):
    """A board top the real build would elaborate: no UnusedElaboratable warnings for it."""
    for obj in (top, top.core, top.core.accel, getattr(top, "sdram_ctrl", None)):
        if obj is not None:
            obj._MustUse__silence = True


def test_build_passes_nextpnr_args_after_its_own(monkeypatch, tmp_path):
    """`--nextpnr-arg` reaches nextpnr as given, after the build's own options (the build itself
    is stopped at the tool call: a real one takes minutes)."""
    import pytest

    from spiketrack.bitstreams import synth

    seen = {}

    class Stop(Exception):
        pass

    def fake_build(top, board, out, **kw):
        _unused(top)
        seen.update(kw, top=top)
        raise Stop

    monkeypatch.setattr(synth, "build_bitstream", fake_build)
    with pytest.raises(Stop):
        main(["build", "--board", "ulx3s-85f", "--out-dir", str(tmp_path / "b"), "--seed", "3",
              "--nextpnr-arg=--placer-heap-beta", "--nextpnr-arg=0.7"])
    assert seen["seed"] == 3
    assert seen["top"].constraint_mhz == seen["top"].f_core_mhz == 100
    assert seen["nextpnr_opts"][-2:] == ["--placer-heap-beta", "0.7"]
    assert "--router" in seen["nextpnr_opts"]


def test_ecp5_builds_place_with_the_static_placer_unless_told_otherwise():
    """The ECP5 default placer is nextpnr's static placer; a `--placer` among the caller's arguments
    replaces it (nextpnr refuses an option given twice); iCE40 builds name none."""
    from spiketrack.bitstreams.accel_build import ECP5_PLACER, _placer, nextpnr_options

    opts = nextpnr_options("ecp5")
    assert ECP5_PLACER == "static" and opts[opts.index("--placer") + 1] == "static"
    own = nextpnr_options("ecp5", ["--placer", "heap", "--seed", "2"])
    assert own.count("--placer") == 1 and own[own.index("--placer") + 1] == "heap" and own[-2:] == ["--seed", "2"]
    assert _placer("ecp5", ["--placer", "heap"]) == "heap" and _placer("ecp5", []) == "static"
    assert "--placer" not in nextpnr_options("ice40") and _placer("ice40", []) is None


def test_ecp5_builds_route_with_router1_unless_told_otherwise():
    """The ECP5 default router is router1 (99.16 MHz against router2's 87.16 on one placement); a
    `--router` among the caller's arguments replaces it; iCE40 builds name none."""
    from spiketrack.bitstreams.accel_build import ECP5_ROUTER, _option, nextpnr_options

    opts = nextpnr_options("ecp5")
    assert ECP5_ROUTER == "router1" and opts.count("--router") == 1 and opts[opts.index("--router") + 1] == "router1"
    own = nextpnr_options("ecp5", ["--router", "router2"])
    assert own.count("--router") == 1 and own[own.index("--router") + 1] == "router2"
    assert _option("ecp5", ["--router", "router2"], "--router", ECP5_ROUTER) == "router2"
    assert "--router" not in nextpnr_options("ice40") and _option("ice40", [], "--router", ECP5_ROUTER) is None


def test_build_over_constrains_place_and_route_only_on_ecp5(monkeypatch, tmp_path, capsys):
    """`--constrain-mhz` sets the clock nextpnr times against (a FREQUENCY NET constraint on the
    PLL's output in the LPF), not the PLL's dividers; below the core clock, or on an iCE40, it is
    refused by name."""
    import pytest

    from spiketrack.bitstreams import synth
    from spiketrack.hw.accel.board import BoardTop, ecp5_pll

    seen = {}

    class Stop(Exception):
        pass

    def fake_build(top, board, out, **kw):
        _unused(top)
        seen["top"] = top
        raise Stop

    monkeypatch.setattr(synth, "build_bitstream", fake_build)
    with pytest.raises(Stop):
        main(["build", "--board", "ulx3s-85f", "--out-dir", str(tmp_path / "b"), "--clock-mhz", "70",
              "--constrain-mhz", "100"])
    top = seen["top"]
    assert abs(top.f_core_mhz - 70) < 1 and top.constraint_mhz == 100
    assert top.pll == ecp5_pll(25, 70)           # the same PLL dividers as a plain 70 MHz build
    from spiketrack.bitstreams.boards import get_board

    def lpf_clocks(**kw):   # a small top (the memory builder alone): the LPF is what is checked
        small = BoardTop(family="ecp5", f_in_mhz=25, clock_mhz=70, lanes=8, units=("mb",), **kw)
        plan = get_board("ulx3s-85f").platform_class()().prepare(small, name="t")
        return sorted(line for line in plan.files["t.lpf"].splitlines() if line.startswith("FREQUENCY"))

    assert lpf_clocks(constrain_mhz=100) == ['FREQUENCY NET "core_clk" 100000000.0 HZ;',
                                             'FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;']
    assert lpf_clocks() == ['FREQUENCY PORT "clk25_0__io" 25000000.0 HZ;']   # nextpnr derives 70 MHz
    with pytest.raises(ValueError, match="below the core clock"):
        BoardTop(family="ecp5", f_in_mhz=25, clock_mhz=70, constrain_mhz=50)
    with pytest.raises(ValueError, match="only the ECP5"):
        BoardTop(family="ice40", f_in_mhz=12, clock_mhz=24, constrain_mhz=30)
