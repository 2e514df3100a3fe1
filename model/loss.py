"""Tracking loss (spec §6.2): ``L = 1 * focal + 2 * GIoU + 5 * L1``.

* Focal: CenterNet-style (alpha 2, beta 4) between ``sigmoid(score_map)`` and a Gaussian
  heat-map centred on the ground-truth centre cell, radius by the CenterNet rule at
  ``min_overlap = 0.7``.
* GIoU (mean of ``1 - GIoU``) and L1, both on normalised (x1, y1, x2, y2), for the box read at
  the **predicted** peak of the score map (as the reference actor; no window). The ground truth
  is clamped to [0, 1].
"""

from __future__ import annotations

import math

import torch

from spiketrack.model.head import SIGMOID_CLAMP, boxes_at

WEIGHTS = {"focal": 1.0, "giou": 2.0, "l1": 5.0}
MIN_OVERLAP = 0.7


def gaussian_radius(h: float, w: float, min_overlap: float = MIN_OVERLAP) -> float:
    """CenterNet radius: the smallest of the three corner-shift cases keeping IoU >= min_overlap."""
    b1 = h + w
    c1 = w * h * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1 ** 2 - 4 * c1, 0.0))) / 2
    b2 = 2 * (h + w)
    c2 = (1 - min_overlap) * w * h
    r2 = (b2 + math.sqrt(max(b2 ** 2 - 16 * c2, 0.0))) / 2
    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (h + w)
    c3 = (min_overlap - 1) * w * h
    r3 = (b3 + math.sqrt(max(b3 ** 2 - 4 * a3 * c3, 0.0))) / 2
    return min(r1, r2, r3)


def gaussian_heatmap(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Target heat-maps ``[B, 1, size, size]`` for normalised (cx, cy, w, h) ``boxes`` [B, 4].

    Peak 1 at the cell ``round(c * size)`` (clamped to the map), ``sigma = (2r + 1) / 6`` and
    support ``|dx|, |dy| <= r`` with ``r = max(0, int(radius))`` (CenterNet).
    """
    B = boxes.shape[0]
    out = torch.zeros(B, 1, size, size, dtype=torch.float32)
    ar = torch.arange(size, dtype=torch.float32)
    for i, (cx, cy, w, h) in enumerate(boxes.detach().float().cpu().tolist()):
        r = max(0, int(gaussian_radius(h * size, w * size)))
        sigma = (2 * r + 1) / 6
        x0 = min(max(int(math.floor(cx * size + 0.5)), 0), size - 1)
        y0 = min(max(int(math.floor(cy * size + 0.5)), 0), size - 1)
        dx, dy = ar - x0, ar - y0
        g = torch.exp(-(dy[:, None] ** 2 + dx[None, :] ** 2) / (2 * sigma ** 2))
        g = g * ((dy.abs() <= r)[:, None] & (dx.abs() <= r)[None, :])
        g[g < torch.finfo(torch.float32).eps * g.max()] = 0
        out[i, 0] = g
    return out.to(boxes.device)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """CenterNet focal loss (alpha 2, beta 4), normalised by the number of positive cells."""
    pred = torch.sigmoid(logits).clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = (torch.log(pred) * (1 - pred) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - pred) * pred ** 2 * (1 - target) ** 4 * neg).sum()
    n = pos.sum()
    return -(pos_loss + neg_loss) / n.clamp(min=1)


def cxcywh_to_xyxy(b: torch.Tensor) -> torch.Tensor:
    cx, cy, w, h = b.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1)


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of matching (x1, y1, x2, y2) boxes ``[B, 4]`` -> ``[B]``."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-7)
    lt_c, rb_c = torch.min(a[:, :2], b[:, :2]), torch.max(a[:, 2:], b[:, 2:])
    hull = (rb_c - lt_c).clamp(min=0).prod(1)
    return iou - (hull - union) / hull.clamp(min=1e-7)


def tracking_loss(out: dict[str, torch.Tensor], gt: torch.Tensor):
    """Total loss and its parts.

    Parameters
    ----------
    out : dict
        Model output (``score_map``, ``size_map``, ``offset_map``).
    gt : Tensor
        ``[B, 4]`` ground-truth boxes, normalised (cx, cy, w, h) in search-crop coordinates.

    Returns
    -------
    (total, {"focal", "giou", "l1", "iou"}) ; ``iou`` is a detached diagnostic.
    """
    score = out["score_map"]
    if gt.dim() != 2 or gt.shape != (score.shape[0], 4):
        raise ValueError(f"gt boxes must be [B, 4] = [{score.shape[0]}, 4], got {list(gt.shape)}")
    gt = gt.to(score.dtype)
    target = gaussian_heatmap(gt, score.shape[-1]).to(score.dtype)
    focal = focal_loss(score, target)
    idx = score.detach().flatten(1).argmax(1)
    pred = cxcywh_to_xyxy(boxes_at(out, idx))
    gt_xyxy = cxcywh_to_xyxy(gt).clamp(0, 1)
    g = giou(pred, gt_xyxy)
    giou_loss = (1 - g).mean()
    l1 = torch.nn.functional.l1_loss(pred, gt_xyxy)
    total = WEIGHTS["focal"] * focal + WEIGHTS["giou"] * giou_loss + WEIGHTS["l1"] * l1
    with torch.no_grad():
        iou = _iou(pred, gt_xyxy).mean()
    return total, {"focal": focal.detach(), "giou": giou_loss.detach(), "l1": l1.detach(), "iou": iou}


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    lt, rb = torch.max(a[:, :2], b[:, :2]), torch.min(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    area = lambda x: (x[:, 2] - x[:, 0]).clamp(min=0) * (x[:, 3] - x[:, 1]).clamp(min=0)  # noqa: E731
    return inter / (area(a) + area(b) - inter).clamp(min=1e-7)


class SpikeTrackLoss:
    """Callable wrapper of :func:`tracking_loss`."""

    def __call__(self, out, gt):
        return tracking_loss(out, gt)
