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


def neuron_network(seed: int = 0, timesteps: int = 3, channels: int = 4, size: int = 4):
    """A small spiking network of the vector unit's ops only (the iCEBreaker configuration runs it:
    no conv engine, no memory builder). Returns ``(integer network, inputs)``.

    A residual block with a positional table and a time fusion, on a stream input ``x``
    ``[T, C, H, W]`` (16-bit, exponent 8):

    ``pool = avg_pool(x, 2)``; ``s = x + upsample(pool, 2)`` (saturating, the upsampled operand read
    by nearest-neighbour addressing); ``spikes = NI-LIF(s + pos)`` (the positional table ``pos`` from
    the constant memory); ``fused = mean_fusion(spikes)`` (compare-only mean over ``T``). Outputs:
    ``spikes`` (levels ``[T, C, H, W]``) and ``fused`` (levels ``[1, C, H, W]``). Every vector-unit
    mode runs once: POOL, ADD (upsampled), NEURON with a table, FUSION. ``inputs`` is
    ``{"x": [T, 1, C, H, W]}`` (batch 1), random values of both signs so that every level fires.
    """
    import numpy as np

    from spiketrack.quant.golden.neuron import D
    from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType

    T, C, H = timesteps, channels, size
    g = np.random.default_rng(seed)
    decays = [[[1, 2]] for _ in range(T - 1)]
    layers = [
        Layer("pool", "avg_pool", ["x"], {"size": 2, "bits": 16}),
        Layer("pool_up", "upsample", ["pool"], {"factor": 2}),
        Layer("sum", "add", ["x", "pool_up"], {"bits": 16}),
        Layer("pos", "add_const", ["sum"], {"bits": 16},
              {"value": g.integers(-64, 65, (T, 1, C, H, H)).astype(np.int32)}),
        Layer("spikes", "neuron", ["pos"], {"f_m": 8, "bits": 16, "decays": decays, "rounding": "half_up"}),
        Layer("fused", "mean_fusion", ["spikes"], {}),
    ]
    net = IntegerNetwork(layers, ["x"], ["spikes", "fused"], {"config": "neuron-block", "levels": D},
                         {"x": TensorType((T, C, H, H), "stream", 16, True, 8)})
    net.validate()
    x = torch.from_numpy(g.integers(-3 << 8, 5 << 8, (T, 1, C, H, H))).to(torch.int64)
    return net, {"x": x}
