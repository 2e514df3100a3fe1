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
