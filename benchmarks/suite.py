"""``spiketrack bench``: the project's benchmark table, printed and written as JSON (docs/bench.md).

One function per section, each returning rows (a list of dicts); every row carries ``what`` it
measures, its ``figure`` (``None`` when it cannot be produced, with a ``note`` saying why), its
``unit`` and the ``command`` that reproduces it, plus the columns of its section (variant, board,
density, ...). Sections, in order:

``density``     conv-engine cycles against spike density, against the dense count (the cycle model;
                the full run adds one amaranth.sim run of the RTL to show model == RTL);
``network``     whole-network cycles per search frame and template pass, fps at 100 MHz and at the
                shipped ULX3S build's Fmax, for the shipped default and every variant the compiler takes;
``simulators``  simulation speed of amaranth.sim, Icarus and Verilator on one small design (full run);
``cpu``         golden-model and float-model tracking fps on this CPU;
``energy``      energy per frame three ways (``spiketrack energy``'s functions);
``synthesis``   the shipped build reports per board (or a newer ``build/<board>/build_report.json``).

``--quick`` skips the slow parts (the simulators, the RTL run, the other weight formats and the
paper variants, fewer frames) and finishes in well under a minute.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["SECTIONS", "Context", "row", "density_rows", "network_rows", "simulators_rows", "cpu_rows",
           "energy_rows", "synthesis_rows", "run_suite", "format_table", "parse_sections", "DENSITY_LAYER",
           "DENSITIES", "BENCH_FORMAT", "BENCH_VERSION"]

BENCH_FORMAT = "spiketrack-bench"
BENCH_VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = "build/bench/bench.json"
BOARD = "ulx3s-85f"  #: the board `spiketrack compile` plans for by default, whose shipped Fmax the fps use

#: the density sweep's layer: a 3x3 conv of the conv engine at the shipped lanes P = 8
DENSITY_LAYER = {"T": 1, "c_in": 16, "c_out": 16, "h": 16, "w": 16, "k": 3, "stride": 1, "pad": 1, "lanes": 8}
DENSITIES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)
RTL_DENSITY = 0.3


def row(what: str, figure, unit: str, command: str, **columns) -> dict:
    """One benchmark figure: the section's ``columns`` first, then what, figure, unit, note, command."""
    note = columns.pop("note", None)
    return {**columns, "what": what, "figure": figure, "unit": unit, **({"note": note} if note else {}),
            "command": command}


def _bench_cmd(section: str, quick: bool) -> str:
    return f"spiketrack bench --sections {section}{' --quick' if quick else ''}"


class Context:
    """What several sections share, built once on first use: the shipped default (the int8 QAT
    edge-t3), its float parent, the default's integer network (as ``spiketrack quantize`` makes it)
    and its compilation (as ``spiketrack compile``)."""

    def __init__(self, quick: bool = False):
        self.quick = quick
        self._cache: dict = {}

    def _once(self, key, make):
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def model(self):
        """The shipped default: the int8 QAT edge-t3 (a quantisation-aware model)."""
        def make():
            from spiketrack.model.checkpoint import model_from_checkpoint

            return model_from_checkpoint(None)[0]
        return self._once("model", make)

    @property
    def float_model(self):
        """The shipped float edge-t3, the QAT default's parent (``--float``)."""
        def make():
            from spiketrack.model.checkpoint import model_from_checkpoint

            return model_from_checkpoint(None, float_default=True)[0]
        return self._once("float_model", make)

    def net(self, weight_bits="8"):
        """The integer network: the shipped default's (int8, QAT) for ``weight_bits`` 8, the float
        parent's post-training quantisation for 4 or ``"mixed"`` (``spiketrack quantize --float --bits``)."""
        def make():
            from spiketrack.quant.lower import lower
            from spiketrack.quant.qat import QuantFormat, quantize_model

            if weight_bits == "8":
                return lower(quantize_model(self.model.eval()))
            return lower(quantize_model(self.float_model.eval(), QuantFormat(weight_bits=weight_bits)))
        return self._once(("net", weight_bits), make)

    def compiled(self, weight_bits="8") -> dict:
        """``compile_network`` of :meth:`net` for :data:`BOARD`, lanes swept then P = 8, one calibration crop."""
        def make():
            from spiketrack.compiler.build import compile_network

            return compile_network(self.net(weight_bits), board=BOARD, lanes=None, calibration_frames=1)
        return self._once(("compiled", weight_bits), make)


