"""The accelerator behind its UART link, as Verilog under cocotb (``sim/board_cocotb_tb.py``)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from spiketrack.compiler.accel import AccelProgram
from spiketrack.hw.accel.board import LinkedAccelerator
from spiketrack.sim.accel_cocotb import build_env, build_name
from spiketrack.sim.cocotb_runner import PROJECT_ROOT, run_cocotb

__all__ = ["run_plan_over_uart", "BAKED"]

BAKED = ("prog", "w", "tab", "cst")   #: memories whose images are baked into the design (as in a bitstream)


def run_plan_over_uart(ap: AccelProgram, plan: list[dict], *, sim: str = "verilator", divisor: int = 4,
                       corrupt: bool = True, waves: bool = False) -> dict:
    """Execute ``plan`` (built with ``load=False``) over the UART on the Verilog of
    :class:`LinkedAccelerator` with the program, weights and tables baked in; with external
    weights, the external-memory model starts empty (the plan loads it: ``load_ext=True``)."""
    work = PROJECT_ROOT / "build" / "simulate"
    work.mkdir(parents=True, exist_ok=True)
    # the design's arguments, also the key of its cached Verilog (run_cocotb(design_key=))
    args = {"lanes": ap.lanes, "depths": ap.depths, "addr_bits": ap.addr_bits, "divisor": divisor, "gap_cycles": 4096,
            "init": {m: ap.images[m] for m in BAKED}, **ap.accel_kwargs(preload=False)}
    env = build_env(sim, ap)
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        plan_file, report_file = Path(tmp) / "plan.json", Path(tmp) / "report.json"
        plan_file.write_text(json.dumps(plan))
        result = run_cocotb(lambda: LinkedAccelerator(**args),
                            toplevel="linked_accel", test_module="sim/board_cocotb_tb.py", sim=sim,
                            name=build_name("board", sim, env),
                            tb_params={"plan": str(plan_file), "report": str(report_file), "lanes": ap.lanes,
                                       "divisor": divisor, "corrupt": corrupt},
                            waves=waves, check=False, extra_env=env,
                            design_key=json.dumps(["LinkedAccelerator", args], sort_keys=True, default=repr))
        out = json.loads(report_file.read_text()) if report_file.exists() else {}
    if "error" in out or "value" not in out:
        raise RuntimeError(f"cocotb run over the UART failed: {out.get('error') or result}")
    report = out["value"]
    report["cycles_simulated"] = out["cycles_simulated"]
    report["sim"] = sim
    return report
