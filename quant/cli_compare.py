"""``spiketrack compare``: how far the integer network is from the float model it came from.

Prints (and with ``--json`` as one JSON object):

- ``layers``: per layer, on ``--crops`` crops of ``--dataset`` (template = first frame's target,
  search = a later frame around its ground truth): SQNR of the quantised output against the float
  output, fraction of equal spike levels (neurons), saturations in the integer run, and the count of
  elements where the golden integer model and the Brevitas model differ (must be 0);
- ``crops``: open loop, the box each model decodes from the same crop, IoU float vs integer;
- ``tracking``: closed loop, the float tracker and the integer tracker each run over the dataset;
  per frame IoU between their boxes (median, 5th percentile, mean) and each one's AUC.

For a QAT checkpoint the float reference is the checkpoint it was fine-tuned from (recorded in the
checkpoint), unless ``--float-checkpoint`` names another.
"""

from __future__ import annotations

import json
import sys

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint, float or QAT (default: the shipped QAT edge-t3, compared with its shipped float "
                        "parent)")
    p.add_argument("--float-checkpoint", default=None,
                   help="float reference (default: the checkpoint itself, or a QAT checkpoint's parent)")
    p.add_argument("--artifact", default=None,
                   help="integer-network artifact of the checkpoint (default: lowered in memory)")
    p.add_argument("--dataset", default="synthetic", help="eval dataset spec (as for eval), e.g. synthetic-hard")
    p.add_argument("--max-seqs", type=int, default=None, help="only the first N sequences")
    p.add_argument("--crops", type=int, default=8, help="crops for the per-layer and open-loop tables (default 8)")
    p.add_argument("--no-tracking", action="store_true", help="skip the closed-loop tracker comparison")
    p.add_argument("--weight-bits", default=None, choices=("8", "4", "mixed"), help="weight precision (default 8)")
    p.add_argument("--frac", type=int, default=None, help="stream fractional bits (default 8)")
    p.add_argument("--width", type=int, default=None, help="stream width in bits (default 16)")
    p.add_argument("--stem-pad", default=None, choices=("zero", "black"),
                   help="float reference's stem padding (default: the variant's; the integer stem pads with "
                        "pixel 0, i.e. black)")
    p.add_argument("--size-lr", type=float, default=None, help="tracker scale damping (default: the variant's)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--out", default=None, help="also write the JSON report to this file")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def _table(rows: list[dict]) -> str:
    lines = [f"{'layer':60s} {'kind':12s} {'SQNR dB':>8s} {'spikes =':>9s} {'sat':>6s}"]
    for r in rows:
        sm = "" if r["spike_match"] is None else f"{r['spike_match']:.4f}"
        sat = "" if r["saturations"] is None else str(r["saturations"])
        sq = "exact" if r["exact"] else ("" if r["sqnr_db"] is None else f"{r['sqnr_db']:.2f}")
        lines.append(f"{r['name'][:60]:60s} {r['kind']:12s} {sq:>8s} {sm:>9s} {sat:>6s}")
    return "\n".join(lines)


