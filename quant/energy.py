"""Operation and energy accounting of an integer network on real inputs.

Counts come from a golden run with per-layer dumps (:func:`spiketrack.quant.executor.run_network`):

* **SOPs** (synaptic operations): for every layer that takes spikes, the number of binary spikes
  (the sum of integer levels, §IS-9) times the fan-out of each spike, counted exactly at borders
  by convolving the level map with an all-ones kernel. Memory build counts its AND+count pairs.
* **MACs**: the dense multiply-accumulates of the same layer in the float twin.
* **Firing rates**: per neuron layer, mean integer level (0..D) and binary rate (level / D).

Energy is reported three ways (45 nm figures, Horowitz, ISSCC 2014):

1. ``snn_paper``: the SNN-paper convention: ``E_AC = 0.9 pJ`` per SOP, ``E_MAC = 4.6 pJ`` per MAC
   for the non-spiking stem and for the ANN. **4.6 pJ is a 32-bit floating-point
   multiply-accumulate** (3.7 pJ mul + 0.9 pJ add); 0.9 pJ is a 32-bit float add.
2. ``integer``: integer arithmetic: an SOP is one 32-bit integer add (0.1 pJ) and an int8 MAC is an
   8-bit multiply plus a 32-bit add (0.2 + 0.1 pJ); the same for both networks.
3. ``with_memory``: (2) plus on-chip SRAM traffic at 1.25 pJ per byte (10 pJ per 64-bit read of
   an 8 KB SRAM): SNN: per SOP one weight byte read and a 4-byte partial-sum read and write; ANN:
   per MAC one weight byte and one activation byte read, partial sums held in registers.
"""

from __future__ import annotations

import torch

from spiketrack.quant.golden.synapse import conv2d_acc
from spiketrack.quant.ir import IntegerNetwork

__all__ = ["E_AC_PJ", "E_MAC_PJ", "count_ops", "energy_report"]

E_AC_PJ = 0.9       #: 32-bit float add, 45 nm
E_MAC_PJ = 4.6      #: 32-bit float multiply-accumulate, 45 nm
E_ADD32_PJ = 0.1    #: 32-bit integer add
E_MUL8_PJ = 0.2     #: 8-bit integer multiply
E_SRAM_BYTE_PJ = 1.25
#: external DRAM, per byte: 1.3 nJ per 64-bit access, the low end of Horowitz (ISSCC 2014, 45 nm)
#: 1.3-2.6 nJ (the SDRAM that holds a network's weights when the block RAM cannot)
E_DRAM_BYTE_PJ = 162.5


def _conv_counts(layer, params, k: torch.Tensor, out: torch.Tensor, pixels: bool) -> tuple[int, int]:
    w = params["weight"]
    c_out, c_in_g, kh, kw = w.shape
    a = layer.attrs
    x = k.reshape(-1, *k.shape[2:])
    if pixels:  # bit-plane stem: a binary spike per set bit of each pixel
        x = sum(((x >> b) & 1) for b in range(8))
    ones = torch.ones((c_out, c_in_g, kh, kw), dtype=torch.int64)
    sops = int(conv2d_acc(x, ones, None, a.get("stride", 1), a.get("padding", 0), a.get("groups", 1)).sum())
    macs = int(out.numel()) * c_in_g * kh * kw
    return sops, macs


def count_ops(net: IntegerNetwork, tensors: dict[str, torch.Tensor], inputs: dict[str, torch.Tensor]) -> list[dict]:
    """Per-layer SOPs, MACs and firing rates from one dumped golden run."""
    env = dict(inputs)
    env.update(tensors)
    rows = []
    for layer in net.layers:
        args = [env[s] for s in layer.inputs]
        out = env[layer.name]
        row = {"layer": layer.name, "op": layer.op, "sops": 0, "macs": 0}
        if layer.op in ("conv", "stem_conv"):
            row["sops"], row["macs"] = _conv_counts(layer, net.params_of(layer), args[0], out, pixels=layer.op == "stem_conv")
            row["dense"] = layer.op == "stem_conv"  # the stem is the one layer on real values
        elif layer.op == "retrieve":
            q, m = args
            d_v = m.shape[-1]
            row["sops"] = int(q.sum()) * d_v
            row["macs"] = int(q.numel()) * d_v
        elif layer.op == "memory_build":
            kk, kv = args
            heads = layer.attrs["heads"]
            d_h, d_v = kk.shape[2] // heads, kv.shape[2] // heads
            n = kk[0, 0, 0].numel()
            row["sops"] = int(out.sum())  # Σ kK·kV = number of AND pairs
            row["macs"] = kk.shape[0] * kk.shape[1] * heads * d_h * d_v * n
        elif layer.op == "neuron":
            from spiketrack.quant.golden.neuron import D

            row["rate_level"] = float(out.double().mean()) if out.numel() else 0.0
            row["rate_binary"] = row["rate_level"] / D
            row["neurons"] = int(out[0].numel())
        rows.append(row)
    return rows


def energy_report(rows: list[dict]) -> dict:
    """Totals and the three energy conventions (millijoules) for one set of per-layer counts."""
    sops = sum(r["sops"] for r in rows if not r.get("dense"))
    dense_macs = sum(r["macs"] for r in rows if r.get("dense"))
    macs = sum(r["macs"] for r in rows)
    pj = 1e-9  # pJ -> mJ
    snn_paper = (sops * E_AC_PJ + dense_macs * E_MAC_PJ) * pj
    ann_paper = macs * E_MAC_PJ * pj
    int_mac = E_MUL8_PJ + E_ADD32_PJ
    snn_int = (sops * E_ADD32_PJ + dense_macs * int_mac) * pj
    ann_int = macs * int_mac * pj
    snn_mem = snn_int + (sops * 9 + dense_macs * 2) * E_SRAM_BYTE_PJ * pj
    ann_mem = ann_int + macs * 2 * E_SRAM_BYTE_PJ * pj
    neuron_rows = [r for r in rows if r["op"] == "neuron"]
    total_neurons = sum(r["neurons"] for r in neuron_rows)
    mean_level = (sum(r["rate_level"] * r["neurons"] for r in neuron_rows) / total_neurons) if total_neurons else 0.0
    return {
        "sops": sops,
        "macs": macs,
        "dense_macs": dense_macs,
        "snn_mj": snn_paper,
        "ann_mj": ann_paper,
        "ratio": ann_paper / snn_paper if snn_paper else float("inf"),
        "integer": {"snn_mj": snn_int, "ann_mj": ann_int, "ratio": ann_int / snn_int if snn_int else float("inf")},
        "with_memory": {"snn_mj": snn_mem, "ann_mj": ann_mem, "ratio": ann_mem / snn_mem if snn_mem else float("inf")},
        "mean_level": mean_level,
        "mean_binary_rate": mean_level / 4,
    }
