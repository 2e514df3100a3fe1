"""Golden model vs Brevitas model, layer by layer: the bit-exactness check of the integer network."""

from __future__ import annotations

import numpy as np
import torch

from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import IntegerNetwork
from spiketrack.quant.lower import module_outputs, output_scale
from spiketrack.quant.qat import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["normalise_pixels", "compare_with_golden", "synthetic_frames"]


def normalise_pixels(p: torch.Tensor) -> torch.Tensor:
    """uint8 pixels [..., 3, H, W] -> ImageNet-normalised float64 (what the float model reads)."""
    shape = (1,) * (p.dim() - 3) + (3, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float64).view(shape)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float64).view(shape)
    return (p.double() / 255 - mean) / std


@torch.no_grad()
def compare_with_golden(qmodel, net: IntegerNetwork, template_pixels: torch.Tensor,
                        search_pixels: torch.Tensor) -> dict:
    """Run both models on the same uint8 crops and compare every layer output element by element.

    ``qmodel`` must be in float64 (``qmodel.double()``): then its values are exactly the golden
    integers times a power of two. Returns counts of layers and elements compared and mismatching,
    and the names of the mismatching layers.
    """
    z = normalise_pixels(template_pixels)
    x = normalise_pixels(search_pixels)[0]
    with module_outputs(qmodel) as rec:
        qmodel(z, x)
    res = run_network(net, {"template_pixels": template_pixels, "search_pixels": search_pixels}, dump=True)
    frac = net.meta["frac"]
    layers = elements = bad_elements = 0
    bad = []
    for layer in net.layers:
        if layer.name not in rec.outputs:
            continue
        g = res.tensors[layer.name]
        f = (rec.outputs[layer.name] * 2.0 ** output_scale(layer, frac)).reshape(g.shape)
        n = int((f != g.double()).sum())
        layers += 1
        elements += g.numel()
        bad_elements += n
        if n:
            bad.append(layer.name)
    unmatched = [l.name for l in net.layers if l.op in ("neuron", "requant", "memory_build", "add", "add_const",
                                                        "avg_pool", "upsample", "mean_fusion")
                 and l.name not in rec.outputs]
    return {"layers": layers, "elements": elements, "mismatches": bad_elements, "mismatching_layers": bad,
            "unmatched_layers": unmatched, "saturations": sum(res.saturations.values())}


def synthetic_frames(cfg, n: int, seed_offset: int = 0):
    """``n`` (template pixels [T,1,3,Hz,Wz], search pixels [1,1,3,H,W]) uint8 pairs from the benchmark.

    Templates: the first frame's target (T copies, as the tracker initialises); search: a later
    frame cropped around its ground-truth box, both with the tracker's 4x context crop.
    """
    from spiketrack.model.data.crops import sample_target
    from spiketrack.model.data.synthetic import benchmark_sequences
    from spiketrack.model.tracker import CONTEXT_FACTOR

    seqs = benchmark_sequences()
    out = []
    i = 0
    while len(out) < n:
        seq = seqs[(i + seed_offset) % len(seqs)]
        j = 1 + (7 * i) % (len(seq) - 1)
        i += 1
        box0, box = seq.boxes[0], seq.boxes[j]
        if not (np.all(np.isfinite(box)) and seq.visible[j] and box[2] > 0 and box[3] > 0):
            continue
        zc, _ = sample_target(seq.frame(0), box0, CONTEXT_FACTOR, cfg.template_size)
        xc, _ = sample_target(seq.frame(j), box, CONTEXT_FACTOR, cfg.search_size)
        zt = torch.from_numpy(np.ascontiguousarray(zc.transpose(2, 0, 1))).to(torch.int64)
        xt = torch.from_numpy(np.ascontiguousarray(xc.transpose(2, 0, 1))).to(torch.int64)
        out.append((zt.expand(cfg.timesteps, 1, *zt.shape).clone(), xt.view(1, 1, *xt.shape)))
    return out
