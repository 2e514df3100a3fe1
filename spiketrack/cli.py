"""The ``spiketrack`` command line: one console script, one sub-command per job.

Sub-commands register themselves in :data:`COMMANDS`; each maps a name to a pair
``(add_arguments, run)`` so the layers stay decoupled and the CLI imports them lazily.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). Each module defines add_arguments(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("spiketrack.demo", "the main job on the shipped default: track, quantise, verify"),
    "info": ("spiketrack.model.cli_info", "print a variant's size and compute"),
    "train": ("spiketrack.model.cli_train", "train a tracker variant (single process or torchrun)"),
    "track": ("spiketrack.model.cli_track", "track one target through a frame folder or video"),
    "eval": ("spiketrack.model.cli_eval", "one-pass evaluation on a benchmark (AUC, precision, AO, SR)"),
    "verify": ("spiketrack.sim.verify", "fuzz the RTL against the golden model"),
    "import": ("spiketrack.model.cli_import", "convert an official SpikeTrack checkpoint (paper variants)"),
    "quantize": ("spiketrack.quant.cli_quantize", "quantise a checkpoint to the integer network and check it"),
    "energy": ("spiketrack.quant.cli_energy", "synaptic operations, firing rates and energy on real frames"),
    "compare": ("spiketrack.quant.cli_compare", "float vs integer network: per-layer SQNR, spikes, box IoU"),
    "compile": ("spiketrack.compiler.cli_compile", "compile an integer network for the accelerator: hardware ops, memory plan, cycles"),
    "simulate": ("spiketrack.sim.cli_simulate", "run the accelerator top in simulation against the golden model"),
    "run": ("spiketrack.sim.cli_run", "track a video on the accelerator over its UART link (a board, or --port sim)"),
    "build": ("spiketrack.bitstreams.cli_board", "the accelerator bitstream for a board (yosys, nextpnr, packing)"),
    "bench": ("spiketrack.benchmarks.suite", "the benchmark table: cycles, fps, simulator speed, energy, synthesis (JSON too)"),
}


class UserError(Exception):
    """An error caused by the user's input; printed as one line, no traceback."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="spiketrack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    module = None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:  # import only the sub-command that runs
            module = importlib.import_module(module_name)
            module.add_arguments(p)
    args = parser.parse_args(argv)
    try:
        return int(module.run(args) or 0)
    except (UserError, ValueError, FileNotFoundError) as e:
        print(f"spiketrack {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
