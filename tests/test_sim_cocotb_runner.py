"""run_cocotb: Amaranth -> Verilog -> cocotb on Icarus (and Verilator when installed)."""

import json

import pytest
from amaranth import Elaboratable, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.sim.cocotb_runner import (PROJECT_ROOT, CocotbFailure, available_simulators,
                                          run_cocotb)

TB = "tests/cocotb/tb_stream_adder.py"
SIMS = [pytest.param(s, marks=pytest.mark.skipif(s not in available_simulators(),
                                                  reason=f"{s} not installed (make setup)"))
        for s in ("icarus", "verilator")]


class StreamAdder(wiring.Component):
    """Adds the two fields of each input item; one output register (1-cycle latency).

    Members
    -------
    i_stream : In(stream.Signature(StructLayout({"a": width, "b": width})))
    o_stream : Out(stream.Signature(width + 1)) -- a + b (+1 when ``bug``)
    """

    def __init__(self, width=8, *, bug=False):
        self.width, self.bug = width, bug
        super().__init__({
            "i_stream": In(stream.Signature(data.StructLayout({"a": width, "b": width}))),
            "o_stream": Out(stream.Signature(width + 1)),
        })

    def elaborate(self, platform):
        m = Module()
        take = self.i_stream.valid & self.i_stream.ready
        m.d.comb += self.i_stream.ready.eq(~self.o_stream.valid | self.o_stream.ready)
        with m.If(take):
            m.d.sync += [self.o_stream.payload.eq(self.i_stream.payload.a + self.i_stream.payload.b
                                                  + int(self.bug)),
                         self.o_stream.valid.eq(1)]
        with m.Elif(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)
        return m


@pytest.mark.parametrize("sim", SIMS)
def test_stream_adder_passes(sim, capfd):
    res = run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim=sim,
                     tb_params={"n": 40, "width": 8})
    assert sorted(res.passed) == ["test_reset_clears_output_valid", "test_sums_under_backpressure"]
    assert not res.failed and res.results_xml.is_file()
    assert res.build_dir.is_relative_to(PROJECT_ROOT / "build" / "cocotb")
    # the simulator's own output goes to standard error: a --json command's stdout stays JSON
    out, err = capfd.readouterr()
    assert out == "" and "test_sums_under_backpressure" in err


@pytest.mark.skipif("verilator" not in available_simulators(), reason="verilator not installed (make setup)")
def test_cpp_clock_gives_the_same_edges_as_cocotbs_clock(capfd):
    """run_cocotb(cpp_clock_ns=10): the Verilator main drives clk (sim/verilator_main.cpp); the same
    testbench (random gaps and backpressure) sees the same transfers in the same number of cycles."""
    import re

    cycles = {}
    for cpp in (None, 10):
        res = run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim="verilator",
                         tb_params={"n": 40, "width": 8}, cpp_clock_ns=cpp)
        assert sorted(res.passed) == ["test_reset_clears_output_valid", "test_sums_under_backpressure"]
        _, err = capfd.readouterr()
        cycles[cpp] = re.findall(r"(\d+) sums ok in (\d+) sink cycles", err)
    assert cycles[10] == cycles[None] and cycles[None]


def test_flattened_port_names_in_generated_verilog():
    res = run_cocotb(StreamAdder(4), toplevel="stream_adder4", test_module=TB,
                     tb_params={"n": 5, "width": 4}, testcase="test_reset_clears_output_valid")
    text = res.verilog.read_text()
    for port in ("clk", "rst", "i_stream__payload", "i_stream__valid", "i_stream__ready",
                 "o_stream__payload", "o_stream__valid", "o_stream__ready"):
        assert f" {port}" in text
    assert res.passed == ["test_reset_clears_output_valid"]


def test_vectors_file_is_passed_to_testbench():
    vec = PROJECT_ROOT / "build" / "cocotb" / "vectors" / "adder_edge.json"
    vec.parent.mkdir(parents=True, exist_ok=True)
    vec.write_text(json.dumps([[255, 255], [0, 0], [255, 1], [128, 128]]))
    run_cocotb(StreamAdder(8), toplevel="stream_adder", test_module=TB,
               tb_params={"vectors": str(vec), "width": 8, "valid_prob": 1.0, "ready_prob": 1.0})


