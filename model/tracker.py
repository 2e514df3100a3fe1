"""The SpikeTrack tracker (spec §7): ``init(image, box)`` then ``update(image) -> box``.

Per frame: crop the search region (4x context around the previous box), run the search
branch against the cached template memories, multiply the score map by a Hanning window,
take the peak, map the normalised crop box back to the image and clip it with a 10 px
margin. With T > 1 timesteps the template list starts as T copies of the first template;
every ``update_interval`` frames, if the windowed peak score exceeds ``update_threshold``,
the template at index 1 is dropped, a new crop around the current box is appended (the first
template is kept forever) and the template memories are recomputed.

Images are H x W x 3 uint8 RGB numpy arrays; boxes are x, y, w, h in pixels.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from spiketrack.cli import UserError
from spiketrack.model.data.crops import box_from_crop, clip_box, hann2d, normalize, sample_target

DEFAULT_UPDATE_INTERVAL = 25
DEFAULT_UPDATE_THRESHOLD = 0.7
CONTEXT_FACTOR = 4.0
CLIP_MARGIN = 10


def check_image(image) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        shape = getattr(image, "shape", type(image).__name__)
        raise UserError(f"image must be an H x W x 3 RGB array, got {shape}")
    if image.dtype != np.uint8:
        raise UserError(f"image must be uint8, got {image.dtype}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise UserError("image is empty")
    return image


def check_box(box, image: np.ndarray) -> np.ndarray:
    """Validate an initial x, y, w, h box against the image; UserError naming the problem."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise UserError(f"box must be 4 numbers x,y,w,h, got {box!r}") from None
    if b.shape != (4,):
        raise UserError(f"box must be 4 numbers x,y,w,h, got {len(b)}")
    if not np.all(np.isfinite(b)):
        raise UserError(f"box has a non-finite value: {b.tolist()}")
    if b[2] <= 0 or b[3] <= 0:
        raise UserError(f"box must have positive width and height, got w={b[2]:g}, h={b[3]:g}")
    H, W = image.shape[:2]
    if b[0] >= W or b[1] >= H or b[0] + b[2] <= 0 or b[1] + b[3] <= 0:
        raise UserError(f"box {b.tolist()} lies outside the {W}x{H} image")
    return b


class SpikeTrackTracker:
    """Single-object tracker around a SpikeTrack model (got10k-toolkit ``Tracker`` shape).

    Parameters
    ----------
    model : the SpikeTrack model (``encode_template``, ``encode_search``, ``decode_box``, ``cfg``)
    update_interval, update_threshold : template-update gate; default ``model.cfg.update_gate(dataset)``
        (the reference's test settings: 40 / 0.8 on LaSOT, 25 / 0.7 elsewhere); a config without
        ``update_gate`` gives 25 / 0.7
    dataset : benchmark name (``"lasot"``, ``"got10k"``, ``"otb"``, ...) selecting the default gate
    device : torch device for the model inputs
    window : apply the Hanning window to the score map (spec: always on)
    size_lr : scale damping in (0, 1]: the new width/height is ``prev + size_lr · (pred - prev)``
        (the centre is taken as predicted); default ``model.cfg.size_lr``, else 1.0. 1.0 is the
        reference behaviour; smaller values are the SiamFC/SiamRPN-style size smoothing, a
        departure from the spec.
    """

    name = "SpikeTrack"

    def __init__(self, model, *, update_interval: int | None = None, update_threshold: float | None = None,
                 device: str | torch.device = "cpu", window: bool = True, size_lr: float | None = None,
                 dataset: str | None = None):
        if size_lr is None:
            size_lr = getattr(model.cfg, "size_lr", 1.0)
        if not 0.0 < float(size_lr) <= 1.0:
            raise UserError(f"size_lr must be in (0, 1], got {size_lr}")
        self.size_lr = float(size_lr)
        self.model = model.eval()
        cfg = model.cfg
        self.T = int(cfg.timesteps)
        self.template_size = int(cfg.template_size)
        self.search_size = int(cfg.search_size)
        gate = (cfg.update_gate(dataset) if hasattr(cfg, "update_gate")
                else (DEFAULT_UPDATE_INTERVAL, DEFAULT_UPDATE_THRESHOLD))
        self.update_interval = int(update_interval if update_interval is not None else gate[0])
        self.update_threshold = float(update_threshold if update_threshold is not None else gate[1])
        if self.update_interval < 1:
            raise UserError(f"update interval must be at least 1, got {self.update_interval}")
        self.device = torch.device(device)
        self.window = hann2d(int(cfg.feat_size)).to(self.device) if window else None
        self.state: np.ndarray | None = None
        self.frame_id = 0
        self.last_score = float("nan")
        self.n_updates = 0

    # ------------------------------------------------------------------ helpers
    def _template(self, image: np.ndarray, box) -> torch.Tensor:
        crop, _ = sample_target(image, box, CONTEXT_FACTOR, self.template_size)
        return normalize(crop)

    def _encode_templates(self) -> None:
        z = torch.stack(self.templates)[:, None].to(self.device)  # [T, 1, 3, Hz, Wz]
        self.memories = self.model.encode_template(z)

    # ------------------------------------------------------------------ API
    @torch.no_grad()
    def init(self, image: np.ndarray, box) -> None:
        image = check_image(image)
        b = check_box(box, image)
        self.templates = [self._template(image, b)] * self.T
        self._encode_templates()
        self.state = b.copy()
        self.frame_id = 0
        self.n_updates = 0

    @torch.no_grad()
    def update(self, image: np.ndarray) -> np.ndarray:
        if self.state is None:
            raise UserError("tracker.update called before tracker.init")
        image = check_image(image)
        H, W = image.shape[:2]
        self.frame_id += 1
        crop, info = sample_target(image, self.state, CONTEXT_FACTOR, self.search_size)
        x = normalize(crop)[None].to(self.device)
        out = self.model.encode_search(x, self.memories)
        boxes, score = self.model.decode_box(out, window=self.window)
        self.last_score = float(score.reshape(-1)[0])
        pred = boxes.reshape(-1, 4)[0].detach().cpu().numpy().astype(np.float64)
        if not np.all(np.isfinite(pred)):
            pred = np.array([0.5, 0.5, self.state[2] * info.scale / info.out_size,
                             self.state[3] * info.scale / info.out_size])
        box = box_from_crop(pred, info)
        if self.size_lr < 1.0:
            cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
            w = self.state[2] + self.size_lr * (box[2] - self.state[2])
            h = self.state[3] + self.size_lr * (box[3] - self.state[3])
            box = np.array([cx - w / 2, cy - h / 2, w, h])
        box = clip_box(box, H, W, CLIP_MARGIN)
        self.state = box
        if (self.T > 1 and self.frame_id % self.update_interval == 0
                and self.last_score > self.update_threshold):
            self.templates.pop(1)
            self.templates.append(self._template(image, box))
            self._encode_templates()
            self.n_updates += 1
        return box.copy()

    def track(self, frames, box) -> tuple[np.ndarray, np.ndarray]:
        """Run OPE over an iterable of frames; returns (boxes [N, 4], seconds per frame [N])."""
        boxes, times = [], []
        for i, img in enumerate(frames):
            t0 = time.perf_counter()
            if i == 0:
                self.init(img, box)
                b = np.asarray(box, dtype=np.float64)
            else:
                b = self.update(img)
            times.append(time.perf_counter() - t0)
            boxes.append(b)
        return np.array(boxes).reshape(-1, 4), np.array(times)

