"""The quantised model behind the tracker's model interface (``spiketrack eval --quantized``)."""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.quant.qat import QuantFormat, quantize_model

__all__ = ["QuantizedTracking", "tracking_model"]


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
