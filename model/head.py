"""Spiking centre head and box decoding (spec §6.1)."""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.model.layers import ConvBN

SIGMOID_CLAMP = 1e-4


class _Branch(nn.Module):
    """4 x [ConvBN 3x3 (+bias) -> neuron], widths cin -> ch -> ch/2 -> ch/4 -> ch/8 (each at least
    ``min_width``), then a 1x1 conv."""

    def __init__(self, cin: int, ch: int, cout: int, neuron, min_width: int = 1):
        super().__init__()
        widths = [cin] + [max(ch >> i, min_width) for i in range(4)]
        self.convs = nn.ModuleList(ConvBN(widths[i], widths[i + 1], 3, bias=True) for i in range(4))
        self.sns = nn.ModuleList(neuron() for _ in range(4))
        self.out = nn.Conv2d(widths[-1], cout, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # [T,B,cin,h,w] spikes -> [B,cout,h,w]
        for conv, sn in zip(self.convs, self.sns):
            s = sn(conv(s))
        T, B = s.shape[:2]
        return self.out(s.flatten(0, 1)).unflatten(0, (T, B)).mean(0)  # mean over T (T = 1 here)


class CenterHead(nn.Module):
    """Three-branch spiking centre head (score / offset / size).

    Parameters
    ----------
    cin : int
        Channels of the search feature map.
    ch : int
        Branch width (``NUM_CHANNELS``).
    neuron : callable
        Neuron-layer constructor.
    min_width : int
        Floor on the tapering widths ``ch, ch/2, ch/4, ch/8`` (1: the reference taper). The last
        spiking layer feeds the 1x1 output convs, so its width bounds how finely the box size and
        offset can be resolved: 4 channels of 5 spike levels gave the edge model ~115 distinct
        box widths (docs/tracking.md 2.1).

    Returns (forward)
    -----------------
    dict with ``score_map`` [B,1,h,w] logits, ``size_map`` [B,2,h,w] = clamp(sigmoid(.)),
    ``offset_map`` [B,2,h,w] raw (x, y order; size is w, h).
    """

    def __init__(self, cin: int, ch: int, neuron, min_width: int = 1):
        super().__init__()
        self.sn_in = neuron()
        self.ctr = _Branch(cin, ch, 1, neuron, min_width)
        self.offset = _Branch(cin, ch, 2, neuron, min_width)
        self.size = _Branch(cin, ch, 2, neuron, min_width)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # x: [T,B,C,h,w] real
        s = self.sn_in(x)
        size = torch.sigmoid(self.size(s)).clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
        return {"score_map": self.ctr(s), "size_map": size, "offset_map": self.offset(s)}


def boxes_at(out: dict[str, torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
    """Boxes (cx, cy, w, h) normalised to the crop at flat score-map indices ``idx`` [B]."""
    size, offset = out["size_map"], out["offset_map"]
    B, _, h, w = size.shape
    gather = idx.view(B, 1, 1).expand(B, 2, 1)
    sz = size.flatten(2).gather(2, gather).squeeze(2)  # [B,2] (w, h)
    off = offset.flatten(2).gather(2, gather).squeeze(2)  # [B,2] (dx, dy)
    ys = torch.div(idx, w, rounding_mode="floor").to(off.dtype)
    xs = (idx % w).to(off.dtype)
    return torch.stack([(xs + off[:, 0]) / w, (ys + off[:, 1]) / h, sz[:, 0], sz[:, 1]], dim=1)


def decode_box(out: dict[str, torch.Tensor], window: torch.Tensor | None = None):
    """``cal_bbox``: peak of the (windowed) score map -> ``(boxes [B,4] cx,cy,w,h, score [B])``.

    ``score = sigmoid(score_map)`` (clamped as the reference), multiplied by ``window``
    (broadcastable to [B,1,h,w], e.g. a Hanning window) when given; the returned score is the
    windowed peak value.
    """
    score = torch.sigmoid(out["score_map"]).clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
    if window is not None:
        score = score * window.to(score.device, score.dtype)
    flat = score.flatten(1)
    peak, idx = flat.max(dim=1)
    return boxes_at(out, idx), peak
