"""Command line for :mod:`spiketrack.bitstreams.synth`.

    python -m spiketrack.bitstreams.cli_build synth spiketrack.hw.neuron_unit:NeuronUnit \\
        --family ice40 --name neuron --clock-mhz 50 [--kwargs '{"width": 16}']
    python -m spiketrack.bitstreams.cli_build bitstream mypkg.top:BoardTop --board icebreaker

``MODULE:ATTR`` names a class or factory called with ``--kwargs`` (JSON). Prints the figures
as JSON on stdout (the full report is also in ``<out_dir>/synth_report.json``).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .boards import BOARDS
from .synth import FIGURE_KEYS, ToolchainError, build_bitstream, synthesize


def _load(spec: str, kwargs: str):
    mod, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"expected MODULE:ATTR, got {spec!r}")
    obj = getattr(importlib.import_module(mod), attr)
    kw = json.loads(kwargs) if kwargs else {}
    return lambda: obj(**kw)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="cli_build", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="synthesise + place-and-route a component (no board)")
    s.add_argument("design")
    s.add_argument("--kwargs", default="")
    s.add_argument("--name", required=True)
    s.add_argument("--family", choices=["ecp5", "ice40"], default="ecp5")
    s.add_argument("--device")
    s.add_argument("--package")
    s.add_argument("--clock-mhz", type=float, default=100.0)
    s.add_argument("--wrap-io", choices=["auto", "yes", "no"], default="auto")
    s.add_argument("--out-dir")
    b = sub.add_parser("bitstream", help="build a board top with amaranth-boards")
    b.add_argument("design")
    b.add_argument("--kwargs", default="")
    b.add_argument("--board", choices=sorted(BOARDS), required=True)
    b.add_argument("--name", default="top")
    b.add_argument("--out-dir")
    ap.add_argument("--full", action="store_true", help="print every figure, not the summary")
    args = ap.parse_args(argv)

    design = _load(args.design, args.kwargs)
    try:
        if args.cmd == "synth":
            wrap = {"auto": "auto", "yes": True, "no": False}[args.wrap_io]
            fig = synthesize(design, name=args.name, family=args.family, device=args.device,
                             package=args.package, clock_mhz=args.clock_mhz, wrap_io=wrap,
                             out_dir=args.out_dir)
        else:
            fig = build_bitstream(design, args.board, args.out_dir, name=args.name)
    except ToolchainError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    keys = list(fig) if args.full else [*FIGURE_KEYS, "target_mhz", "timing_met", "wrapped_io",
                                        "bitstream", "out_dir", "seconds"]
    print(json.dumps({k: fig[k] for k in keys if k in fig}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
