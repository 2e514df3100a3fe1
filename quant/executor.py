"""The golden model: executes an :class:`~spiketrack.quant.ir.IntegerNetwork` with integer tensors only.

Each op calls the golden function of docs/integer_semantics.md that the hardware unit for that op is
verified against, so the whole-network golden model and the per-unit RTL tests share one definition.

Tensor layout: time-first ``[T, B, C, H, W]`` for every feature map; memories ``[T, B, heads, d_h, d_v]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from spiketrack.quant.golden.arith import check_int, requantize, saturate, times_csd
from spiketrack.quant.golden.memory import memory_build, retrieve
from spiketrack.quant.golden.neuron import Decay, mean_fusion, ni_lif
from spiketrack.quant.golden.resample import avg_pool_pow2, upsample_bilinear, upsample_nearest
from spiketrack.quant.golden.synapse import conv2d_acc, stem_bitplane_acc
from spiketrack.quant.ir import ArtifactError, IntegerNetwork, Layer

__all__ = ["RunResult", "run_network"]


@dataclass
class RunResult:
    """Outputs of one golden run.

    Members
    -------
    outputs : the network outputs by name.
    tensors : every layer's output by layer name (when ``dump=True``), else only the outputs.
    saturations : per layer, how many elements were clamped (§IS-5, §IS-6, §IS-7).
    """

    outputs: dict[str, torch.Tensor]
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)


def _fold_time(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    t, b = x.shape[:2]
    return x.reshape(t * b, *x.shape[2:]), (t, b)


def _unfold_time(x: torch.Tensor, tb: tuple[int, int]) -> torch.Tensor:
    return x.reshape(*tb, *x.shape[1:])


def _per_channel(attr, ndim: int) -> int | torch.Tensor:
    """A per-channel shift list becomes a tensor broadcasting over [T, B, C, ...]."""
    if isinstance(attr, int):
        return attr
    return torch.tensor(attr, dtype=torch.int64).view(1, 1, -1, *([1] * (ndim - 3)))


def _heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """[T, B, C, H, W] -> [T·B, heads, C/heads, H·W]."""
    t, b, c = x.shape[:3]
    if c % heads:
        raise ArtifactError(f"{c} channels do not split into {heads} heads")
    return x.reshape(t * b, heads, c // heads, -1)


def _run_layer(layer: Layer, p: dict, args: list[torch.Tensor]) -> tuple[torch.Tensor, int]:
    a, op = layer.attrs, layer.op
    w = torch.from_numpy(p["weight"]).to(torch.int64) if "weight" in p else None
    bias = torch.from_numpy(p["bias"]).to(torch.int64) if "bias" in p else None
    if op == "stem_conv":
        x, tb = _fold_time(args[0])
        return _unfold_time(stem_bitplane_acc(x, w, bias, a["stride"], a["padding"]), tb), 0
    if op == "conv":
        x, tb = _fold_time(args[0])
        return _unfold_time(conv2d_acc(x, w, bias, a["stride"], a["padding"], a["groups"]), tb), 0
    if op == "requant":
        return requantize(args[0], _per_channel(a["shift"], args[0].dim()), a["bits"])
    if op == "add":
        return saturate(args[0] + args[1], a["bits"])
    if op == "add_const":
        value = torch.from_numpy(p["value"]).to(torch.int64)
        return saturate(args[0] + value, a["bits"])
    if op == "neuron":
        decays = tuple(Decay(tuple(tuple(term) for term in d)) for d in a["decays"])
        k, _, n = ni_lif(args[0], a["f_m"], a["bits"], decays, a.get("rounding", "half_up"))
        return k, n
    if op == "memory_build":
        kk, kv = args
        t, b = kk.shape[:2]
        m = torch.stack([memory_build(q, v) for q, v in zip(_heads(kk, a["heads"]), _heads(kv, a["heads"]))])
        return m.reshape(t, b, *m.shape[1:]), 0
    if op == "retrieve":
        q, m = args
        t, b, _, h, wd = q.shape
        if m.shape[0] != t:
            raise ArtifactError(f"layer {layer.name!r}: query has {t} timesteps, memory has {m.shape[0]}")
        r = torch.stack([retrieve(qi, mi) for qi, mi in zip(_heads(q, a["heads"]), m.reshape(t * b, *m.shape[2:]))])
        return r.reshape(t, b, -1, h, wd), 0
    if op == "avg_pool":
        x, tb = _fold_time(args[0])
        y, n = avg_pool_pow2(x, a["size"], a["bits"])
        return _unfold_time(y, tb), n
    if op == "upsample":
        x, tb = _fold_time(args[0])
        return _unfold_time(upsample_nearest(x, a["factor"]), tb), 0
    if op == "upsample_bilinear":
        x, tb = _fold_time(args[0])
        y, n = upsample_bilinear(x, a["factor"], a["bits"])
        return _unfold_time(y, tb), n
    if op == "mul_const":
        return times_csd(args[0], a["terms"]), 0
    if op == "mean_fusion":
        return mean_fusion(args[0]).unsqueeze(0), 0
    if op == "repeat_time":
        if args[0].shape[0] != 1:
            raise ArtifactError(f"layer {layer.name!r}: repeat_time needs a one-step input, got T={args[0].shape[0]}")
        return args[0].expand(a["timesteps"], *args[0].shape[1:]).clone(), 0
    if op == "select_time":
        return args[0][a["start"]:a["stop"]], 0
    if op == "concat_time":
        return torch.cat(args, dim=0), 0
    raise ArtifactError(f"layer {layer.name!r}: the golden model has no implementation of op {op!r}")


def _needed(net: IntegerNetwork, outputs: list[str], given: set[str]) -> set[str]:
    """Layers that must run to produce ``outputs`` when the tensors in ``given`` are supplied."""
    producers = {layer.name: layer for layer in net.layers}
    need, stack = set(), [o for o in outputs if o not in given]
    while stack:
        name = stack.pop()
        if name in need or name in given:
            continue
        if name not in producers:
            raise ValueError(f"missing network input {name!r}")
        need.add(name)
        stack.extend(producers[name].inputs)
    return need


def run_network(net: IntegerNetwork, inputs: dict[str, torch.Tensor], dump: bool = False,
                outputs: list[str] | None = None) -> RunResult:
    """Execute ``net`` on integer ``inputs`` (name -> int tensor); integers only, no float anywhere.

    Parameters
    ----------
    net : a validated integer network.
    inputs : network inputs (pixel inputs are ``[T, B, 3, H, W]`` uint8 values); any layer output
        may be supplied too (e.g. cached template memories), and that layer is then not run.
    dump : keep every layer's output in ``RunResult.tensors`` (for layer-by-layer comparison).
    outputs : the tensors wanted (default ``net.outputs``); only the layers they need run.
    """
    wanted = list(net.outputs if outputs is None else outputs)
    try:
        need = _needed(net, wanted, set(inputs))
    except ValueError as e:
        missing = [n for n in net.inputs if n not in inputs]
        raise ValueError(f"missing network inputs: {', '.join(missing)}" if missing else str(e)) from None
    env = {name: check_int(t, name) for name, t in inputs.items()}
    result = RunResult(outputs={})
    keep = set(wanted)
    last_use = {src: i for i, layer in enumerate(net.layers) if layer.name in need for src in layer.inputs}
    for i, layer in enumerate(net.layers):
        if layer.name not in need:
            continue
        y, n_sat = _run_layer(layer, net.params_of(layer), [env[src] for src in layer.inputs])
        env[layer.output] = y
        if n_sat:
            result.saturations[layer.name] = n_sat
        if dump:
            result.tensors[layer.name] = y
        if not dump:  # free tensors nobody reads any more
            for src in layer.inputs:
                if last_use.get(src) == i and src not in keep and src not in inputs:
                    env.pop(src, None)
    result.outputs = {name: env[name] for name in wanted}
    return result
