"""Fusion passes: IR layers -> hardware-op nodes (:mod:`.hwops`).

The graph starts with one unfused node per IR layer (kind ``"ir:<op>"``). One pass per hardware
op class replaces each run of layers its pattern matches by one node, placed at the position of
its last layer (every input it reads is produced before that). :func:`check_placed` then refuses a
graph with a layer no hardware op took, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

from spiketrack.compiler.hwops import REGISTRY, HwNode
from spiketrack.compiler.passes import PassRecord, run_passes
from spiketrack.quant.ir import IntegerNetwork

__all__ = ["HwGraph", "CompileError", "fusion_passes", "check_placed", "fuse"]

#: Fusion order: larger patterns first, so a layer is taken by the op that does most with it.
FUSION_ORDER = ("stem", "spike_conv", "retrieval", "memory_build", "neuron", "add", "avg_pool", "mean_fusion", "view")


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
    """All fusion passes, then :func:`check_placed`."""
    graph, records = run_passes(HwGraph.unfused(net), fusion_passes(), max_rounds=100_000)
    check_placed(graph)
    return graph, records
