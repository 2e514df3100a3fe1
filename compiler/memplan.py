"""Memory plan: every buffer of the accelerator on a board's block RAM or its external memory.

Buffers (each a separate physical memory, so the units can read and write them in one cycle):

* ``weights``: the conv engine's ``P``-lane weight lines of every layer (weights shared by the
  template and search branches are stored once); an int4 layer puts two lines in one row, so a
  network with mixed per-layer ``weight_bits`` is sized layer by layer.
* ``tables``: per output channel, the bias (at its layer's accumulator width) and the shift.
* ``consts`` / ``template_consts``: the search pass's / template pass's positional tables at the
  signed width their values need (not int32).
* ``template_memory``: the MRM memories M (all ``T`` timesteps), written by the template pass,
  read by every search pass.
* ``activations``: every tensor a node writes, live from its producer to its last reader (views
  extend their sources' lives); one address space (a banked pool of EBRs) holding the peak live
  bits over the programs whose activations are on chip.
* ``pixel_line_buffer``: ``k + stride`` pixel rows for the stem (pixels come from the host).
* ``membranes``: none: time is the innermost loop of every op (docs/accelerator.md), so NI-LIF
  membranes across ``T`` stay in registers.

External memory (:data:`EXTERNAL_MEMORY`: ULX3S 32 MB SDRAM, OrangeCrab 128 MB DDR3, iCEBreaker
none). Four buffers may live there, each at a stated traffic cost (bits moved between the FPGA
and the external memory). Of these the RTL streams the weights (an external-memory bus and a
fetch unit); activations in external memory are a plan only.

* ``template_activations`` (used once per template update) and ``search_activations`` (every
  frame): every tensor of that pass is written once and read by each node that reads it, through
  an on-chip staging window inside the on-chip activation pool: per input ``k + stride`` rows of
  it (all timesteps and channels; a convolution's kernel and stride, pooling by ``p`` ``2p`` rows,
  bilinear upsampling 3, a pointwise read ``1 + 1``; a view's sources each get the window) and
  one output row (:func:`_reader`). The units' loop order sets how often a reader fetches its
  input: the conv engine runs the ``P``-chunks of output channels outermost, so a convolution
  (not depthwise) reads its input once per chunk of its group's output channels and a retrieval
  its query once per ``P``-chunk of ``d_v``; the memory builder reads one key and one value word
  per step (no reuse); the vector unit's ops and fused residual inputs read once. A program output
  that is not a template memory (the search pass's head maps) is read once more, by the host.
  The on-chip pool then holds the peak of each pass whose activations stay on chip and the
  largest staging window of each pass whose activations are external;
* ``template_consts`` (once per template update): read once per update;
* ``weights`` (every frame): streamed into an on-chip ``weight_cache`` holding the lines of one
  ``P``-chunk of output channels (``C_in/g · k²`` lines, depthwise ``k²``; the largest over the
  layers), double-buffered. This assumes the engine sweeps every output position for one chunk
  before the next (the order the lines are packed in; the cycle model already reads the input
  words once per chunk), so each pass reads the weights of its layers once. The RTL built so far
  (``hw/fetch_unit.py``, ``compiler/accel.py`` with ``ext_weights``) has one buffer of the cache and
  fetches before it computes (docs/accelerator.md, "Weights in external memory"): the transfers
  then add to the cycles, which this plan's figures do not include.

The bus is assumed to move ``bus_bits`` (16) per accelerator cycle; the cycle model does not
include the transfers (it assumes them hidden behind compute; the compile report gives each pass's
bus cycles, their share of the pass and ``bandwidth_bound`` where they exceed it).

Placement (``external="auto"``) is rule-based: on-chip first; when the design does not fit and
the board has external memory, candidates move out in order: those used once per template
update before those used every frame, and within a class the largest first (activations by
their pass's on-chip peak), until it fits. Then
each moved buffer, the most traffic per search frame first (then per template update), comes
back on chip if the design still fits; a design that does not fit even so keeps out only the
buffers whose move saves block RAM. ``external="none"`` keeps everything on chip; a list of
names places exactly those buffers externally.

ECP5 EBR: 18 Kbit, as 16K×1, 8K×2, 4K×4, 2K×9, 1K×18 or 512×36. iCE40 UP5K: 30 EBR of 4 Kbit
(256×16 … 2K×2) and 4 SPRAM of 256 Kbit (16K×16), SPRAM counted as 64 EBR-equivalents each.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from spiketrack.compiler.fuse import HwGraph
from spiketrack.compiler.hwops import REGISTRY
from spiketrack.compiler.schedule import Program
from spiketrack.hw.engine_cycles import LEVEL_BITS_STORED, Engine, const_bits, memory_build_cost

__all__ = ["BOARD_MEMORY", "EXTERNAL_MEMORY", "EXTERNAL_CANDIDATES", "ACTIVATION_CANDIDATES", "ExternalMemory", "MemoryPlan", "plan_memory",
           "check_external", "ebr_count"]

#: block RAM per board: (ebr bits, ((width, depth) configurations), ebr count)
_ECP5 = (18432, ((1, 16384), (2, 8192), (4, 4096), (9, 2048), (18, 1024), (36, 512)), 208)
_UP5K = (4096, ((2, 2048), (4, 1024), (8, 512), (16, 256)), 30 + 4 * 64)
BOARD_MEMORY = {"ulx3s-85f": _ECP5, "orangecrab-85f": _ECP5, "icebreaker": _UP5K}


@dataclass(frozen=True)
class ExternalMemory:
    """The board's external memory.

    Parameters
    ----------
    name : str
        The part, in words.
    bits : int
        Capacity in bits.
    bus_bits : int
        Data bits per accelerator clock cycle at best (the x16 data bus of both boards' parts, one
        word per cycle: an assumption of the plan, not a measured controller figure).
    """

    name: str
    bits: int
    bus_bits: int


EXTERNAL_MEMORY = {
    "ulx3s-85f": ExternalMemory("32 MB SDRAM", 32 * 2 ** 23, 16),
    "orangecrab-85f": ExternalMemory("128 MB DDR3", 128 * 2 ** 23, 16),
    "icebreaker": None,
}

#: buffers that may be placed in external memory, and the pass(es) that use them
EXTERNAL_CANDIDATES = {"template_activations": "template_update", "template_consts": "template_update",
                       "weights": "every frame", "search_activations": "every frame"}
#: the activation candidates and the program whose tensors each holds
ACTIVATION_CANDIDATES = {"template_activations": "template_update", "search_activations": "search_frame"}


def ebr_count(width: int, depth: int, configs) -> int:
    """Fewest block RAMs holding ``depth`` words of ``width`` bits (best configuration)."""
    if width <= 0 or depth <= 0:
        return 0
    return min(math.ceil(width / w) * math.ceil(depth / d) for w, d in configs)


@dataclass
class MemoryPlan:
    """Where every buffer lives and what it costs.

    Members
    -------
    board : the board name.
    buffers : name -> ``{"bits", "width", "depth", "ebr", "place"}`` (``place`` is ``"ebr"`` or
        ``"external"``; an external buffer also has ``"traffic_bits"``: ``{pass: bits moved}``).
    ebr_total : block RAMs of the board.
    peak_tensors : ``(program, node)`` where the on-chip activations peak.
    external : the board's external memory, or None.
    placement : how the external buffers were chosen (``"auto"``, ``"none"`` or ``"explicit"``).
    """

    board: str
    buffers: dict = field(default_factory=dict)
    ebr_total: int = 0
    peak_tensors: tuple | None = None
    external: ExternalMemory | None = None
    placement: str = "auto"

    @property
    def ebr_used(self) -> int:
        return sum(b["ebr"] for b in self.buffers.values() if b["place"] == "ebr")

    @property
    def external_bits(self) -> int:
        return sum(b["bits"] for b in self.buffers.values() if b["place"] == "external")

    @property
    def external_buffers(self) -> list[str]:
        return [k for k, b in self.buffers.items() if b["place"] == "external"]

    def external_traffic(self) -> dict[str, int]:
        """Bits moved to and from external memory per ``search_frame`` and per ``template_update``."""
        out = {"search_frame": 0, "template_update": 0}
        for b in self.buffers.values():
            for k, v in b.get("traffic_bits", {}).items():
                out[k] += v
        return out

    @property
    def fits(self) -> bool:
        cap = self.external.bits if self.external else 0
        return self.ebr_used <= self.ebr_total and self.external_bits <= cap

    def bits(self, name: str) -> int:
        return self.buffers.get(name, {}).get("bits", 0)


def _stored_bits(t) -> int:
    """Bits per element as stored: spike levels in 3 bits, everything else at its type's width."""
    return LEVEL_BITS_STORED if t.kind == "levels" else t.bits


