"""One tracking sequence: frames, ground-truth boxes (x, y, w, h) and a visibility mask.

Frames are either image paths (read lazily with Pillow, RGB uint8) or a callable that renders
frame ``i`` on demand (the synthetic generator), so a sequence never holds all its pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence as Seq

import numpy as np
from PIL import Image


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as an H x W x 3 uint8 RGB array; raises ValueError naming the file."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise
    except Exception as e:  # PIL raises several types for broken files
        raise ValueError(f"cannot read image {path}: {e}") from None


@dataclass
class Sequence:
    """A tracking sequence.

    Parameters
    ----------
    name : str
    frames : list of paths, or a callable ``i -> HxWx3 uint8``
    boxes : float array [N, 4], ground truth x, y, w, h in pixels (NaN rows = unannotated)
    visible : bool array [N]; False where the target is absent (out of view / fully occluded)
    n_frames : frame count (derived from ``frames`` when it is a list)
    meta : free-form extras (dataset name, resolution, ...)
    """

    name: str
    frames: Seq[str | Path] | Callable[[int], np.ndarray]
    boxes: np.ndarray
    visible: np.ndarray | None = None
    n_frames: int | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 4)
        if self.n_frames is None:
            if callable(self.frames):
                self.n_frames = len(self.boxes)
            else:
                self.n_frames = len(self.frames)
        if self.visible is None:
            self.visible = valid_boxes(self.boxes)
        self.visible = np.asarray(self.visible, dtype=bool).reshape(-1)

    def __len__(self) -> int:
        return int(self.n_frames)

    def head(self, n: int) -> "Sequence":
        """The first ``n`` frames of this sequence (all of it when it is shorter), with their boxes
        and visibility; the frames are not read."""
        n = min(int(n), len(self))
        frames = self.frames if callable(self.frames) else list(self.frames[:n])
        return Sequence(self.name, frames, self.boxes[:n], self.visible[:n], n, dict(self.meta))

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as an H x W x 3 uint8 RGB array."""
        if callable(self.frames):
            return self.frames(i)
        return read_image(self.frames[i])

    @property
    def usable(self) -> np.ndarray:
        """Frames usable for training: annotated, visible and with a positive-area box."""
        n = min(len(self.boxes), len(self))
        m = np.zeros(len(self), bool)
        m[:n] = self.visible[:n] & valid_boxes(self.boxes[:n])
        return m


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """True where a box row is finite with positive width and height."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.all(np.isfinite(boxes), axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