def test_wrong_expected_value_raises_naming_the_test():
    with pytest.raises(CocotbFailure, match=r"1 of 2 cocotb tests failed[\s\S]*test_sums_under_backpressure"):
        run_cocotb(StreamAdder(8), toplevel="stream_adder", test_module=TB,
                   tb_params={"n": 10, "width": 8, "expect_offset": 1})


def test_buggy_dut_fails_and_result_is_inspectable():
    res = run_cocotb(StreamAdder(8, bug=True), toplevel="stream_adder", test_module=TB,
                     tb_params={"n": 10, "width": 8}, check=False)
    assert list(res.failed) == ["test_sums_under_backpressure"]
    assert "wrong sums" in res.failed["test_sums_under_backpressure"]
    assert res.passed == ["test_reset_clears_output_valid"]


def test_plain_elaboratable_with_ports_and_missing_module():
    class Inv(Elaboratable):
        def __init__(self):
            self.a = Signal()  # port names come from the attribute names
            self.y = Signal()

        def elaborate(self, platform):
            m = Module()
            m.d.comb += self.y.eq(~self.a)
            return m

    def make():
        inv = Inv()
        return inv, [inv.a, inv.y]

    inv, ports = make()
    res = run_cocotb(inv, toplevel="inv", test_module="tests/cocotb/tb_inv.py", ports=ports)
    assert res.passed == ["test_inverts", "test_assertions_rewritten_in_the_testbench_only"]
    with pytest.raises(FileNotFoundError, match="tb_missing"):
        run_cocotb(Inv, toplevel="inv", test_module="tests/cocotb/tb_missing.py", ports=[])


class ValidToggler(wiring.Component):
    """Breaks the stream rules: valid toggles every cycle whatever ready says."""

    o_stream: Out(stream.Signature(8))

    def elaborate(self, platform):
        m = Module()
        ctr = Signal(8)
        m.d.sync += ctr.eq(ctr + 1)
        m.d.comb += [self.o_stream.valid.eq(ctr[0]), self.o_stream.payload.eq(ctr)]
        return m


def test_stream_sink_flags_protocol_violation():
    with pytest.raises(CocotbFailure, match="valid dropped before the transfer"):
        run_cocotb(ValidToggler(), toplevel="valid_toggler", test_module="tests/cocotb/tb_protocol.py")


def test_verilog_cache_keys_on_the_design_key_and_the_source(tmp_path, monkeypatch):
    """to_verilog(design_key=): the same key and source read the cached text back without
    elaborating; another key, or changed project source, converts again."""
    from spiketrack.sim import cocotb_runner

    made = []

    def factory(width):
        def make():
            made.append(width)
            return StreamAdder(width)
        return make

    def convert(width, key):
        return cocotb_runner.to_verilog(factory(width), toplevel="stream_adder", design_key=key, cache_root=tmp_path)

    first = convert(8, "w8")
    assert convert(8, "w8") == first and made == [8]
    assert len(list(tmp_path.glob("stream_adder-*.v"))) == 1
    wider = convert(9, "w9")
    assert made == [8, 9] and wider != first and "[9:0]" in wider
    monkeypatch.setattr(cocotb_runner, "source_fingerprint", lambda: "edited source")
    assert convert(8, "w8") == first and made == [8, 9, 8]
    # without a key nothing is cached
    cocotb_runner.to_verilog(factory(8), toplevel="stream_adder", cache_root=tmp_path)
    assert made == [8, 9, 8, 8] and len(list(tmp_path.glob("stream_adder-*.v"))) == 3


