"""``spiketrack import``: convert an official SpikeTrack checkpoint into this project's format."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--official", required=True, help="the authors' checkpoint (.pth/.tar, model under 'net')")
    p.add_argument("--config", required=True,
                   help="paper variant it was trained as: paper-{s256,b256,b384}-{t1,t3}")
    p.add_argument("--out", required=True, help="our checkpoint to write (atomically)")
    p.add_argument("--trust-pickle", action="store_true",
                   help="unpickle a file that the safe loader refuses (runs code named in the file: trusted "
                        "sources only)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def run(args) -> int:
    from spiketrack.model.official import import_official

    summary = import_official(args.official, args.config, args.out, trust_pickle=args.trust_pickle)
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"imported {summary['official_tensors']} official tensors ({summary['official_elements']:,} elements) "
              f"as {summary['variant']} (rounding {summary['rounding']}) -> {summary['out']}")
    return 0
