"""``spiketrack quantize``: float checkpoint -> (optional QAT) -> integer-network artifact, checked.

Writes ``OUT/manifest.json`` + ``OUT/params.npz`` (the artifact, see ``quant/ir.py``) and
``OUT/report.json`` (layer counts, parameter bytes, the golden-vs-Brevitas check). With
``--check-frames N`` the golden integer executor and the Brevitas model (float64) run on ``N``
synthetic-benchmark crops and every layer output is compared element by element; any mismatch
makes the command exit with status 1.
"""

from __future__ import annotations

import json
import time

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    p.add_argument("--checkpoint", default=None, help="float checkpoint (default: the shipped edge-t3)")
    p.add_argument("--out", required=True, help="artifact folder")
    p.add_argument("--bits", type=int, default=8, choices=(8, 4), help="weight bits (default 8)")
    p.add_argument("--frac", type=int, default=8, help="fractional bits of stream and membranes (default 8)")
    p.add_argument("--width", type=int, default=16, help="stream/membrane width in bits (default 16)")
    p.add_argument("--qat-steps", type=int, default=0, help="quantisation-aware fine-tuning steps (default 0: PTQ)")
    p.add_argument("--qat-lr", type=float, default=1e-4)
    p.add_argument("--data", default="synthetic", help="training data for --qat-steps (as for train)")
    p.add_argument("--check-frames", type=int, default=2, help="synthetic crops for the golden check (default 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from spiketrack.model.checkpoint import model_from_checkpoint, resolve_checkpoint
    from spiketrack.quant.compare import compare_with_golden, synthetic_frames
    from spiketrack.quant.ir import save_artifact
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model

    if args.qat_steps < 0 or args.check_frames < 0:
        raise UserError("--qat-steps and --check-frames must be >= 0")
    t0 = time.time()
    model, ck = model_from_checkpoint(args.checkpoint)
    qmodel = quantize_model(model.eval(), QuantFormat(args.frac, args.width, args.bits))
    report = {"checkpoint": str(resolve_checkpoint(args.checkpoint)), "variant": ck["variant"], "weight_bits": args.bits,
              "frac": args.frac, "width": args.width, "qat_steps": args.qat_steps}
    if args.qat_steps:
        from spiketrack.model.train import TrainConfig, train

        cfg = TrainConfig(variant=ck["variant"], data=args.data, out=f"{args.out}/qat-run", steps=args.qat_steps,
                          lr=args.qat_lr, backbone_lr_mult=1.0, ckpt_every=max(1, args.qat_steps), progress=False)
        report["qat"] = train(cfg, build=lambda _name: qmodel)
        qmodel.eval()
    net = lower(qmodel)
    net.meta["source_checkpoint"] = report["checkpoint"]
    save_artifact(net, args.out)
    n_params = sum(a.size for layer in net.layers for a in layer.params.values())
    report.update({"layers": len(net.layers), "ops": sorted({l.op for l in net.layers}),
                   "parameter_bytes": int(sum(a.nbytes for layer in net.layers for a in layer.params.values())),
                   "parameters": int(n_params)})
    if args.check_frames:
        q64 = qmodel.double()
        totals = {"frames": 0, "layers": 0, "elements": 0, "mismatches": 0, "saturations": 0}
        for zp, xp in synthetic_frames(model.cfg, args.check_frames):
            r = compare_with_golden(q64, net, zp, xp)
            totals["frames"] += 1
            for k in ("layers", "elements", "mismatches", "saturations"):
                totals[k] += r[k]
            if r["unmatched_layers"]:
                totals.setdefault("unmatched_layers", r["unmatched_layers"])
        report["golden_check"] = totals
    report["seconds"] = round(time.time() - t0, 1)
    from spiketrack.atomic import write_text_atomic

    write_text_atomic(f"{args.out}/report.json", json.dumps(report, indent=1))
    if args.json:
        print(json.dumps(report))
    else:
        g = report.get("golden_check")
        print(f"{report['variant']}: {report['layers']} integer layers, {report['parameters']} parameters "
              f"({report['parameter_bytes']} bytes) -> {args.out}")
        if g:
            print(f"golden vs Brevitas: {g['frames']} frames, {g['layers']} layer outputs, {g['elements']} elements, "
                  f"{g['mismatches']} mismatches, {g['saturations']} saturations")
    mism = report.get("golden_check", {}).get("mismatches", 0)
    return 1 if mism else 0
