"""Context crops shared by the training sampler and the tracker (spec §7.1).

``sample_target`` cuts a square of side ceil(sqrt(w*h) * factor) centred on a box,
pads outside the image with zeros and resizes it bilinearly to ``out_size``. It returns
the crop geometry so boxes can be mapped exactly into and out of the crop
(``box_to_crop`` / ``box_from_crop``); unlike the reference code these inverses also account
for the rounding of the crop origin.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class CropInfo:
    """Where a crop came from: top-left (x1, y1) in the image, side in image px, scale."""

    x1: int
    y1: int
    side: int
    out_size: int

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel (the reference code's ``resize_factor``)."""
        return self.out_size / self.side


def sample_target(image: np.ndarray, box, factor: float, out_size: int) -> tuple[np.ndarray, CropInfo]:
    """Square context crop around ``box`` (x, y, w, h), zero padded, resized to out_size.

    Returns the crop (out_size x out_size x 3 uint8) and its :class:`CropInfo`.
    """
    x, y, w, h = [float(v) for v in box]
    side = math.ceil(math.sqrt(max(w * h, 1e-6)) * factor)
    side = max(side, 1)
    x1 = round(x + 0.5 * w - side * 0.5)
    y1 = round(y + 0.5 * h - side * 0.5)
    pil = Image.fromarray(image)
    crop = pil.crop((x1, y1, x1 + side, y1 + side))  # outside the image -> zeros
    if side != out_size:
        crop = crop.resize((out_size, out_size), Image.BILINEAR)
    return np.asarray(crop), CropInfo(int(x1), int(y1), int(side), int(out_size))


def box_to_crop(box, info: CropInfo) -> np.ndarray:
    """Image x,y,w,h -> crop-pixel x,y,w,h."""
    b = np.asarray(box, dtype=np.float64)
    s = info.scale
    return np.array([(b[0] - info.x1) * s, (b[1] - info.y1) * s, b[2] * s, b[3] * s])


def box_from_crop(box_cxcywh_norm, info: CropInfo) -> np.ndarray:
    """Normalised crop (cx, cy, w, h) in [0, 1] -> image x, y, w, h."""
    cx, cy, w, h = [float(v) * info.out_size / info.scale for v in box_cxcywh_norm]
    cx += info.x1
    cy += info.y1
    return np.array([cx - w / 2, cy - h / 2, w, h])


def clip_box(box, height: int, width: int, margin: int = 10) -> np.ndarray:
    """Keep a box inside the image, at least ``margin`` px wide/high and overlapping it."""
    x1, y1, w, h = [float(v) for v in box]
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), width - margin)
    x2 = min(max(float(margin), x2), float(width))
    y1 = min(max(0.0, y1), height - margin)
    y2 = min(max(float(margin), y2), float(height))
    return np.array([x1, y1, max(float(margin), x2 - x1), max(float(margin), y2 - y1)])


def normalize(img: np.ndarray) -> torch.Tensor:
    """HxWx3 uint8 RGB -> [3, H, W] float32 ImageNet-normalised tensor."""
    a = (img.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))


def hann2d(size: int) -> torch.Tensor:
    """Centred 2-D Hanning window [1, 1, size, size]: outer product of 0.5(1-cos(2pi k/(size+1)))."""
    k = torch.arange(1, size + 1, dtype=torch.float32)
    w = 0.5 * (1 - torch.cos(2 * math.pi * k / (size + 1)))
    return (w[:, None] * w[None, :])[None, None]