# ---------------------------------------------------------------------------------------------- density

def _density_types(g: dict):
    """(conv layer, weight shape, input type, output type) of :data:`DENSITY_LAYER` for ``conv_cost``."""
    from spiketrack.quant.ir import Layer, TensorType

    ho = (g["h"] + 2 * g["pad"] - g["k"]) // g["stride"] + 1
    wo = (g["w"] + 2 * g["pad"] - g["k"]) // g["stride"] + 1
    conv = Layer("c", "conv", ["x"], {"stride": g["stride"], "padding": g["pad"], "groups": 1, "acc_bits": 20,
                                      "weight_bits": 8, "acc_exp": [0] * g["c_out"]})
    return (conv, (g["c_out"], g["c_in"], g["k"], g["k"]),
            TensorType((g["T"], g["c_in"], g["h"], g["w"]), "levels", 3, False, 2),
            TensorType((g["T"], g["c_out"], ho, wo), "levels", 3, False, 2))


def nested_levels(shape, densities, seed: int = 0) -> dict:
    """Spike levels (1..4) at each density, nested: every non-zero at a density stays non-zero above it."""
    import torch

    g = torch.Generator().manual_seed(seed)
    u = torch.rand(shape, generator=g)
    lv = torch.randint(1, 5, shape, generator=g)
    return {d: torch.where(u < d, lv, torch.zeros_like(lv)) for d in densities}


def density_rows(ctx: Context) -> list[dict]:
    """Conv-engine cycles of :data:`DENSITY_LAYER` at :data:`DENSITIES` (``conv_cost`` with random
    levels) and dense (``levels=None``); the full run adds the RTL's busy cycles at one density."""
    from spiketrack.hw.engine_cycles import Engine, conv_cost

    g = DENSITY_LAYER
    layer = (f"{g['k']}x{g['k']} conv {g['c_in']}->{g['c_out']}, {g['h']}x{g['w']}, T = {g['T']}, "
             f"P = {g['lanes']}")
    conv, wshape, in_t, out_t = _density_types(g)
    engine = Engine(g["lanes"])
    cmd = f"{_bench_cmd('density', True)}  (conv_cost, hw/engine_cycles.py; layer {layer})"
    dense = conv_cost(engine, conv, wshape, in_t, out_t, None, residual=False).cycles
    levels = nested_levels(in_t.shape, DENSITIES)
    rows = []
    for d, lv in levels.items():
        cycles = conv_cost(engine, conv, wshape, in_t, out_t, lv, residual=False).cycles
        rows.append(row("conv engine cycles", cycles, "cycles", cmd, density=f"{100 * d:g} %", source="cycle model",
                        of_dense=round(cycles / dense, 4), layer=g))
    rows.append(row("conv engine cycles", dense, "cycles", cmd, density="dense", source="cycle model", of_dense=1.0,
                    layer=g, note="levels=None: every level non-zero, the compiler's dense_cycles"))
    if ctx.quick:
        return rows
    import torch

    from spiketrack.sim.conv_engine_sim import run_conv_layer

    gen = torch.Generator().manual_seed(1)
    w = torch.randint(-127, 128, wshape, generator=gen)
    b = torch.randint(-3000, 3000, (g["c_out"],), generator=gen)
    t0 = time.perf_counter()
    out = run_conv_layer(levels[RTL_DENSITY], w, b, 6, stride=g["stride"], padding=g["pad"], lanes=g["lanes"])
    model = next(r["figure"] for r in rows if r["density"] == f"{100 * RTL_DENSITY:g} %")
    rows.append(row("conv engine busy cycles", out["cycles"], "cycles",
                    f"{_bench_cmd('density', False)}  (run_conv_layer, sim/conv_engine_sim.py; layer {layer})",
                    density=f"{100 * RTL_DENSITY:g} %", source="RTL, amaranth.sim",
                    of_dense=round(out["cycles"] / dense, 4), layer=g,
                    note=f"cycle model {model}: {'equal' if out['cycles'] == model else 'DIFFERENT'} "
                         f"({time.perf_counter() - t0:.1f} s of simulation)"))
    return rows


