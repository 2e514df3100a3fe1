"""``spiketrack build``: the accelerator bitstream for a board (``bitstreams/accel_build.py``).

    spiketrack build --board ulx3s-85f [--compiled DIR] [--seed N] [--floorplan NAME|FILE] [--estimate-only] [--json]

Progress goes to stderr; the figures (and ``build/<board>/build_report.json``) to stdout.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from spiketrack.cli import UserError

KEYS = ("board", "device", "network", "lut", "lut_total", "ff", "ebr", "ebr_total", "dsp", "fmax_mhz", "clock_mhz", "constraint_mhz",
        "timing_met", "bitstream", "fps_at_fmax", "search_cycles", "run_cycles", "estimate", "estimate_error", "fits", "nextpnr_args",
        "placer", "router", "floorplan", "seconds")


def _plans() -> dict:
    from spiketrack.bitstreams.floorplan import FLOORPLANS

    return FLOORPLANS


#: The plan ``--floorplan auto`` picks, by (board, external weights): measured on the shipped
#: default (docs/boards.md, builds fp4 and fp5); every other configuration is placed freely.
AUTO_FLOORPLAN = {("ulx3s-85f", True): "st-lv"}


def floorplan_arg(value: str, board: str = "", external_weights: bool = False):
    """``--floorplan``: ``None`` for 'none', :data:`AUTO_FLOORPLAN`'s plan for 'auto', a built-in
    plan by name, or a plan read from a JSON file."""
    if value == "auto":
        value = AUTO_FLOORPLAN.get((board, external_weights), "none")
    if value == "none":
        return None
    if value in _plans():
        return _plans()[value]
    try:
        plan = json.loads(Path(value).read_text())
    except OSError as e:
        raise UserError(f"--floorplan {value!r}: not a built-in plan ({', '.join(sorted(_plans()))}, auto, none) "
                        f"and not a readable file ({e.strerror})") from None
    except ValueError as e:
        raise UserError(f"--floorplan {value!r}: not valid JSON: {e}") from None
    if not isinstance(plan, dict) or not all(isinstance(v, dict) and {"rows", "first_column"} <= set(v)
                                             for v in plan.values()):
        raise UserError(f"--floorplan {value!r}: expected {{memory: {{\"rows\": [...], \"first_column\": N}}}}")
    return plan


def add_arguments(p) -> None:
    from spiketrack.bitstreams.boards import BOARDS

    p.add_argument("--board", required=True, choices=sorted(BOARDS))
    p.add_argument("--compiled", default=None, metavar="DIR",
                   help="integer-network artifact to bake in (default: the reduced edge-t3 of sim/reduced.py; "
                        "the shipped edge-t3 needs external memory, docs/boards.md)")
    p.add_argument("--lanes", type=int, default=None, help="default 8; iCEBreaker 4 (its reduced configuration)")
    p.add_argument("--clock-mhz", type=float, default=None, help="core clock from the PLL (ECP5 100, iCE40 24)")
    p.add_argument("--constrain-mhz", type=float, default=None,
                   help="ECP5: time place and route against this clock instead of the core clock "
                        "(over-constrain; timing_met still compares Fmax with the core clock)")
    p.add_argument("--baud", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=None, help="nextpnr placement seed")
    p.add_argument("--nextpnr-arg", action="append", default=[], metavar="ARG",
                   help="one more nextpnr argument, passed as given (repeatable; write options with a value as "
                        "--nextpnr-arg=--placer-heap-beta --nextpnr-arg=0.7)")
    p.add_argument("--floorplan", default="auto", metavar="NAME|FILE",
                   help="block-RAM sites of chosen memories (ECP5 85k; bitstreams/floorplan.py): 'auto' (default: "
                        "st-lv for the ULX3S with --external-weights, none otherwise), 'none', a built-in plan ("
                        + ", ".join(sorted(_plans())) + ") or a JSON file of one")
    p.add_argument("--estimate-only", action="store_true", help="the pre-synthesis estimate only (seconds)")
    p.add_argument("--external-weights", action="store_true",
                   help="weights in the board's SDRAM (ULX3S), streamed into a weight cache by the fetch unit")
    p.add_argument("--out-dir", default=None, help="default build/<board>/")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    from spiketrack.bitstreams.accel_build import BoardDoesNotFit, build_accelerator
    from spiketrack.bitstreams.synth import ToolchainError
    from spiketrack.compiler.fuse import CompileError

    def echo(msg):
        print(msg, file=sys.stderr, flush=True)

    try:
        rep = build_accelerator(args.board, compiled=args.compiled, lanes=args.lanes, clock_mhz=args.clock_mhz,
                                constrain_mhz=args.constrain_mhz,
                                baud=args.baud, seed=args.seed, nextpnr_args=args.nextpnr_arg,
                                estimate_only=args.estimate_only, floorplan=floorplan_arg(args.floorplan, args.board, args.external_weights),
                                out_dir=args.out_dir, echo=echo, external_weights=args.external_weights)
    except CompileError as e:
        raise UserError(f"the network does not compile for {args.board}: {e}") from None
    except (BoardDoesNotFit, ValueError) as e:
        raise UserError(str(e)) from None
    except ToolchainError as e:
        raise UserError(f"toolchain: {e}") from None
    if rep.get("timing_met") is False:
        echo(f"warning: timing NOT met: Fmax {rep['fmax_mhz']:.1f} MHz is below the {rep['clock_mhz']} MHz core clock; "
             f"the bitstream is not reliable. Rebuild with --clock-mhz {int(rep['fmax_mhz'])} or lower.")
    out = {k: rep[k] for k in KEYS if k in rep}
    if args.json:
        print(json.dumps(out, indent=1, default=str))
    else:
        for k, v in out.items():
            print(f"{k:>15}: {v}")
    return 0
