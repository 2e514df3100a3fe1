"""Memory Retrieval Module (spec §5.2) and temporal fusion (gate or mean).

Template side (:meth:`MemoryRetrieval.memory`), per timestep t of the template pass::

    F_Z -> pool to the compact grid -> + P_template[t] -> SN_h -> K = SN(BN(W_k .)), V = SN(BN(W_v .))
    M_t = K^T V                                            [T, B, heads, d_h, d_v]

Search side (:meth:`MemoryRetrieval.forward`), 1 timestep in, 1 out::

    F = pool(F_X) + P_search;  Q_pre = BN(W_q SN_h(F))                     real, kept as shortcut
    Q0 = SN_q(repeat_T(Q_pre))                                             membrane across T copies
    R0_t = Q0_t . M_t * scale;  Q'_t = SN_r(R0)_t
    P_t = BN(PW_t(SN_dw(BN(DW3x3_t(Q'_t)))))                               own weights per t
    Q1 = SN_f(BN(W_fuse SN_pw(Q_pre + P_t)));  R1_t = Q1_t . M_t * scale   N = 1 feedback
    S = fuse_T(SN_attn(R1))                                                gate / mean; T=1: skip
    F_X <- F_X + upsample(BN(W_proj S));  F_X <- F_X + MLP(F_X)
"""

from __future__ import annotations

import torch
from torch import nn

from spiketrack.model.configs import attention_scale
from spiketrack.model.layers import (AvgPool, ConvBN, MemoryBuild, PosEmbed, Residual, Retrieve, SpikingMLP,
                                     Upsample)

PER_TIMESTEP_LISTS = ("detail_dw", "detail_pw")
"""``nn.ModuleList`` attributes with one module per timestep ``t``: when a T = 1 checkpoint
initialises a T > 1 model, entry ``t > 0`` starts as a copy of entry 0 (``init_from_checkpoint``)."""


class MeanFusion(nn.Module):
    """Mean over T in the integer-count domain (the contract with the integer hardware).

    ``k_out = clip(floor(mean_t(k_t) + 1/2), 0, D)`` with ``k_t = D * S_t``; returns
    ``k_out / D`` with one timestep. Computed exactly as ``floor((2 sum_t k_t + T) / (2T))``.
    Gradient: straight-through the mean (``dS_out/dS_t = 1/T``). With ``quantize=False`` (ANN
    twin) it is the plain mean.
    """

    def __init__(self, levels: int, quantize: bool = True):
        super().__init__()
        self.levels, self.quantize = levels, quantize

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] spikes -> [1,B,C,H,W]
        T, D = s.shape[0], self.levels
        mean = s.mean(0, keepdim=True)
        if not self.quantize:
            return mean
        k_sum = torch.round(s.detach() * D).sum(0, keepdim=True)  # exact integers
        k = torch.div(2 * k_sum + T, 2 * T, rounding_mode="floor").clamp(0, D)
        return mean + (k / D - mean).detach()