# ---------------------------------------------------------------------------------------------- network

def shipped_report(board: str) -> tuple[dict | None, str]:
    """The build report shipped for ``board`` and its path relative to the project."""
    path = PROJECT_ROOT / "bitstreams" / "reports" / f"{board}.json"
    rel = str(path.relative_to(PROJECT_ROOT))
    return (json.loads(path.read_text()) if path.is_file() else None), rel


def _fps(cycles, mhz):
    return round(mhz * 1e6 / cycles, 2) if cycles and mhz else None


def _network_variant_rows(variant: str, rep: dict, cmd: str, fmax, fmax_note: str, dense_only: bool = False) -> list[dict]:
    """Cycles per pass, fps at 100 MHz and at Fmax, block RAM of one compile report."""
    cal = "dense" if dense_only else "calibrated"
    key = "dense_cycles" if dense_only else "predicted_cycles"
    rows = []
    for p, label in (("search_frame", "search frame"), ("template_update", "template pass")):
        if not dense_only:
            rows.append(row(f"{label} cycles, calibrated", rep["predicted_cycles"][p], "cycles", cmd, variant=variant,
                            note=f"{key}.{p}: max over {rep['calibration_frames']} synthetic crop(s)"))
        rows.append(row(f"{label} cycles, dense", rep["dense_cycles"][p], "cycles", cmd, variant=variant,
                        note=f"dense_cycles.{p}: every level non-zero (worst case)"))
    search = rep[key]["search_frame"]
    rows.append(row(f"search fps at 100 MHz ({cal})", _fps(search, 100.0), "frames/s", cmd, variant=variant,
                    note=f"100e6 / {key}.search_frame"))
    rows.append(row(f"search fps at Fmax ({cal})", _fps(search, fmax), "frames/s", cmd, variant=variant,
                    note=fmax_note))
    m = rep["memory"]
    rows.append(row(f"block RAM on {rep['board']}", m["ebr_used"], "EBR", cmd, variant=variant,
                    note=f"of {m['ebr_total']}; fits: {rep['fits']}; external: {', '.join(rep['external']['buffers']) or 'none'}"))
    return rows


def _compile_variant(name: str) -> dict:
    """Build ``name`` with its initial (random) weights, quantise, lower and compile it dense-only."""
    from spiketrack.compiler.build import compile_network
    from spiketrack.model import build_model
    from spiketrack.model.configs import get_config
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model

    net = lower(quantize_model(build_model(get_config(name)).eval(), QuantFormat()))
    return compile_network(net, board=BOARD, lanes=8, calibration_frames=0)["report"]