def run(args) -> int:
    import torch

    from spiketrack.model.checkpoint import model_from_checkpoint, resolve_checkpoint
    from spiketrack.model.data.datasets import load_eval_dataset
    from spiketrack.quant.compare import crop_agreement, layer_agreement, synthetic_frames, tracking_agreement
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model, weight_bytes
    from spiketrack.quant.tracking import QuantizedTracking

    if args.crops < 1:
        raise UserError("--crops must be at least 1")
    if args.max_seqs is not None and args.max_seqs < 1:
        raise UserError("--max-seqs must be at least 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    model, ck = model_from_checkpoint(args.checkpoint)
    src = str(resolve_checkpoint(args.checkpoint))
    fmt = None
    if any(a is not None for a in (args.weight_bits, args.frac, args.width)):
        fmt = QuantFormat(8 if args.frac is None else args.frac, 16 if args.width is None else args.width,
                          args.weight_bits or "8")
    qat = (ck.get("extra") or {}).get("quant") is not None
    ref_path = args.float_checkpoint
    if ref_path is None and qat and args.checkpoint is None:  # the shipped QAT default: its shipped parent
        from spiketrack.model.checkpoint import FLOAT_CHECKPOINT

        ref_path = str(FLOAT_CHECKPOINT)
    if ref_path is None and qat:
        ref_path = (ck["extra"].get("qat") or {}).get("parent")
        if not ref_path:
            raise UserError(f"QAT checkpoint {src} records no parent; pass --float-checkpoint")
    if ref_path is not None:
        fmodel, fck = model_from_checkpoint(ref_path)
        if (fck.get("extra") or {}).get("quant") is not None:
            raise UserError(f"--float-checkpoint {ref_path} is a QAT checkpoint, not a float one")
        if fck["variant"] != ck["variant"]:
            raise UserError(f"float reference holds {fck['variant']!r}, the checkpoint {ck['variant']!r}")
    else:
        fmodel = model
    if args.stem_pad is not None:
        if getattr(fmodel, "quant_format", None) is not None:
            raise UserError("--stem-pad needs a float reference")
        fmodel.backbone.stem.pad = args.stem_pad
    try:
        qmodel = quantize_model(model.eval(), fmt)
    except ValueError as e:
        raise UserError(str(e)) from None
    if args.artifact:
        from spiketrack.quant.ir import load_artifact

        net = load_artifact(args.artifact)
    else:
        net = lower(qmodel)
    kind, seqs = load_eval_dataset(args.dataset, args.max_seqs)
    pairs = synthetic_frames(model.cfg, args.crops, sequences=seqs)
    layers = layer_agreement(fmodel, qmodel, pairs, net)
    report = {"checkpoint": src, "float_checkpoint": str(resolve_checkpoint(ref_path)) if ref_path else src,
              "artifact": args.artifact, "dataset": args.dataset, "max_seqs": args.max_seqs,
              "float_stem_pad": getattr(fmodel.backbone.stem, "pad", "zero"), "format": qmodel.quant_format.spec(),
              "weight_storage": weight_bytes(qmodel), "crops": crop_agreement(fmodel, qmodel, pairs),
              "layers": layers}
    finite = [r for r in layers if r["sqnr_db"] is not None]
    report["summary"] = {
        "golden_mismatches": int(sum(r["golden_mismatches"] or 0 for r in layers)),
        "saturations": int(sum(r["saturations"] or 0 for r in layers)),
        "min_spike_match": min((r["spike_match"] for r in layers if r["spike_match"] is not None), default=None),
        "worst_sqnr_layers": [{"name": r["name"], "sqnr_db": r["sqnr_db"]}
                              for r in sorted(finite, key=lambda r: r["sqnr_db"])[:5]],
    }
    if not args.no_tracking:
        report["tracking"] = tracking_agreement(fmodel, QuantizedTracking(qmodel), seqs, size_lr=args.size_lr)
    text = json.dumps(report)
    if args.out:
        from spiketrack.atomic import write_text_atomic

        write_text_atomic(args.out, json.dumps(report, indent=1))
    if args.json:
        print(text)
    else:
        print(_table(layers))
        c = report["crops"]
        print(f"open loop ({c['crops']} crops): box IoU float vs integer median {c['median_iou']:.3f}, "
              f"5th percentile {c['p5_iou']:.3f}; score-map SQNR {c['score_sqnr_db']} dB")
        t = report.get("tracking")
        if t:
            print(f"closed loop ({t['frames']} frames of {args.dataset}): box IoU float vs integer median "
                  f"{t['median_iou']:.3f}, 5th percentile {t['p5_iou']:.3f}; AUC float {t['float_auc']:.3f}, "
                  f"integer {t['integer_auc']:.3f}")
        s = report["summary"]
        print(f"golden vs Brevitas mismatches {s['golden_mismatches']}, saturations {s['saturations']}",
              file=sys.stdout)
    return 1 if report["summary"]["golden_mismatches"] else 0
