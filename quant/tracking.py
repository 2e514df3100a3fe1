"""The quantised model behind the tracker's model interface (``spiketrack eval --quantized``)."""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.quant.qat import QuantFormat, quantize_model

__all__ = ["QuantizedTracking", "tracking_model", "ArtifactTracking", "artifact_tracking_model"]


class QuantizedTracking(nn.Module):
    """Wraps a quantisation-aware model run in float64, where it equals the integer golden model.

    Offers the tracker's interface (``cfg``, ``encode_template``, ``encode_search``,
    ``decode_box``); inputs are cast to float64 and head outputs back to float32.
    """

    def __init__(self, qmodel: nn.Module):
        super().__init__()
        self.q = qmodel.double().eval()
        self.cfg = qmodel.cfg

    @torch.no_grad()
    def encode_template(self, z: torch.Tensor):
        return self.q.encode_template(z.double())

    @torch.no_grad()
    def encode_search(self, x: torch.Tensor, memories):
        out = self.q.encode_search(x.double(), memories)
        return {k: v.float() for k, v in out.items()}

    def decode_box(self, out, window=None):
        return self.q.decode_box(out, window)


def tracking_model(model: nn.Module, fmt: QuantFormat | None = None) -> QuantizedTracking:
    """Post-training quantisation of a float model (``quantize_model``) ready for the tracker.

    A model that is already quantisation-aware (from a QAT checkpoint) is used as it is.
    """
    return QuantizedTracking(quantize_model(model, fmt))


class ArtifactTracking(nn.Module):
    """A saved integer-network artifact behind the tracker's model interface (``spiketrack eval --artifact``).

    The golden executor (:func:`~spiketrack.quant.executor.run_network`) runs the artifact: the
    template crops give the memories, a search crop and the memories give the head maps. The
    crops arrive ImageNet-normalised (as for every tracker model) and are turned back into the
    uint8 pixels they came from, exactly as the quantised stem does; the head maps leave at the
    stream exponent ``meta["frac"]`` and become the float head outputs as in the quantised model
    (score and offset scaled, size through the clamped sigmoid). So the outputs equal those of
    :class:`QuantizedTracking` for the model the artifact was lowered from.

    Parameters
    ----------
    net : IntegerNetwork
        A loaded artifact (``quant.ir.load_artifact``), lowered from a SpikeTrack variant.
    """

    def __init__(self, net):
        super().__init__()
        import dataclasses

        from spiketrack.model.configs import get_config
        from spiketrack.quant.ir import ArtifactError

        meta = net.meta
        missing = [k for k in ("config", "frac", "memories", "score", "size", "offset", "search_size",
                               "template_size") if k not in meta]
        if missing:
            raise ArtifactError(f"artifact metadata lacks {', '.join(missing)}: not a lowered SpikeTrack tracker")
        try:
            cfg = get_config(meta["config"])
        except (KeyError, ValueError):
            raise ArtifactError(f"artifact names unknown variant {meta['config']!r}") from None
        self.cfg = dataclasses.replace(cfg, search_size=int(meta["search_size"]),
                                       template_size=int(meta["template_size"]))
        self.net = net
        self.frac = int(meta["frac"])
        self.memories = list(meta["memories"])

    @staticmethod
    def _pixels(x: torch.Tensor, size: int, what: str) -> torch.Tensor:
        if x.shape[-3:] != (3, size, size):
            raise ValueError(f"{what} crop must be [..., 3, {size}, {size}], got {list(x.shape)}")
        from spiketrack.quant.qat import IMAGENET_MEAN, IMAGENET_STD

        x = x.double()
        shape = (1,) * (x.dim() - 3) + (3, 1, 1)
        mean = torch.tensor(IMAGENET_MEAN, dtype=x.dtype).view(shape)
        std = torch.tensor(IMAGENET_STD, dtype=x.dtype).view(shape)
        return torch.clamp(torch.floor((x * std + mean) * 255 + 0.5), 0, 255).to(torch.int64)

    @torch.no_grad()
    def encode_template(self, z: torch.Tensor):
        """``z`` [T, B, 3, Hz, Wz] normalised -> the memories ``[T, B, heads, d_h, d_v]`` (integers)."""
        from spiketrack.quant.executor import run_network

        if z.dim() != 5 or z.shape[0] != self.cfg.timesteps:
            raise ValueError(f"template must be [T={self.cfg.timesteps}, B, 3, H, W], got {list(z.shape)}")
        px = self._pixels(z.cpu(), self.cfg.template_size, "template")
        res = run_network(self.net, {"template_pixels": px}, outputs=self.memories)
        return [res.outputs[m] for m in self.memories]

    @torch.no_grad()
    def encode_search(self, x: torch.Tensor, memories):
        """``x`` [B, 3, H, W] normalised and the memories -> ``score_map``, ``size_map``, ``offset_map``."""
        from spiketrack.model.head import SIGMOID_CLAMP
        from spiketrack.quant.executor import run_network

        px = self._pixels(x.cpu(), self.cfg.search_size, "search")[None]
        heads = [self.net.meta[k] for k in ("score", "size", "offset")]
        res = run_network(self.net, {"search_pixels": px, **dict(zip(self.memories, memories))}, outputs=heads)
        score, size, offset = (res.outputs[h].double().mean(0) * 2.0 ** -self.frac for h in heads)
        size = torch.sigmoid(size).clamp(SIGMOID_CLAMP, 1 - SIGMOID_CLAMP)
        return {"score_map": score.float(), "size_map": size.float(), "offset_map": offset.float()}

    def decode_box(self, out, window=None):
        from spiketrack.model.head import decode_box

        return decode_box(out, window)


def artifact_tracking_model(directory) -> ArtifactTracking:
    """Load an integer-network artifact folder for the tracker; a bad artifact raises its ``ArtifactError``."""
    from spiketrack.quant.ir import load_artifact

    return ArtifactTracking(load_artifact(directory))