def network_rows(ctx: Context) -> list[dict]:
    """Whole-network cycles and fps per variant (``compile_network``, the numbers ``spiketrack compile`` prints)."""
    from spiketrack.model.configs import list_configs

    ulx, ulx_path = shipped_report(BOARD)
    fmax = ulx.get("fmax_mhz") if ulx else None
    fmax_note = f"Fmax {fmax} MHz of the shipped {BOARD} build ({ulx_path})" if fmax else f"no Fmax: {ulx_path} is missing"
    out_dir = "build/bench/compiled"
    rows = []
    rep = ctx.compiled("8")["report"]
    shipped = f"edge-t3 int8 QAT, P = {rep['lanes']} (shipped default)"
    rows += _network_variant_rows(shipped, rep, f"spiketrack compile --out {out_dir} --json", fmax, fmax_note)
    for s in rep["lane_sweep"]:
        if s["lanes"] == rep["lanes"]:
            continue
        cmd = f"spiketrack compile --lanes {s['lanes']} --out {out_dir} --json"
        v = f"edge-t3 int8 QAT, P = {s['lanes']}"
        note = "lane sweep of `spiketrack compile` (cycle model)" + (
            "; the accelerator top needs P >= 8" if s["lanes"] < 8 else "")
        rows.append(row("search frame cycles, calibrated", s["search_frame_cycles"], "cycles", cmd, variant=v,
                        note=f"{note}; LUT4 estimate of the engine: {s['lut_estimate']}"))
        rows.append(row("search fps at 100 MHz (calibrated)", _fps(s["search_frame_cycles"], 100.0), "frames/s", cmd,
                        variant=v, note="100e6 / predicted_cycles.search_frame"))
        rows.append(row("search fps at Fmax (calibrated)", _fps(s["search_frame_cycles"], fmax), "frames/s", cmd,
                        variant=v, note=fmax_note + " (Fmax measured at P = 8)"))
    if ctx.quick:
        rows.append(row("not run with --quick", None, "", _bench_cmd("network", False),
                        variant="edge-t3 int4 and mixed; edge-t1; paper-*; *-ann", note="the full run compiles them"))
    else:
        for bits in ("4", "mixed"):
            art = f"build/bench/art{bits}"
            cmd = (f"spiketrack quantize --float --bits {bits} --out {art} --check-frames 0 && "
                   f"spiketrack compile --artifact {art} --out {out_dir}-{bits} --json")
            r = ctx.compiled(bits)["report"]
            label = ("int4" if bits == "4" else "mixed int4/int8") + " (post-training, float parent)"
            rows += _network_variant_rows(f"edge-t3 {label}, P = {r['lanes']}", r, cmd, fmax, fmax_note)
    others = [] if ctx.quick else [n for n in list_configs() if n != "edge-t3"]
    for name in others:
        cmd = f"{_bench_cmd('network', ctx.quick)}  (_compile_variant({name!r}), benchmarks/suite.py)"
        try:
            r = _compile_variant(name)
        except Exception as e:  # the compiler's refusal is the figure
            rows.append(row("compiles", False, "", cmd, variant=name, note=f"{type(e).__name__}: {e}"))
            continue
        rows += _network_variant_rows(f"{name}, P = 8 (random weights)", r, cmd, fmax, fmax_note, dense_only=True)
    return rows


# ---------------------------------------------------------------------------------------------- simulators

def simulators_rows(ctx: Context) -> list[dict]:
    """Simulation speed of one small design (``benchmarks/sim_speed.py``) under the three simulators."""
    if ctx.quick:
        return [row("simulation speed", None, "cycles/s", _bench_cmd("simulators", False),
                    simulator="amaranth.sim, Icarus, Verilator", note="skipped with --quick")]
    from spiketrack.benchmarks import sim_speed

    rows = []
    runs = (("amaranth.sim", "amaranth_speed()", sim_speed.amaranth_speed),
            ("Icarus (cocotb)", "cocotb_speed('icarus')", lambda: sim_speed.cocotb_speed("icarus")),
            ("Verilator (cocotb)", "cocotb_speed('verilator')", lambda: sim_speed.cocotb_speed("verilator")))
    base = None
    for label, fn, measure in runs:
        cmd = f"{_bench_cmd('simulators', False)}  ({fn}, benchmarks/sim_speed.py)"
        try:
            r = measure()
        except Exception as e:
            rows.append(row("simulation speed", None, "cycles/s", cmd, simulator=label, design=sim_speed.LAYER,
                            note=f"{type(e).__name__}: {e}"))
            continue
        speed = round(r["cycles"] / r["run_seconds"]) if r["run_seconds"] > 0 else None
        base = base or speed
        build = ("" if "build_seconds" not in r else
                 f"; build {r['build_seconds']:.1f} s{'' if r['built'] else ' (cached)'}")
        rows.append(row("simulation speed", speed, "cycles/s", cmd, simulator=label, design=sim_speed.LAYER,
                        vs_amaranth_sim=round(speed / base, 1) if speed and base else None,
                        note=f"{r['cycles']} cycles in {r['run_seconds']:.2f} s{build}; "
                             f"set-up {r['setup_seconds']:.1f} s"))
    return rows


