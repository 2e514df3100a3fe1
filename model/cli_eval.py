"""``spiketrack eval``: one-pass evaluation of a checkpoint on a benchmark."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from pathlib import Path

from spiketrack.cli import UserError


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    p.add_argument("--dataset", default="synthetic",
                   help="synthetic | synthetic-val | synthetic-hard | synthetic-hard-val | lasot:DIR | got10k:DIR[:split] | "
                        "otb:DIR (default: synthetic)")
    p.add_argument("--max-seqs", type=int, default=None, help="evaluate only the first N sequences")
    p.add_argument("--max-frames", type=int, default=None,
                   help="evaluate only the first N frames of each sequence (at least 2: the first frame "
                        "initialises the tracker)")
    p.add_argument("--out-dir", default=None, help="result files folder (default: runs/eval/<dataset>-<time>)")
    p.add_argument("--plot", default=None, help="success plot path (precision plot written next to it)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.add_argument("--absent", choices=("exclude", "fail"), default="exclude",
                   help="absent-target frames: skip them (default) or count them as failures")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--quantized", action="store_true", help="evaluate the quantized model (needs spiketrack.quant)")
    p.add_argument("--backend", choices=("float", "golden", "rtl"), default=None,
                   help="float: the checkpoint's model (default; a QAT checkpoint such as the shipped default runs "
                        "as its integer network, --float gives the float parent); golden: its integer network on the golden "
                        "executor (as --quantized, or --artifact); rtl: that integer network on the accelerator's "
                        "Verilog (cocotb + Verilator), the same boxes as golden")
    p.add_argument("--artifact", default=None,
                   help="evaluate a saved integer-network artifact (spiketrack quantize --out DIR) instead of a checkpoint")
    p.add_argument("--weight-bits", default=None, choices=("8", "4", "mixed"),
                   help="with --quantized: weight precision, int8, int4 or the mixed plan (default 8; a QAT "
                        "checkpoint keeps its own)")
    p.add_argument("--frac", type=int, default=None, help="with --quantized: stream fractional bits (default 8)")
    p.add_argument("--width", type=int, default=None, help="with --quantized: stream width in bits (default 16)")
    p.add_argument("--stem-pad", default=None, choices=("zero", "black"),
                   help="float model: pad the stem input with zeros of the normalised image or with black (pixel "
                        "0, as the integer stem does); default: the variant's stem_pad")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--size-lr", type=float, default=None,
                   help="tracker scale damping in (0, 1] (default: the variant's size_lr; 1.0 = no damping)")
    add_tracker_arguments(p)


def add_checkpoint_arguments(p: argparse.ArgumentParser, checkpoint_help: str | None = None,
                             float_help: str | None = None) -> None:
    """``--checkpoint`` and ``--float`` (shared by eval, track and quantize; ``args.float_parent``)."""
    p.add_argument("--checkpoint", default=None, help=checkpoint_help or (
        "checkpoint file (default: the shipped QAT model model/checkpoints/edge-t3-qat8.pt, run as its integer "
        "network)"))
    p.add_argument("--float", action="store_true", dest="float_parent", help=float_help or (
        "the shipped float model model/checkpoints/edge-t3.pt (the QAT default's float parent) instead of the "
        "QAT default; with --quantized / golden: its post-training quantisation"))


def resolve_float_argument(args) -> None:
    """``--float``: set ``args.checkpoint`` to the shipped float parent (it excludes --checkpoint and
    --artifact)."""
    if not getattr(args, "float_parent", False):
        return
    if args.checkpoint is not None or getattr(args, "artifact", None) is not None:
        raise UserError("--float is the shipped float checkpoint: it excludes --checkpoint and --artifact")
    from spiketrack.model.checkpoint import resolve_checkpoint

    args.checkpoint = str(resolve_checkpoint(None, float_default=True))


def add_tracker_arguments(p: argparse.ArgumentParser) -> None:
    """``--rounding``, ``--update-interval``, ``--update-threshold`` (shared by eval and track)."""
    from spiketrack.model.configs import ROUNDINGS

    p.add_argument("--rounding", choices=ROUNDINGS, default=None,
                   help="NI-LIF fire rounding (default: the checkpoint's; half_up unless imported from an "
                        "official checkpoint, which uses half_even)")
    p.add_argument("--update-interval", type=int, default=None,
                   help="template update every N frames (T > 1; default: 40 on LaSOT, 25 elsewhere)")
    p.add_argument("--update-threshold", type=float, default=None,
                   help="template update only when the windowed peak score exceeds this "
                        "(default: 0.8 on LaSOT, 0.7 elsewhere)")


def quantize_hook():
    """The quantized-model hook ``spiketrack.quant.tracking_model(model) -> model``, or None."""
    try:
        quant = importlib.import_module("spiketrack.quant")
    except ImportError:
        return None
    return getattr(quant, "tracking_model", None)


def _artifact_model(args):
    """``--artifact DIR``: the integer network behind the tracker interface, and a checkpoint-like label."""
    if args.checkpoint is not None or args.quantized:
        raise UserError("--artifact is an integer network already: it excludes --checkpoint and --quantized")
    if args.device != "cpu":
        raise UserError("--artifact runs the integer golden executor on the CPU: --device must be cpu")
    from spiketrack.quant.tracking import artifact_tracking_model

    model = artifact_tracking_model(args.artifact)
    return model, {"variant": model.cfg.name}


def _eval_rtl(args) -> int:
    """``--backend rtl``: the whole evaluation runs inside the cocotb process, the tracker's model on
    the accelerator's Verilog (program, weights and tables baked in; crops and head maps over the
    command stream)."""
    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.model.cli_track import _integer_network
    from spiketrack.quant.ir import save_artifact
    from spiketrack.sim.accel_cocotb import run_job_cocotb

    if args.device != "cpu" or args.stem_pad is not None or any(
            a is not None for a in (args.weight_bits, args.frac, args.width)):
        raise UserError("--backend rtl runs the default integer network (or --artifact): no --device, --stem-pad, "
                        "--weight-bits, --frac or --width")
    net = _integer_network(args)
    ap = lower_to_accel(net, 8)
    out = Path(args.out_dir) if args.out_dir else Path("runs/eval") / f"rtl-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    art = Path(args.artifact) if args.artifact else save_artifact(net, out / "artifact")
    summary = run_job_cocotb(ap, "spiketrack.sim.accel_tracking:eval_job",
                             {"artifact": str(art.resolve()), "dataset": args.dataset, "max_seqs": args.max_seqs,
                              "max_frames": args.max_frames,
                              "out_dir": str(out.resolve()), "absent": args.absent,
                              "plot": str(Path(args.plot).resolve()) if args.plot else None,
                              "size_lr": args.size_lr, "update_interval": args.update_interval,
                              "update_threshold": args.update_threshold},
                             init={m: ap.images[m] for m in ("prog", "w", "tab", "cst")})
    from spiketrack.model.evaluate import JSON_KEYS

    if args.json:
        print(json.dumps({k: summary[k] for k in (*JSON_KEYS, "search_cycles", "fps_at_100mhz")}))
    else:
        print(f"the integer network on the accelerator's RTL, {args.dataset}: {summary['sequences']} sequences, "
              f"{summary['frames']} frames")
        print(f"  AUC {summary['auc']:.3f}  precision {summary['precision']:.3f}  AO {summary['ao']:.3f}; "
              f"search frame {summary['search_cycles']:.0f} cycles ({summary['fps_at_100mhz']:.1f} fps at 100 MHz), "
              f"{summary['fps']:.2f} frames/s simulated")
        print(f"  results in {out}")
    return 0


def run(args) -> int:
    import torch

    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.data.datasets import load_eval_dataset
    from spiketrack.model.evaluate import JSON_KEYS, evaluate
    from spiketrack.model.tracker import SpikeTrackTracker

    if args.max_seqs is not None and args.max_seqs < 1:
        raise UserError("--max-seqs must be at least 1")
    if args.max_frames is not None and args.max_frames < 2:
        raise UserError(f"--max-frames must be at least 2 (the first frame initialises the tracker), got {args.max_frames}")
    resolve_float_argument(args)
    if args.backend == "float" and (args.quantized or args.artifact is not None):
        raise UserError("--backend float runs the checkpoint's float model: it excludes --quantized and --artifact")
    if args.backend == "golden" and args.artifact is None:
        args.quantized = True
    if args.backend == "rtl":
        return _eval_rtl(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    fmt_args = (args.weight_bits, args.frac, args.width)
    if not args.quantized and any(a is not None for a in fmt_args):
        raise UserError("--weight-bits, --frac and --width need --quantized")
    if args.artifact is not None:
        if args.rounding is not None:
            raise UserError("--rounding sets a checkpoint's fire rounding; an artifact's neurons carry their own")
        model, ck = _artifact_model(args)
    else:
        model, ck = model_from_checkpoint(args.checkpoint, args.device, rounding=args.rounding)
    if args.stem_pad is not None:
        if args.quantized or args.artifact is not None:
            raise UserError("--stem-pad sets the float model's stem padding; the integer stem always pads with "
                            "pixel 0 (black)")
        model.backbone.stem.pad = args.stem_pad
    if args.quantized and args.artifact is None:
        hook = quantize_hook()
        if hook is None:
            raise UserError("--quantized is not available yet: spiketrack.quant provides no tracking_model hook")
        fmt = None
        if any(a is not None for a in fmt_args):
            from spiketrack.quant.qat import QuantFormat

            fmt = QuantFormat(8 if args.frac is None else args.frac, 16 if args.width is None else args.width,
                              args.weight_bits or "8")
        model = hook(model, fmt)
    elif args.artifact is None and getattr(model, "quant_format", None) is not None:  # a QAT checkpoint: its integer network
        from spiketrack.quant.tracking import QuantizedTracking

        model = QuantizedTracking(model)
    kind, seqs = load_eval_dataset(args.dataset, args.max_seqs, args.max_frames)
    out = Path(args.out_dir) if args.out_dir else Path("runs/eval") / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    tracker = SpikeTrackTracker(model, device=args.device, size_lr=args.size_lr, dataset=kind,
                                update_interval=args.update_interval, update_threshold=args.update_threshold)
    summary = evaluate(tracker, seqs, out, absent=args.absent, plot=args.plot, progress=sys.stderr.isatty(),
                       label=ck["variant"])
    if args.json:
        print(json.dumps({k: summary[k] for k in JSON_KEYS}))
    else:
        print(f"{ck['variant']} on {args.dataset}: {summary['sequences']} sequences, {summary['frames']} frames")
        print(f"  AUC {summary['auc']:.3f}  precision {summary['precision']:.3f}  "
              f"norm. precision {summary['norm_precision']:.3f}")
        print(f"  AO {summary['ao']:.3f}  SR0.5 {summary['sr50']:.3f}  SR0.75 {summary['sr75']:.3f}  "
              f"{summary['fps']:.1f} fps")
        print(f"  results in {out}")
    return 0
