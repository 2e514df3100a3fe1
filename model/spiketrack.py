"""The SpikeTrack model: weight-shared backbone, template memories, search retrieval, head.

Contract used by the tracker, trainer and quantisation layers::

    model = build_model("edge-t3")
    memories = model.encode_template(z)          # z [T,B,3,Hz,Wz] -> list of [T,B,heads,d_h,d_v]
    out = model.encode_search(x, memories)       # x [B,3,H,W] -> score_map / size_map / offset_map
    out = model(z, x)                            # joint (training) graph, same result
    boxes, score = model.decode_box(out, window)
"""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.model.backbone import Backbone
from spiketrack.model.configs import SpikeTrackConfig, get_config
from spiketrack.model.head import CenterHead, decode_box
from spiketrack.model.neuron import MAX_TIMESTEPS, neuron_factory


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape)


class SpikeTrack(nn.Module):
    """SpikeTrack tracker network (spec §1, §5.1).

    The template branch runs ``T`` timesteps (one template per step) and produces one memory
    per MRM site; the search branch runs one timestep and only reads those memories.

    Parameters
    ----------
    cfg : SpikeTrackConfig
    """

    def __init__(self, cfg: SpikeTrackConfig):
        super().__init__()
        self.cfg = cfg
        neuron = neuron_factory(cfg.ann, cfg.levels, cfg.rounding)
        self.backbone = Backbone(cfg, neuron)
        self.head = CenterHead(cfg.dims[3], cfg.head_channels, neuron, cfg.head_min_width)

    # ------------------------------------------------------------ validation
    def _check_image(self, t: torch.Tensor, what: str, size: int) -> None:
        c = self.cfg
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{what} must be a torch.Tensor, got {type(t).__name__}")
        expect = f"3x{size}x{size}"
        got = "x".join(str(s) for s in t.shape[-3:])
        if t.shape[-3:] != (3, size, size):
            if t.dim() >= 3 and t.shape[-3] != 3:
                raise ValueError(f"{what} must have 3 channels (RGB) for {c.name}, got {t.shape[-3]} "
                                 f"(shape {_shape(t)})")
            raise ValueError(f"{what} must be {expect} for {c.name}, got {got}")
        if not t.is_floating_point():
            raise ValueError(f"{what} must be a float tensor (ImageNet-normalised), got {t.dtype}")

    def _check_template(self, z: torch.Tensor) -> None:
        c = self.cfg
        if isinstance(z, torch.Tensor) and z.dim() != 5:
            raise ValueError(f"template images must be a 5-D tensor [T, B, 3, {c.template_size}, "
                             f"{c.template_size}], got rank {z.dim()} (shape {_shape(z)})")
        self._check_image(z, "template image", c.template_size)
        T = z.shape[0]
        if T > MAX_TIMESTEPS:
            raise ValueError(f"template has T={T} timesteps; at most {MAX_TIMESTEPS} are supported")
        if T != c.timesteps:
            raise ValueError(f"template has T={T} timesteps but {c.name} expects T={c.timesteps}")

    def _check_search(self, x: torch.Tensor) -> None:
        c = self.cfg
        if isinstance(x, torch.Tensor) and x.dim() != 4:
            raise ValueError(f"search image must be a 4-D tensor [B, 3, {c.search_size}, {c.search_size}], "
                             f"got rank {x.dim()} (shape {_shape(x)})")
        self._check_image(x, "search image", c.search_size)

    def _check_memories(self, memories, batch: int) -> None:
        n = len(self.backbone.mrm)
        if not isinstance(memories, (list, tuple)) or len(memories) != n:
            got = len(memories) if isinstance(memories, (list, tuple)) else type(memories).__name__
            raise ValueError(f"memories must be a list of {n} tensors from encode_template, got {got}")
        for i, (m, mrm) in enumerate(zip(memories, self.backbone.mrm)):
            if not isinstance(m, torch.Tensor) or m.dim() != 5:
                raise ValueError(f"memory {i} must be a [T, B, heads, d_h, d_v] tensor")
            if m.shape[0] != self.cfg.timesteps:
                raise ValueError(f"memory {i} has T={m.shape[0]} but {self.cfg.name} expects "
                                 f"T={self.cfg.timesteps}")
            if m.shape[1] != batch:
                raise ValueError(f"memory {i} has batch {m.shape[1]} but the search batch is {batch}")

    # ------------------------------------------------------------ API
    def encode_template(self, z: torch.Tensor) -> list[torch.Tensor]:
        """Template memories, one per MRM site: ``[T, B, heads, d_h, d_v]`` each.

        ``z``: ``[T, B, 3, Hz, Wz]`` ImageNet-normalised templates, one per timestep.
        """
        self._check_template(z)
        _, memories = self.backbone.run(z=z)
        return memories

    def encode_search(self, x: torch.Tensor, memories: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """Head outputs for search images ``x`` [B, 3, H, W] given cached ``memories``."""
        self._check_search(x)
        self._check_memories(memories, x.shape[0])
        feat, _ = self.backbone.run(x=x.unsqueeze(0), memories=list(memories))
        return self._head(feat)

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Joint graph (training): the two streams walk the backbone together, unit by unit.

        Equal to ``encode_search(x, encode_template(z))`` (bit-identical in eval mode).
        """
        self._check_template(z)
        self._check_search(x)
        if z.shape[1] != x.shape[0]:
            raise ValueError(f"template batch {z.shape[1]} != search batch {x.shape[0]}")
        feat, _ = self.backbone.run(z=z, x=x.unsqueeze(0))
        return self._head(feat)

    def _head(self, feat: torch.Tensor) -> dict[str, torch.Tensor]:
        self.backbone.current_branch = "search"
        try:
            return self.head(feat)
        finally:
            self.backbone.current_branch = None

    @staticmethod
    def decode_box(out: dict[str, torch.Tensor], window: torch.Tensor | None = None):
        """``(boxes [B,4] normalised cx,cy,w,h in crop coords, score [B])``; see :func:`head.decode_box`."""
        return decode_box(out, window)


def build_model(name_or_config) -> SpikeTrack:
    """Build a :class:`SpikeTrack` from a registered name (see ``list_configs()``) or a config."""
    return SpikeTrack(get_config(name_or_config))
