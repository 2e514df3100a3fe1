"""``spiketrack build``: the accelerator with its UART link as a bitstream for a board.

Steps: compile the network for the accelerator (``compiler/accel.py``), size every memory for its
program and bake the program, weights and tables into the block RAM, estimate the resources
(:func:`estimate`, stated formulas, seconds), refuse what does not fit (naming the resource), then
synthesis, place and route and packing through amaranth-boards (:func:`~.synth.build_bitstream`),
with the bitstream, the logs and ``build_report.json`` under ``build/<board>/``.

Which network: ``--compiled DIR`` (an integer-network artifact, ``spiketrack quantize --out``), or
by default the reduced edge-t3 of ``sim/reduced.py`` (every op kind of edge-t3 at 16×16 crops):
the shipped edge-t3's program needs about 8.7 Mbit of memory on chip, more than the 3.8 Mbit of
block RAM of an ECP5-85F; with ``external_weights`` (its weights in the ULX3S's SDRAM) it fits
(docs/boards.md).

The iCEBreaker (UP5K: 5,280 logic cells, 30 EBR) gets a reduced configuration (:data:`REDUCED`):
the memory builder alone (``M = Kᵀ·V``) at P = 4 with 10-bit addresses, five counters and the
slow-clock form of the memory paths (``read_registers="address"``: the memories' read registers
in front of their block RAMs, the host's row masks unregistered), the controller, host interface
and UART link otherwise unchanged, so the same driver and protocol run it; by
default it carries ``sim/reduced.memory_network``. The conv engine does not fit (yosys alone:
12,464 LUT4 at P = 8, 4,921 at P = 2), nor does the vector unit with the controller and link
(6,626 logic cells at P = 1, nextpnr could not place it). At P = 8 the memory builder's
configuration (86.7 % of the logic cells) places only with some nextpnr seeds (docs/boards.md).
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

from spiketrack.atomic import write_text_atomic
from spiketrack.bitstreams.boards import get_board
from spiketrack.hw.accel.top import UNITS, is_built, mem_widths
from spiketrack.hw.banked_memory import BANK_ROWS, bank_rows_of

__all__ = ["estimate", "ebr_blocks", "board_network", "board_program", "build_accelerator", "nextpnr_options", "ECP5_PLACER", "BoardDoesNotFit", "EBR_TOTAL",
           "LUT_TOTAL"]

#: Block RAMs and LUT4s of each device (data sheets; nextpnr reports the same "available").
EBR_TOTAL = {("ecp5", "85k"): 208, ("ice40", "up5k"): 30}
LUT_TOTAL = {("ecp5", "85k"): 83640, ("ice40", "up5k"): 5280}
#: (depth, width) configurations of one block RAM: ECP5 DP16KD (18 Kbit), iCE40 SB_RAM40_4K (4 Kbit)
EBR_SHAPES = {"ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)),
              "ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2))}
READ_PORTS = {"lv": 2, "st": 2}   #: memories with a second read port: the rows it reaches are stored twice
#: LUT4 / FF per lane and fixed, of the accelerator's parts (see estimate())
LUT_PER_LANE, LUT_FIXED = 2600, 3000
FF_PER_LANE, FF_FIXED = 1300, 2500
#: A reduced configuration: LUT4 / FF per lane and fixed of each unit present (yosys synth_ice40 of
#: the unit alone at P = 1, 2, 4, 8), plus the controller, host interface and link (the whole linked
#: accelerator with the vector unit at P = 1 less that unit: 4,396 − 2,492 LUT4, 2,974 − 1,578 FF;
#: docs/boards.md)
UNIT_LUT = {"vec": (880, 1610), "mb": (27, 845)}
UNIT_FF = {"vec": (530, 1050), "mb": (24, 385)}
CTRL_LUT, CTRL_FF = 1900, 1400
#: iCE40 logic cells per LUT4 + FF after packing (a cell holds one LUT4 and one FF): 0.78-0.81 in
#: the UP5K builds of the reduced configuration (4,323 and 4,577 cells at P = 4 and 8; docs/boards.md)
ICE40_CELLS_PER_LUT_FF = 0.8
#: EBR of the link's frame buffer and response FIFO (ECP5: one block each, as Yosys maps them in
#: builds u62w and full1; iCE40: 256 × 32 and 64 × 32 are two 256 × 16 each)
LINK_EBR = {"ecp5": 2, "ice40": 4}

#: Boards whose device cannot hold the whole accelerator: the configuration they get instead
#: (``Accelerator`` keyword arguments) and the network they carry by default.
REDUCED = {"icebreaker": {"lanes": 4, "addr_bits": 10, "units": ("mb",),
                          "counters": ("cycles", "run_cycles", "mb_busy", "lv_reads", "tm_writes"),
                          # the slow-clock form of the memory paths, which the 24 MHz clock allows: about
                          # 700 flip-flops fewer at P = 8 (hw/banked_memory.py, hw/accel/top.py; docs/boards.md)
                          "read_registers": "address",
                          "network": "one MRM's template-memory build (sim/reduced.py memory_network: "
                                     "M = K^T V, T 3, 2 heads, d_h = d_v = 8, 4x4 tokens)"}}


#: Boards without a USB-serial UART: the link's pins (OrangeCrab: feather pins 0 = RX, 1 = TX)
UART_PINS = {"orangecrab-85f": {"rx": "0", "tx": "1", "conn": ("io", 0)}}


#: The SDRAM controller alone (yosys synth_ecp5 at 100 MHz, CL2; docs/sdram.md): LUT4 and FF
SDRAM_LUT, SDRAM_FF = 339, 392


class BoardDoesNotFit(ValueError):
    """The design needs more of a resource than the board's device has."""