# ---------------------------------------------------------------------------------------------- cpu

def _tracking_fps(tracker, seq, warmup: int, budget_s: float, max_frames: int) -> tuple[float, int, float]:
    """(fps, frames, seconds): the tracker initialised on frame 0, ``warmup`` untimed updates, then
    timed updates until ``budget_s`` seconds have passed (at least one, at most ``max_frames``)."""
    tracker.init(seq.frame(0), seq.boxes[0])
    for i in range(1, 1 + warmup):
        tracker.update(seq.frame(i))
    t0 = time.perf_counter()
    n = 0
    while n < min(max_frames, len(seq) - 1 - warmup) and (n == 0 or time.perf_counter() - t0 < budget_s):
        tracker.update(seq.frame(1 + warmup + n))
        n += 1
    dt = time.perf_counter() - t0
    return n / dt, n, dt


def cpu_rows(ctx: Context) -> list[dict]:
    """Tracking fps on this CPU of the float model (the shipped float parent) and of the golden model
    (the shipped default's integer network on the golden executor), first synthetic benchmark sequence."""
    import torch

    from spiketrack.model.data.synthetic import benchmark_sequences
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.quant.tracking import ArtifactTracking

    warmup, budget, max_frames = (0, 2.0, 10) if ctx.quick else (1, 15.0, 20)
    seq = benchmark_sequences(1)[0]
    cmd = f"{_bench_cmd('cpu', ctx.quick)}  (cpu_rows, benchmarks/suite.py)"
    load = os.getloadavg()[0]
    where = (f"synthetic sequence {seq.name} after {warmup} warm-up frame(s), no template update, "
             f"{torch.get_num_threads()} torch threads, load average {load:.1f} on {os.cpu_count()} CPUs at the start")
    rows = []
    for label, model in (("float model (PyTorch; the float parent)", ctx.float_model),
                         ("golden model (integer executor; the QAT default)", ArtifactTracking(ctx.net("8")))):
        fps, n, dt = _tracking_fps(SpikeTrackTracker(model), seq, warmup, budget, max_frames)
        rows.append(row("tracking fps", round(fps, 3), "frames/s", cmd, model=f"edge-t3 {label}",
                        note=f"{n} search frame(s) in {dt:.2f} s; {where}"))
    return rows


# ---------------------------------------------------------------------------------------------- energy

def energy_rows(ctx: Context) -> list[dict]:
    """Energy per search frame three ways, from ``spiketrack energy``'s own functions
    (``quant/cli_energy.py``: ``measure``, ``accelerator_figures``)."""
    from spiketrack.quant.cli_energy import accelerator_figures, measure

    frames, lanes = (1 if ctx.quick else 4), 8
    net, cfg = ctx.net("8"), ctx.model.cfg
    rep = measure(net, cfg, frames)
    acc = accelerator_figures(net, cfg, frames, lanes)
    cmd = f"spiketrack energy --frames {frames} --accelerator --lanes {lanes} --json"
    ways = (("paper: adds vs 32-bit float MACs, memory ignored", rep, ""),
            ("memory counted, spiking model on its ANN twin's dataflow", rep["with_memory"], "with_memory."),
            ("memory counted, the accelerator's dataflow (counters)", acc["with_memory"], "accelerator.with_memory."))
    rows = []
    for way, fig, prefix in ways:
        for key, what, unit in (("snn_mj", "SNN energy per frame", "mJ"), ("ann_mj", "ANN twin energy per frame", "mJ"),
                                ("ratio", "ANN / SNN", "x")):
            rows.append(row(what, round(fig[key], 6), unit, cmd, convention=way, note=f"{prefix}{key}"))
    rows.append(row("synaptic operations per frame", round(rep["sops"]), "SOPs", cmd, convention="counts",
                    note=f"sops; {frames} synthetic frame(s), template amortised over {rep['update_interval']}"))
    rows.append(row("dense MACs per frame (ANN twin)", round(rep["macs"]), "MACs", cmd, convention="counts", note="macs"))
    return rows


