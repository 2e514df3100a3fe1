"""``spiketrack quantize``: float checkpoint -> (optional QAT) -> integer-network artifact, checked.

Writes ``OUT/manifest.json`` + ``OUT/params.npz`` (the artifact, see ``quant/ir.py``) and
``OUT/report.json`` (layer counts, parameter bytes, the golden-vs-Brevitas check). With
``--check-frames N`` the golden integer executor and the Brevitas model (float64) run on ``N``
synthetic-benchmark crops and every layer output is compared element by element; any mismatch
makes the command exit with status 1.

With ``--qat-steps N`` the quantisation-aware model is fine-tuned (Brevitas QAT) for N steps in the
run folder ``OUT/qat-run`` (resumable with ``--resume``, time-sliced with ``--stop-after``) and, with
``--save-checkpoint PATH``, written as a QAT checkpoint that eval, track, quantize and energy load
as the quantised model it is.
"""

from __future__ import annotations

import json
import time

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    from spiketrack.model.cli_eval import add_checkpoint_arguments

    add_checkpoint_arguments(
        p, checkpoint_help="checkpoint: a float one is quantised after training, a QAT one lowered as it is "
                           "(default: the shipped QAT edge-t3, model/checkpoints/edge-t3-qat8.pt)",
        float_help="the shipped float edge-t3 (the QAT default's parent), quantised after training, instead of the "
                   "QAT default (e.g. with --bits 4 or mixed, or as a QAT parent)")
    p.add_argument("--out", required=True, help="artifact folder")
    p.add_argument("--bits", default=None, choices=("8", "4", "mixed"),
                   help="weight bits: 8, 4 or the mixed plan (int4 dense 1x1 convs, int8 elsewhere; default 8)")
    p.add_argument("--frac", type=int, default=None, help="fractional bits of stream and membranes (default 8)")
    p.add_argument("--width", type=int, default=None, help="stream/membrane width in bits (default 16)")
    p.add_argument("--qat-steps", type=int, default=0, help="quantisation-aware fine-tuning steps (default 0: PTQ)")
    p.add_argument("--qat-lr", type=float, default=1e-4, help="QAT learning rate (default 1e-4)")
    p.add_argument("--qat-freeze", default=None,
                   help="parameters QAT leaves fixed: a comma list of 'stem' (the pixel convolution) and module "
                        "paths (e.g. stem,backbone.stages.0; default: none)")
    p.add_argument("--qat-lr-mult", type=float, default=1.0,
                   help="LR multiplier of the parameters outside the MRMs, decays and positional embeddings "
                        "(as train's backbone multiplier; default 1.0: one LR for all)")
    p.add_argument("--qat-lr-drop", type=float, default=None,
                   help="QAT LR x0.1 after this fraction of the steps (default as for train: 0.5 for T > 1)")
    p.add_argument("--data", default="synthetic", help="training data for --qat-steps (as for train, e.g. "
                                                       "mix:synthetic@1,synthetic-hard@1)")
    p.add_argument("--batch", type=int, default=16, help="QAT batch size (default 16)")
    p.add_argument("--center-jitter", type=float, default=1.0,
                   help="QAT search-crop centre jitter (default 1.0, the shipped float recipe)")
    p.add_argument("--scale-jitter", type=float, default=0.25,
                   help="QAT search-crop scale jitter (default 0.25, the shipped float recipe)")
    p.add_argument("--scene-cache", type=int, default=32, help="synthetic scenes kept in memory (speed only)")
    p.add_argument("--resume", action="store_true", help="continue the QAT run in OUT/qat-run")
    p.add_argument("--stop-after", type=int, default=None,
                   help="run at most N QAT steps in this invocation (resume later with --resume)")
    p.add_argument("--save-checkpoint", default=None,
                   help="write the QAT model as a checkpoint (loadable by eval/track/quantize/energy)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--check-frames", type=int, default=2, help="synthetic crops for the golden check (default 2)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args) -> int:
    from spiketrack.model.checkpoint import model_from_checkpoint, resolve_checkpoint
    from spiketrack.quant.compare import compare_with_golden, synthetic_frames
    from spiketrack.quant.ir import save_artifact
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model

    import torch

    from spiketrack.quant.qat import qat_payload, weight_bytes

    from spiketrack.model.cli_eval import resolve_float_argument

    resolve_float_argument(args)
    if args.qat_steps < 0 or args.check_frames < 0:
        raise UserError("--qat-steps and --check-frames must be >= 0")
    if args.stop_after is not None and args.stop_after < 1:
        raise UserError("--stop-after must be at least 1")
    if (args.resume or args.stop_after or args.save_checkpoint or args.qat_freeze) and not args.qat_steps:
        raise UserError("--resume, --stop-after, --save-checkpoint and --qat-freeze need --qat-steps")
    if args.qat_steps and args.checkpoint is None:
        raise UserError("--qat-steps fine-tunes a float checkpoint, and the default is already the QAT network: "
                        "pass --float (the shipped float parent) or --checkpoint FLOAT")
    if not (args.qat_lr > 0 and args.qat_lr_mult > 0):
        raise UserError("--qat-lr and --qat-lr-mult must be positive")
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    model, ck = model_from_checkpoint(args.checkpoint)
    fmt = None
    if any(a is not None for a in (args.bits, args.frac, args.width)):
        fmt = QuantFormat(8 if args.frac is None else args.frac, 16 if args.width is None else args.width,
                          args.bits or "8")
    try:
        qmodel = quantize_model(model.eval(), fmt)
    except ValueError as e:
        raise UserError(str(e)) from None
    qf = qmodel.quant_format
    src = str(resolve_checkpoint(args.checkpoint))
    report = {"checkpoint": src, "variant": ck["variant"], "weight_bits": qf.plan, "frac": qf.frac,
              "width": qf.bits, "qat_steps": args.qat_steps, "weight_storage": weight_bytes(qmodel)}
    if (ck.get("extra") or {}).get("quant") is not None:
        report["qat_checkpoint"] = ck["extra"].get("qat", {})
    if args.qat_steps:
        from spiketrack.model.train import TrainConfig, train
        from spiketrack.quant.qat import freeze_for_qat

        try:
            frozen = freeze_for_qat(qmodel, args.qat_freeze)
        except ValueError as e:
            raise UserError(str(e)) from None
        recipe = {"parent": src, "lr": args.qat_lr, "lr_mult": args.qat_lr_mult, "freeze": args.qat_freeze or "none",
                  "data": args.data}
        report["qat_frozen"] = frozen
        run_dir = f"{args.out}/qat-run"
        cfg = TrainConfig(variant=ck["variant"], data=args.data, out=run_dir, steps=args.qat_steps,
                          batch=args.batch, lr=args.qat_lr, lr_drop=args.qat_lr_drop,
                          backbone_lr_mult=args.qat_lr_mult,
                          ckpt_every=max(1, min(50, args.qat_steps)), progress=False, resume=args.resume,
                          stop_after=args.stop_after, center_jitter=args.center_jitter,
                          scale_jitter=args.scale_jitter, scene_cache=args.scene_cache,
                          extra={"quant": qf.spec(), "qat": recipe})
        report["qat"] = train(cfg, build=lambda _name: qmodel)
        qmodel.eval()
        if report["qat"]["steps"] < args.qat_steps:  # time-sliced: stop here, resume later
            report["seconds"] = round(time.time() - t0, 1)
            print(json.dumps(report) if args.json else
                  f"QAT at step {report['qat']['steps']} of {args.qat_steps} in {run_dir}; continue with --resume")
            return 0
        if args.save_checkpoint:
            from spiketrack.model.checkpoint import save_checkpoint_atomic

            info = {**recipe, "steps": report["qat"]["steps"], "lr_drop": args.qat_lr_drop, "batch": args.batch,
                    "center_jitter": args.center_jitter, "scale_jitter": args.scale_jitter}
            save_checkpoint_atomic(args.save_checkpoint, qat_payload(qmodel, args.qat_steps, info))
            report["saved_checkpoint"] = args.save_checkpoint
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
