"""``spiketrack demo``: the main job on the shipped default, end to end, in a few minutes.

The shipped default is the int8 QAT edge-t3 (``model/checkpoints/edge-t3-qat8.pt``, fine-tuned with
Brevitas from the shipped float edge-t3, docs/quant.md); its integer network is what the steps from
3 on run. The float parent (``--float``) is the reference in steps 2 and 4.

1. the model: size and compute of the shipped variant;
2. tracking: one-pass evaluation of the float parent on the synthetic benchmark;
3. quantisation: the QAT default's integer network, checked bit-exactly against the Brevitas model;
4. tracking with the QAT default's integer network, and energy on real frames (also from the
   accelerator's counters); an annotated video of one sequence: ground truth, float parent and
   integer (golden) boxes;
5. hardware: RTL fuzzing against the golden model;
6. the compiler: the integer network as hardware ops, cycles per frame and the ULX3S-85F memory plan;
7. real layers of a frame on the run-time-configured RTL (conv engine, vector unit), bit- and cycle-exact;
8. the tracker running a reduced edge-t3 on the accelerator top (units, memories, controller, host
   command stream): head maps equal to the golden model's, boxes equal to the golden tracker's,
   cycles equal to the model;
9. the FPGA cost of the accelerator with its UART link, from a fresh ``build/<board>/build_report.json``
   or else from the last measured report shipped in ``bitstreams/reports/`` (it says which).

Everything is written under ``--out`` (default ``runs/demo``); ``summary.json`` collects the figures.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from pathlib import Path

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    p.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    p.add_argument("--seqs", type=int, default=4, help="synthetic sequences to track (default 4)")
    p.add_argument("--fuzz", type=int, default=20, help="RTL fuzz cases (default 20)")
    p.add_argument("--skip-hw", action="store_true", help="skip RTL fuzzing and synthesis")


def _step(title: str):
    print(f"\n== {title}", flush=True)


def _call(argv: list[str]) -> dict:
    """Run a sub-command in-process with --json and return its JSON."""
    from spiketrack.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    if rc != 0:
        raise UserError(f"`spiketrack {' '.join(argv)}` failed (exit {rc})")
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def reduced_track_job(drv, cycle, *, frames: int, seed: int) -> dict:
    """Host job for the cocotb testbench (``sim/accel_cocotb.run_job_cocotb``): the tracker on the
    accelerator's Verilog, every search frame's head maps checked against the golden run."""
    from spiketrack.compiler.accel import lower_to_accel
    import numpy as np

    from spiketrack.sim.cli_run import track_on_device
    from spiketrack.sim.reduced import MOVING_TEXTURE_BOX, moving_texture, reduced_network

    net, _ = reduced_network()
    boxes, reports = track_on_device(net, lower_to_accel(net, 8), drv, moving_texture(frames, seed),
                                     np.array(MOVING_TEXTURE_BOX), check=True)
    keep = ("pass", "cycles", "predicted", "mismatches")
    plain = [{k: (r[k] if k == "pass" else int(r[k])) for k in keep if k in r} for r in reports]
    return {"boxes": boxes.tolist(), "reports": plain, "cycles_simulated": cycle()}


def track_reduced_on_accelerator(frames: int = 2, seed: int = 0) -> dict:
    """The tracker on the simulated accelerator (reduced edge-t3, images baked into its Verilog,
    Verilator) against the golden tracker on the same frames."""
    import numpy as np

    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.quant.tracking import ArtifactTracking
    from spiketrack.sim.accel_cocotb import run_job_cocotb
    from spiketrack.sim.reduced import MOVING_TEXTURE_BOX, moving_texture, reduced_network

    t0 = time.time()
    net, _ = reduced_network()
    ap = lower_to_accel(net, 8)
    imgs, box = moving_texture(frames, seed), np.array(MOVING_TEXTURE_BOX)
    golden = SpikeTrackTracker(ArtifactTracking(net))
    golden.init(imgs[0], box)
    want = [box] + [golden.update(f) for f in imgs[1:]]
    rep = run_job_cocotb(ap, "spiketrack.demo:reduced_track_job", {"frames": frames, "seed": seed},
                         init={m: ap.images[m] for m in ("prog", "w", "tab", "cst")}, quiet=True)
    boxes, reports = np.array(rep["boxes"]), rep["reports"]
    search = [r for r in reports if r["pass"] == "search_frame"]
    predicted = [r["predicted"] for r in search]
    return {"frames": frames, "template_cycles": reports[0]["cycles"], "search_cycles": [r["cycles"] for r in search],
            "predicted_search_cycles": predicted, "cycle_model_exact": [r["cycles"] for r in search] == predicted,
            "mismatches": sum(r.get("mismatches", 0) for r in reports),
            "checked": bool(search) and all("mismatches" in r for r in search),
            "boxes_equal": bool(len(boxes) == len(want) and all(np.array_equal(a, b) for a, b in zip(boxes, want))),
            "sim": "verilator", "seconds": round(time.time() - t0, 1)}


def annotated_video(artifact: Path, path: Path, frames: int = 16) -> dict:
    """Track the first ``frames`` frames of synthetic sequence 0 with the shipped float checkpoint (the
    QAT default's parent) and with the integer network ``artifact`` (golden executor), and write them
    to the video ``path`` with three boxes: ground truth (green), float (red), integer (blue)."""
    import numpy as np

    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.cli_track import _imageio, draw_box
    from spiketrack.model.data.datasets import load_eval_dataset
    from spiketrack.model.metrics import iou
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.quant.ir import load_artifact
    from spiketrack.quant.tracking import ArtifactTracking

    _, (seq,) = load_eval_dataset("synthetic", 1)
    imgs = [seq.frame(i) for i in range(min(frames, seq.n_frames))]
    model, _ = model_from_checkpoint(None, "cpu", float_default=True)
    trackers = {"float": SpikeTrackTracker(model), "golden": SpikeTrackTracker(ArtifactTracking(load_artifact(artifact)))}
    boxes = {k: [seq.boxes[0]] for k in trackers}
    for k, tr in trackers.items():
        tr.init(imgs[0], seq.boxes[0])
        boxes[k] += [tr.update(f) for f in imgs[1:]]
    writer = _imageio().get_writer(str(path), fps=8, macro_block_size=1)
    try:
        for i, img in enumerate(imgs):
            img = draw_box(img, seq.boxes[i], color=(0, 200, 0))
            img = draw_box(img, boxes["float"][i], color=(255, 0, 0))
            writer.append_data(draw_box(img, boxes["golden"][i], color=(0, 80, 255)))
    finally:
        writer.close()
    b = {k: np.asarray(v, float) for k, v in boxes.items()}
    gt = seq.boxes[:len(imgs)]
    return {"video": str(path), "sequence": seq.name, "frames": len(imgs),
            "float_vs_integer_iou_median": round(float(np.median(iou(b["float"][1:], b["golden"][1:]))), 3),
            "gt_iou_median": {k: round(float(np.median(iou(v[1:], gt[1:]))), 3) for k, v in b.items()}}


def last_build_report(board: str) -> dict | None:
    """The build report of ``spiketrack build --board BOARD``: ``build/<board>/build_report.json``
    when this checkout built one, else the measured one shipped in ``bitstreams/reports/``."""
    from spiketrack.bitstreams.synth import PROJECT_ROOT

    fresh = PROJECT_ROOT / "build" / board / "build_report.json"
    shipped = PROJECT_ROOT / "bitstreams" / "reports" / f"{board}.json"
    path = fresh if fresh.is_file() else shipped
    if not path.is_file():
        return None
    rep = json.loads(path.read_text())
    rep["source"] = (f"this checkout's build ({path})" if path == fresh
                     else f"the last measured build, shipped in {path.relative_to(PROJECT_ROOT)}")
    return rep


def run(args) -> int:
    from spiketrack.model.checkpoint import resolve_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = str(resolve_checkpoint(None))
    summary: dict = {"checkpoint": ckpt, "float_checkpoint": str(resolve_checkpoint(None, float_default=True))}
    t0 = time.time()

    _step("1. model")
    info = _call(["info", "--config", "edge-t3", "--json"])
    summary["info"] = info
    print(f"{info['config']}: {info['params'] / 1e6:.3f} M parameters, {info['search_macs'] / 1e6:.1f} M MACs per "
          f"search frame, {info['template_macs'] / 1e6:.1f} M per template update, T={info['timesteps']}")

    _step(f"2. tracking: the shipped float parent (--float) on {args.seqs} synthetic sequences")
    ev = _call(["eval", "--float", "--dataset", "synthetic", "--max-seqs", str(args.seqs), "--out-dir", str(out / "eval"),
                "--plot", str(out / "success.png"), "--json"])
    summary["eval"] = ev
    print(f"AUC {ev['auc']:.3f}  precision {ev['precision']:.3f}  AO {ev['ao']:.3f}  {ev['fps']:.1f} fps "
          f"({ev['frames']} frames); plot {out / 'success.png'}")

    _step("3. quantisation: the shipped QAT default's integer network, golden model vs Brevitas")
    q = _call(["quantize", "--out", str(out / "artifact"), "--check-frames", "2", "--json"])
    summary["quantize"] = q
    g = q["golden_check"]
    print(f"{q['layers']} integer layers, {q['parameter_bytes']} bytes of parameters; golden vs Brevitas on "
          f"{g['frames']} frames: {g['layers']} layer outputs, {g['elements']} elements, {g['mismatches']} mismatches")

    _step("4. tracking with the QAT default's integer network, and energy")
    evq = _call(["eval", "--dataset", "synthetic", "--max-seqs", str(args.seqs), "--quantized",
                 "--out-dir", str(out / "eval-quantized"), "--json"])
    summary["eval_quantized"] = evq
    en = _call(["energy", "--artifact", str(out / "artifact"), "--frames", "2", "--accelerator", "--json"])
    summary["energy"] = en
    acc = en["accelerator"]["with_memory"]
    print(f"QAT integer AUC {evq['auc']:.3f} (float parent {ev['auc']:.3f}); energy per frame: SNN {en['snn_mj']:.4f} mJ, "
          f"ANN twin {en['ann_mj']:.4f} mJ, ratio {en['ratio']:.1f}x (45 nm paper convention); with memory counted: "
          f"per-SOP accounting {en['with_memory']['ratio']:.2f}x, the accelerator's counters "
          f"{acc['snn_mj']:.4f} mJ vs ANN twin on the same memories {acc['ann_mj']:.4f} mJ: {acc['ratio']:.2f}x")
    vid = annotated_video(out / "artifact", out / "tracking.mp4")
    summary["video"] = vid
    print(f"annotated video {vid['video']} ({vid['sequence']}, {vid['frames']} frames; green ground truth, red float, "
          f"blue integer, QAT default): IoU with ground truth, median: float {vid['gt_iou_median']['float']}, integer "
          f"{vid['gt_iou_median']['golden']}; float vs integer {vid['float_vs_integer_iou_median']}")

    if not args.skip_hw:
        _step(f"5. hardware: {args.fuzz} RTL fuzz cases against the golden model")
        ver = _call(["verify", "--fuzz", str(args.fuzz), "--seed", "1", "--json"])
        summary["verify"] = ver
        print(f"{ver['cases']} cases, {ver['mismatches']} mismatches, cycle model exact: {ver['cycle_model_exact']}; "
              f"layer types: {', '.join(ver['layer_types'])}")

        _step("6. compiler: hardware ops, cycles and memory plan for ULX3S-85F")
        comp = _call(["compile", "--artifact", str(out / "artifact"), "--board", "ulx3s-85f", "--external", "auto",
                      "--lanes", "8", "--out", str(out / "compiled"), "--json"])
        summary["compile"] = {k: comp[k] for k in ("layers", "nodes", "fits", "predicted_cycles", "fps_at_100mhz",
                                                   "lanes", "weight_bits")}
        summary["compile"]["ebr"] = [comp["memory"]["ebr_used"], comp["memory"]["ebr_total"]]
        print(f"{comp['layers']} IR layers -> {comp['nodes']} hardware ops; search frame "
              f"{comp['predicted_cycles']['search_frame']} cycles ({comp['fps_at_100mhz']} fps at 100 MHz, P = 8), "
              f"template update {comp['predicted_cycles']['template_update']}; block RAM "
              f"{comp['memory']['ebr_used']} / {comp['memory']['ebr_total']} EBR, fits: {comp['fits']}")

        _step("7. real layers of a frame on the run-time-configured RTL")
        net_v = _call(["verify", "--network", "--artifact", str(out / "artifact"), "--max-nodes-per-kind", "1",
                       "--max-node-cycles", "20000", "--json"])
        summary["verify_network"] = net_v
        print(f"{net_v['nodes_checked']} nodes ({net_v['layers_checked']} layers; "
              f"{', '.join(f'{k} {v}' for k, v in net_v['checked_nodes'].items())}) through the conv engine and the "
              f"vector unit: {net_v['mismatches']} mismatches, cycle model exact: {net_v['cycle_model_exact']} "
              f"(one node per kind here)")

        _step("8. the accelerator tracks: a reduced edge-t3 on the simulated accelerator top, boxes vs golden")
        acc = track_reduced_on_accelerator(frames=2)
        summary["accelerator_tracking"] = acc
        print(f"template pass {acc['template_cycles']} cycles, search frames {acc['search_cycles']} cycles "
              f"(cycle model {acc['predicted_search_cycles']}, exact: {acc['cycle_model_exact']}); head maps vs golden: "
              f"{acc['mismatches']} mismatches (every search frame checked: {acc['checked']}); tracker boxes equal to the "
              f"golden tracker's: {acc['boxes_equal']} ({acc['sim']}, {acc['seconds']} s with its compile)")

        _step("9. FPGA cost of the accelerator with its UART link")
        fpga = last_build_report("ulx3s-85f")
        summary["fpga"] = fpga
        if fpga is None:
            print("no build report: run `spiketrack build --board ulx3s-85f` (about an hour on 2 cores)")
        else:
            print(f"{fpga['source']}: {fpga['board']} {fpga['lut']} LUT4 of {fpga['lut_total']}, {fpga['ff']} FF, "
                  f"{fpga['ebr']} of {fpga['ebr_total']} EBR, {fpga['dsp']} DSP, Fmax {fpga['fmax_mhz']} MHz "
                  f"(clock {fpga['clock_mhz']} MHz, timing met: {fpga['timing_met']}), "
                  f"{fpga['fps_at_fmax']} search frames/s of the network it carries ({fpga['network']})")

    summary["seconds"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nsummary: {out / 'summary.json'} ({summary['seconds']} s)")
    return 0