def check_external(board: str, external):
    """Validate a placement request for ``board``: ``"auto"``, ``"none"`` or the list of buffer names.

    Raises
    ------
    ValueError
        An unknown board, an unknown placement or buffer name, or external buffers on a board
        without external memory; the message names it.
    """
    if board not in BOARD_MEMORY:
        raise ValueError(f"no memory model for board {board!r}; known: {', '.join(BOARD_MEMORY)}")
    if isinstance(external, str):
        if external not in ("auto", "none"):
            raise ValueError(f"external placement must be 'auto', 'none' or a list of buffer names, got {external!r}")
        return external
    external = list(external)
    bad = [n for n in external if n not in EXTERNAL_CANDIDATES]
    if bad:
        raise ValueError(f"buffer {bad[0]!r} cannot be placed in external memory; "
                         f"candidates: {', '.join(EXTERNAL_CANDIDATES)}")
    if external and EXTERNAL_MEMORY.get(board) is None:
        raise ValueError(f"board {board} has no external memory (buffers asked for it: {', '.join(external)})")
    return external


def plan_memory(graph: HwGraph, progs: dict[str, Program], engine: Engine, board: str,
                external="auto") -> MemoryPlan:
    """Size every buffer of the compiled network for ``board`` and place it.

    Parameters
    ----------
    graph, progs, engine : the fused network, its programs and the engine.
    board : a key of :data:`BOARD_MEMORY`.
    external : ``"auto"`` (the placement rule of the module docstring), ``"none"`` (all on chip)
        or an iterable of :data:`EXTERNAL_CANDIDATES` names placed in external memory.

    Raises
    ------
    ValueError
        An unknown board or buffer name, or external buffers on a board without external memory.
    """
    external = check_external(board, external)
    ext_mem = EXTERNAL_MEMORY.get(board)
    ebr_bits, configs, total = BOARD_MEMORY[board]
    net, types = graph.net, graph.net.types
    P = engine.lanes
    mems = set(progs["template_update"].outputs)
    tmpl_nodes = {n.name for n in progs["template_update"].nodes}

    # ---- sizes (independent of placement)
    key_rows: dict[str, int] = {}
    chunk_rows = 0
    prog_keys = {name: set() for name in progs}
    table_rows = table_width = 0
    consts = {"consts": [0, 0], "template_consts": [0, 0]}  # [depth, width]
    for node in graph.nodes:
        first = net.layer(node.layers[0])
        packed = REGISTRY[node.kind].pack(node, net, engine)
        key = first.attrs.get("params_from", first.name)
        if "weights" in packed:
            for pname, prog in progs.items():
                if node in prog.nodes:
                    prog_keys[pname].add(key)
            if key not in key_rows:
                lines = packed["weights"].shape[0]
                per_row = 1 if first.attrs["weight_bits"] == 8 else 2
                key_rows[key] = math.ceil(lines / per_row)
                # lines of one output chunk (the engine's outer loop): depthwise k*k, else C_in/g * k*k
                co, cig, k, _ = net.params_of(first)["weight"].shape
                chunk_lines = k * k if (first.attrs["groups"] == co and cig == 1 and co > 1) else cig * k * k
                chunk_rows = max(chunk_rows, math.ceil(chunk_lines / per_row))
                table_rows += packed["tables"].shape[0]
                table_width = max(table_width, first.attrs["acc_bits"] + 6)
        if "consts" in packed:
            c = consts["template_consts" if node.name in tmpl_nodes else "consts"]
            c[0] += packed["consts"].size
            c[1] = max(c[1], const_bits(packed["consts"]))
    line_width = P * 8
    weight_rows = sum(key_rows.values())
    tm_bits = sum(types[m].bits * types[m].elements * types[m].shape[0] for m in mems)

    views = {n.output: n.inputs for n in graph.nodes if REGISTRY[n.kind].view}

    def sources(t):
        return [s for v in views[t] for s in sources(v)] if t in views else [t]

    def tensor_bits(name):
        t = types[name]
        return t.elements * t.shape[0] * _stored_bits(t)

    peaks = {}
    for prog in progs.values():
        last: dict[str, int] = {}
        for i, node in enumerate(prog.nodes):
            for src in node.inputs:
                for s in sources(src):
                    last[s] = i
        live: dict[str, int] = {}
        peak, at = 0, None
        for i, node in enumerate(prog.nodes):
            if not REGISTRY[node.kind].view:
                live[node.output] = tensor_bits(node.output)
            now = sum(v for k, v in live.items() if k not in mems)
            if now > peak:
                peak, at = now, (prog.name, node.name)
            for k in [k for k, j in last.items() if j == i]:
                live.pop(k, None)
        peaks[prog.name] = (peak, at)

    # a pass's activations from external memory: staging window and traffic (each tensor written
    # once, read by each reader in as many sweeps as its loop order makes; program outputs that are
    # not template memories read once more, by the host)
    def streamed(prog):
        staging, at, traffic = 0, (prog.name, "staging"), 0
        for node in prog.nodes:
            if REGISTRY[node.kind].view:
                continue
            need = 0
            for src in node.inputs:
                rows, sweeps = _reader(net, types, engine, node, src)
                for s in sources(src):
                    if s in net_inputs or s in mems:
                        continue
                    t = types[s]
                    need += rows * t.shape[0] * t.shape[1] * t.shape[-1] * _stored_bits(t)
                    traffic += sweeps(tensor_bits(s))
            if node.output not in mems:
                t = types[node.output]
                need += t.shape[0] * t.shape[1] * t.shape[-1] * _stored_bits(t)
                traffic += tensor_bits(node.output) * (2 if node.output in prog.outputs else 1)
            if need > staging:
                staging, at = need, (prog.name, f"staging {node.layers[0]}")
        return staging, at, traffic

    net_inputs = set(net.inputs)
    streams = {prog: streamed(progs[prog]) for prog in ACTIVATION_CANDIDATES.values()}

    stems = [n for n in graph.nodes if n.kind == "stem"]
    line_depth = 0
    for n in stems:
        conv = net.layer(n.layers[0])
        k = net.params_of(conv)["weight"].shape[-1]
        line_depth = max(line_depth, (k + conv.attrs["stride"]) * types[conv.inputs[0]].shape[3])

    def place(ext: set) -> MemoryPlan:
        plan = MemoryPlan(board, ebr_total=total, external=ext_mem)

        def put(name, width, depth, where="ebr", traffic=None):
            b = {"bits": width * depth, "width": width, "depth": depth,
                 "ebr": ebr_count(width, depth, configs) if where == "ebr" else 0, "place": where}
            if where == "external":
                b["traffic_bits"] = traffic
            plan.buffers[name] = b

        if "weights" in ext:
            bits = {p: sum(key_rows[k] for k in keys) * line_width for p, keys in prog_keys.items()}
            put("weights", line_width, weight_rows, "external", bits)
            put("weight_cache", line_width, 2 * chunk_rows)
        else:
            put("weights", line_width, weight_rows)
        put("tables", table_width, table_rows)
        put("consts", consts["consts"][1], consts["consts"][0])
        tc_depth, tc_width = consts["template_consts"]
        if "template_consts" in ext:
            put("template_consts", tc_width, tc_depth, "external", {"template_update": tc_width * tc_depth})
        else:
            put("template_consts", tc_width, tc_depth)
        put("template_memory", 36, math.ceil(tm_bits / 36))
        # the pool: the peak of each pass whose activations are on chip, the staging window of the others
        onchip, staged = [], []
        for pname in progs:
            cand = next((c for c, p in ACTIVATION_CANDIDATES.items() if p == pname), None)
            if cand in ext:
                stage, stage_at, traffic = streams[pname]
                put(cand, 36, math.ceil(peaks[pname][0] / 36), "external", {pname: traffic})
                staged.append((stage, stage_at))
            else:
                onchip.append(peaks[pname])
        pool, at = max(onchip + staged, key=lambda v: v[0])
        plan.peak_tensors = at
        put("activations", 36, math.ceil(pool / 36))
        if line_depth:
            put("pixel_line_buffer", 24, line_depth)
        plan.buffers["membranes"] = {"bits": 0, "width": 0, "depth": 0, "ebr": 0, "place": "ebr"}
        plan.placement = "explicit"
        return plan

    if external == "none" or (external == "auto" and ext_mem is None):
        plan = place(set())
        plan.placement = "none" if external == "none" else "auto"
        return plan
    if external != "auto":
        return place(set(external))
    # auto: on-chip first; move out (once-per-update before every-frame, largest first) until it fits
    plan = place(set())
    moved: list[str] = []
    if not plan.fits:
        order = sorted(EXTERNAL_CANDIDATES, key=lambda n: (EXTERNAL_CANDIDATES[n] != "template_update",
                                                           -_candidate_bits(plan, n, peaks)))
        for name in order:
            moved.append(name)
            plan = place(set(moved))
            if plan.fits:
                break
        # bring back what still fits, the most traffic per search frame first
        if plan.fits:
            def cost(n):
                t = plan.buffers[n]["traffic_bits"]
                return -t.get("search_frame", 0), -t.get("template_update", 0)

            for name in sorted(moved, key=cost):
                trial = place(set(moved) - {name})
                if trial.fits:
                    moved.remove(name)
                    plan = trial
        else:  # refused anyway: keep out only what saves block RAM (e.g. not the template pass of T = 1)
            for name in list(moved):
                trial = place(set(moved) - {name})
                if trial.ebr_used <= plan.ebr_used:
                    moved.remove(name)
                    plan = trial
    plan.placement = "auto"
    return plan


