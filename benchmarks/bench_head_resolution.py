"""How finely the centre head resolves box size and position (docs/model.md, docs/tracking.md 2.1).

    python benchmarks/bench_head_resolution.py CKPT [CKPT ...] [--pairs 96] [--out runs/head_resolution.json]

For each checkpoint, on the same ``--pairs`` template/search pairs cut from the ``synthetic-val``
sequences (training crop geometry: centre jitter 1.0, scale jitter 0.25; no photometric
augmentation; fixed seed), one forward pass and:

* ``levels_<branch>``: distinct values at the last hidden activation of each head branch (a spiking
  model has at most D + 1 = 5; the ANN twin's ReLU gives a continuum);
* ``distinct_w``: distinct predicted widths over all score-map cells of all pairs, i.e. how many
  box widths the size branch can express at all;
* ``size_err``: mean ``|log(pred / true)|`` of width and height at the score peak;
* ``centre_err_px``: median distance (search-crop pixels) of the predicted centre at the peak;
* ``peak_cell_hit``: fraction of pairs whose score peak is the training target cell (the heat-map centre).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch

from spiketrack.atomic import write_text_atomic
from spiketrack.model.checkpoint import model_from_checkpoint
from spiketrack.model.data.sampler import TrackingPairs
from spiketrack.model.data.synthetic import validation_sequences
from spiketrack.model.head import decode_box
from spiketrack.model.loss import gaussian_heatmap

BRANCHES = ("ctr", "offset", "size")


def pairs(T: int, size: int, n: int):
    data = TrackingPairs([validation_sequences()], n_templates=T, template_size=size, search_size=size,
                         center_jitter=1.0, scale_jitter=0.25, augment=False, seed=0)
    zs, xs, gts = zip(*(data.sample(i) for i in range(n)))
    return torch.stack(zs).transpose(0, 1), torch.stack(xs), torch.stack(gts)


def measure(path: str, n: int) -> dict:
    model, _ = model_from_checkpoint(path)  # in eval mode
    cfg = model.cfg
    z, x, gt = pairs(int(cfg.timesteps), int(cfg.search_size), n)
    last = {}
    for b in BRANCHES:
        getattr(model.head, b).sns[-1].register_forward_hook(
            lambda mod, inp, out, b=b: last.__setitem__(b, out.detach()))
    with torch.no_grad():
        out = model(z, x)
    box, _ = decode_box(out)
    cell = gaussian_heatmap(gt, out["score_map"].shape[-1]).flatten(1).argmax(1)  # the focal-loss target cell
    peak = out["score_map"].flatten(1).argmax(1)
    row = {"checkpoint": path, "variant": cfg.name, "pairs": n,
           "head_widths": [int(c.conv.weight.shape[0]) for c in model.head.size.convs]}
    for b in BRANCHES:
        row[f"levels_{b}"] = int(torch.unique(last[b]).numel())
    row["distinct_w"] = int(torch.unique(out["size_map"][:, 0]).numel())
    row["size_err"] = round(float((box[:, 2:] / gt[:, 2:]).log().abs().mean()), 4)
    row["centre_err_px"] = round(float(((box[:, :2] - gt[:, :2]) * cfg.search_size).norm(dim=1).median()), 3)
    row["peak_cell_hit"] = round(float((peak == cell).float().mean()), 4)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--pairs", type=int, default=96)
    ap.add_argument("--out", default=None, help="also write the rows as JSON here")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    rows = [measure(p, args.pairs) for p in args.checkpoints]
    cols = ["variant", "head_widths", "levels_size", "distinct_w", "size_err", "centre_err_px", "peak_cell_hit"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r[c]) for c in cols) + f"   ({r['checkpoint']})")
    if args.out:
        write_text_atomic(args.out, json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