# ---------------------------------------------------------------------------------------------- synthesis

SYNTH_FIGURES = (("lut", "LUT4", "LUT4"), ("ff", "flip-flops", "FF"), ("ebr", "block RAM", "EBR"),
                 ("dsp", "DSP blocks", "DSP"), ("fmax_mhz", "Fmax", "MHz"), ("clock_mhz", "clock constraint", "MHz"),
                 ("timing_met", "timing met", ""), ("fps_at_fmax", "search fps at Fmax (the network it carries)",
                                                    "frames/s"),
                 ("shipped_edge_t3_fps_at_fmax", "search fps at Fmax, shipped edge-t3", "frames/s"))


def report_source(board: str, root: Path = PROJECT_ROOT) -> Path | None:
    """The report a synthesis row reads: ``build/<board>/build_report.json`` when it exists and is
    newer than the shipped ``bitstreams/reports/<board>.json``, else the shipped one (None: neither)."""
    shipped = root / "bitstreams" / "reports" / f"{board}.json"
    fresh = root / "build" / board / "build_report.json"
    if fresh.is_file() and (not shipped.is_file() or fresh.stat().st_mtime > shipped.stat().st_mtime):
        return fresh
    return shipped if shipped.is_file() else None


def synthesis_rows(ctx: Context) -> list[dict]:
    """Per board, the figures of its build report (``spiketrack build --board BOARD --json``)."""
    boards = sorted(p.stem for p in (PROJECT_ROOT / "bitstreams" / "reports").glob("*.json"))
    rows = []
    for board in boards:
        path = report_source(board)
        rep = json.loads(path.read_text())
        src = str(path.relative_to(PROJECT_ROOT))
        cmd = rep.get("command") or f"spiketrack build --board {board} --json"
        totals = {"lut": rep.get("lut_total"), "ebr": rep.get("ebr_total")}
        for key, what, unit in SYNTH_FIGURES:
            if key not in rep:
                continue
            note = f"of {totals[key]}" if totals.get(key) else ""
            if key == "fps_at_fmax":
                note = (f"{rep.get('network', '')}, {rep['search_cycles']} cycles per search frame" if "search_cycles" in rep
                        else f"{rep.get('network', '')}, {rep.get('run_cycles')} cycles per run")
            rows.append(row(what, rep[key], unit, cmd, board=board, source=src, key=key, note=note))
    return rows


# ---------------------------------------------------------------------------------------------- runner

@dataclass(frozen=True)
class Section:
    fn: Callable[[Context], list[dict]]
    title: str


SECTIONS: dict[str, Section] = {
    "density": Section(density_rows, "conv engine: cycles against spike density, against the dense count"),
    "network": Section(network_rows, "whole network: cycles per pass and fps per variant"),
    "simulators": Section(simulators_rows, "simulation speed of one small design"),
    "cpu": Section(cpu_rows, "golden-model and float-model fps on this CPU"),
    "energy": Section(energy_rows, "energy per search frame, three ways"),
    "synthesis": Section(synthesis_rows, "synthesis and place-and-route per board"),
}