class GateFusion(nn.Module):
    """Paper channel gate (``GateModule``, mode "channel"; spec §5.2 step 8).

    For every channel, a spiking MLP over its flattened compact map (``N -> N/2`` Conv1d with
    bias, NI-LIF across T, ``N/2 -> 1``) gives a logit per (channel, t); softmax over T weights
    the T spike maps; the sum goes through ``sn_gate``.
    """

    def __init__(self, tokens: int, neuron):
        super().__init__()
        self.fc1 = nn.Conv1d(tokens, tokens // 2, 1)
        self.sn = neuron()
        self.fc2 = nn.Conv1d(tokens // 2, 1, 1)
        self.sn_gate = neuron()

    def forward(self, s: torch.Tensor) -> torch.Tensor:  # [T,B,C,H,W] -> [1,B,C,H,W]
        T, B, C, H, W = s.shape
        tok = s.reshape(T * B, C, H * W).transpose(1, 2)  # [TB, N, C]
        h = self.fc1(tok).unflatten(0, (T, B))  # [T,B,N/2,C]
        logit = self.fc2(self.sn(h).flatten(0, 1)).reshape(T, B, C, 1, 1)
        w = torch.softmax(logit, dim=0)
        return self.sn_gate((w * s).sum(0, keepdim=True))


class MemoryRetrieval(nn.Module):
    """One MRM site: template-side memory build and search-side retrieval.

    Parameters
    ----------
    dim : int
        Stage channels C.
    heads : int
        Heads; ``d_h = C / heads``, ``d_v = v_ratio * d_h``.
    v_ratio, mlp_ratio : int
        V expansion (lambda) and MLP ratio.
    search_hw, template_hw : int
        Sides of the stage map on each branch.
    grid : int
        Side of the compact retrieval grid; maps are avg-pooled down to it and the output is
        upsampled back.
    timesteps : int
        T; the number of per-timestep detail convolutions.
    fusion, upsample : str
        ``"gate"``/``"mean"``; ``"bilinear"``/``"nearest"``.
    pos_slots, levels : int
        Template positional slots; spike levels D.
    neuron : callable
        Neuron-layer constructor.
    ann : bool
        ANN twin: mean fusion without count-domain rounding.
    """

    def __init__(self, dim: int, heads: int, v_ratio: int, mlp_ratio: int, search_hw: int, template_hw: int,
                 grid: int, timesteps: int, fusion: str, upsample: str, pos_slots: int, levels: int, neuron,
                 ann: bool = False):
        super().__init__()
        dv = dim * v_ratio
        self.heads, self.timesteps = heads, timesteps
        ps, pt = search_hw // grid, template_hw // grid
        self.pool_search = AvgPool(ps) if ps > 1 else nn.Identity()
        self.pool_template = AvgPool(pt) if pt > 1 else nn.Identity()
        self.up = Upsample(ps, upsample) if ps > 1 else nn.Identity()
        self.pos = PosEmbed(dim, grid, grid, pos_slots)
        self.sn_h = neuron()
        self.q, self.k, self.v = ConvBN(dim, dim), ConvBN(dim, dim), ConvBN(dim, dv)
        self.sn_q, self.sn_k, self.sn_v = neuron(), neuron(), neuron()
        self.kv = MemoryBuild(heads)
        scale = attention_scale(dim // heads)
        self.retrieve0 = Retrieve(heads, scale)
        self.sn_r = neuron()
        self.detail_dw = nn.ModuleList(ConvBN(dv, dv, 3, groups=dv) for _ in range(timesteps))
        self.sn_dw = neuron()
        self.detail_pw = nn.ModuleList(ConvBN(dv, dim) for _ in range(timesteps))
        self.shortcut = Residual()
        self.sn_pw = neuron()
        self.fuse = ConvBN(dim, dim)
        self.sn_f = neuron()
        self.retrieve1 = Retrieve(heads, scale)
        self.sn_attn = neuron()
        self.fusion = GateFusion(grid * grid, neuron) if fusion == "gate" else MeanFusion(levels, not ann)
        self.proj = ConvBN(dv, dim)
        self.add = Residual()
        self.mlp = SpikingMLP(dim, mlp_ratio, neuron)
        self.add_mlp = Residual()

    def memory(self, z: torch.Tensor) -> torch.Tensor:  # [T,B,C,Hz,Wz] -> [T,B,heads,d_h,d_v]
        s = self.sn_h(self.pos(self.pool_template(z), "template"))
        return self.kv(self.sn_k(self.k(s)), self.sn_v(self.v(s)))

    def forward(self, x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:  # [1,B,C,H,W], memory -> [1,B,C,H,W]
        T = m.shape[0]
        q_pre = self.q(self.sn_h(self.pos(self.pool_search(x), "search")))  # [1,B,C,g,g] real
        q0 = self.sn_q(q_pre.expand(T, *q_pre.shape[1:]))  # [T,B,C,g,g]
        r0 = self.sn_r(self.retrieve0(q0, m))  # [T,B,dv,g,g]
        d = self.sn_dw(torch.stack([self.detail_dw[t](r0[t:t + 1])[0] for t in range(T)]))
        p = torch.stack([self.detail_pw[t](d[t:t + 1])[0] for t in range(T)])  # [T,B,C,g,g]
        q1 = self.sn_f(self.fuse(self.sn_pw(self.shortcut(q_pre, p))))
        s = self.sn_attn(self.retrieve1(q1, m))  # [T,B,dv,g,g]
        if T > 1:
            s = self.fusion(s)
        x = self.add(x, self.up(self.proj(s)))
        return self.add_mlp(x, self.mlp(x))