def ebr_blocks(width: int, depth: int, family: str) -> int:
    """Block RAMs for one ``width × depth`` memory: the cheapest single configuration, tiled."""
    return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in EBR_SHAPES[family])


def banked_blocks(width: int, depth: int, family: str, bank_rows: int = BANK_ROWS) -> int:
    """Block RAMs of one :class:`~spiketrack.hw.banked_memory.BankedMemory`: each bank (``bank_rows``
    rows, the last one the rest) mapped on its own, by :func:`ebr_blocks`."""
    R = bank_rows_of(depth, bank_rows)
    full, rest = divmod(depth, R)
    return full * ebr_blocks(width, R, family) + (ebr_blocks(width, rest, family) if rest else 0)


def estimate(depths: dict, lanes: int, family: str, addr_bits: int = 16, units: tuple = UNITS,
             sdram: bool = False, second_port_rows: dict | None = None, cst_bits: int = 16,
             read_registers: str = "data") -> dict:
    """Pre-synthesis estimate ``{"lut", "ff", "ebr", "ebr_by_memory"}``.

    * EBR: per memory :func:`banked_blocks` (bank by bank), plus for ``lv`` and ``st`` those of the
      banks their second read port reaches (``second_port_rows``, default every row: those banks
      are stored twice), ``cst`` at ``cst_bits`` per lane (``Accelerator(cst_bits=...)``), plus the link's frame buffer (:data:`LINK_EBR`); a one-row memory (a unit
      left out) is flip-flops, no EBR.
    * LUT = ``LUT_PER_LANE·P + LUT_FIXED``, FF = ``FF_PER_LANE·P + FF_FIXED``: the three units'
      datapaths grow with the lanes ``P``; the controller, host interface, link and counters do not.
      FF adds the memories' port registers (:func:`memory_ff`, for ``read_registers``); with
      ``read_registers="address"`` it leaves out the host's row-read mask registers (a row per
      memory built), which that form does without.
      A reduced configuration (not all three units): per unit present ``a·P + b`` of
      :data:`UNIT_LUT` / :data:`UNIT_FF`, plus ``CTRL_LUT`` / ``CTRL_FF``.
    * ``sdram`` (external weights): plus :data:`SDRAM_LUT` / :data:`SDRAM_FF`, the controller
      alone as synthesised (docs/sdram.md); the fetch unit and the bus multiplexers are not counted.
    * iCE40: ``logic_cells`` = :data:`ICE40_CELLS_PER_LUT_FF` · (LUT + FF), what the device's
      logic-cell count limits (a cell holds one LUT4 and one FF, and many do not pair).
    """
    widths = dict(mem_widths(lanes, addr_bits, units), cst=cst_bits * lanes)
    second = {k: d for k, d in depths.items() if k in READ_PORTS}
    for k, v in (second_port_rows or {}).items():   # the whole banks that hold those rows
        if v is not None and k in depths:
            R = bank_rows_of(depths[k])
            second[k] = min(depths[k], -(-v // R) * R)
    by_mem = {k: banked_blocks(widths[k], d, family) + (banked_blocks(widths[k], second[k], family) if second.get(k) else 0)
              if d > 1 else 0 for k, d in depths.items()}
    if set(units) == set(UNITS):
        lut, ff = LUT_PER_LANE * lanes + LUT_FIXED, FF_PER_LANE * lanes + FF_FIXED
    elif set(units) <= set(UNIT_LUT):
        lut = CTRL_LUT + sum(UNIT_LUT[u][0] * lanes + UNIT_LUT[u][1] for u in units)
        ff = CTRL_FF + sum(UNIT_FF[u][0] * lanes + UNIT_FF[u][1] for u in units)
    else:
        raise ValueError(f"no estimate formula for the units {tuple(units)} (all three, or without the conv engine)")
    ff += sum(memory_ff(widths[k], d, addr_bits, READ_PORTS.get(k, 1), read_registers) for k, d in depths.items() if d >= 1)
    if read_registers == "address":   # the host's row-read masks are not registered then (hw/accel/top.py)
        ff -= sum(widths[k] for k in depths if is_built(k, units))
    if sdram:
        lut, ff = lut + SDRAM_LUT, ff + SDRAM_FF
    out = {"lut": lut, "ff": ff, "ebr": sum(by_mem.values()) + LINK_EBR[family], "ebr_by_memory": by_mem}
    if family == "ice40":
        out["logic_cells"] = round(ICE40_CELLS_PER_LUT_FF * (lut + ff))
    return out


def memory_ff(width: int, depth: int, addr_bits: int, read_ports: int = 1, read_registers: str = "data") -> int:
    """Flip-flops of one :class:`~spiketrack.hw.banked_memory.BankedMemory`: per read port the
    registered address and enable (once more per OR step the memory does not need), one bank-local
    address, per bank an enable, two read flags and two data registers (the second bank step), and
    the OR steps' group registers; the write port's bank-local address per bank, data and one
    enable per bank (its whole address only feeds observers, which synthesis drops). With
    ``read_registers="address"`` a read port is ``READ_LATENCY - 1`` address and enable registers
    and the bank index (or the in-reach flag) registered once."""
    from spiketrack.hw.banked_memory import BANK_ROWS, MAX_OR_LEVELS, OR_GROUP, READ_LATENCY, or_levels

    rows = min(BANK_ROWS, 1 << max(0, (depth - 1).bit_length()))
    banks = math.ceil(depth / rows)
    lo = (rows - 1).bit_length()
    write = banks * lo + width + banks
    if read_registers == "address":
        per_port = (READ_LATENCY - 1) * (addr_bits + 1) + max(1, (banks - 1).bit_length())
        return read_ports * per_port + write
    levels = or_levels(banks)
    ors, n = 0, banks
    for _ in range(levels):
        n = math.ceil(n / OR_GROUP)
        ors += n * width
    per_port = (MAX_OR_LEVELS - levels + 1) * (addr_bits + 1) + lo + banks * (4 + 2 * width) + ors
    return read_ports * per_port + write


def board_network(compiled: str | None = None, board: str | None = None):
    """``(IntegerNetwork, description)`` of the network a bitstream carries: the artifact
    ``compiled``, or the board's default (the reduced edge-t3; on a :data:`REDUCED` board its
    network)."""
    if compiled:
        from spiketrack.quant.ir import load_artifact

        return load_artifact(compiled), f"artifact {compiled}"
    if board in REDUCED:
        from spiketrack.sim.reduced import memory_network

        return memory_network()[0], REDUCED[board]["network"]
    from spiketrack.sim.reduced import reduced_network

    return reduced_network()[0], "reduced edge-t3 (sim/reduced.py: 16x16 crops, random weights)"


def board_program(compiled: str | None = None, lanes: int = 8, board: str | None = None, ext_weights: bool = False):
    """``(AccelProgram, description, cycles)`` of the network the bitstream carries (compiled for
    the board's configuration); ``cycles`` is the cycle model's search frame on a random crop, or
    for a one-program network one run on its default inputs."""
    import torch

    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.compiler.fuse import fuse
    from spiketrack.compiler.schedule import programs, run_program
    from spiketrack.sim.accel_sim import golden_passes

    net, desc = board_network(compiled, board)
    cfg = REDUCED.get(board, {})
    ap = lower_to_accel(net, lanes, cfg.get("addr_bits", 16), units=cfg.get("units", UNITS), ext_weights=ext_weights)
    if "run" in ap.programs:
        from spiketrack.sim.reduced import memory_network

        graph = fuse(net)[0]
        env = run_program(graph, programs(graph)["run"], {k: v[:, :1] for k, v in memory_network()[1].items()})
        return ap, desc, ap.run_cycles(graph, "run", env)
    zt, xt = net.types["template_pixels"].shape, net.types["search_pixels"].shape
    g = torch.Generator().manual_seed(0)
    zp = torch.randint(0, 256, (zt[0], 1, *zt[1:]), generator=g)
    xp = torch.randint(0, 256, (xt[0], 1, *xt[1:]), generator=g)
    graph, passes = golden_passes(net, [(zp, xp)])
    cycles = ap.run_cycles(graph, "search_frame", passes[1][1])
    return ap, desc, cycles


def _progress(out: Path, name: str, stop: threading.Event, t0: float, echo) -> None:
    while not stop.wait(30):
        step = ("packing" if (out / f"{name}.config").exists() or (out / f"{name}.asc").exists() else
                "place and route (nextpnr)" if (out / f"{name}.json").exists() else "synthesis (yosys)")
        echo(f"  {step}: {time.monotonic() - t0:.0f} s")


#: nextpnr's placer for ECP5 builds of the accelerator: the analytic ``static`` placer. With the
#: default ``heap`` placer router2 often diverged on the ULX3S build (overuse falling to ~1,000-2,000
#: wires, then rising: 8 of 11 builds of docs/boards.md since the banked memories did not route); with ``static`` every build
#: so far routed (docs/boards.md, builds u100q and later). ``--nextpnr-arg=--placer
#: --nextpnr-arg=heap`` chooses another.
ECP5_PLACER = "static"

#: nextpnr's router for ECP5 builds of the accelerator: ``router1``. On one placement (the shipped
#: RTL, seed 1) router2 gave 87.16 MHz with 159 endpoints above 10 ns and router1 99.16 MHz with 1,
#: in 313 s against 356 (docs/boards.md, builds ``r5s1`` and ``m1s1``). router1 had not
#: converged in 45 min on the builds before the floorplan and the register copies (u100 series).
#: ``--nextpnr-arg=--router --nextpnr-arg=router2`` chooses the other.
ECP5_ROUTER = "router1"


def _option(fam: str, nextpnr_args, name: str, default: str) -> str | None:
    args = list(nextpnr_args)
    if name in args:
        i = args.index(name)
        return args[i + 1] if i + 1 < len(args) else None
    return default if fam == "ecp5" else None


def _placer(fam: str, nextpnr_args) -> str | None:
    return _option(fam, nextpnr_args, "--placer", ECP5_PLACER)


def nextpnr_options(fam: str, nextpnr_args=()) -> list[str]:
    """nextpnr's options of an accelerator build: the build's own, then ``nextpnr_args``. On ECP5:
    :data:`ECP5_ROUTER` and :data:`ECP5_PLACER`, each unless ``nextpnr_args`` names that option
    (nextpnr takes an option once)."""
    own = []
    if fam == "ecp5":
        for name, default in (("--router", ECP5_ROUTER), ("--placer", ECP5_PLACER)):
            if name not in nextpnr_args:
                own += [name, default]
    return own + ["--timing-allow-fail", "--detailed-timing-report", *nextpnr_args]


def build_accelerator(board: str, *, compiled: str | None = None, lanes: int | None = None,
                      clock_mhz: float | None = None, constrain_mhz: float | None = None,
                      baud: int = 1_000_000, seed: int | None = None, nextpnr_args=(), estimate_only: bool = False,
                      out_dir: str | Path | None = None, echo=print, external_weights: bool = False,
                      floorplan: dict | None = None) -> dict:
    """Build (or only estimate) the accelerator bitstream for ``board``; returns the report.
    ``nextpnr_args`` go to nextpnr after the build's own options (recorded in the report).
    ``constrain_mhz`` (ECP5): place and route times the core against this clock instead of the
    core clock (over-constraining); ``timing_met`` is still Fmax against the core clock.
    ``external_weights``: the weights in the board's SDRAM (``BoardTop(sdram=True)``, ULX3S),
    ``w`` a weight cache (``lower_to_accel(ext_weights=True)``); the host loads them into memory
    EXT over the link. ``floorplan`` (ECP5 85k): block-RAM sites of the memories it names
    (:mod:`bitstreams.floorplan`), recorded in the report."""
    from spiketrack.bitstreams.synth import PROJECT_ROOT, build_bitstream
    from spiketrack.hw.accel.board import BoardTop

    t0 = time.monotonic()
    b = get_board(board)
    fam, dev = b.device.family, b.device.device
    clock_mhz = clock_mhz or (100.0 if fam == "ecp5" else 24.0)
    cfg = dict(REDUCED.get(b.name, {}))
    lanes = lanes or cfg.get("lanes", 8)
    units, addr_bits = cfg.get("units", UNITS), cfg.get("addr_bits", 16)
    echo(f"[1/3] compiling the network for the accelerator (P = {lanes}, units {', '.join(units)})")
    if external_weights and b.name != "ulx3s-85f":
        raise ValueError(f"--external-weights: the SDRAM controller (hw/sdram/) serves the ULX3S's SDR SDRAM; "
                         f"{b.name} has none it can drive")
    ap, desc, cycles = board_program(compiled, lanes, b.name, external_weights)
    est = estimate(ap.depths, lanes, fam, addr_bits, units, sdram=external_weights, second_port_rows=ap.second_port_rows,
                   cst_bits=ap.cst_bits, read_registers=cfg.get("read_registers", "data"))
    ebr_total, lut_total = EBR_TOTAL[(fam, dev)], LUT_TOTAL[(fam, dev)]
    report = {"board": b.name, "device": f"{fam}-{dev}", "network": desc, "lanes": lanes, "units": list(units),
              "addr_bits": addr_bits, "depths": dict(ap.depths), "lut_total": lut_total, "ebr_total": ebr_total,
              "external_weights": external_weights, "floorplan": floorplan,
              "estimate": {k: est[k] for k in ("lut", "ff", "ebr", "logic_cells") if k in est},
              "ebr_by_memory": est["ebr_by_memory"],
              ("run_cycles" if "run" in ap.programs else "search_cycles"): cycles}
    problems = []
    if est["ebr"] > ebr_total:
        worst = ", ".join(f"{k} {v}" for k, v in sorted(est["ebr_by_memory"].items(), key=lambda kv: -kv[1]))
        problems.append(f"block RAM: {est['ebr']} EBR estimated, {est['ebr'] - ebr_total} more than the {ebr_total} "
                        f"of {b.name} (by memory: {worst}, link {LINK_EBR[fam]})")
    if est["lut"] > lut_total:
        problems.append(f"logic: {est['lut']} LUT4 estimated, {est['lut'] - lut_total} more than the {lut_total} "
                        f"of {b.name}")
    cells = est.get("logic_cells")
    if cells is not None and cells > lut_total:
        problems.append(f"logic: {cells} logic cells estimated ({ICE40_CELLS_PER_LUT_FF} x (LUT4 + FF)), "
                        f"{cells - lut_total} more than the {lut_total} of {b.name}")
    report["fits"] = not problems
    if problems:
        raise BoardDoesNotFit(f"{desc} does not fit {b.name}: " + "; ".join(problems))
    if estimate_only:
        report["seconds"] = round(time.monotonic() - t0, 1)
        return report
    out = Path(out_dir) if out_dir else PROJECT_ROOT / "build" / b.name
    top = BoardTop(family=fam, f_in_mhz=b.clock_mhz, clock_mhz=clock_mhz, constrain_mhz=constrain_mhz, baud=baud,
                   lanes=lanes, depths=ap.depths,
                   init={m: ap.images[m] for m in ("prog", "w", "tab", "cst")}, uart_pins=UART_PINS.get(b.name),
                   sdram=external_weights, second_port_rows=ap.second_port_rows, cst_bits=ap.cst_bits,
                   **{k: v for k, v in cfg.items() if k in ("addr_bits", "units", "counters", "read_registers")})
    echo(f"[2/3] synthesis, place and route, packing -> {out}/ (core clock {top.f_core_mhz:.2f} MHz, "
         f"UART {baud} baud)")
    stop = threading.Event()
    watcher = threading.Thread(target=_progress, args=(out, "spiketrack", stop, time.monotonic(), echo), daemon=True)
    watcher.start()
    try:
        # ECP5: ECP5_ROUTER and ECP5_PLACER unless the caller names a router or a placer;
        # --timing-allow-fail: a clock above Fmax still gives the report (timing_met false, a warning);
        # --detailed-timing-report: every sink's arrival time in report.json (tools/late_endpoints.py)
        fig = build_bitstream(top, b.name, out, name="spiketrack", seed=seed, abc9=False,
                              nextpnr_opts=nextpnr_options(fam, nextpnr_args), floorplan=floorplan)
    finally:
        stop.set()
    core = {k: v for k, v in fig["fmax_by_clock"].items()}
    fmax = round(min(core.values()), 2) if core else None
    report.update({
        "lut": fig["lut"], "logic_cells": fig["logic_cells"], "ff": fig["ff"], "ebr": fig["ebr"], "dsp": fig["dsp"],
        "spram": fig["cells"].get("SB_SPRAM256KA", 0), "carry": fig["carry"], "fmax_mhz": fmax, "fmax_by_clock": core, "clock_mhz": round(top.f_core_mhz, 3),
        "constraint_mhz": round(top.constraint_mhz, 3),
        # against the core clock the PLL makes (nextpnr's own verdict is against the constraint)
        "timing_met": (fmax >= top.f_core_mhz) if fmax else fig["timing_met"], "bitstream": fig["bitstream"],
        "fps_at_fmax": round(fmax * 1e6 / cycles, 1) if fmax else None,
        "estimate_error": {k: round((report["estimate"][k] - fig[k]) / fig[k], 3) if fig[k] else None
                           for k in report["estimate"]},
        "nextpnr_args": list(nextpnr_args),
        "placer": _placer(fam, nextpnr_args), "router": _option(fam, nextpnr_args, "--router", ECP5_ROUTER),
        "seconds": round(time.monotonic() - t0, 1),
    })
    echo("[3/3] done")
    write_text_atomic(out / "build_report.json", json.dumps(report, indent=1, default=str))
    return report
