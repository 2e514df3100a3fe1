"""Where float and integer SpikeTrack diverge: open-loop agreement under one change at a time (docs/quant.md).

    python benchmarks/bench_quant_sources.py [--checkpoint CKPT] [--dataset synthetic-hard] [--crops 24]
                                             [--out runs/quant_sources.json]

For each row the float reference and the quantised model run on the same ``--crops`` crops of the
dataset (template = first frame's target, search = a later frame around its ground truth;
:func:`spiketrack.quant.compare.synthetic_frames`) and the table gives the SQNR of the stem output,
the mean fraction of equal spike levels over all neurons, the score-map SQNR and the box IoU
(median / 5th percentile) between the boxes the two models decode. Rows:

* ``ptq``: post-training quantisation in the default format (stream f = 8, 16 bit; int8 weights; float stem padded with zeros
  of the normalised input);
* ``black-pad``: the float stem padded with the normalised value of pixel 0, which is what the
  integer stem's zero padding of raw pixels means (``SpikeTrackConfig.stem_pad = "black"``);
* ``black-pad f=10/18``, ``f=12/20``: plus a finer stream (fractional bits / width);
* ``black-pad int4``, ``mixed``: plus the weight precision plans of ``QuantFormat``;
* ``black-pad float-weights``: a diagnostic, not an integer network: every convolution keeps its
  float (folded) weights and bias, everything else (stream grid, neurons, decay) stays quantised;
* ``black-pad float-decay``: diagnostic, the NI-LIF decay is the float ``sigmoid(theta)`` instead of
  the nearest shift-add constant (§IS-7);
* ``black-pad all-float``: float weights, float decay and a 32-bit stream with f = 16 together
  (checks the instrument: what is left is rounding at f = 16).

Two reference rows measure how sensitive the float model itself is (no quantisation at all):

* ``float32``: the float model in float32 against itself in float64;
* ``pixel+-1``: the float model (float64) on search crops with independent uniform noise of -1, 0
  or +1 grey level per pixel (clipped to 0..255), against the clean crops.

``--rows`` picks rows by name (comma separated).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from spiketrack.atomic import write_text_atomic
from spiketrack.model.checkpoint import model_from_checkpoint
from spiketrack.model.data.datasets import load_eval_dataset
from spiketrack.quant.compare import crop_agreement, layer_agreement, synthetic_frames
from spiketrack.quant.qat import QuantFormat, quantize_model

ROWS = (("ptq", "zero", QuantFormat()),
        ("black-pad", "black", QuantFormat()),
        ("black-pad f=10/18", "black", QuantFormat(10, 18)),
        ("black-pad f=12/20", "black", QuantFormat(12, 20)),
        ("black-pad int4", "black", QuantFormat(weight_bits=4)),
        ("black-pad mixed", "black", QuantFormat(weight_bits="mixed")),
        ("black-pad float-weights", "black", QuantFormat()),
        ("black-pad float-decay", "black", QuantFormat()),
        ("black-pad all-float", "black", QuantFormat(16, 32)))


def float_decay(q):
    """Diagnostic: NI-LIF decay ``sigmoid(theta) * h`` in float instead of the shift-add constant."""
    from spiketrack.quant.qat import QuantNILIF

    for m in q.modules():
        if isinstance(m, QuantNILIF):
            m.decay = lambda h, t, m=m: m.beta(t) * h
    return q


def float_weights(q):
    """Diagnostic: replace every quantised convolution by a float one with the same folded weights and bias."""
    from spiketrack.quant.qat import QuantConvBN

    for m in q.modules():
        if isinstance(m, QuantConvBN):
            c = m.conv
            f = torch.nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding, groups=c.groups,
                                bias=True).to(c.weight.dtype)
            with torch.no_grad():
                f.weight.copy_(c.weight)
                f.bias.copy_(c.bias)
            m.conv = f
    return q


def noise_floor(model, pairs, seed: int = 0) -> list[dict]:
    """The ``float32`` and ``pixel+-1`` reference rows (see the module docstring)."""
    import copy

    from spiketrack.model.head import decode_box
    from spiketrack.quant.compare import _iou, _sqnr_db, normalise_pixels

    f64, f32 = copy.deepcopy(model).double().eval(), copy.deepcopy(model).float().eval()
    S = float(model.cfg.search_size)

    def xywh(b):
        b = b.double().numpy()
        return np.stack([(b[:, 0] - b[:, 2] / 2) * S, (b[:, 1] - b[:, 3] / 2) * S, b[:, 2] * S, b[:, 3] * S], 1)

    g = torch.Generator().manual_seed(seed)
    ious, sig, noise = {"float32": [], "pixel+-1": []}, {"float32": 0.0, "pixel+-1": 0.0}, {"float32": 0.0, "pixel+-1": 0.0}
    with torch.no_grad():
        for zp, xp in pairs:
            z, x = normalise_pixels(zp), normalise_pixels(xp)[0]
            ref = f64(z, x)
            xn = torch.clamp(xp + torch.randint(-1, 2, xp.shape, generator=g), 0, 255)
            outs = {"float32": f32(z.float(), x.float()), "pixel+-1": f64(z, normalise_pixels(xn)[0])}
            b, _ = decode_box(ref)
            for k, o in outs.items():
                bo, _ = decode_box(o)
                ious[k].extend(_iou(xywh(b), xywh(bo)).tolist())
                sig[k] += float((ref["score_map"] ** 2).sum())
                noise[k] += float(((ref["score_map"] - o["score_map"].double()) ** 2).sum())
    rows = []
    for k, v in ious.items():
        v = np.asarray(v)
        rows.append({"row": k, "crops": int(v.size), "median_iou": round(float(np.median(v)), 4),
                     "p5_iou": round(float(np.percentile(v, 5)), 4), "mean_iou": round(float(v.mean()), 4),
                     "score_sqnr_db": round(_sqnr_db(sig[k], noise[k]), 2)})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default=None, help="float checkpoint (default: the shipped float edge-t3)")
    ap.add_argument("--dataset", default="synthetic-hard")
    ap.add_argument("--crops", type=int, default=24)
    ap.add_argument("--out", default=None)
    ap.add_argument("--rows", default=None, help="comma-separated row names (default: all)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    model, _ = model_from_checkpoint(args.checkpoint, float_default=True)
    if getattr(model, "quant_format", None) is not None:
        raise SystemExit("bench_quant_sources: give a float checkpoint")
    _, seqs = load_eval_dataset(args.dataset)
    pairs = synthetic_frames(model.cfg, args.crops, sequences=seqs)
    rows = []
    wanted = None if args.rows is None else [r.strip() for r in args.rows.split(",")]
    unknown = set(wanted or ()) - {r[0] for r in ROWS} - {"float32", "pixel+-1"}
    if unknown:
        raise SystemExit(f"bench_quant_sources: unknown rows {sorted(unknown)}")
    for name, pad, fmt in ROWS:
        if wanted is not None and name not in wanted:
            continue
        model.backbone.stem.pad = pad
        q = quantize_model(model, fmt)
        if name.endswith(("float-weights", "all-float")):
            q = float_weights(q)
        if name.endswith(("float-decay", "all-float")):
            q = float_decay(q)
        layers = layer_agreement(model, q, pairs)
        neurons = [r["spike_match"] for r in layers if r["spike_match"] is not None]
        c = crop_agreement(model, q, pairs)
        row = {"row": name, "stem_sqnr_db": layers[0]["sqnr_db"], "mean_spike_match": round(float(np.mean(neurons)), 4),
               "min_spike_match": min(neurons), **c}
        rows.append(row)
        print(f"{name:20s} stem {row['stem_sqnr_db'] if row['stem_sqnr_db'] is not None else float('inf'):6.2f} dB  spikes equal {row['mean_spike_match']:.4f} "
              f"(min {row['min_spike_match']:.4f})  score map {c['score_sqnr_db']:6.2f} dB  "
              f"box IoU median {c['median_iou']:.3f} p5 {c['p5_iou']:.3f}", flush=True)
    if wanted is None or {"float32", "pixel+-1"} & set(wanted):
        for row in noise_floor(model, pairs):
            rows.append(row)
            print(f"{row['row']:20s} (float model only)  score map {row['score_sqnr_db']:6.2f} dB  "
                  f"box IoU median {row['median_iou']:.3f} p5 {row['p5_iou']:.3f}", flush=True)
    if args.out:
        write_text_atomic(args.out, json.dumps({"dataset": args.dataset, "crops": args.crops, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
