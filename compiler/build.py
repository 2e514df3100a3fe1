"""``spiketrack compile`` as build steps, and the compiled artifact.

Steps (each recorded with its seconds in the report): ``load`` the integer network, ``fuse``
(hardware ops), ``programs`` (template / search), ``calibrate`` (golden runs on synthetic-benchmark
crops: the compiled programs must equal ``run_network``; their data gives the cycle counts),
``cost`` (cycle model per node, dense and calibrated), ``memory_plan``, ``pack`` (memory images),
``write``.

The compiled artifact is a folder: ``images.npz`` (weight lines, tables and constants per node)
and ``compiled.json`` (format name and version, the source artifact's parameter hash, engine,
board, programs, memory plan, predicted cycles, and the SHA-256 of ``images.npz``), written
atomically, manifest last. :func:`load_compiled` refuses a wrong version, a changed image or a
program that names layers its network does not have.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from spiketrack.atomic import write_bytes_atomic
from spiketrack.compiler.fuse import CompileError, fuse
from spiketrack.compiler.hwops import REGISTRY, HwNode
from spiketrack.compiler.memplan import BOARD_MEMORY, plan_memory
from spiketrack.compiler.schedule import program_cost, programs, run_program
from spiketrack.hw.engine_cycles import Engine
from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import IntegerNetwork, read_manifest

__all__ = ["COMPILED_FORMAT", "COMPILED_VERSION", "compile_network", "load_compiled", "lut_estimate"]

COMPILED_FORMAT = "spiketrack-compiled"
COMPILED_VERSION = 1
LANE_CHOICES = (4, 8, 16, 32)


def lut_estimate(lanes: int) -> int:
    """LUT4 estimate of the conv engine from the measured synaptic-core syntheses (docs/hw_cores.md:
    P = 8 / 16 / 32 -> 1245 / 2218 / 3718 LUT4): a least-squares line, ``330 + 103·P``."""
    return 330 + 103 * lanes


def _calibration_inputs(net: IntegerNetwork, frames: int):
    from spiketrack.model.configs import get_config
    from spiketrack.quant.compare import synthetic_frames

    return list(synthetic_frames(get_config(net.meta["config"]), frames)) if frames else []


def compile_network(net: IntegerNetwork, *, board: str, lanes: int | None = None, target_fps: float | None = None,
                    calibration_frames: int = 1, clock_mhz: float = 100.0, external="auto") -> dict:
    """Compile ``net`` for ``board``; returns the report and the packed images (not yet written).

    ``external`` is the memory plan's placement (:func:`~spiketrack.compiler.memplan.plan_memory`):
    ``"auto"``, ``"none"`` or a list of buffer names for the board's external memory.
    """
    if board not in BOARD_MEMORY:
        raise CompileError(f"unknown board {board!r}; known: {', '.join(BOARD_MEMORY)}")
    steps, t = {}, time.monotonic()

    def step(name):
        nonlocal t
        now = time.monotonic()
        steps[name] = round(now - t, 2)
        t = now

    graph, records = fuse(net)   # graph.net: net after the compiler's IR rewrite (compiler/fuse.py)
    step("fuse")
    progs = programs(graph)
    step("programs")
    envs = []
    for zp, xp in _calibration_inputs(net, calibration_frames):
        zp, xp = zp[:, :1], xp[:, :1]
        ref = run_network(net, {"template_pixels": zp, "search_pixels": xp}, dump=True).tensors
        env = run_program(graph, progs["template_update"], {"template_pixels": zp})
        env = run_program(graph, progs["search_frame"], {"search_pixels": xp, **{m: env[m] for m in progs["template_update"].outputs}}) | env
        for name in progs["search_frame"].outputs + progs["template_update"].outputs:
            if not torch.equal(env[name], ref[name]):
                raise CompileError(f"compiled programs differ from the golden network at {name!r} (a fusion bug)")
        envs.append(env)
    step("calibrate")

    def cycles_for(engine):
        out = {}
        for pname, prog in progs.items():
            dense, _ = program_cost(graph, prog, engine)
            cal = [program_cost(graph, prog, engine, e)[0] for e in envs]
            out[pname] = {"dense": dense.cycles, "calibrated": max((c.cycles for c in cal), default=None),
                          "cost": cal[0] if cal else dense}
        return out

    sweep = []
    if lanes is None:
        for p in LANE_CHOICES:
            cyc = cycles_for(Engine(p))
            frame = cyc["search_frame"]["calibrated"] or cyc["search_frame"]["dense"]
            sweep.append({"lanes": p, "search_frame_cycles": frame, "fps": clock_mhz * 1e6 / frame,
                          "lut_estimate": lut_estimate(p)})
        ok = [s for s in sweep if target_fps is None or s["fps"] >= target_fps]
        lanes = (ok[0] if ok else sweep[-1])["lanes"] if target_fps is not None else 8
    engine = Engine(lanes)
    cyc = cycles_for(engine)
    step("cost")
    try:
        plan = plan_memory(graph, progs, engine, board, external)
    except ValueError as e:
        raise CompileError(str(e)) from None
    step("memory_plan")
    images = {}
    for i, node in enumerate(graph.nodes):
        for mem, arr in REGISTRY[node.kind].pack(node, graph.net, engine).items():
            images[f"{i:04d}/{mem}"] = arr
    step("pack")
    frame = cyc["search_frame"]["calibrated"] or cyc["search_frame"]["dense"]
    weight_bits = sorted({l.attrs["weight_bits"] for l in net.layers if "weight_bits" in l.attrs})
    report = {
        "board": board,
        "config": net.meta.get("config"),
        "layers": len(net.layers),
        "nodes": len(graph.nodes),
        "node_kinds": {k: sum(n.kind == k for n in graph.nodes) for k in REGISTRY if any(n.kind == k for n in graph.nodes)},
        "ops_unplaced": [],
        "memory": {"weights_bits": plan.bits("weights"), "tables_bits": plan.bits("tables"),
                   "consts_bits": plan.bits("consts"), "activations_bits": plan.bits("activations"),
                   "membranes_bits": plan.bits("membranes"), "template_memory_bits": plan.bits("template_memory"),
                   "line_buffer_bits": plan.bits("pixel_line_buffer"),
                   "ebr_used": plan.ebr_used, "ebr_total": plan.ebr_total,
                   "template_consts_bits": plan.bits("template_consts"),
                   "buffers": plan.buffers, "activation_peak_at": plan.peak_tensors},
        "external_bits": plan.external_bits,
        "external": _external_report(plan, cyc),
        "fits": plan.fits,
        "weight_bits": weight_bits[0] if len(weight_bits) == 1 else "mixed",
        "predicted_cycles": {k: v["calibrated"] or v["dense"] for k, v in cyc.items()},
        "dense_cycles": {k: v["dense"] for k, v in cyc.items()},
        "calibration_frames": len(envs),
        "fps_at_100mhz": round(100e6 / frame, 2),
        "lanes": lanes,
        "engine": asdict(engine),
        "lane_sweep": sweep,
        "traffic_bits": {k: {"reads": v["cost"].reads, "writes": v["cost"].writes, "adds": v["cost"].adds}
                         for k, v in cyc.items()},
        "passes": [{"pass": r.name, "changes": r.changes} for r in records],
        "steps_seconds": steps,
    }
    return {"report": report, "images": images, "graph": graph, "programs": progs}


def _external_report(plan, cyc: dict) -> dict:
    """The external-memory part of the report: part, capacity, placed buffers and their traffic.

    The bus is assumed to move ``bus_bits`` per accelerator cycle (one x16 word), and the predicted
    cycles do not include the transfers (``cycles_include_transfers``: false): they assume the
    transfers are hidden behind compute, which a pass can only do while its bus cycles stay below
    its compute cycles; ``bandwidth_bound`` names the passes where they do not."""
    ext = plan.external
    traffic = plan.external_traffic()
    out = {"memory": ext.name if ext else None, "capacity_bits": ext.bits if ext else 0,
           "placement": plan.placement, "buffers": plan.external_buffers, "bits": plan.external_bits,
           "traffic_bits": traffic}
    if ext:
        # lower bound on the bus cycles the traffic takes (bus_bits per cycle), against the pass
        pcyc = {k: v["calibrated"] or v["dense"] for k, v in cyc.items()}
        out["bus_bits_per_cycle"] = ext.bus_bits
        out["min_bus_cycles"] = {k: math.ceil(v / ext.bus_bits) for k, v in traffic.items()}
        out["search_frame_bus_share"] = round(out["min_bus_cycles"]["search_frame"] / pcyc["search_frame"], 4)
        out["template_update_bus_share"] = round(out["min_bus_cycles"]["template_update"] / pcyc["template_update"], 4)
        out["cycles_include_transfers"] = False
        out["bandwidth_bound"] = {k: out["min_bus_cycles"][k] > pcyc[k] for k in traffic}
        out["buffer_traffic_bits"] = {n: plan.buffers[n]["traffic_bits"] for n in plan.external_buffers}
    return out


def shortfall(report: dict) -> str:
    """The refusal message of a design that does not fit: the largest buffers and the shortfall."""
    m = report["memory"]
    bufs = sorted(((k, v) for k, v in m["buffers"].items() if v["place"] == "ebr"), key=lambda kv: -kv[1]["ebr"])
    parts = ", ".join(f"{k} {v['ebr']} EBR ({v['bits'] / 8192:.0f} KiB)" for k, v in bufs if v["ebr"])
    ext = report.get("external", {})
    where = (f"; in {ext['memory']}: {', '.join(ext['buffers']) or 'nothing'}" if ext.get("memory")
             else f"; {report['board']} has no external memory")
    short = []
    if m["ebr_used"] > m["ebr_total"]:
        short.append(f"needs {m['ebr_used']} of {m['ebr_total']} block RAMs (short by {m['ebr_used'] - m['ebr_total']})")
    if ext.get("memory") and ext["bits"] > ext["capacity_bits"]:
        short.append(f"external buffers need {ext['bits']} of {ext['capacity_bits']} bits of {ext['memory']}")
    return (f"the network does not fit {report['board']}: {'; '.join(short)}; on-chip buffers "
            f"({m['ebr_used']} EBR): {parts}{where}")


def write_compiled(result: dict, net_sha: str, out: str | Path) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **result["images"])
    blob = buf.getvalue()
    manifest = {
        "format": COMPILED_FORMAT, "version": COMPILED_VERSION, "artifact_params_sha256": net_sha,
        "images_sha256": hashlib.sha256(blob).hexdigest(),
        "programs": {name: [{"kind": n.kind, "layers": n.layers, "inputs": n.inputs} for n in p.nodes]
                     for name, p in result["programs"].items()},
        "report": result["report"],
    }
    write_bytes_atomic(out / "images.npz", blob)
    write_bytes_atomic(out / "compiled.json", json.dumps(manifest, indent=1, default=str).encode())
    return out


def load_compiled(directory: str | Path, net: IntegerNetwork | None = None) -> dict:
    """Read and check a compiled artifact (version, image hash, programs against ``net``)."""
    manifest, blob, mpath, _ = read_manifest(directory, "compiled.json", "images.npz", fmt=COMPILED_FORMAT,
                                             version=COMPILED_VERSION, sha_key="images_sha256", error=CompileError,
                                             what="compiled artifact", rerun="spiketrack compile")
    images = dict(np.load(io.BytesIO(blob), allow_pickle=False))
    progs = {name: [HwNode(n["kind"], list(n["layers"]), list(n["inputs"])) for n in nodes]
             for name, nodes in manifest["programs"].items()}
    for name, nodes in progs.items():
        for n in nodes:
            if n.kind not in REGISTRY:
                raise CompileError(f"{mpath}: program {name!r} has a node of unknown kind {n.kind!r}")
            if net is not None:
                known = {l.name for l in net.layers}
                bad = [l for l in n.layers if l not in known]
                if bad:
                    raise CompileError(f"{mpath}: program {name!r} names layer {bad[0]!r}, which the network does not have")
    return {"manifest": manifest, "images": images, "programs": progs}
