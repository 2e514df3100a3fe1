"""``spiketrack bench --quick``: every section in the JSON, the density sweep against the cycle model's
dense count, the synthesis rows against the build reports, unknown sections refused."""

import contextlib
import io
import json
import os

import pytest

from spiketrack.cli import main
from spiketrack.hw.engine_cycles import Engine, conv_cost
from spiketrack.quant.ir import Layer, TensorType

SECTIONS = ("density", "network", "simulators", "cpu", "energy", "synthesis")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--quick", "--json", "--out", str(out)])
    return rc, json.loads(buf.getvalue()), json.loads(out.read_text())


def test_quick_run_prints_and_writes_every_section(bench):
    rc, printed, written = bench
    assert rc == 0
    assert printed == written
    assert written["quick"] is True
    assert tuple(written["sections"]) == SECTIONS
    for name, sec in written["sections"].items():
        assert sec["status"] == "ok", (name, sec["rows"])
        assert sec["rows"], name
        for r in sec["rows"]:
            assert {"what", "figure", "unit", "command"} <= set(r), (name, r)
            assert r["command"].strip(), (name, r)
    # the quick run skips the simulators and says so
    assert all(r["figure"] is None and "--quick" in r["note"] for r in written["sections"]["simulators"]["rows"])


def _dense_cycles(g):
    ho = (g["h"] + 2 * g["pad"] - g["k"]) // g["stride"] + 1
    wo = (g["w"] + 2 * g["pad"] - g["k"]) // g["stride"] + 1
    conv = Layer("c", "conv", ["x"], {"stride": g["stride"], "padding": g["pad"], "groups": 1, "acc_bits": 20,
                                      "weight_bits": 8, "acc_exp": [0] * g["c_out"]})
    return conv_cost(Engine(g["lanes"]), conv, (g["c_out"], g["c_in"], g["k"], g["k"]),
                     TensorType((g["T"], g["c_in"], g["h"], g["w"]), "levels", 3, False, 2),
                     TensorType((g["T"], g["c_out"], ho, wo), "levels", 3, False, 2), None, residual=False).cycles


def test_density_rows_grow_with_density_up_to_the_dense_count(bench):
    rows = [r for r in bench[2]["sections"]["density"]["rows"] if r["source"] == "cycle model"]
    swept = [r for r in rows if r["density"] != "dense"]
    dense = [r for r in rows if r["density"] == "dense"]
    assert len(swept) >= 5 and len(dense) == 1
    pct = [float(r["density"].rstrip(" %")) for r in swept]
    assert pct == sorted(pct) and pct[0] == 0 and pct[-1] == 100
    cycles = [r["figure"] for r in swept]
    assert all(a <= b for a, b in zip(cycles, cycles[1:])), cycles
    assert cycles[0] < cycles[-1]
    want = _dense_cycles(dense[0]["layer"])
    assert dense[0]["figure"] == want
    assert cycles[-1] == want  # every level non-zero costs what the dense count says


def test_synthesis_rows_are_the_build_reports_figures(bench):
    rows = bench[2]["sections"]["synthesis"]["rows"]
    shipped = sorted(f[:-5] for f in os.listdir(os.path.join(ROOT, "bitstreams", "reports")) if f.endswith(".json"))
    assert sorted({r["board"] for r in rows}) == shipped
    for r in rows:
        with open(os.path.join(ROOT, r["source"])) as fh:
            rep = json.load(fh)
        assert r["figure"] == rep[r["key"]], r
        assert r["source"] in (f"bitstreams/reports/{r['board']}.json", f"build/{r['board']}/build_report.json")
    for board in shipped:
        keys = {r["key"] for r in rows if r["board"] == board}
        assert {"lut", "ff", "ebr", "dsp", "fmax_mhz", "clock_mhz", "timing_met"} <= keys, board


def test_a_newer_build_report_is_read_instead_of_the_shipped_one(tmp_path):
    from spiketrack.benchmarks.suite import report_source

    shipped = tmp_path / "bitstreams" / "reports" / "b.json"
    fresh = tmp_path / "build" / "b" / "build_report.json"
    shipped.parent.mkdir(parents=True)
    shipped.write_text("{}")
    assert report_source("b", tmp_path) == shipped
    fresh.parent.mkdir(parents=True)
    fresh.write_text("{}")
    os.utime(fresh, (shipped.stat().st_mtime - 10,) * 2)
    assert report_source("b", tmp_path) == shipped
    os.utime(fresh, (shipped.stat().st_mtime + 10,) * 2)
    assert report_source("b", tmp_path) == fresh


def test_unknown_section_is_refused_by_name(capsys, tmp_path):
    out = tmp_path / "b.json"
    assert main(["bench", "--quick", "--sections", "density,bogus", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown section 'bogus'" in err and "'density'" not in err
    assert not out.exists()
