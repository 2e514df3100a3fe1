"""``spiketrack info``: a variant's size and dense compute.

Prints the parameter count (with and without positional embeddings) and dense MAC counts per
search frame and per template update (all T templates), batch 1. MACs are counted with forward
hooks on every Conv1d/Conv2d/Linear (output elements x fan-in) plus the attention matmuls
``K^T V`` and ``Q . M``, counted analytically by hooks on the MemoryBuild / Retrieve modules
(see :mod:`spiketrack.model.flops`). BN (foldable), pooling, upsampling, adds and neurons are
not counted. Every spike is treated as active (no sparsity).
"""

from __future__ import annotations

import json


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="variant name (see the list in the error for valid ones)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def info(name: str) -> dict:
    """The info dict for variant ``name``."""
    import torch

    from spiketrack.model import build_model, get_config
    from spiketrack.model.flops import count_params, model_macs

    cfg = get_config(name)
    torch.manual_seed(0)
    model = build_model(cfg)
    total, no_pos = count_params(model)
    macs = model_macs(model)
    return {"config": cfg.name, "params": total, "params_no_pos": no_pos,
            "search_macs": macs["search_macs"], "template_macs": macs["template_macs"],
            "timesteps": cfg.timesteps}


def run(args) -> int:
    d = info(args.config)
    if args.json:
        print(json.dumps(d))
        return 0
    rows = [("config", d["config"]), ("timesteps", d["timesteps"]),
            ("params", f"{d['params']:,} ({d['params'] / 1e6:.3f} M)"),
            ("params without pos-embeds", f"{d['params_no_pos']:,} ({d['params_no_pos'] / 1e6:.3f} M)"),
            ("MACs per search frame", f"{d['search_macs']:,} ({d['search_macs'] / 1e6:.1f} M)"),
            ("MACs per template update", f"{d['template_macs']:,} ({d['template_macs'] / 1e6:.1f} M)")]
    w = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")
    return 0