def _candidate_bits(plan: MemoryPlan, name: str, peaks: dict) -> int:
    if name in ACTIVATION_CANDIDATES:
        return peaks[ACTIVATION_CANDIDATES[name]][0]
    return plan.bits(name)


def _reader(net, types: dict, engine: Engine, node, src: str):
    """How ``node`` reads its input ``src`` from external memory: ``(rows, bits_read)`` (``types``:
    the network's tensor types).

    ``rows`` is the staging window in rows of ``src`` (``k + stride``: the ``k`` rows the op reads
    while the next ``stride`` arrive; a pointwise read ``1 + 1``), ``bits_read(bits)`` the bits
    fetched for a tensor of ``bits``. The units' loop order decides the second: the conv engine
    runs the ``P``-chunks of a group's output channels outermost (``hw/conv_engine.py``), so a
    convolution (not depthwise, not the stem) sweeps its input once per chunk, a retrieval its query
    once per ``P``-chunk of ``d_v``; the memory builder reads one key and one value word per step
    (:func:`~spiketrack.hw.engine_cycles.memory_build_cost`, no reuse). Everything else (the
    vector unit's ops, a fused op's residual input) reads its input once.
    """
    first = net.layer(node.layers[0])
    P = engine.lanes
    if src not in first.inputs:  # an input of a fused op after the first (residual add): row by row
        return 2, lambda bits: bits
    a = first.attrs
    if first.op in ("conv", "stem_conv"):
        co, cig, k, _ = net.params_of(first)["weight"].shape
        depthwise = a["groups"] == co and cig == 1 and co > 1
        sweeps = 1 if depthwise or first.op == "stem_conv" else math.ceil(co // a["groups"] / P)
        return k + a["stride"], lambda bits: sweeps * bits
    if first.op == "avg_pool":
        return 2 * a["size"], lambda bits: bits
    if first.op == "upsample_bilinear":  # two input rows per output row, the next one arriving
        return 3, lambda bits: bits
    if first.op == "retrieve":
        sweeps = math.ceil(types[first.inputs[1]].shape[3] / P)
        return 2, lambda bits: sweeps * bits
    if first.op == "memory_build":  # the key and the value tensor: one word each per step
        k_t, v_t = types[first.inputs[0]], types[first.inputs[1]]
        words = memory_build_cost(engine, k_t, v_t, types[node.output]).reads["act"] / 2
        t = types[src]
        return 2, lambda bits: round(bits * words / (t.elements * t.shape[0] * _stored_bits(t)))
    return 2, lambda bits: bits
