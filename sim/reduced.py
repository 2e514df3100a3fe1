"""A reduced SpikeTrack integer network for whole-accelerator runs in minutes of simulation.

edge-t3's structure (every op kind, a T = 3 template, three MRMs, the heads) at 16×16 crops with
16–32 channels and one block per stage. Weights are random; the BatchNorm statistics are set so
that spikes fire at realistic rates. It checks the hardware, not the tracker: its boxes mean
nothing.
"""

from __future__ import annotations

import torch

__all__ = ["reduced_network", "firing_batchnorm", "memory_network", "paper_ops_network", "moving_texture",
           "MOVING_TEXTURE_BOX"]

#: The first box (x, y, w, h) of :func:`moving_texture`'s frames for the reduced network's tracker.
MOVING_TEXTURE_BOX = (14.0, 10.0, 12.0, 14.0)


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


def moving_texture(frames: int, seed: int = 0) -> list:
    """Frames for tracking with the reduced network: a random 40 x 48 RGB texture moving 2 pixels a
    frame to the right (uint8 arrays); start at :data:`MOVING_TEXTURE_BOX`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    return [np.roll(base, 2 * i, axis=1) for i in range(frames)]


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


def paper_ops_network(seed: int = 0, size: int = 6):
    """The paper variants' two extra integer forms in a network of their own (what the edge
    variants lack): one MRM retrieval with its §IS-12 attention scale (``d_h = 24``: ``209·2**-9``,
    ``retrieve -> mul_const -> requant -> neuron``) and bilinear upsampling (§IS-13) by 4 into a
    residual add and by 2. Returns ``(integer network, inputs)`` (inputs with a batch axis of 1).

    ``K``, the first two channels of ``V`` and the first token row of ``Q`` are all 4s, so ``R``
    there exceeds the 16-bit stream (``4·24·16·size²`` for ``size >= 6``): the compiler's saturation of ``R``
    (``compiler/fuse.saturate_retrieval_products``) is exercised, not only its common case.
    """
    from spiketrack.quant.golden.arith import csd_terms
    from spiketrack.quant.golden.neuron import D, LEVEL_BITS
    from spiketrack.quant.ir import IntegerNetwork, Layer, TensorType

    g = torch.Generator().manual_seed(seed)
    dh, dv, n = 24, 8, size
    lv = lambda c, h=n: TensorType((1, c, h, h), "levels", LEVEL_BITS + 1, False, LEVEL_BITS)   # noqa: E731
    st = lambda c, h: TensorType((1, c, h, h), "stream", 16, True, 8)                            # noqa: E731
    layers = [Layer("memory", "memory_build", ["k", "v"], {"heads": 1}),
              Layer("acc", "retrieve", ["q", "memory"], {"heads": 1, "sigma": 0}),
              Layer("scaled", "mul_const", ["acc"], {"terms": csd_terms(209), "frac": 9}),
              Layer("retrieved", "requant", ["scaled"], {"shift": 3 * LEVEL_BITS + 9 - 8, "bits": 16}),
              Layer("fired", "neuron", ["retrieved"], {"f_m": 8, "bits": 16, "decays": [], "rounding": "half_even"}),
              Layer("up4", "upsample_bilinear", ["x4"], {"factor": 4, "bits": 16}),
              Layer("sum4", "add", ["up4", "y4"], {"bits": 16}),
              Layer("up2", "upsample_bilinear", ["x2"], {"factor": 2, "bits": 16})]
    types = {"k": lv(dh), "v": lv(dv), "q": lv(dh), "x4": st(8, 2), "y4": st(8, 8), "x2": st(12, 3)}
    net = IntegerNetwork(layers, list(types), ["fired", "retrieved", "sum4", "up2"], {"config": "paper-ops"}, types)
    net.validate()
    q = torch.randint(0, D + 1, (1, 1, dh, n, n), generator=g)
    q[..., 0, :] = D
    v = torch.randint(0, D + 1, (1, 1, dv, n, n), generator=g)
    v[:, :, :2] = D
    inputs = {"k": torch.full((1, 1, dh, n, n), D), "v": v, "q": q,
              "x4": torch.randint(-30000, 30000, (1, 1, 8, 2, 2), generator=g),
              "y4": torch.randint(-30000, 30000, (1, 1, 8, 8, 8), generator=g),
              "x2": torch.randint(-30000, 30000, (1, 1, 12, 3, 3), generator=g)}
    return net, inputs
