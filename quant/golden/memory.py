"""Golden memory build, retrieval and spiking linear attention (docs/integer_semantics.md §IS-8).

The hardware memory-retrieval unit (``spiketrack.hw.memory_unit``) is verified against these.
"""

from __future__ import annotations

import torch

from spiketrack.quant.golden.arith import check_int
from spiketrack.quant.golden.neuron import LEVEL_BITS, D

__all__ = ["spike_product", "memory_build", "retrieve", "attention_acc", "retrieval_shift"]


def _check_levels(k: torch.Tensor, name: str) -> torch.Tensor:
    k = check_int(k, name)
    if k.numel() and (int(k.min()) < 0 or int(k.max()) > D):
        raise ValueError(f"{name} spike levels must lie in 0..{D}")
    return k


def spike_product(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a · b`` for two spike levels by AND + count of their thermometer bits (§IS-8, §IS-9)."""
    a = _check_levels(a, "a")
    b = _check_levels(b, "b")
    out = torch.zeros(torch.broadcast_shapes(a.shape, b.shape), dtype=torch.int64)
    for i in range(D):
        for j in range(D):
            out = out + ((a > i) & (b > j)).to(torch.int64)
    return out


def memory_build(k_key: torch.Tensor, k_value: torch.Tensor) -> torch.Tensor:
    """``M[h, c, j] = Σ_n kK[h, c, n] · kV[h, j, n]`` (exponent 2d, unsigned).

    k_key : [heads, d_h, N] levels; k_value : [heads, d_v, N] levels. Returns [heads, d_h, d_v].
    """
    k_key = _check_levels(k_key, "k_key")
    k_value = _check_levels(k_value, "k_value")
    if k_key.dim() != 3 or k_value.dim() != 3 or k_key.shape[0] != k_value.shape[0] or k_key.shape[2] != k_value.shape[2]:
        raise ValueError(f"memory_build needs K [H,d_h,N] and V [H,d_v,N], got {tuple(k_key.shape)}, {tuple(k_value.shape)}")
    return torch.einsum("hcn,hjn->hcj", k_key, k_value)


def retrieve(k_query: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """``R[h, j, n] = Σ_c kQ[h, c, n] · M[h, c, j]`` (exponent 3d, before the scale shift).

    k_query : [heads, d_h, N] levels; memory : [heads, d_h, d_v]. Returns [heads, d_v, N].
    """
    k_query = _check_levels(k_query, "k_query")
    memory = check_int(memory, "memory")
    if k_query.dim() != 3 or memory.dim() != 3 or k_query.shape[:2] != memory.shape[:2]:
        raise ValueError(f"retrieve needs Q [H,d_h,N] and M [H,d_h,d_v], got {tuple(k_query.shape)}, {tuple(memory.shape)}")
    return torch.einsum("hcn,hcj->hjn", k_query, memory)


def attention_acc(k_query: torch.Tensor, k_key: torch.Tensor, k_value: torch.Tensor) -> torch.Tensor:
    """Backbone spiking attention ``Q·(Kᵀ V)`` over the same tokens: retrieve(Q, memory_build(K, V))."""
    return retrieve(k_query, memory_build(k_key, k_value))


def retrieval_shift(sigma: int, f_m: int) -> int:
    """Requantise shift of retrieval accumulators: ``3d + σ - f_m`` (§IS-8, §IS-5).

    ``R_int`` has exponent ``3d`` (three spike factors of ``2^-d``); the attention scale ``2^-σ``
    is folded in, and the result lands at the membrane exponent ``f_m``.
    """
    return 3 * LEVEL_BITS + sigma - f_m
