"""Binary expansion of multi-level spikes into D thermometer planes (docs/integer_semantics.md §IS-9)."""

from __future__ import annotations

import torch

from spiketrack.quant.golden.arith import check_int
from spiketrack.quant.golden.neuron import D

__all__ = ["binary_expand", "binary_collapse"]


def binary_expand(k: torch.Tensor) -> torch.Tensor:
    """Levels [...] in 0..D -> binary planes [D, ...] with plane j = [k > j]; their sum is k."""
    k = check_int(k, "k")
    if k.numel() and (int(k.min()) < 0 or int(k.max()) > D):
        raise ValueError(f"spike levels must lie in 0..{D}")
    return torch.stack([(k > j).to(torch.int64) for j in range(D)])


def binary_collapse(planes: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`binary_expand`: the sum over the plane axis."""
    return check_int(planes, "planes").sum(dim=0)
