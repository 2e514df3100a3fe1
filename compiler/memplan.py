"""Memory plan: every buffer of the accelerator on a board's block RAM, in bits and EBRs.

Memories (each a separate physical memory, so the units can read and write them in one cycle):

* ``weights``: the conv engine's ``P``-lane weight lines of every layer (weights shared by the
  template and search branches are stored once); an int4 layer puts two lines in one row.
* ``tables``: per output channel, the bias (at its layer's accumulator width) and the shift.
* ``consts``: positional tables at the signed width their values need (not int32).
* ``template_memory``: the MRM memories M (all ``T`` timesteps), written by the template pass,
  read by every search pass.
* ``activations``: every tensor a node writes, live from its producer to its last reader (views
  extend their sources' lives); the plan holds the peak over both programs. Pixels come from the host through a line
  buffer of ``k + stride`` rows for the stem. The activation memory is one address space (a
  banked pool of EBRs); the plan takes its peak live bits.
* ``membranes``: none: time is the innermost loop of every op (docs/accelerator.md), so NI-LIF
  membranes across ``T`` stay in registers.

ECP5 EBR: 18 Kbit, as 16K×1, 8K×2, 4K×4, 2K×9, 1K×18 or 512×36. iCE40 UP5K: 30 EBR of 4 Kbit
(256×16 … 2K×2) and 4 SPRAM of 256 Kbit (16K×16), SPRAM counted as 64 EBR-equivalents each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from spiketrack.compiler.fuse import HwGraph
from spiketrack.compiler.hwops import REGISTRY
from spiketrack.compiler.schedule import Program
from spiketrack.hw.engine_cycles import LEVEL_BITS_STORED, Engine, const_bits

__all__ = ["BOARD_MEMORY", "MemoryPlan", "plan_memory", "ebr_count"]

#: block RAM per board: (ebr bits, ((width, depth) configurations), ebr count)
_ECP5 = (18432, ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)), 208)
_UP5K = (4096, ((2, 2048), (4, 1024), (8, 512), (16, 256)), 30 + 4 * 64)
BOARD_MEMORY = {"ulx3s-85f": _ECP5, "orangecrab-85f": _ECP5, "icebreaker": _UP5K}


def ebr_count(width: int, depth: int, configs) -> int:
    """Fewest block RAMs holding ``depth`` words of ``width`` bits (best configuration)."""
    if width <= 0 or depth <= 0:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in configs)


@dataclass
class MemoryPlan:
    board: str
    buffers: dict = field(default_factory=dict)   #: name -> {"bits", "ebr", "width", "depth"}
    ebr_total: int = 0
    peak_tensors: tuple | None = None  #: (program, node) where the activations peak

    @property
    def ebr_used(self) -> int:
        return sum(b["ebr"] for b in self.buffers.values())

    @property
    def fits(self) -> bool:
        return self.ebr_used <= self.ebr_total

    def bits(self, name: str) -> int:
        return self.buffers.get(name, {}).get("bits", 0)


def plan_memory(graph: HwGraph, progs: dict[str, Program], engine: Engine, board: str) -> MemoryPlan:
    """Size every buffer of the compiled network for ``board``."""
    if board not in BOARD_MEMORY:
        raise ValueError(f"no memory model for board {board!r}; known: {', '.join(BOARD_MEMORY)}")
    ebr_bits, configs, total = BOARD_MEMORY[board]
    net, types = graph.net, graph.net.types
    plan = MemoryPlan(board, ebr_total=total)
    P = engine.lanes

    def put(name, width, depth):
        plan.buffers[name] = {"bits": width * depth, "width": width, "depth": depth,
                              "ebr": ebr_count(width, depth, configs)}

    # weights and tables (shared parameters counted once)
    rows = table_rows = table_width = 0
    const_depth = const_width = 0
    seen = set()
    for node in graph.nodes:
        first = net.layer(node.layers[0])
        packed = REGISTRY[node.kind].pack(node, net, engine)
        key = first.attrs.get("params_from", first.name)
        if "weights" in packed and key not in seen:
            seen.add(key)
            lines = packed["weights"].shape[0]
            rows += lines if first.attrs["weight_bits"] == 8 else math.ceil(lines / 2)
            table_rows += packed["tables"].shape[0]
            table_width = max(table_width, first.attrs["acc_bits"] + 6)
        if "consts" in packed:
            const_depth += packed["consts"].size
            const_width = max(const_width, const_bits(packed["consts"]))
    put("weights", P * 8, rows)
    put("tables", table_width, table_rows)
    put("consts", const_width, const_depth)
    mems = progs["template_update"].outputs
    tm_bits = sum(types[m].bits * types[m].elements * types[m].shape[0] for m in mems)
    put("template_memory", 36, math.ceil(tm_bits / 36))

    # activations: liveness over each program; pixels through the stem's line buffer
    views = {n.output: n.inputs for n in graph.nodes if REGISTRY[n.kind].view}

    def sources(t):
        return [s for v in views.get(t, [t]) for s in sources(v)] if t in views else [t]

    peak, peak_at = 0, None
    for prog in progs.values():
        last: dict[str, int] = {}
        for i, node in enumerate(prog.nodes):
            for src in node.inputs:
                for s in sources(src):
                    last[s] = i
        live: dict[str, int] = {}
        for i, node in enumerate(prog.nodes):
            if not REGISTRY[node.kind].view:
                t = types[node.output]
                bits = t.elements * t.shape[0] * (LEVEL_BITS_STORED if t.kind == "levels" else t.bits)
                live[node.output] = bits
            now = sum(v for k, v in live.items() if k not in mems)
            if now > peak:
                peak, peak_at = now, (prog.name, node.name)
            for k in [k for k, j in last.items() if j == i]:
                live.pop(k, None)
    plan.peak_tensors = peak_at
    put("activations", 36, math.ceil(peak / 36))
    stem = [n for n in graph.nodes if n.kind == "stem"]
    if stem:
        conv = net.layer(stem[0].layers[0])
        t = types[conv.inputs[0]]
        k = net.params_of(conv)["weight"].shape[-1]
        put("pixel_line_buffer", 24, (k + conv.attrs["stride"]) * t.shape[3])
    plan.buffers["membranes"] = {"bits": 0, "width": 0, "depth": 0, "ebr": 0}
    return plan
