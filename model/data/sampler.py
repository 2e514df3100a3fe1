"""Training pairs (spec §9): T_z templates + 1 search frame, cropped, jittered and augmented.

One sample is a pure function of (seed, epoch, index), so training is reproducible and
resumable: the same step always sees the same batch, in one process or many.

``--data`` specs: ``synthetic[:N]``, ``synthetic-hard[:N]``, ``lasot:DIR``, ``got10k:DIR``, ``otb:DIR`` or
``mix:SPEC@W,SPEC@W,...`` (weights default to 1), e.g.
``mix:synthetic@1,got10k:/data/got10k@2``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from spiketrack.model.data.crops import box_to_crop, normalize, sample_target
from spiketrack.model.data.sequence import Sequence


def parse_sources(spec: str) -> list[tuple[str, float]]:
    """Split a ``--data`` spec into (source spec, weight) pairs."""
    if spec.startswith("mix:"):
        items = []
        for part in spec[4:].split(","):
            part = part.strip()
            if not part:
                continue
            src, sep, w = part.rpartition("@")
            if not sep:
                src, w = part, "1"
            try:
                weight = float(w)
            except ValueError:
                raise ValueError(f"bad weight {w!r} in mix spec {spec!r}") from None
            if weight <= 0:
                raise ValueError(f"mix weight must be positive in {spec!r}")
            items.append((src, weight))
        if not items:
            raise ValueError(f"empty mix spec {spec!r}")
        return items
    return [(spec, 1.0)]


def load_source(spec: str, scene_cache: int = 32):
    """One training source: an indexable collection of Sequences.

    ``scene_cache``: synthetic scenes kept in memory (see :class:`SyntheticTrainSource`).
    """
    from spiketrack.model.data import datasets
    from spiketrack.model.data.synthetic import SyntheticTrainSource

    kind, _, path = spec.partition(":")
    kind = kind.lower()
    if kind in ("synthetic", "synthetic-hard"):
        try:
            n = int(path) if path else 5000
        except ValueError:
            raise ValueError(f"bad scene count {path!r} in {spec!r}; use {kind} or {kind}:N") from None
        if n < 1:
            raise ValueError(f"scene count must be >= 1 in {spec!r}")
        return SyntheticTrainSource(n_sequences=n, cache=scene_cache, hard=kind == "synthetic-hard")
    if kind == "lasot" and path:
        return datasets.load_lasot(path)
    if kind == "got10k" and path:
        from pathlib import Path

        split = "train" if (Path(path) / "train").is_dir() else None
        return datasets.load_got10k(path, split)
    if kind == "otb" and path:
        return datasets.load_otb(path)
    raise ValueError(f"unknown data source {spec!r}; use synthetic[:N], synthetic-hard[:N], lasot:DIR, got10k:DIR, "
                     "otb:DIR or mix:...")


def _flip_box(box: np.ndarray, width: float) -> np.ndarray:
    b = box.copy()
    b[0] = width - b[0] - b[2]
    return b


class TrackingPairs(torch.utils.data.Dataset):
    """Map-style dataset of training samples ``(z [T,3,Hz,Wz], x [3,H,W], box [4])``.

    ``box`` is the search frame's ground truth as normalised (cx, cy, w, h) in search-crop
    coordinates. Call :meth:`set_epoch` to change the draw per epoch.
    """

    def __init__(self, sources, weights=None, *, n_templates: int = 1, template_size: int = 128,
                 search_size: int = 128, samples_per_epoch: int = 60000, max_interval: int = 400,
                 factor: float = 4.0, scale_jitter: float = 0.5, center_jitter: float = 3.5,
                 augment: bool = True, seed: int = 0):
        self.sources = list(sources)
        w = np.asarray(weights if weights is not None else [1.0] * len(self.sources), dtype=np.float64)
        self.p = w / w.sum()
        self.T, self.zs, self.xs = n_templates, template_size, search_size
        self.samples_per_epoch, self.max_interval = samples_per_epoch, max_interval
        self.factor, self.scale_jitter, self.center_jitter = factor, scale_jitter, center_jitter
        self.augment, self.seed, self.epoch = augment, seed, 0

    @classmethod
    def from_spec(cls, spec: str, scene_cache: int = 32, **kw) -> "TrackingPairs":
        pairs = parse_sources(spec)
        return cls([load_source(s, scene_cache) for s, _ in pairs], [w for _, w in pairs], **kw)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples_per_epoch

    # ------------------------------------------------------------------ sampling
    def _pick_frames(self, rng: np.random.Generator) -> tuple[Sequence, np.ndarray]:
        for _ in range(100):
            src = self.sources[rng.choice(len(self.sources), p=self.p)]
            seq = src[int(rng.integers(len(src)))]
            ok = np.flatnonzero(seq.usable)
            if len(ok) == 0:
                continue
            base = ok[rng.integers(len(ok))]
            cand = ok[np.abs(ok - base) <= self.max_interval]
            ids = np.sort(rng.choice(cand, size=self.T + 1, replace=len(cand) < self.T + 1))
            if rng.random() < 0.5:
                ids = ids[::-1]
            return seq, ids
        raise ValueError("no sequence with a visible, annotated frame in the training data")

    def _search_crop(self, rng, img, box):
        w, h = box[2], box[3]
        for _ in range(20):
            jw, jh = w * math.exp(rng.normal() * self.scale_jitter), h * math.exp(rng.normal() * self.scale_jitter)
            off = math.sqrt(jw * jh) * self.center_jitter * (rng.random(2) - 0.5)
            cx, cy = box[0] + w / 2 + off[0], box[1] + h / 2 + off[1]
            crop, info = sample_target(img, (cx - jw / 2, cy - jh / 2, jw, jh), self.factor, self.xs)
            gt = box_to_crop(box, info)
            gcx, gcy = gt[0] + gt[2] / 2, gt[1] + gt[3] / 2
            if 0 <= gcx < self.xs and 0 <= gcy < self.xs and gt[2] >= 1 and gt[3] >= 1:
                return crop, gt
        crop, info = sample_target(img, box, self.factor, self.xs)
        return crop, box_to_crop(box, info)

    def _photometric(self, rng, crop: np.ndarray, gray: bool) -> np.ndarray:
        c = crop.astype(np.float32)
        if self.augment:
            c = c * rng.uniform(0.8, 1.2)
        if gray:
            c = np.repeat(c.mean(axis=2, keepdims=True), 3, axis=2)
        return np.clip(c, 0, 255).astype(np.uint8)

    def sample(self, index: int):
        rng = np.random.default_rng((self.seed, self.epoch, int(index)))
        seq, ids = self._pick_frames(rng)
        gray = self.augment and rng.random() < 0.05
        joint_flip = self.augment and rng.random() < 0.5
        frames, boxes = [], []
        for i in ids:
            img, box = seq.frame(int(i)), seq.boxes[int(i)].copy()
            if joint_flip:
                img, box = img[:, ::-1], _flip_box(box, img.shape[1])
            frames.append(np.ascontiguousarray(img))
            boxes.append(box)
        zs = []
        for img, box in zip(frames[:-1], boxes[:-1]):
            crop, _ = sample_target(img, box, self.factor, self.zs)
            crop = self._photometric(rng, crop, gray)
            if self.augment and rng.random() < 0.5:
                crop = crop[:, ::-1]
            zs.append(normalize(crop))
        crop, gt = self._search_crop(rng, frames[-1], boxes[-1])
        crop = self._photometric(rng, crop, gray)
        if self.augment and rng.random() < 0.5:
            crop, gt = crop[:, ::-1], _flip_box(gt, self.xs)
        x = normalize(crop)
        cxcywh = np.array([gt[0] + gt[2] / 2, gt[1] + gt[3] / 2, gt[2], gt[3]]) / self.xs
        return torch.stack(zs), x, torch.tensor(cxcywh, dtype=torch.float32)

    def __getitem__(self, index: int):
        return self.sample(index)
