"""BatchNorm statistics: the template stream vs the search stream, and running vs batch statistics.

    python benchmarks/bench_bn_stats.py [CKPT] [--pairs 16] [--max-seqs N | --no-auc] [--out runs/bn_stats.json]

One ``BatchNorm2d`` serves both streams (weight sharing). In training the template stream
normalises a batch of ``T·B`` maps and the search stream a batch of ``B``, each with its own batch
statistics, while both update the same running statistics, which eval then applies to both
streams. Measured here, for a float checkpoint (default: the shipped float edge-t3):

* ``stream_gap``: on ``--pairs`` template/search pairs cut from ``synthetic-val`` in the training
  geometry, per BN layer, the mean over channels of ``|mean_template - mean_search| / sqrt(running_var)``
  of the two streams' batch means, and the same for each stream against the running mean
  (``template_vs_running``, ``search_vs_running``); summarised as median and maximum over layers;
* ``auc_running`` / ``auc_batch``: tracking AUC on ``synthetic-val`` with eval-mode BN (running
  statistics, what ``spiketrack eval`` does) and with train-mode BN (each call normalised by its own
  batch statistics, running statistics left untouched: momentum 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile

import torch

from spiketrack.atomic import write_text_atomic
from spiketrack.model.checkpoint import model_from_checkpoint
from spiketrack.model.data.sampler import TrackingPairs
from spiketrack.model.data.synthetic import validation_sequences
from spiketrack.model.evaluate import evaluate
from spiketrack.model.tracker import SpikeTrackTracker


def stream_gaps(model, n_pairs: int) -> dict:
    """Per-layer gaps between the two streams' batch means and the running means."""
    cfg = model.cfg
    data = TrackingPairs([validation_sequences()], n_templates=cfg.timesteps, template_size=cfg.template_size,
                         search_size=cfg.search_size, augment=False, seed=0)
    zs, xs, _ = zip(*(data.sample(i) for i in range(n_pairs)))
    z, x = torch.stack(zs).transpose(0, 1), torch.stack(xs)
    seen: dict[str, dict[str, torch.Tensor]] = {}
    hooks = []
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            def hook(m, args, name=name):
                branch = model.backbone.current_branch or "search"
                seen.setdefault(name, {})[branch] = args[0].double().mean(dim=(0, 2, 3))
            hooks.append(mod.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(z, x)
    finally:
        for h in hooks:
            h.remove()
    mods = dict(model.named_modules())
    rows = {}
    for name, st in seen.items():
        if "template" not in st or "search" not in st:
            continue   # layers after the last MRM site run on the search stream only
        bn = mods[name]
        sd = bn.running_var.double().sqrt().clamp_min(1e-6)
        rm = bn.running_mean.double()
        rows[name] = {"stream_gap": float(((st["template"] - st["search"]).abs() / sd).mean()),
                      "template_vs_running": float(((st["template"] - rm).abs() / sd).mean()),
                      "search_vs_running": float(((st["search"] - rm).abs() / sd).mean())}
    summary = {k: {"median": statistics.median(r[k] for r in rows.values()),
                   "max": max(r[k] for r in rows.values())}
               for k in ("stream_gap", "template_vs_running", "search_vs_running")}
    return {"layers": len(rows), "summary": summary, "per_layer": rows}


def batch_stat_mode(model) -> None:
    """BN layers normalise with their batch statistics and leave the running statistics unchanged."""
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.train()
            mod.momentum = 0.0


def auc(model, max_seqs: int | None, batch_stats: bool) -> float:
    seqs = validation_sequences(max_seqs)
    tracker = SpikeTrackTracker(model)   # puts the model in eval mode
    if batch_stats:
        batch_stat_mode(model)
    with tempfile.TemporaryDirectory() as d:
        return evaluate(tracker, seqs, d, progress=False)["auc"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", nargs="?", default=None, help="float checkpoint (default: the shipped float edge-t3)")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--max-seqs", type=int, default=None)
    p.add_argument("--no-auc", action="store_true", help="only the statistics (the AUCs take two eval runs)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, ck = model_from_checkpoint(args.checkpoint, float_default=True)
    report = {"variant": ck["variant"], "pairs": args.pairs, **stream_gaps(model, args.pairs)}
    if not args.no_auc:
        report["auc_running"] = auc(model, args.max_seqs, batch_stats=False)
        report["auc_batch"] = auc(model, args.max_seqs, batch_stats=True)
    text = json.dumps(report, indent=1)
    if args.out:
        write_text_atomic(args.out, text)
    print(json.dumps({k: v for k, v in report.items() if k != "per_layer"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