def parse_sections(text: str | None) -> list[str]:
    """``"a,b"`` -> the names in :data:`SECTIONS` order; an unknown name is a ValueError naming it."""
    if text is None:
        return list(SECTIONS)
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        raise ValueError(f"unknown section{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
                         f"known: {', '.join(SECTIONS)}")
    if not names:
        raise ValueError(f"--sections names no section; known: {', '.join(SECTIONS)}")
    return [n for n in SECTIONS if n in names]


def _cell(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:,.0f}" if abs(v) >= 1e5 else f"{v:.6g}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    """Plain-text table of ``rows`` (scalar columns only); commands numbered below it."""
    cols: list[str] = []
    for r in rows:
        for k, v in r.items():
            if k not in cols and k not in ("command", "key") and not isinstance(v, (dict, list)):
                cols.append(k)
    commands: list[str] = []
    for r in rows:
        if r["command"] not in commands:
            commands.append(r["command"])
    table = [cols + ["cmd"]] + [[_cell(r.get(c)) if c in r else "" for c in cols] + [f"[{commands.index(r['command']) + 1}]"]
                                for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    right = {cols.index("figure")} if "figure" in cols else set()
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
             for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines += [f"[{i + 1}] {c}" for i, c in enumerate(commands)]
    return "\n".join(lines)


def run_suite(sections: list[str], quick: bool = False, echo: Callable[[str], None] | None = None) -> dict:
    """Run ``sections``; returns the JSON document. A section that raises gets one row naming the
    error and ``status: "error"``. ``echo(text)`` receives each section's table as it is done."""
    import torch

    ctx = Context(quick)
    doc = {"format": BENCH_FORMAT, "version": BENCH_VERSION, "quick": quick,
           "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
           "machine": {"python": platform.python_version(), "torch": torch.__version__,
                       "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                       "cpu": platform.processor() or platform.machine()},
           "sections": {}}
    t_all = time.perf_counter()
    for name in sections:
        sec = SECTIONS[name]
        t0 = time.perf_counter()
        try:
            rows, status = sec.fn(ctx), "ok"
        except Exception as e:
            rows, status = [row(f"{name} section failed", None, "", _bench_cmd(name, quick),
                                note=f"{type(e).__name__}: {e}")], "error"
        seconds = round(time.perf_counter() - t0, 1)
        doc["sections"][name] = {"title": sec.title, "status": status, "seconds": seconds, "rows": rows}
        if echo:
            echo(f"== {name}: {sec.title} ({seconds} s{'' if status == 'ok' else ', FAILED'})\n{format_table(rows)}\n")
    doc["seconds"] = round(time.perf_counter() - t_all, 1)
    return doc


def add_arguments(p) -> None:
    p.add_argument("--quick", action="store_true",
                   help="skip the slow parts (simulators, the RTL run, other weight formats, paper variants)")
    p.add_argument("--out", default=DEFAULT_OUT, help=f"JSON file (default {DEFAULT_OUT}, written atomically)")
    p.add_argument("--json", action="store_true", help="print the JSON instead of the tables")
    p.add_argument("--sections", default=None, help=f"comma-separated subset of: {', '.join(SECTIONS)} (default all)")


def run(args) -> int:
    from spiketrack.atomic import write_text_atomic

    sections = parse_sections(args.sections)
    if args.json:  # stdout carries the JSON alone: anything printed on the way goes to stderr
        with contextlib.redirect_stdout(sys.stderr):
            doc = run_suite(sections, quick=args.quick)
    else:
        doc = run_suite(sections, quick=args.quick, echo=lambda text: print(text, flush=True))
    text = json.dumps(doc, indent=1, default=str)
    path = write_text_atomic(args.out, text + "\n")
    if args.json:
        print(text)
    else:
        print(f"{len(sections)} section(s) in {doc['seconds']} s; JSON: {path}")
    failed = [n for n, s in doc["sections"].items() if s["status"] != "ok"]
    if failed:
        print(f"spiketrack bench: section(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