def test_source_fingerprint_changes_with_a_source_file(tmp_path, monkeypatch):
    from spiketrack.sim import cocotb_runner

    (tmp_path / "hw").mkdir()
    unit = tmp_path / "hw" / "unit.py"
    unit.write_text("WIDTH = 8\n")
    monkeypatch.setattr(cocotb_runner, "PROJECT_ROOT", tmp_path)
    fingerprints = []
    for text in ("WIDTH = 8\n", "WIDTH = 9\n", "WIDTH = 8\n"):
        unit.write_text(text)
        cocotb_runner.source_fingerprint.cache_clear()
        fingerprints.append(cocotb_runner.source_fingerprint())
    cocotb_runner.source_fingerprint.cache_clear()
    assert fingerprints[0] == fingerprints[2] != fingerprints[1]


@pytest.mark.skipif("icarus" not in available_simulators(), reason="icarus not installed")
def test_simulator_build_output_goes_to_its_log_and_a_failed_build_shows_its_tail(tmp_path, capfd):
    # iverilog -v writes its version and progress: the log gets them, the terminal does not
    res = run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim="icarus",
                     tb_params={"n": 4, "width": 8}, build_args=["-v"], build_root=tmp_path / "ok")
    assert res.built and "Icarus Verilog Preprocessor" in (res.build_dir / "build.log").read_text()
    out, err = capfd.readouterr()
    assert out == "" and "Icarus Verilog Preprocessor" not in err and "test_sums_under_backpressure" in err
    # the tool's complaint reaches the error message, not only the log
    complaint = "Unsupported Language generation 9999"
    with pytest.raises(RuntimeError, match=rf"(?s)build of .* failed.*build\.log.*{complaint}"):
        run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim="icarus",
                   build_args=["-g9999"], build_root=tmp_path / "bad")
    (log,) = (tmp_path / "bad").glob("stream_adder-*/build.log")
    assert complaint in log.read_text()


@pytest.mark.skipif("icarus" not in available_simulators(), reason="icarus not installed")
def test_quiet_env_leaves_out_cocotbs_banner_but_not_a_failure(capfd):
    """QUIET_ENV (make demo's runs): no banner or regression summary, a failing test's traceback
    still on the terminal."""
    from spiketrack.sim.cocotb_runner import QUIET_ENV

    banner = ("Running tests", "Initialized cocotb", "TESTS=2 PASS=2")
    res = run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim="icarus",
                     tb_params={"n": 4, "width": 8})
    _, err = capfd.readouterr()
    assert len(res.passed) == 2 and all(b in err for b in banner)     # the default: cocotb's INFO lines
    res = run_cocotb(lambda: StreamAdder(8), toplevel="stream_adder", test_module=TB, sim="icarus",
                     tb_params={"n": 4, "width": 8}, extra_env=QUIET_ENV)
    _, err = capfd.readouterr()
    assert len(res.passed) == 2 and not any(b in err for b in banner), err
    res = run_cocotb(StreamAdder(8, bug=True), toplevel="stream_adder", test_module=TB, sim="icarus",
                     tb_params={"n": 4, "width": 8}, extra_env=QUIET_ENV, check=False)
    _, err = capfd.readouterr()
    assert list(res.failed) == ["test_sums_under_backpressure"] and "AssertionError: 4 wrong sums" in err


def test_a_design_whose_verilog_is_cached_is_not_reported_unused(tmp_path):
    """to_verilog given a design instance and a cache hit: the instance is never elaborated, on
    purpose, so collecting it gives no UnusedElaboratable warning; a design nobody converts still
    does (the warning is not switched off)."""
    import gc
    import warnings

    from amaranth.hdl import UnusedElaboratable

    from spiketrack.sim import cocotb_runner

    cocotb_runner.to_verilog(StreamAdder(8), toplevel="stream_adder", design_key="w8", cache_root=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cocotb_runner.to_verilog(StreamAdder(8), toplevel="stream_adder", design_key="w8", cache_root=tmp_path)
        gc.collect()
        assert not [w for w in caught if issubclass(w.category, UnusedElaboratable)]
        StreamAdder(8)
        gc.collect()
        assert [w for w in caught if issubclass(w.category, UnusedElaboratable)]
