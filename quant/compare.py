"""Golden vs Brevitas (bit-exactness) and float vs integer (agreement) comparisons, layer by layer.

- :func:`compare_with_golden`: the integer golden model against the Brevitas model in float64,
  element by element (they must be equal).
- :func:`layer_agreement`: the float model against the quantised model on the same crops: per
  layer SQNR of stream values, fraction of equal spike levels, saturation counts.
- :func:`tracking_agreement`: float tracker against integer tracker, frame by frame over a
  benchmark (box IoU between the two trackers' boxes; median and 5th percentile).
"""

from __future__ import annotations

import numpy as np
import torch

from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import IntegerNetwork
from spiketrack.quant.lower import module_outputs, output_scale
from spiketrack.quant.qat import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["normalise_pixels", "compare_with_golden", "synthetic_frames", "layer_agreement", "tracking_agreement",
           "crop_agreement"]


def normalise_pixels(p: torch.Tensor) -> torch.Tensor:
    """uint8 pixels [..., 3, H, W] -> ImageNet-normalised float64 (what the float model reads)."""
    shape = (1,) * (p.dim() - 3) + (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(shape)
    return (p.double() / 255 - mean) / std


@torch.no_grad()
def compare_with_golden(qmodel, net: IntegerNetwork, template_pixels: torch.Tensor,
                        search_pixels: torch.Tensor) -> dict:
    """Run both models on the same uint8 crops and compare every layer output element by element.

    ``qmodel`` must be in float64 (``qmodel.double()``): then its values are exactly the golden
    integers times a power of two. Returns counts of layers and elements compared and mismatching,
    and the names of the mismatching layers.
    """
    z = normalise_pixels(template_pixels)
    x = normalise_pixels(search_pixels)[0]
    with module_outputs(qmodel) as rec:
        qmodel(z, x)
    res = run_network(net, {"template_pixels": template_pixels, "search_pixels": search_pixels}, dump=True)
    frac = net.meta["frac"]
    layers = elements = bad_elements = 0
    bad = []
    for layer in net.layers:
        if layer.name not in rec.outputs:
            continue
        g = res.tensors[layer.name]
        f = (rec.outputs[layer.name] * 2.0 ** output_scale(layer, frac)).reshape(g.shape)
        n = int((f != g.double()).sum())
        layers += 1
        elements += g.numel()
        bad_elements += n
        if n:
            bad.append(layer.name)
    unmatched = [l.name for l in net.layers if l.op in ("neuron", "requant", "memory_build", "add", "add_const",
                                                        "avg_pool", "upsample", "upsample_bilinear", "mean_fusion")
                 and l.name not in rec.outputs]
    return {"layers": layers, "elements": elements, "mismatches": bad_elements, "mismatching_layers": bad,
            "unmatched_layers": unmatched, "saturations": sum(res.saturations.values())}


def synthetic_frames(cfg, n: int, seed_offset: int = 0, sequences=None):
    """``n`` (template pixels [T,1,3,Hz,Wz], search pixels [1,1,3,H,W]) uint8 pairs from the benchmark.

    Templates: the first frame's target (T copies, as the tracker initialises); search: a later
    frame cropped around its ground-truth box, both with the tracker's 4x context crop.
    ``sequences``: draw from these instead of the ``synthetic`` benchmark.
    """
    from spiketrack.model.data.crops import sample_target
    from spiketrack.model.data.synthetic import benchmark_sequences
    from spiketrack.model.tracker import CONTEXT_FACTOR

    seqs = list(sequences) if sequences is not None else benchmark_sequences()
    if not seqs:
        raise ValueError("no sequences to draw crops from")
    out = []
    i = 0
    while len(out) < n:
        seq = seqs[(i + seed_offset) % len(seqs)]
        j = 1 + (7 * i) % (len(seq) - 1)
        i += 1
        box0, box = seq.boxes[0], seq.boxes[j]
        if not (np.all(np.isfinite(box)) and seq.visible[j] and box[2] > 0 and box[3] > 0):
            continue
        zc, _ = sample_target(seq.frame(0), box0, CONTEXT_FACTOR, cfg.template_size)
        xc, _ = sample_target(seq.frame(j), box, CONTEXT_FACTOR, cfg.search_size)
        zt = torch.from_numpy(np.ascontiguousarray(zc.transpose(2, 0, 1))).to(torch.int64)
        xt = torch.from_numpy(np.ascontiguousarray(xc.transpose(2, 0, 1))).to(torch.int64)
        out.append((zt.expand(cfg.timesteps, 1, *zt.shape).clone(), xt.view(1, 1, *xt.shape)))
    return out


# ---------------------------------------------------------------------------------- float vs integer
_STREAM_KINDS = ("conv", "add", "pos_embed", "avg_pool", "retrieve")


def _kind(m) -> str | None:
    from spiketrack.model.layers import MemoryBuild, Upsample
    from spiketrack.model.mrm import MeanFusion
    from spiketrack.quant.qat import (QuantAvgPool, QuantConvBN, QuantNILIF, QuantPosEmbed, QuantResidual,
                                      QuantRetrieve)

    for cls, k in ((QuantConvBN, "conv"), (QuantNILIF, "neuron"), (QuantResidual, "add"),
                   (QuantPosEmbed, "pos_embed"), (QuantAvgPool, "avg_pool"), (QuantRetrieve, "retrieve"),
                   (MemoryBuild, "memory_build"), (MeanFusion, "mean_fusion"), (Upsample, "upsample")):
        if isinstance(m, cls):
            return k
    return None


class _Recorder:
    """Forward hooks on the modules at ``paths`` of ``model``, recording outputs under IR-style names."""

    def __init__(self, model, paths):
        self.model, self.paths, self.outputs, self._h = model, set(paths), {}, []

    def __enter__(self):
        bb = self.model.backbone
        for path, m in self.model.named_modules():
            if path in self.paths:
                def hook(mod, args, out, path=path):
                    branch = bb.current_branch or "search"
                    name, n = f"{branch}/{path}", 1
                    while name in self.outputs:
                        name = f"{branch}/{path}#{n}"
                        n += 1
                    self.outputs[name] = out.detach()
                self._h.append(m.register_forward_hook(hook))
        return self

    def __exit__(self, *exc):
        for h in self._h:
            h.remove()


def _sqnr_db(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    if signal == 0:
        return float("-inf")
    return 10.0 * float(np.log10(signal / noise))


@torch.no_grad()
def layer_agreement(model, qmodel, pairs, net: IntegerNetwork | None = None) -> list[dict]:
    """Float model vs quantised model, layer by layer, on the same uint8 crops.

    Parameters
    ----------
    model : the float SpikeTrack (any dtype; run in float64 here, on a copy).
    qmodel : its quantisation-aware model (run in float64: equal to the integer network).
    pairs : (template pixels [T,1,3,Hz,Wz], search pixels [1,1,3,H,W]) uint8 pairs, e.g. from
        :func:`synthetic_frames`.
    net : the lowered integer network; when given, it runs too and each layer gets its golden
        saturation count (§IS-5/6/7) and the count of elements where golden and Brevitas differ.

    Returns
    -------
    list of dict
        One entry per recorded layer output in execution order: ``name``, ``kind``, ``elements``,
        ``sqnr_db`` (10 log10 of float energy over error energy; None when the outputs are equal,
        ``exact``, or the float output is all zero), ``spike_match`` (neurons: fraction of equal spike levels), ``max_abs_err``,
        ``saturations`` (integer run, when ``net`` is given) and ``golden_mismatches``.
    """
    import copy

    fm = copy.deepcopy(model).double().eval()
    qm = qmodel.double().eval()
    kinds = {p: _kind(m) for p, m in qm.named_modules()}
    paths = [p for p, k in kinds.items() if k is not None]
    levels = int(qm.cfg.levels)
    acc: dict[str, dict] = {}
    order: list[str] = []
    for zp, xp in pairs:
        z, x = normalise_pixels(zp), normalise_pixels(xp)[0]
        with _Recorder(fm, paths) as rf:
            fm(z, x)
        with _Recorder(qm, paths) as rq:
            qm(z, x)
        sat, gold = {}, None
        if net is not None:
            res = run_network(net, {"template_pixels": zp, "search_pixels": xp}, dump=True)
            sat = res.saturations
            gold = res.tensors
        for name, q in rq.outputs.items():
            f = rf.outputs.get(name)
            if f is None or f.shape != q.shape:
                continue
            path = name.split("/", 1)[1].split("#")[0]
            kind = kinds[path]
            a = acc.get(name)
            if a is None:
                a = acc[name] = {"name": name, "kind": kind, "elements": 0, "signal": 0.0, "noise": 0.0,
                                 "match": 0, "max_abs_err": 0.0, "saturations": 0 if net is not None else None,
                                 "golden_mismatches": 0 if net is not None else None}
                order.append(name)
            err = (f - q).double()
            a["elements"] += q.numel()
            a["signal"] += float((f.double() ** 2).sum())
            a["noise"] += float((err ** 2).sum())
            a["max_abs_err"] = max(a["max_abs_err"], float(err.abs().max()) if err.numel() else 0.0)
            if kind == "neuron":
                a["match"] += int((torch.round(f * levels) == torch.round(q * levels)).sum())
            if net is not None:
                a["saturations"] += int(sat.get(name, 0))
                if gold is not None and name in gold:
                    from spiketrack.quant.lower import output_scale

                    layer = next((l for l in net.layers if l.name == name), None)
                    if layer is not None:
                        g = gold[name]
                        scaled = (q * 2.0 ** output_scale(layer, net.meta["frac"])).reshape(g.shape)
                        a["golden_mismatches"] += int((scaled != g.double()).sum())
    out = []
    for name in order:
        a = acc[name]
        sq = _sqnr_db(a["signal"], a["noise"])
        row = {"name": name, "kind": a["kind"], "elements": a["elements"],
               "sqnr_db": round(sq, 2) if np.isfinite(sq) else None, "exact": a["noise"] == 0,
               "max_abs_err": round(a["max_abs_err"], 6),
               "spike_match": round(a["match"] / a["elements"], 5) if a["kind"] == "neuron" else None,
               "saturations": a["saturations"], "golden_mismatches": a["golden_mismatches"]}
        out.append(row)
    return out


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x,y,w,h boxes row by row."""
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax2, bx2) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(ay2, by2) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@torch.no_grad()
def crop_agreement(model, qmodel, pairs) -> dict:
    """Open-loop agreement: the box each model decodes from the same crop, IoU float vs integer.

    Returns ``{"crops", "median_iou", "p5_iou", "mean_iou", "score_sqnr_db"}`` (the SQNR is None when
    the score maps are equal).
    """
    import copy

    from spiketrack.model.head import decode_box

    fm = copy.deepcopy(model).double().eval()
    qm = qmodel.double().eval()
    ious, sig, noise = [], 0.0, 0.0
    for zp, xp in pairs:
        z, x = normalise_pixels(zp), normalise_pixels(xp)[0]
        of, oq = fm(z, x), qm(z, x)
        bf, _ = decode_box(of)
        bq, _ = decode_box(oq)
        S = float(model.cfg.search_size)
        to_xywh = lambda b: np.stack([(b[:, 0] - b[:, 2] / 2) * S, (b[:, 1] - b[:, 3] / 2) * S,  # noqa: E731
                                      b[:, 2] * S, b[:, 3] * S], axis=1)
        ious.extend(_iou(to_xywh(bf.double().numpy()), to_xywh(bq.double().numpy())).tolist())
        sig += float((of["score_map"].double() ** 2).sum())
        noise += float(((of["score_map"] - oq["score_map"]).double() ** 2).sum())
    v = np.asarray(ious)
    return {"crops": int(v.size), "median_iou": round(float(np.median(v)), 4),
            "p5_iou": round(float(np.percentile(v, 5)), 4), "mean_iou": round(float(v.mean()), 4),
            "score_sqnr_db": round(_sqnr_db(sig, noise), 2) if noise > 0 and sig > 0 else None}


def tracking_agreement(float_model, int_model, sequences, size_lr: float | None = None) -> dict:
    """Closed loop: run the float tracker and the integer tracker over ``sequences``, compare per frame.

    Each tracker runs on its own (one-pass evaluation); for every frame after the first the IoU
    between the float tracker's box and the integer tracker's box is taken.

    Parameters
    ----------
    float_model : the float model (tracker interface).
    int_model : the integer model (e.g. :func:`spiketrack.quant.tracking.tracking_model`).
    sequences : :class:`~spiketrack.model.data.sequence.Sequence` list.
    size_lr : tracker scale damping (default: the variant's).

    Returns
    -------
    dict
        ``frames``, ``median_iou``, ``p5_iou``, ``mean_iou``, ``frac_iou_below_0.5``, float and
        integer ``auc`` on these sequences, and ``per_sequence`` median IoU.
    """
    from spiketrack.model import metrics as M
    from spiketrack.model.data.sequence import valid_boxes
    from spiketrack.model.evaluate import run_sequence
    from spiketrack.model.tracker import SpikeTrackTracker

    tf = SpikeTrackTracker(float_model, size_lr=size_lr)
    tq = SpikeTrackTracker(int_model, size_lr=size_lr)
    all_iou, per_seq, scores = [], {}, {"float": [], "integer": []}
    for seq in sequences:
        if len(seq) < 2 or not valid_boxes(seq.boxes[:1])[0]:
            continue
        bf, _ = run_sequence(tf, seq)
        bq, _ = run_sequence(tq, seq)
        iou = _iou(bf[1:], bq[1:])
        all_iou.append(iou)
        per_seq[seq.name] = round(float(np.median(iou)), 4)
        h, w = seq.frame(0).shape[:2]
        size = tuple(seq.meta.get("resolution") or (w, h))
        for key, b in (("float", bf), ("integer", bq)):
            sc = M.score_sequence(b, seq.boxes[: len(b)], seq.visible[: len(b)], image_size=size, name=seq.name)
            if sc is not None:
                scores[key].append(sc)
    if not all_iou:
        raise ValueError("no sequence with a valid first box to track")
    v = np.concatenate(all_iou)
    out = {"frames": int(v.size), "median_iou": round(float(np.median(v)), 4),
           "p5_iou": round(float(np.percentile(v, 5)), 4), "mean_iou": round(float(v.mean()), 4),
           "frac_iou_below_0.5": round(float((v < 0.5).mean()), 4)}
    for key in ("float", "integer"):
        out[f"{key}_auc"] = round(float(M.summarize(scores[key])["auc"]), 4) if scores[key] else None
    out["per_sequence_median_iou"] = per_seq
    return out
