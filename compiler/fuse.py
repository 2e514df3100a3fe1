"""Fusion passes: IR layers -> hardware-op nodes (:mod:`.hwops`).

The graph starts with one unfused node per IR layer (kind ``"ir:<op>"``). One IR rewrite runs
first, :func:`saturate_retrieval_products` (exact: it changes no output). Then one pass per hardware
op class replaces each run of layers its pattern matches by one node, placed at the position of
its last layer (every input it reads is produced before that). :func:`check_placed` then refuses a
graph with a layer no hardware op took, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spiketrack.compiler.hwops import REGISTRY, HwNode, csd_value
from spiketrack.compiler.passes import PassRecord, run_passes
from spiketrack.quant.golden.arith import shift_round
from spiketrack.quant.ir import IntegerNetwork, Layer

__all__ = ["HwGraph", "CompileError", "fusion_passes", "check_placed", "fuse", "saturate_retrieval_products",
           "STREAM_MAX"]

#: Fusion order: larger patterns first, so a layer is taken by the op that does most with it.
FUSION_ORDER = ("stem", "spike_conv", "retrieval", "memory_build", "neuron", "add", "avg_pool", "upsample_bilinear",
                "mul_const", "mean_fusion", "view")
STREAM_MAX = (1 << 15) - 1   #: the largest value of a 16-bit stream word


class CompileError(ValueError):
    """The network cannot be compiled for the chosen target; the message names the cause."""


@dataclass
class HwGraph:
    """An integer network and its hardware-op nodes, in execution order."""

    net: IntegerNetwork
    nodes: list[HwNode]

    @classmethod
    def unfused(cls, net: IntegerNetwork) -> "HwGraph":
        return cls(net, [HwNode(f"ir:{l.op}", [l.name], list(l.inputs)) for l in net.layers])

    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for layer in self.net.layers:
            for src in layer.inputs:
                out.setdefault(src, []).append(layer.name)
        return out

    def node_of(self) -> dict[str, HwNode]:
        """The node holding each IR layer."""
        return {name: n for n in self.nodes for name in n.layers}


def _fusion_pass(kind: str):
    cls = REGISTRY[kind]

    def fuse_pass(graph: HwGraph) -> tuple[HwGraph, bool]:
        consumers = graph.consumers()
        holder = graph.node_of()
        for node in graph.nodes:
            if not node.kind.startswith("ir:"):
                continue
            names = cls.match(graph.net, graph.net.layer(node.layers[0]), consumers)
            if not names or any(not holder[n].kind.startswith("ir:") for n in names):
                continue
            inside = set(names)
            inputs = [s for n in names for s in graph.net.layer(n).inputs if s not in inside]
            fused = HwNode(kind, names, list(dict.fromkeys(inputs)))
            last = max(graph.nodes.index(holder[n]) for n in names)
            nodes = [m for i, m in enumerate(graph.nodes) if m.layers[0] not in inside or i == last]
            nodes[nodes.index(graph.nodes[last])] = fused
            return HwGraph(graph.net, nodes), True
        return graph, False

    fuse_pass.__name__ = f"fuse_{kind}"
    return fuse_pass


def _product_saturates(mul: Layer, req: Layer) -> bool:
    """Whether ``requant(R · m)`` is already at the top of its range for ``R = STREAM_MAX`` (then for
    every larger ``R``: round and shift are monotone), for every channel's shift."""
    m = csd_value(mul.attrs["terms"])
    shifts = req.attrs["shift"] if isinstance(req.attrs["shift"], list) else [req.attrs["shift"]]
    top = (1 << (req.attrs["bits"] - 1)) - 1
    return all(int(shift_round(torch.tensor(STREAM_MAX * m), s)) >= top for s in shifts)


def saturate_retrieval_products(graph: HwGraph) -> tuple[HwGraph, bool]:
    """IR rewrite (exact): ``retrieve -> mul_const -> requant`` becomes ``retrieve -> requant(shift 0,
    16 bits) -> mul_const -> requant``, one site per call.

    The retrieval's accumulator ``R`` (unsigned, up to 20 bits for ``d_h = 24``) then leaves the conv
    engine as a 16-bit stream word, saturated at ``STREAM_MAX``, and the vector unit forms the
    product (:class:`~spiketrack.compiler.hwops.MulConst`). Rewritten only where that changes no
    output: ``R >= 0``, and the product of ``STREAM_MAX`` already requantises to the top of the
    output range (the §IS-12 scales of ``d_h = 8, 24`` at ``f_m = 8``: ``m·2**-s`` = 2.83 and 1.63),
    so every ``R >= STREAM_MAX`` gives that top value either way. The new layer is named
    ``<retrieve>.sat``; the compiler's golden check (``compile_network``) compares the rewritten
    programs with the original network.
    """
    net = graph.net
    consumers = graph.consumers()
    for layer in net.layers:
        if layer.op != "mul_const" or layer.inputs[0] not in consumers or len(consumers.get(layer.name, [])) != 1:
            continue
        try:
            src = net.layer(layer.inputs[0])
        except KeyError:
            continue
        req = net.layer(consumers[layer.name][0])
        if src.op != "retrieve" or consumers[src.name] != [layer.name] or req.op != "requant" \
                or not _product_saturates(layer, req):
            continue
        sat = Layer(f"{src.name}.sat", "requant", [src.name], {"shift": 0, "bits": 16})
        layers = []
        for l in net.layers:
            if l is layer:
                layers += [sat, Layer(l.name, l.op, [sat.name], dict(l.attrs), l.params)]
            else:
                layers.append(l)
        return HwGraph.unfused(IntegerNetwork(layers, net.inputs, net.outputs, net.meta, net.input_types)), True
    return graph, False


def fusion_passes() -> list:
    return [_fusion_pass(k) for k in FUSION_ORDER]


def check_placed(graph: HwGraph) -> None:
    """Refuse layers that no hardware op placed, naming the first one and its op."""
    left = [n for n in graph.nodes if n.kind.startswith("ir:")]
    if left:
        ops = sorted({n.kind[3:] for n in left})
        raise CompileError(f"{len(left)} layer(s) cannot be placed on the accelerator: first {left[0].name!r} "
                           f"(op {left[0].kind[3:]!r}); unplaced ops: {', '.join(ops)}")


def fuse(net: IntegerNetwork) -> tuple[HwGraph, list[PassRecord]]:
    """The IR rewrite, all fusion passes, then :func:`check_placed`. The graph's ``net`` is the
    rewritten network (``net`` itself where nothing was rewritten)."""
    graph, records = run_passes(HwGraph.unfused(net), [saturate_retrieval_products] + fusion_passes(),
                                max_rounds=100_000)
    check_placed(graph)
    return graph, records
