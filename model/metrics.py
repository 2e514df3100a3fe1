"""One-pass-evaluation (OPE) metrics for single-object tracking.

All boxes are x, y, w, h in pixels (x, y = top-left corner).

Per sequence, over its *evaluated frames* (see conventions below):

- IoU: intersection over union of axis-aligned boxes; 0 when either box is empty
  (w <= 0 or h <= 0) or not finite.
- success curve: fraction of frames with IoU **>** t for the 21 thresholds
  t = 0, 0.05, ..., 1; **AUC** = mean of that curve (OTB / LaSOT toolkits).
- centre error: Euclidean distance of box centres, centre = (x + (w-1)/2, y + (h-1)/2)
  (the OTB convention); infinite for an empty / non-finite prediction.
  precision curve: fraction with error <= t px, t = 0..50; **precision** = value at 20 px.
- normalised centre error: centre difference divided per axis by the ground truth's w, h
  (LaSOT's normalised precision); curve over t = 0, 0.01, ..., 0.5;
  **norm_precision** = value at 0.2.
- GOT-10k: IoU with both boxes first clipped to the image (the GOT-10k toolkit's ``bound``
  rule: x, y clamped to the image, then w, h capped at the remaining width/height — a box
  starting left of the image keeps its width), first frame excluded; **AO** = mean IoU, **SR0.5** / **SR0.75** = fraction with IoU > 0.5 /
  0.75.

Conventions for absent / unannotated frames:

- A ground-truth row is *valid* when finite with w > 0 and h > 0 and, if a visibility mask
  is given, the target is visible (not fully occluded, not out of view).
- OPE (AUC / precision / normalised precision), ``absent="exclude"`` (default): frames
  whose ground truth is not valid are skipped (the GOT-10k toolkit's UAV123/LaSOT NaN rule;
  GOT-10k's own ``cover > 0`` rule). ``absent="fail"``: they stay in the denominator and
  count as failures at every threshold (pytracking's default LaSOT analysis).
- GOT-10k AO/SR always use only valid frames after the first (the toolkit's rule).
- Aggregation over sequences: OPE curves are averaged per sequence (each sequence weighs
  the same); AO / SR are averaged over all evaluated frames of all sequences (the GOT-10k
  toolkit's overall numbers are frame-weighted). Sequences with no valid frame are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)
PRECISION_AT = 20  # index into PRECISION_THRESHOLDS (20 px)
NORM_PRECISION_AT = 20  # index into NORM_PRECISION_THRESHOLDS (0.2)


def _as_boxes(b) -> np.ndarray:
    return np.asarray(b, dtype=np.float64).reshape(-1, 4)


def _nonempty(b: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(b), axis=1) & (b[:, 2] > 0) & (b[:, 3] > 0)


def clip_to_image(boxes, width: float, height: float) -> np.ndarray:
    """Clip x, y, w, h boxes to the image [0, width] x [0, height] (GOT-10k ``bound``)."""
    b = _as_boxes(boxes).copy()
    b[:, 0] = np.clip(b[:, 0], 0, width)
    b[:, 1] = np.clip(b[:, 1], 0, height)
    b[:, 2] = np.clip(b[:, 2], 0, width - b[:, 0])
    b[:, 3] = np.clip(b[:, 3], 0, height - b[:, 1])
    return b


def iou(pred, gt, bound: tuple[float, float] | None = None) -> np.ndarray:
    """IoU per row of two [N, 4] x,y,w,h arrays; ``bound`` = (width, height) clips first."""
    p, g = _as_boxes(pred), _as_boxes(gt)
    if p.shape != g.shape:
        raise ValueError(f"prediction has {len(p)} boxes, ground truth {len(g)}")
    ok = _nonempty(p) & _nonempty(g)
    p = np.where(ok[:, None], p, 0.0)
    g = np.where(ok[:, None], g, 0.0)
    if bound is not None:
        p, g = clip_to_image(p, *bound), clip_to_image(g, *bound)
    iw = np.maximum(np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2]) - np.maximum(p[:, 0], g[:, 0]), 0)
    ih = np.maximum(np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3]) - np.maximum(p[:, 1], g[:, 1]), 0)
    inter = iw * ih
    union = p[:, 2] * p[:, 3] + g[:, 2] * g[:, 3] - inter
    out = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    return np.where(ok, np.clip(out, 0.0, 1.0), 0.0)


def _centres(b: np.ndarray) -> np.ndarray:
    return b[:, :2] + (b[:, 2:] - 1) / 2


def center_error(pred, gt) -> np.ndarray:
    """Centre distance in pixels (OTB centre convention); inf for empty predictions."""
    p, g = _as_boxes(pred), _as_boxes(gt)
    e = np.sqrt(np.sum((_centres(p) - _centres(g)) ** 2, axis=1))
    return np.where(_nonempty(p) & np.isfinite(e), e, np.inf)


def normalized_center_error(pred, gt) -> np.ndarray:
    """Centre difference divided per axis by the ground-truth size (LaSOT normalised precision)."""
    p, g = _as_boxes(pred), _as_boxes(gt)
    size = np.maximum(g[:, 2:], 1e-12)
    e = np.sqrt(np.sum(((_centres(p) - _centres(g)) / size) ** 2, axis=1))
    return np.where(_nonempty(p) & np.isfinite(e), e, np.inf)


@dataclass
class SequenceScore:
    """Per-sequence OPE curves and GOT-10k IoUs."""

    name: str
    n_frames: int
    n_evaluated: int
    success: np.ndarray
    precision: np.ndarray
    norm_precision: np.ndarray
    got_ious: np.ndarray
    extra: dict = field(default_factory=dict)

    @property
    def auc(self) -> float:
        return float(np.mean(self.success))


def score_sequence(pred, gt, visible=None, image_size: tuple[int, int] | None = None, *,
                   absent: str = "exclude", name: str = "") -> SequenceScore | None:
    """Score one sequence; ``image_size`` = (width, height) for the GOT-10k bound.

    Returns None if the sequence has no valid ground-truth frame.
    """
    if absent not in ("exclude", "fail"):
        raise ValueError(f"absent must be 'exclude' or 'fail', got {absent!r}")
    p, g = _as_boxes(pred), _as_boxes(gt)
    if len(p) != len(g):
        raise ValueError(f"{name or 'sequence'}: {len(p)} predicted boxes for {len(g)} ground-truth rows")
    valid = _nonempty(g)
    if visible is not None:
        valid &= np.asarray(visible, bool).reshape(-1)[: len(g)]
    if not valid.any():
        return None
    ious = iou(p[valid], g[valid])
    ce = center_error(p[valid], g[valid])
    nce = normalized_center_error(p[valid], g[valid])
    denom = int(valid.sum()) if absent == "exclude" else len(g)
    succ = (ious[:, None] > SUCCESS_THRESHOLDS[None]).sum(0) / denom
    prec = (ce[:, None] <= PRECISION_THRESHOLDS[None]).sum(0) / denom
    nprec = (nce[:, None] <= NORM_PRECISION_THRESHOLDS[None]).sum(0) / denom
    gv = valid.copy()
    gv[0] = False
    bound = image_size if image_size is not None else None
    got = iou(p[gv], g[gv], bound=bound)
    return SequenceScore(name, len(g), int(valid.sum()), succ, prec, nprec, got)


def summarize(scores: list[SequenceScore | None]) -> dict:
    """Aggregate per-sequence scores into the benchmark numbers (fractions in [0, 1])."""
    scores = [s for s in scores if s is not None]
    if not scores:
        raise ValueError("no sequence with valid ground truth to score")
    succ = np.mean([s.success for s in scores], axis=0)
    prec = np.mean([s.precision for s in scores], axis=0)
    nprec = np.mean([s.norm_precision for s in scores], axis=0)
    got = np.concatenate([s.got_ious for s in scores]) if scores else np.zeros(0)
    return {
        "auc": float(np.mean(succ)),
        "precision": float(prec[PRECISION_AT]),
        "norm_precision": float(nprec[NORM_PRECISION_AT]),
        "ao": float(np.mean(got)) if len(got) else float("nan"),
        "sr50": float(np.mean(got > 0.5)) if len(got) else float("nan"),
        "sr75": float(np.mean(got > 0.75)) if len(got) else float("nan"),
        "success_curve": succ.tolist(),
        "precision_curve": prec.tolist(),
        "norm_precision_curve": nprec.tolist(),
        "sequences": len(scores),
    }
