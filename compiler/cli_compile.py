"""``spiketrack compile``: integer-network artifact -> hardware programs, memory plan and images.

Prints the report (``--json``: one JSON object with the keys of docs/compiler.md) and writes the
compiled artifact to ``--out``. A network that does not fit the board is refused (exit 1) with the
buffers and the shortfall named; with ``--json`` the report is still printed, ``"fits": false``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    p.add_argument("--artifact", default=None,
                   help="integer-network artifact (default: lower the shipped QAT edge-t3 now)")
    p.add_argument("--board", default="ulx3s-85f", choices=("ulx3s-85f", "orangecrab-85f", "icebreaker"))
    p.add_argument("--lanes", type=int, default=None, help="conv-engine lanes P (default 8, or the sweep's pick)")
    p.add_argument("--target-fps", type=float, default=None, help="pick the fewest lanes reaching this fps at 100 MHz")
    p.add_argument("--calibration-frames", type=int, default=1,
                   help="synthetic crops whose golden runs give the data-dependent cycles (0: dense only)")
    p.add_argument("--external", default="auto",
                   help="buffers in the board's external memory: auto (the placement rule, docs/compiler.md), "
                        "none (all on chip) or a comma-separated list of template_activations, template_consts, "
                        "weights, search_activations")
    p.add_argument("--out", required=True, help="compiled artifact folder")
    p.add_argument("--json", action="store_true")


def _artifact(path):
    from spiketrack.quant.ir import load_artifact

    if path is not None:
        return load_artifact(path)
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import quantize_model

    model, _ = model_from_checkpoint(None)  # the shipped default: a QAT checkpoint, its int8 format kept
    return lower(quantize_model(model.eval()))


def run(args) -> int:
    from spiketrack.compiler.build import compile_network, shortfall, write_compiled
    from spiketrack.compiler.fuse import CompileError

    if args.lanes is not None and args.lanes < 1:
        raise UserError("--lanes must be >= 1")
    from spiketrack.compiler.memplan import check_external

    external = args.external.strip()
    if external not in ("auto", "none"):
        external = [n.strip() for n in external.split(",") if n.strip()]
        if not external:
            raise UserError("--external needs auto, none or buffer names")
    try:  # before the minutes of compilation
        external = check_external(args.board, external)
    except ValueError as e:
        raise UserError(f"--external: {e}") from None
    net = _artifact(args.artifact)
    sha = (hashlib.sha256((Path(args.artifact) / "params.npz").read_bytes()).hexdigest()
           if args.artifact else "shipped-default")
    try:
        result = compile_network(net, board=args.board, lanes=args.lanes, target_fps=args.target_fps,
                                 calibration_frames=args.calibration_frames, external=external)
    except CompileError as e:
        raise UserError(str(e)) from None
    rep = result["report"]
    from spiketrack.model.checkpoint import resolve_checkpoint
    from spiketrack.quant.precision import precision_block

    # the weight precision and, for the network its table was measured on, the AUC of each precision
    rep["precision"] = precision_block(net, rep["weight_bits"], None if args.artifact else resolve_checkpoint(None))
    write_compiled(result, sha, args.out)
    if args.json:
        print(json.dumps(rep, default=str))
    else:
        m = rep["memory"]
        print(f"{rep['config']} on {rep['board']}: {rep['layers']} IR layers -> {rep['nodes']} hardware ops, "
              f"P = {rep['lanes']}, int{rep['weight_bits']} weights")
        print(f"  cycles: template update {rep['predicted_cycles']['template_update']}, search frame "
              f"{rep['predicted_cycles']['search_frame']} ({rep['fps_at_100mhz']} fps at 100 MHz)")
        pr = rep["precision"]
        wb = pr["weight_bits"]
        print(f"  weight precision {'int' if isinstance(wb, int) else ''}{wb}: " + (
            f"AUC on {pr['dataset']} ({pr['sequences']} sequences) "
            + ", ".join(f"{k} {v:.3f}" for k, v in pr["auc"].items())
            + f" ({pr['table_file']})" + (f"; {pr['note']}" if "note" in pr else "") if pr["matches"] else pr["note"]))
        print(f"  block RAM: {m['ebr_used']} / {m['ebr_total']} EBR -> {'fits' if rep['fits'] else 'does NOT fit'}")
        ext = rep["external"]
        if ext["buffers"]:
            t = ext["traffic_bits"]
            print(f"  {ext['memory']}: {', '.join(ext['buffers'])} ({ext['bits']} bits); traffic "
                  f"{t['search_frame']} bits per search frame, {t['template_update']} per template update")
            bound = [k for k, v in ext["bandwidth_bound"].items() if v]
            print(f"  bus ({ext['bus_bits_per_cycle']} bits per cycle, not in the cycles above): "
                  f"{ext['search_frame_bus_share']:.1%} of a search frame, {ext['template_update_bus_share']:.1%} "
                  f"of a template update" + (f"; bandwidth-bound: {', '.join(bound)}" if bound else ""))
    if not rep["fits"]:
        import sys

        print(f"spiketrack compile: {shortfall(rep)}", file=sys.stderr)
        return 1
    return 0
