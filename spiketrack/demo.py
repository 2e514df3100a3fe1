"""``spiketrack demo``: the main job on the shipped default, end to end, in a few minutes.

1. the model: size and compute of the shipped variant;
2. tracking: one-pass evaluation of the shipped checkpoint on the synthetic benchmark;
3. quantisation: the integer network, checked bit-exactly against the Brevitas model;
4. tracking with the quantised model, and energy on real frames (also from the accelerator's counters);
5. hardware: RTL fuzzing against the golden model;
6. the compiler: the integer network as hardware ops, cycles per frame and the ULX3S-85F memory plan;
7. real layers of a frame on the run-time-configured RTL (conv engine, vector unit), bit- and cycle-exact;
8. the accelerator top (units, memories, controller, host command stream) running a reduced edge-t3's
   template pass and search frame, bit- and cycle-exact.

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


def run(args) -> int:
    from spiketrack.model.checkpoint import resolve_checkpoint

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = str(resolve_checkpoint(None))
    summary: dict = {"checkpoint": ckpt}
    t0 = time.time()

    _step("1. model")
    info = _call(["info", "--config", "edge-t3", "--json"])
    summary["info"] = info
    print(f"{info['config']}: {info['params'] / 1e6:.3f} M parameters, {info['search_macs'] / 1e6:.1f} M MACs per "
          f"search frame, {info['template_macs'] / 1e6:.1f} M per template update, T={info['timesteps']}")

    _step(f"2. tracking: shipped checkpoint on {args.seqs} synthetic sequences")
    ev = _call(["eval", "--dataset", "synthetic", "--max-seqs", str(args.seqs), "--out-dir", str(out / "eval"),
                "--plot", str(out / "success.png"), "--json"])
    summary["eval"] = ev
    print(f"AUC {ev['auc']:.3f}  precision {ev['precision']:.3f}  AO {ev['ao']:.3f}  {ev['fps']:.1f} fps "
          f"({ev['frames']} frames); plot {out / 'success.png'}")

    _step("3. quantisation: integer network, golden model vs Brevitas")
    q = _call(["quantize", "--out", str(out / "artifact"), "--check-frames", "2", "--json"])
    summary["quantize"] = q
    g = q["golden_check"]
    print(f"{q['layers']} integer layers, {q['parameter_bytes']} bytes of parameters; golden vs Brevitas on "
          f"{g['frames']} frames: {g['layers']} layer outputs, {g['elements']} elements, {g['mismatches']} mismatches")

    _step("4. quantised tracking and energy")
    evq = _call(["eval", "--dataset", "synthetic", "--max-seqs", str(args.seqs), "--quantized",
                 "--out-dir", str(out / "eval-quantized"), "--json"])
    summary["eval_quantized"] = evq
    en = _call(["energy", "--artifact", str(out / "artifact"), "--frames", "2", "--accelerator", "--json"])
    summary["energy"] = en
    acc = en["accelerator"]["with_memory"]
    print(f"quantised AUC {evq['auc']:.3f} (float {ev['auc']:.3f}); energy per frame: SNN {en['snn_mj']:.4f} mJ, "
          f"ANN twin {en['ann_mj']:.4f} mJ, ratio {en['ratio']:.1f}x (45 nm paper convention); with memory counted: "
          f"per-SOP accounting {en['with_memory']['ratio']:.2f}x, the accelerator's counters "
          f"{acc['snn_mj']:.4f} mJ vs ANN twin on the same memories {acc['ann_mj']:.4f} mJ: {acc['ratio']:.2f}x")

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

        _step("8. the accelerator top: a reduced edge-t3 end to end (template pass + search frame)")
        sim = _call(["simulate", "--reduced", "--check", "outputs", "--backdoor", "--json"])
        summary["simulate_reduced"] = sim
        print(f"{sim['layers_total']} layers through the accelerator (amaranth.sim): {sim['mismatches']} mismatches "
              f"in the template memories and head maps; search frame {sim['cycles_per_frame']} cycles, model "
              f"{sim['predicted_cycles_per_frame']} (exact: {sim['cycle_model_exact']}); {sim['seconds']} s")

    summary["seconds"] = round(time.time() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nsummary: {out / 'summary.json'} ({summary['seconds']} s)")
    return 0
