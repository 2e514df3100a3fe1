"""Programs and predicted cycles: the template pass (once per template update, ``T`` timesteps)
and the search pass (every frame, one timestep), as ordered lists of hardware-op nodes.

:func:`run_program` executes a program with each node's golden function (so a compiled program is
checked against ``quant.executor.run_network``) and :func:`program_cost` sums each node's cycle
model, from the data of a golden run or dense (every level non-zero: the worst case).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from spiketrack.compiler.fuse import HwGraph
from spiketrack.compiler.hwops import REGISTRY, HwNode
from spiketrack.hw.engine_cycles import Cost
from spiketrack.hw.engine_cycles import Engine
from spiketrack.quant.executor import _needed

__all__ = ["Program", "programs", "run_program", "program_cost"]


@dataclass
class Program:
    """One pass of the accelerator: its nodes in order, what it reads and what it leaves."""

    name: str
    nodes: list[HwNode]
    inputs: list[str]
    outputs: list[str]


def programs(graph: HwGraph) -> dict[str, Program]:
    """Split the graph into the template program (-> memories) and the search program (-> heads).

    A network that is not a tracker (no ``meta["memories"]``, e.g. ``sim/reduced.memory_network``)
    is one program, ``"run"``: every node, from the network's inputs to its outputs."""
    net = graph.net
    if "memories" not in net.meta:
        return {"run": Program("run", list(graph.nodes), list(net.inputs), list(net.outputs))}
    mems = list(net.meta["memories"])
    heads = [net.meta[k] for k in ("score", "size", "offset")]
    tmpl = _needed(net, mems, {"template_pixels"})
    srch = _needed(net, heads, {"search_pixels", *mems})
    return {
        "template_update": Program("template_update", [n for n in graph.nodes if n.output in tmpl],
                                   ["template_pixels"], mems),
        "search_frame": Program("search_frame", [n for n in graph.nodes if n.output in srch],
                                ["search_pixels", *mems], heads),
    }


def run_program(graph: HwGraph, prog: Program, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Execute ``prog`` node by node with the golden functions; every fused layer's output is kept."""
    env = dict(inputs)
    for node in prog.nodes:
        env.update(REGISTRY[node.kind].golden(node, graph.net, env))
    return env


def program_cost(graph: HwGraph, prog: Program, engine: Engine,
                 env: dict[str, torch.Tensor] | None = None) -> tuple[Cost, list[dict]]:
    """Total and per-node cost (cycles, adds, memory traffic) of ``prog``."""
    types = graph.net.types
    total, rows = Cost(), []
    for node in prog.nodes:
        c = REGISTRY[node.kind].cost(node, graph.net, types, engine, env)
        total.add(c)
        rows.append({"node": node.name, "kind": node.kind, "cycles": c.cycles})
    return total, rows
