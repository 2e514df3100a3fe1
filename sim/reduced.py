"""A reduced SpikeTrack integer network for whole-accelerator runs in minutes of simulation.

edge-t3's structure (every op kind, a T = 3 template, three MRMs, the heads) at 16×16 crops with
16–32 channels and one block per stage. Weights are random; the BatchNorm statistics are set so
that spikes fire at realistic rates. It checks the hardware, not the tracker: its boxes mean
nothing.
"""

from __future__ import annotations

import torch

__all__ = ["reduced_network", "firing_batchnorm"]


def firing_batchnorm(model, seed: int = 0):
    """Random BatchNorm statistics and affine terms that make an untrained model's spikes fire at
    realistic rates (the inputs of the hardware checks; no tracking meaning). Returns ``model``."""
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) * 0.4 - 0.2)
            mod.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
            mod.bias.data.copy_(torch.rand(n, generator=g) * 1.5 - 0.5)
    return model


def reduced_network(seed: int = 0):
    """Returns ``(integer network, config)``."""
    from spiketrack.model import build_model
    from spiketrack.model.configs import get_config
    from spiketrack.quant.lower import lower
    from spiketrack.quant.qat import QuantFormat, quantize_model

    cfg = get_config("edge-t3", dims=(16, 16, 16, 32), depths=(1, 1, 1, 1), mrm_sites=((2, 1), (3, 1), (4, 1)),
                     search_size=16, template_size=16, head_channels=16, head_min_width=8)
    torch.manual_seed(seed)
    m = firing_batchnorm(build_model(cfg).eval(), seed)
    return lower(quantize_model(m, QuantFormat(8, 16, 4))), cfg



def memory_network(seed: int = 0, timesteps: int = 3, heads: int = 2, dh: int = 8, dv: int = 8, size: int = 4):
    """The template-memory build of one MRM as a network of its own (the iCEBreaker configuration
    runs it: the memory builder, no conv engine or vector unit). Returns ``(integer network, inputs)``.

    ``M = build(K, V)``: per timestep and head ``M = Kᵀ·V`` over the ``size²`` tokens (§IS-8), from
    spike levels ``K`` ``[T, heads·dh, size, size]`` and ``V`` ``[T, heads·dv, size, size]``; ``M`` is
    ``[T, heads, dh, dv]``. ``inputs`` is ``{"k": ..., "v": ...}`` with a batch axis of 1: random
    levels 0..D, about half of ``K`` zero (a spike map's sparsity).
    """
    from spiketrack.quant.golden.neuron import D, LEVEL_BITS
    from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType

    g = torch.Generator().manual_seed(seed)
    T, n = timesteps, size
    layers = [Layer("memory", "memory_build", ["k", "v"], {"heads": heads})]
    types = {"k": TensorType((T, heads * dh, n, n), "levels", LEVEL_BITS + 1, False, LEVEL_BITS),
             "v": TensorType((T, heads * dv, n, n), "levels", LEVEL_BITS + 1, False, LEVEL_BITS)}
    net = IntegerNetwork(layers, ["k", "v"], ["memory"], {"config": "mrm-memory"}, types)
    net.validate()
    k = torch.randint(0, D + 1, (T, 1, heads * dh, n, n), generator=g)
    k = k * (torch.rand(k.shape, generator=g) < 0.5)
    v = torch.randint(0, D + 1, (T, 1, heads * dv, n, n), generator=g)
    return net, {"k": k, "v": v}
