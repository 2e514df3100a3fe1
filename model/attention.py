"""Spiking linear self-attention of the transformer stages (spec §4.4).

Per branch and per timestep (no mixing between template and search)::

    s = SN(x + P_branch)
    Q = SN(BN(W_q s)),  K = SN(BN(W_k s)),  V = SN(BN(W_v s))      V has lambda * C channels
    A = Q . (K^T V) * 2 d_h^-0.5                                      no softmax, no mask
    out = BN(W_proj SN(A))                                            lambda*C -> C
"""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.model.configs import attention_scale
from spiketrack.model.layers import ConvBN, MemoryBuild, PosEmbed, Retrieve


class SpikingLinearAttention(nn.Module):
    """Softmax-free spiking linear attention; returns the branch output (real-valued).

    Parameters
    ----------
    dim : int
        Channels C.
    heads : int
        Number of heads; ``d_h = C / heads``, ``d_v = v_ratio * d_h``.
    v_ratio : int
        V expansion lambda.
    search_hw, template_hw, pos_slots : int
        Positional-embedding shapes (see :class:`~spiketrack.model.layers.PosEmbed`).
    neuron : callable
        Neuron-layer constructor.
    """

    def __init__(self, dim: int, heads: int, v_ratio: int, search_hw: int, template_hw: int,
                 pos_slots: int, neuron):
        super().__init__()
        dv = dim * v_ratio
        self.pos = PosEmbed(dim, search_hw, template_hw, pos_slots)
        self.sn_in = neuron()
        self.q = ConvBN(dim, dim)
        self.k = ConvBN(dim, dim)
        self.v = ConvBN(dim, dv)
        self.sn_q, self.sn_k, self.sn_v = neuron(), neuron(), neuron()
        self.kv = MemoryBuild(heads)
        self.qm = Retrieve(heads, attention_scale(dim // heads))
        self.sn_a = neuron()
        self.proj = ConvBN(dv, dim)

    def forward(self, x: torch.Tensor, branch: str) -> torch.Tensor:  # [T,B,C,H,W] -> same
        s = self.sn_in(self.pos(x, branch))
        q = self.sn_q(self.q(s))
        k = self.sn_k(self.k(s))
        v = self.sn_v(self.v(s))
        a = self.qm(q, self.kv(k, v))  # [T,B,dv*h,H,W]
        return self.proj(self.sn_a(a))
