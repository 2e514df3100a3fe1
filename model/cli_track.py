"""``spiketrack track``: track one target through a frame folder or a video."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from spiketrack.atomic import write_bytes_atomic
from spiketrack.cli import UserError
from spiketrack.model.cli_eval import add_checkpoint_arguments, add_tracker_arguments, resolve_float_argument

IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".gif")


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_checkpoint_arguments(p)
    p.add_argument("--frames", required=True, help="folder of images (sorted by name) or a video file")
    p.add_argument("--init", required=True, help="initial box x,y,w,h in pixels of the first frame")
    p.add_argument("--out", required=True, help="output text file, one x,y,w,h line per frame")
    p.add_argument("--video", default=None, help="also render the boxes into this video (mp4)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--size-lr", type=float, default=None,
                   help="tracker scale damping in (0, 1] (default: the variant's size_lr; 1.0 = no damping)")
    p.add_argument("--dataset-settings", default=None, metavar="DATASET",
                   help="use this benchmark's template-update gate (lasot: 40 frames / 0.8; default 25 / 0.7)")
    p.add_argument("--backend", choices=("float", "golden", "rtl"), default="float",
                   help="float: the checkpoint's model (a QAT checkpoint such as the shipped default runs as its "
                        "integer network; --float gives the float parent); golden: its integer network on the golden executor; "
                        "rtl: that integer network on the accelerator's Verilog (cocotb + Verilator), the same "
                        "boxes as golden")
    p.add_argument("--artifact", default=None,
                   help="golden/rtl: an integer-network artifact instead of quantising the checkpoint")
    p.add_argument("--external-weights", action="store_true",
                   help="rtl: the weights in external memory (the fixed-latency model of the board's SDRAM), "
                        "streamed into the weight cache while the convolutions compute")
    add_tracker_arguments(p)


def parse_box(text: str) -> list[float]:
    from spiketrack.model.data.datasets import parse_box_line

    try:
        return parse_box_line(text)
    except ValueError as e:
        raise UserError(f"--init must be four numbers x,y,w,h: {e}") from None


def _imageio():
    try:
        import imageio.v2 as iio  # noqa: F401
    except ImportError:
        raise UserError("reading or writing video needs imageio and imageio-ffmpeg (pip install imageio imageio-ffmpeg)") from None
    return iio


def iter_frames(src: str):
    """Yield H x W x 3 uint8 frames from a folder or a video; UserError on problems."""
    from spiketrack.model.data.sequence import read_image

    p = Path(src)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMG_EXT)
        if not files:
            raise UserError(f"no images ({', '.join(IMG_EXT)}) in {p}")
        for i, f in enumerate(files):
            try:
                img = read_image(f)
            except ValueError as e:
                raise UserError(f"frame {i} ({f.name}) cannot be read: {e}") from None
            yield img
        return
    if not p.exists():
        raise UserError(f"frames folder or video not found: {p}")
    if p.suffix.lower() not in VIDEO_EXT:
        raise UserError(f"{p} is neither a folder of images nor a video ({', '.join(VIDEO_EXT)})")
    iio = _imageio()
    try:
        reader = iio.get_reader(str(p))
    except Exception as e:
        raise UserError(f"cannot read video {p}: {e}") from None
    n = 0
    try:
        for frame in reader:
            n += 1
            f = np.asarray(frame)
            if f.ndim == 2:
                f = np.repeat(f[..., None], 3, axis=2)
            yield np.ascontiguousarray(f[..., :3]).astype(np.uint8)
    finally:
        reader.close()
    if n == 0:
        raise UserError(f"video {p} has no frames")


def draw_box(img: np.ndarray, box, color=(255, 0, 0), thick: int = 2) -> np.ndarray:
    out = img.copy()
    H, W = out.shape[:2]
    x1, y1 = int(round(box[0])), int(round(box[1]))
    x2, y2 = int(round(box[0] + box[2])), int(round(box[1] + box[3]))
    for t in range(thick):
        xa, xb = max(x1 + t, 0), min(x2 - t, W - 1)
        ya, yb = max(y1 + t, 0), min(y2 - t, H - 1)
        if xa > xb or ya > yb:
            continue
        for y in (ya, yb):
            out[y, xa:xb + 1] = color
        for x in (xa, xb):
            out[ya:yb + 1, x] = color
    return out


def _integer_network(args):
    """The integer network of ``--artifact``, or of the checkpoint quantised now."""
    if args.artifact:
        from spiketrack.quant.ir import load_artifact

        return load_artifact(args.artifact)
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model

    model, _ = model_from_checkpoint(args.checkpoint, "cpu", rounding=args.rounding)
    q = model if getattr(model, "quant_format", None) is not None else quantize_model(model.eval(), QuantFormat())
    return lower(q)


def _track_rtl(args, box) -> int:
    """``--backend rtl``: the tracker runs inside the cocotb process against the accelerator's Verilog
    (program, weights and tables baked in; crops and head maps over the command stream)."""
    import tempfile
    import time

    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.quant.ir import save_artifact
    from spiketrack.sim.accel_cocotb import run_job_cocotb

    net = _integer_network(args)
    ap = lower_to_accel(net, 8, ext_weights=args.external_weights)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        art = args.artifact or save_artifact(net, Path(tmp) / "artifact")
        rep = run_job_cocotb(ap, "spiketrack.sim.accel_tracking:track_job",
                             {"artifact": str(Path(art).resolve()), "frames": str(Path(args.frames).resolve()),
                              "init": [float(v) for v in box], "update_interval": args.update_interval,
                              "update_threshold": args.update_threshold, "ext_weights": args.external_weights},
                             init={m: ap.images[m] for m in ("prog", "w", "tab", "cst")})
    boxes = np.array(rep["boxes"])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    np.savetxt(buf, boxes, fmt="%.2f", delimiter=",")
    write_bytes_atomic(out, buf.getvalue().encode())
    search = [r["cycles"] for r in rep["passes"] if r["pass"] == "search_frame"]
    secs = time.monotonic() - t0
    if args.video:
        render_video(args.video, iter_frames(args.frames), boxes)
    print(f"tracked {len(boxes)} frames on the RTL" + (" (weights in external memory)" if args.external_weights else "")
          + f" -> {out}" + (f", video {args.video}" if args.video else "")
          + f"; search frame {sum(search) / max(1, len(search)):.0f} cycles "
          f"({100e6 * len(search) / max(1, sum(search)):.1f} fps at 100 MHz), {rep['cycles_simulated']} cycles "
          f"simulated in {secs:.0f} s ({len(search) / secs:.3f} frames/s of simulation)")
    return 0


def render_video(path: str, frames, boxes) -> None:
    """Write ``frames`` with ``boxes`` drawn in (one box per frame) to the video ``path``."""
    iio = _imageio()
    writer = iio.get_writer(path, fps=25, macro_block_size=1)
    try:
        for img, b in zip(frames, boxes):
            writer.append_data(draw_box(img, b))
    finally:
        writer.close()


def run(args) -> int:
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.tracker import SpikeTrackTracker

    resolve_float_argument(args)
    box = parse_box(args.init)
    frames = iter_frames(args.frames)
    try:
        first = next(frames)
    except StopIteration:
        raise UserError(f"empty sequence: {args.frames}") from None
    if args.external_weights and args.backend != "rtl":
        raise UserError(f"--external-weights places the weights of the accelerator's program: it needs --backend rtl, "
                        f"not {args.backend}")
    if args.backend == "rtl":
        return _track_rtl(args, box)
    if args.backend == "golden":
        from spiketrack.quant.tracking import ArtifactTracking

        model = ArtifactTracking(_integer_network(args))
    else:
        if args.artifact:
            raise UserError("--artifact is an integer network: use it with --backend golden or rtl")
        model, _ = model_from_checkpoint(args.checkpoint, args.device, rounding=args.rounding)
        if getattr(model, "quant_format", None) is not None:  # a QAT checkpoint: run its integer network
            from spiketrack.quant.tracking import QuantizedTracking

            model = QuantizedTracking(model)
    tracker = SpikeTrackTracker(model, device=args.device, size_lr=args.size_lr, dataset=args.dataset_settings,
                                update_interval=args.update_interval, update_threshold=args.update_threshold)
    tracker.init(first, box)
    writer = None
    if args.video:
        iio = _imageio()
        writer = iio.get_writer(args.video, fps=25, macro_block_size=1)
        writer.append_data(draw_box(first, box))
    boxes = [np.asarray(box, float)]
    failed = None
    try:
        for img in frames:
            b = tracker.update(img)
            boxes.append(b)
            if writer is not None:
                writer.append_data(draw_box(img, b))
    except UserError as e:   # an unreadable frame: keep the boxes of the frames before it
        failed = e
    finally:
        if writer is not None:
            writer.close()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    np.savetxt(buf, np.array(boxes), fmt="%.2f", delimiter=",")
    write_bytes_atomic(out, buf.getvalue().encode())
    if failed is not None:
        raise UserError(f"{failed}; the boxes of the {len(boxes)} frames before it are in {out}")
    print(f"tracked {len(boxes)} frames -> {out}" + (f", video {args.video}" if args.video else ""))
    return 0
