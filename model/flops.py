"""Dense MAC counting and parameter counting.

How MACs are counted: forward hooks on every ``nn.Conv2d`` / ``nn.Conv1d`` / ``nn.Linear``
add ``output elements x (in_channels / groups) x kernel area`` (bias and BN are not counted:
BN folds into the conv). The attention matmuls have no weights, so hooks on
:class:`~spiketrack.model.layers.MemoryBuild` (``K^T V``: ``T*B*heads*d_h*d_v*N``) and
:class:`~spiketrack.model.layers.Retrieve` (``Q . M``: ``T*B*heads*d_h*d_v*N``) add them
analytically. Pooling, upsampling, residual adds, neurons and the temporal fusion's
weighted sum are not counted. Figures are for batch 1: dense counts (every spike treated as
active), i.e. MAC-equivalents before any sparsity.
"""

from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from spiketrack.model.hooks import ForwardHooks
from spiketrack.model.layers import MemoryBuild, Retrieve


def count_params(model: nn.Module) -> tuple[int, int]:
    """``(all parameters, parameters without positional embeddings)``."""
    total = sum(p.numel() for p in model.parameters())
    pos = sum(p.numel() for n, p in model.named_parameters() if "pos_embed" in n)
    return total, total - pos


class MacCounter(ForwardHooks):
    """Context manager accumulating dense MACs per module (see the module docstring)."""

    KINDS = (nn.Conv1d, nn.Conv2d, nn.Linear, MemoryBuild, Retrieve)

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.per_module: dict[str, int] = defaultdict(int)

    @property
    def total(self) -> int:
        return int(sum(self.per_module.values()))

    def _hook(self, name: str):
        def fn(m, inputs, out):
            if isinstance(m, (nn.Conv1d, nn.Conv2d)):
                k = 1
                for s in m.kernel_size:
                    k *= s
                macs = out.numel() * (m.in_channels // m.groups) * k
            elif isinstance(m, nn.Linear):
                macs = out.numel() * m.in_features
            elif isinstance(m, MemoryBuild):  # out [T,B,h,dh,dv]; N from the input
                n = inputs[0].shape[-2] * inputs[0].shape[-1]
                macs = out.numel() * n
            else:  # Retrieve: out [T,B,h*dv,H,W], each element sums d_h products
                q = inputs[0]
                macs = out.numel() * (q.shape[2] // m.heads)
            self.per_module[name] += int(macs)
        return fn


@torch.no_grad()
def model_macs(model) -> dict[str, int]:
    """Dense MACs of one template update (all T templates) and one search frame, batch 1."""
    cfg = model.cfg
    was_training = model.training
    model.eval()
    try:
        z = torch.zeros(cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size)
        x = torch.zeros(1, 3, cfg.search_size, cfg.search_size)
        with MacCounter(model) as tc:
            memories = model.encode_template(z)
        with MacCounter(model) as sc:
            model.encode_search(x, memories)
    finally:
        model.train(was_training)
    return {"template_macs": tc.total, "search_macs": sc.total,
            "template_per_module": dict(tc.per_module), "search_per_module": dict(sc.per_module)}
