"""``spiketrack run``: track a video on the accelerator through its UART link.

    spiketrack run --port /dev/ttyUSB0 --frames DIR|VIDEO --init x,y,w,h --out boxes.txt
    spiketrack run --port sim ...          # the simulated board (amaranth.sim), same driver

The host compiles the same network the bitstream carries (``--compiled DIR`` as given to
``spiketrack build``, default the reduced edge-t3), so it knows where every tensor lives; the
program, weights and tables are baked into the bitstream (in simulation: preloaded), the crops
travel over the link, the head maps come back and the tracker decodes them
(``sim/accel_tracking.py``). ``--check`` also runs the golden model on every pass and counts
mismatches. Boxes are written atomically; a summary (cycles per pass, frames, mismatches) is printed.
"""

from __future__ import annotations

import json
import time

import numpy as np

from spiketrack.cli import UserError


def add_arguments(p) -> None:
    p.add_argument("--port", required=True, help="serial device of the board, or 'sim' for the simulated board")
    p.add_argument("--frames", required=True, help="folder of images (sorted by name) or a video file")
    p.add_argument("--init", required=True, help="initial box x,y,w,h in pixels of the first frame")
    p.add_argument("--out", required=True, help="output text file, one x,y,w,h line per frame")
    p.add_argument("--compiled", default=None, metavar="DIR", help="the artifact the bitstream was built with")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument("--baud", type=int, default=1_000_000)
    p.add_argument("--check", action="store_true", help="compare every pass with the golden model")
    p.add_argument("--external-weights", action="store_true",
                   help="the bitstream was built with --external-weights: compile the same way and load the weights "
                        "into the board's SDRAM (memory EXT) over the link before the first frame")
    p.add_argument("--json", action="store_true")


def track_on_device(net, ap, drv, frames, box, *, check: bool, load: bool = False, load_ext: bool = True):
    """Track ``frames`` on the device behind ``drv`` (the program, weights and tables in its
    memories unless ``load``; with external weights the host loads memory EXT first, which no
    bitstream carries, unless ``load_ext`` is False)."""
    from spiketrack.model.tracker import SpikeTrackTracker
    from spiketrack.sim.accel_tracking import AcceleratorTracking

    model = AcceleratorTracking(net, ap, drv, load=load, load_ext=load_ext, check=check)
    tracker = SpikeTrackTracker(model)
    boxes = []
    for i, img in enumerate(frames):
        if i == 0:
            tracker.init(img, box)
            boxes.append(np.asarray(box, dtype=np.float64))
        else:
            boxes.append(tracker.update(img))
    return np.stack(boxes), model.reports


def run(args) -> int:
    from spiketrack.atomic import write_text_atomic
    from spiketrack.bitstreams.accel_build import board_network
    from spiketrack.compiler.accel import lower_to_accel
    from spiketrack.model.cli_track import iter_frames, parse_box
    from spiketrack.model.tracker import check_box

    box = parse_box(args.init)
    frames = []
    for i, f in enumerate(iter_frames(args.frames)):
        if args.max_frames is not None and i >= args.max_frames:
            break
        frames.append(f)
    try:
        check_box(box, frames[0])
    except Exception as e:
        raise UserError(f"--init: {e}") from None
    net, desc = board_network(args.compiled)
    ap = lower_to_accel(net, ext_weights=args.external_weights)
    t0 = time.monotonic()
    if args.port == "sim":
        from spiketrack.sim.board_sim import run_link_session

        images = {m: ap.images[m] for m in ("prog", "w", "tab", "cst")}   # what the bitstream carries
        # with external weights the simulated external memory starts holding them: loading them
        # over the simulated UART would take most of an hour here (about 1,500 cycles/s); a
        # board gets them over the link (tests/test_board_uart.py runs that load on the Verilog)
        boxes, reports = run_link_session(
            lambda drv, tr, st: track_on_device(net, ap, drv, frames, box, check=args.check, load_ext=False),
            lanes=ap.lanes, depths=ap.depths, preload=images, **ap.accel_kwargs(preload=True))
    else:
        from spiketrack.hw.accel.top import mem_widths
        from spiketrack.sim.accel_driver import AccelDriver
        from spiketrack.sim.link_transport import LinkError, LinkTransport, open_serial

        try:
            port = open_serial(args.port, args.baud)
        except LinkError as e:
            raise UserError(str(e)) from None
        try:
            drv = AccelDriver(LinkTransport(port), mem_widths(ap.lanes))
            boxes, reports = track_on_device(net, ap, drv, frames, box, check=args.check)
        except LinkError as e:
            raise UserError(f"link: {e}") from None
        finally:
            port.close()
    write_text_atomic(args.out, "".join(",".join(f"{v:.4f}" for v in b) + "\n" for b in boxes))
    search = [r for r in reports if r["pass"] == "search_frame"]
    summary = {"port": args.port, "network": desc, "external_weights": args.external_weights,
               "frames": len(frames), "out": args.out,
               "template_cycles": [r["cycles"] for r in reports if r["pass"] == "template_update"],
               "search_cycles_mean": round(sum(r["cycles"] for r in search) / max(1, len(search))),
               "mismatches": sum(r.get("mismatches", 0) for r in reports) if args.check else None,
               "seconds": round(time.monotonic() - t0, 1)}
    print(json.dumps(summary, indent=None if not args.json else 1))
    return 1 if args.check and summary["mismatches"] else 0


