"""Code generation for the accelerator top (``hw/accel``): buffer placement, descriptors, images.

:func:`lower_to_accel` turns the fused graph's two programs into what the accelerator runs:

* **placement**: every tensor a node writes gets rows in one memory by its kind (spike levels and
  pixels: ``lv``; stream values: ``st``; memories ``M``: ``tm``), packed first fit (largest
  first or in producer order, whichever needs fewer rows) among the buffers whose lifetimes
  overlap (a buffer lives from its producer to its last reader, views included); the
  operands read through the second read port of ``lv`` / ``st`` first, from row 0, the rest
  around them (``AccelProgram.second_port_rows``: only the banks of those rows are stored twice); an output over the
  operand it reads last, where the unit allows (:func:`_in_place_operand`). Views
  cost nothing: ``select_time`` is an offset, ``repeat_time`` a zero timestep stride,
  ``upsample`` the vector unit's nearest-neighbour addressing, and the parts of a
  ``concat_time`` are written straight into their slices of one buffer. The template pass's
  memories take the first ``tm`` rows (the template slots, below the guard a search run cannot
  write); the other ``tm`` rows are scratch, and so are a slot's rows in the template pass before
  it writes that slot.
* **descriptors**: one program word per hardware op (unit + descriptor fields), the template
  program first, then the search program.
* **images**: weight lines and tables (weights shared by both branches stored once), positional
  tables, and the program.
* **external weights** (``ext_weights=True``, a board whose block RAM cannot hold them): the
  weight lines go to the external memory's image (``images["ext"]``, 16-bit words, a line's low
  word first) and ``w`` becomes a weight cache of ``cache_rows`` rows in two halves. Each
  convolution is split into cache fills: a ``FETCH`` descriptor (``hw/fetch_unit.py``) copies the
  lines of as many of its output chunks as half the cache holds, and a conv descriptor runs those
  chunks (``chunk_range_fields``). Fills alternate between the halves, and each FETCH is placed
  before the previous fill's conv descriptor, so it runs while that conv computes
  (``_split_fills``). Every pass reads each of its layers' weights once.

Cycle contract (exact, ``tests/test_accel.py``): a node takes its unit's model
(``hw/engine_cycles``) plus :data:`~spiketrack.hw.accel.top.DESC_OVERHEAD`; a run adds
:data:`~spiketrack.hw.accel.top.RUN_OVERHEAD`. With cache fills, :func:`controller_cycles` gives
the timeline: fetches (``fetch_cycles(words)``, the simulation's external-memory model) run beside
the conv, vector and memory-builder descriptors, and a conv waits for its fill only when the fill
is still running.
"""

from __future__ import annotations

import math
import dataclasses
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import torch

from spiketrack.compiler.fuse import CompileError, HwGraph, fuse
from spiketrack.compiler.hwops import REGISTRY, csd_value
from spiketrack.compiler.schedule import Program, programs
from spiketrack.hw import engine_cycles as ec
from spiketrack.hw.accel.top import RUN_OVERHEAD, UNITS, Unit
from spiketrack.hw.banked_memory import BANK_ROWS, READ_LATENCY
from spiketrack.hw.conv_engine import STREAM_BITS, TM_BITS, chunk_range_fields, conv_descriptor, decay_fields, desc_layout
from spiketrack.hw.extmem import EXT_ADDR_BITS, EXT_COUNT_BITS, EXT_DATA_BITS
from spiketrack.hw.fetch_unit import fetch_cycles, fetch_desc_layout
from spiketrack.hw.memory_builder import mb_desc_layout
from spiketrack.hw.vector_unit import VecMode, bilinear_fields, horner_fields, reads_per_word, vec_desc_layout
from spiketrack.quant.golden.neuron import D
from spiketrack.quant.ir import IntegerNetwork

__all__ = ["Placement", "AccelNode", "AccelProgram", "lower_to_accel", "pack_fields", "tensor_rows", "rows_tensor"]


@dataclass(frozen=True)
class Placement:
    """Where a tensor lives: memory, first row, rows per timestep (0: one timestep repeated), and
    the nearest-neighbour upsampling (log2 of the factor) a reader applies."""

    mem: str
    base: int
    t_stride: int
    up: int = 0


@dataclass
class AccelNode:
    """One hardware op as the accelerator runs it."""

    name: str
    kind: str
    unit: str
    program: str
    index: int                 #: program word (descriptor) address
    desc: dict
    out: str                   #: output tensor
    out_shape: tuple           #: (T, C, H, W) or the memory's (T, heads, d_h, d_v)
    layers: list = field(default_factory=list)
    #: cache fills of a convolution whose weights are external: ``(first chunk, end chunk, words)``
    #: each, run as a FETCH and a conv descriptor (``desc`` is the whole layer's); empty: one descriptor
    fills: list = field(default_factory=list)
    #: with external weights, the program words from ``index`` on, in order: ``("fetch", words)``
    #: (a fill, this node's or one placed early for a later node), ``("conv", first, end)`` (this
    #: node's conv descriptor over a chunk range), ``("unit",)`` (its one descriptor); empty: one descriptor
    seq: list = field(default_factory=list)
    #: a stem run band by band (:class:`Band`): one conv descriptor per band (whole-layer chunk
    #: range), the ``desc`` fields of each; empty: not banded
    bands: list = field(default_factory=list)

    @property
    def n_desc(self) -> int:
        """Program words of this node (from ``index``)."""
        return len(self.seq) if self.seq else 1


@dataclass(frozen=True)
class Band:
    """A host input read by a stem band by band (``lower_to_accel(stem_band_rows=...)``).

    The stem's output rows are split into bands of ``out_rows`` rows (the last may be shorter).
    The input's buffer holds one band's input rows per timestep: ``in_rows`` rows of ``width``
    pixel words, the image padded by ``pad`` on every side (the padding written as zero pixels by
    the host), so each band is a convolution without padding. Before the band's run the host
    writes rows ``y0 = b · out_rows · stride`` .. ``y0 + in_rows - 1`` of the padded image
    (:meth:`AccelProgram.input_rows`)."""

    input: str
    node: str
    n: int          #: bands
    out_rows: int   #: stem output rows per band
    in_rows: int    #: padded input rows per band (the buffer's rows per timestep / width)
    width: int      #: padded input columns
    pad: int
    stride: int
    k: int
    ho: int         #: the stem's output rows

    def rows_of(self, b: int) -> tuple[int, int]:
        """(first padded input row, input rows) of band ``b``."""
        first = b * self.out_rows * self.stride
        out = min(self.out_rows, self.ho - b * self.out_rows)
        return first, (out - 1) * self.stride + self.k


@dataclass(frozen=True)
class HostRun:
    """One RUN a host issues for a pass: program words ``first .. first + count - 1``, after
    writing ``writes`` (:meth:`AccelProgram.host_writes`): ``("input", tensor)`` a whole input,
    ``("band", tensor, b)`` band ``b`` of a banded input, ``("table", node)`` a streamed table."""

    first: int
    count: int
    writes: tuple = ()
    nodes: tuple = ()   #: nodes whose last program word is in this run (their outputs are final after it)


@dataclass
class AccelProgram:
    """Everything the accelerator needs: memory depths and images, the two programs, placements."""

    lanes: int
    addr_bits: int
    depths: dict
    images: dict               #: memory name -> list of row ints (loaded from row 0)
    programs: dict             #: name -> (first descriptor, count)
    nodes: list
    placement: dict            #: tensor -> Placement
    guard: int                 #: template-memory rows that hold the template pass's memories
    inputs: dict               #: program -> input tensor names written by the host
    outputs: dict              #: program -> output tensor names
    units: tuple = UNITS       #: the accelerator units it was compiled for (``Accelerator(units=...)``)
    ext_weights: bool = False  #: weights in external memory (``images["ext"]``), ``w`` a cache
    #: rows of ``lv`` and ``st`` (from 0) that hold every operand read through their second read
    #: port (``Accelerator(second_port_rows=...)``); None: every row
    second_port_rows: dict | None = None
    #: bits per lane memory ``cst`` stores (``Accelerator(cst_bits=...)``): the fewest that hold
    #: every positional-table value (16 without tables)
    cst_bits: int = STREAM_BITS
    #: host inputs read band by band: input tensor -> :class:`Band`
    bands: dict = field(default_factory=dict)
    #: positional tables the host writes before the run that reads them (``cst`` rows from 0, shared
    #: by all of them): node -> rows; the rest stay resident above them
    streamed_tables: dict = field(default_factory=dict)
    #: the host inputs' kinds and shapes ([T, C, H, W])
    input_kinds: dict = field(default_factory=dict)
    input_shapes: dict = field(default_factory=dict)

    def accel_kwargs(self, preload: bool = True) -> dict:
        """``Accelerator`` arguments a simulation of this program needs besides lanes, depths and
        address bits: its units, and with external weights the external-memory model, holding the
        image (``preload``) or empty for the host to load (:meth:`host_images`)."""
        kw = {"units": self.units, "second_port_rows": self.second_port_rows, "cst_bits": self.cst_bits}
        if self.ext_weights:
            ext = self.images["ext"]
            kw.update(ext="model", ext_init=ext if preload else (), ext_depth=max(2, len(ext) + len(ext) % 2))
        return kw

    def host_images(self) -> list[tuple[str, list[int]]]:
        """What the host loads before the first pass: ``(memory, rows)`` of the program, weights,
        tables and positional tables; with external weights the weight words as rows of memory
        ``ext`` (two 16-bit words a row, ``protocol.EXT_ROW_BITS``)."""
        out = [(m, self.images[m]) for m in ("prog", "w", "tab", "cst")]
        if self.ext_weights:
            ext = list(self.images["ext"]) + [0] * (len(self.images["ext"]) % 2)
            out.append(("ext", [ext[i] | ext[i + 1] << 16 for i in range(0, len(ext), 2)]))
        return out

    def _node(self, name: str) -> AccelNode:
        return next(n for n in self.nodes if n.name == name)

    def _op_cost(self, graph: HwGraph, node: AccelNode, env, chunk_range=None, band: int | None = None):
        """The unit model's cost of one of the node's descriptors: the whole op, a chunk range of
        it (a cache fill), or one band of a banded stem (a convolution without padding on the
        band's padded input rows)."""
        hw = next(h for h in graph.nodes if h.name == node.name)
        op, net = REGISTRY[hw.kind], graph.net
        engine = ec.Engine(self.lanes)
        if band is None:
            return op.cost(hw, net, net.types, engine, env, chunk_range=chunk_range) if chunk_range else \
                op.cost(hw, net, net.types, engine, env)
        conv = net.layer(hw.layers[0])
        bd = self.bands[conv.inputs[0]]
        y0, rows = bd.rows_of(band)
        in_t, out_t = net.types[conv.inputs[0]], net.types[hw.output]
        levels = None
        if env is not None:
            p = bd.pad
            levels = torch.nn.functional.pad(env[conv.inputs[0]][:, 0], (p, p, p, p))[:, :, y0:y0 + rows]
        d = node.bands[band]
        shim = SimpleNamespace(attrs={**conv.attrs, "padding": 0})
        return ec.conv_cost(engine, shim, net.params_of(conv)["weight"].shape,
                            dataclasses.replace(in_t, shape=(in_t.shape[0], in_t.shape[1], rows, bd.width)),
                            dataclasses.replace(out_t, shape=(out_t.shape[0], out_t.shape[1], d["ho"], d["wo"])),
                            levels, residual=False, chunk_range=chunk_range)

    def _unit_cycles(self, graph: HwGraph, hw, node: AccelNode, env) -> int:
        """The node's unit busy cycles (summed over its bands' and cache fills' conv descriptors)."""
        return sum(c for kind, c in self._node_entries(graph, node, env) if kind != "fetch")

    def _node_entries(self, graph: HwGraph, node: AccelNode, env) -> list[tuple[str, int]]:
        """The controller's view of the node's program words (:func:`controller_cycles`)."""
        out = []
        for item in node.seq or [("unit",)]:
            if item[0] == "fetch":
                out.append(("fetch", fetch_cycles(item[1])))
            elif item[0] == "conv":
                out.append(("wconv", self._op_cost(graph, node, env, item[1:3], item[3]).cycles))
            elif item[0] == "band":
                out.append(("unit", self._op_cost(graph, node, env, None, item[1]).cycles))
            else:
                out.append(("unit", self._op_cost(graph, node, env).cycles))
        return out

    def span_cycles(self, graph: HwGraph, first: int, count: int, env) -> int:
        """Predicted cycles of one RUN of program words ``first .. first + count - 1`` (with
        ``RUN_OVERHEAD``) on the data of ``env`` (a golden run)."""
        words = []
        for n in sorted(self.nodes, key=lambda n: n.index):
            if n.index < first + count and n.index + n.n_desc > first:
                words += [(n.index + i, e) for i, e in enumerate(self._node_entries(graph, n, env))]
        return RUN_OVERHEAD + controller_cycles([e for i, e in words if first <= i < first + count])

    def node_cycles(self, graph: HwGraph, node_name: str, env) -> int:
        """Predicted cycles of the node's program words run alone (less ``RUN_OVERHEAD``; one RUN
        per band of a banded stem): unit model + controller overhead; with cache fills, their
        fetches and conv descriptors, and the early fill of the next weight conv if this node holds
        it (:func:`controller_cycles`)."""
        node = self._node(node_name)
        runs = self.runs(node.program, per_node=True)
        return sum(self.span_cycles(graph, r.first, r.count, env) for r in runs
                   if node.index <= r.first < node.index + node.n_desc) - RUN_OVERHEAD

    def runs(self, program: str, per_node: bool = False) -> list[HostRun]:
        """The RUNs a host issues for one pass of ``program``: one for the whole program, or one per
        node (``per_node``), cut further where the host must write between two program words: a
        banded crop's next band (:class:`Band`) and a streamed positional table
        (``streamed_tables``), which share their rows with the previous band or table. The pass's
        whole inputs are written before its first run, each band or table before the run holding
        the word that reads it."""
        nodes = sorted((n for n in self.nodes if n.program == program), key=lambda n: n.index)
        band_of = {bd.node: bd for bd in self.bands.values()}
        cuts: set[int] = set()               # program words after which a run ends
        regions: dict[str, list] = {}        # rows written by the host -> [(word, write)]
        for n in nodes:
            if per_node:
                cuts.add(n.index + n.n_desc - 1)
            if n.name in self.streamed_tables:
                regions.setdefault("cst", []).append((n.index, ("table", n.name)))
            bd = band_of.get(n.name)
            for i, item in enumerate(n.seq if bd is not None else ()):
                b = item[1] if item[0] == "band" else item[3] if item[0] == "conv" else None
                if b is not None and all(w != ("band", bd.input, b) for _, w in regions.get(bd.input, ())):
                    regions.setdefault(bd.input, []).append((n.index + i, ("band", bd.input, b)))
        for uses in regions.values():   # the next write to a region waits for the run reading the last
            cuts.update(w for w, _ in uses[:-1])
        writes_at = sorted(u for uses in regions.values() for u in uses)
        first, count = self.programs[program]
        whole = tuple(("input", x) for x in self.inputs[program] if x not in self.bands and x in self.placement
                      and self.placement[x].mem != "tm")
        out, start = [], first
        for w in range(first, first + count):
            if w in cuts or w == first + count - 1:
                writes = (whole if start == first else ()) + tuple(wr for at, wr in writes_at if start <= at <= w)
                done = tuple(n.name for n in nodes if start <= n.index + n.n_desc - 1 <= w)
                out.append(HostRun(start, w - start + 1, writes, done))
                start = w + 1
        return out

    def host_writes(self, run: HostRun, inputs: dict) -> list[tuple[str, int, list[int]]]:
        """``(memory, first row, rows)`` the host writes before ``run``, from the pass's inputs
        (``{name: [T, C, H, W]}``, batch dropped): whole inputs, bands, streamed tables."""
        out = []
        for w in run.writes:
            if w[0] == "table":
                out.append(("cst", 0, self.streamed_tables[w[1]]))
                continue
            name = w[1]
            if name not in inputs:
                raise ValueError(f"the pass needs input {name!r}; given {sorted(inputs)}")
            pl = self.placement[name]
            out.append((pl.mem, pl.base, self.input_rows(name, inputs[name], w[2] if w[0] == "band" else None)))
        return out

    def input_rows(self, name: str, x: torch.Tensor, band: int | None = None) -> list[int]:
        """The rows a host writes at ``placement[name].base`` for input ``name`` (``x``: [T, C, H, W],
        batch dropped): the whole tensor, or band ``band`` of a banded input (its padded rows,
        timestep after timestep, ``t_stride`` apart)."""
        kind = self.input_kinds[name]
        if tuple(x.shape) != tuple(self.input_shapes[name]):
            raise ValueError(f"{name}: shape {list(x.shape)}, the program takes {list(self.input_shapes[name])}")
        if band is None:
            if name in self.bands:
                raise ValueError(f"{name} is written band by band (band=0..{self.bands[name].n - 1})")
            return tensor_rows(x, kind, self.lanes)
        bd = self.bands[name]
        if not 0 <= band < bd.n:
            raise ValueError(f"{name}: band {band} of {bd.n}")
        y0, rows = bd.rows_of(band)
        p = bd.pad
        xp = torch.nn.functional.pad(torch.as_tensor(x).to(torch.int64), (p, p, p, p))[:, :, y0:y0 + rows]
        if xp.shape[-1] != bd.width:
            raise ValueError(f"{name}: {x.shape[-1]} columns, the band layout has {bd.width - 2 * p}")
        per_t, stride = rows * bd.width, bd.in_rows * bd.width
        flat = tensor_rows(xp, kind, self.lanes)
        out = []
        for t in range(xp.shape[0]):
            out += flat[t * per_t:(t + 1) * per_t] + ([0] * (stride - per_t) if t < xp.shape[0] - 1 else [])
        return out


    def predicted_counters(self, graph: HwGraph, program: str, env) -> dict:
        """The accelerator's counters (``hw/accel/protocol.COUNTERS``) for one run of ``program`` on
        the data of ``env``, from the cycle model: every memory access by memory, the events, each
        unit's busy cycles. ``tests/test_accel.py`` asserts equality with the RTL's counters."""
        P, G = self.lanes, self.lanes
        net, types = graph.net, graph.net.types
        engine = ec.Engine(P)
        hw_of = {n.name: n for n in graph.nodes}
        c = dict.fromkeys(("lv_reads", "lv_writes", "st_reads", "st_writes", "tm_reads", "tm_writes", "w_reads",
                           "tab_reads", "cst_reads", "events", "conv_busy", "vec_busy", "mb_busy", "fetch_busy",
                           "ext_words", "w_writes"), 0)
        nodes = [n for n in self.nodes if n.program == program]
        for n in nodes:
            hw = hw_of[n.name]
            cost = REGISTRY[hw.kind].cost(hw, net, types, engine, env)
            d = n.desc
            if n.unit == "conv_engine":
                out_words = d["T"] * d["ho"] * d["wo"] * d["chunks"]
                if hw.kind == "retrieval":
                    m_bits = types[net.layer(hw.layers[0]).inputs[1]].bits
                    events = cost.reads["tmem"] / (P * m_bits)
                    c["tm_reads"] += events
                else:
                    events = cost.reads["weights"] / (P * net.layer(hw.layers[0]).attrs["weight_bits"])
                    c["w_reads"] += events
                if n.bands:   # one conv per band: the band's words (padding words read too)
                    words = sum(self._op_cost(graph, n, env, None, b).reads["act"] for b in range(len(n.bands))) / 24
                else:
                    words = cost.reads["act"] / (24 if hw.kind == "stem" else 3 * G)
                c["lv_reads"] += words
                c["events"] += events
                c["tab_reads"] += out_words
                c["st_reads"] += out_words if d["residual"] else 0
                c["lv_writes" if d["neuron"] else "st_writes"] += out_words
                c["conv_busy"] += self._unit_cycles(graph, hw, n, env)
                for _, _, words in n.fills:
                    c["fetch_busy"] += fetch_cycles(words)
                    c["ext_words"] += words
                    c["w_writes"] += words * EXT_DATA_BITS // (8 * P)
            elif n.unit == "vector_unit":
                mode = d["mode"]
                out_words = d["T"] * d["ho"] * d["wo"] * d["chunks"]
                reads = out_words * reads_per_word(d)
                c["lv_reads" if mode == VecMode.FUSION else "st_reads"] += reads
                c["st_reads"] += out_words if mode == VecMode.ADD else 0
                c["cst_reads"] += out_words if mode == VecMode.NEURON and d["const"] else 0
                c["lv_writes" if mode in (VecMode.NEURON, VecMode.FUSION) else "st_writes"] += out_words
                c["vec_busy"] += cost.cycles
            else:
                lines = d["T"] * d["heads"] * d["cpg"] * d["dh"]
                c["lv_reads"] += 2 * lines * d["n"]
                c["tm_writes"] += lines
                c["mb_busy"] += cost.cycles
        c = {k: int(round(v)) for k, v in c.items()}
        n_desc = sum(n.n_desc for n in nodes)
        c.update(descriptors=n_desc, prog_reads=n_desc + len(self.runs(program)),
                 run_cycles=self.run_cycles(graph, program, env))
        return c

    def run_cycles(self, graph: HwGraph, program: str, env) -> int:
        """Predicted cycles of one pass of ``program`` on the data of ``env`` (a golden run): its
        runs' (:meth:`runs`), each with ``RUN_OVERHEAD``."""
        return sum(self.span_cycles(graph, r.first, r.count, env) for r in self.runs(program))


def controller_cycles(entries: list[tuple[str, int]]) -> int:
    """Cycles of a run of program words from its first word's read to ``busy`` falling (the run's
    cycles less ``RUN_OVERHEAD``), as the controller (``hw/accel/top.py``) executes them.

    ``entries``: ``("unit", c)``, a descriptor whose unit is busy ``c`` cycles (the controller
    waits for it); ``("wconv", c)``, the same for a conv descriptor that reads the weight cache;
    ``("fetch", c)``, a FETCH whose fetch unit is busy ``c`` cycles (``fetch_cycles``), which the
    controller issues once the fetch unit is idle and does not wait for. A word takes its read
    (``READ_LATENCY`` + 1 cycles to its decode), an issue cycle (a unit counts it busy) and a
    cycle to see the unit done: ``c + DESC_OVERHEAD`` for a descriptor, ``DESC_OVERHEAD + 1`` for
    a FETCH. A weight conv with exactly one fill of this run ahead of it waits for that fill to
    complete; the run ends once the fetch unit is idle."""
    t, free, ahead = 0, 0, 0      # the next word's read; the fetch unit idle from; fills ahead
    for kind, c in entries:
        issue = t + READ_LATENCY + 1
        if kind == "fetch":
            issue = max(issue, free)
            free, ahead = issue + c, min(ahead + 1, 3)
            t = issue + 2
            continue
        if kind == "wconv":
            if ahead == 1:
                issue = max(issue, free)
            ahead = max(ahead - 1, 0)
        t = issue + c + 1
    return max(t, free)


# ---------------------------------------------------------------------------------------------
# tensor <-> memory rows

def _chunks(c: int, P: int) -> int:
    return -(-c // P)


def tensor_rows(x: torch.Tensor, kind: str, P: int) -> list[int]:
    """A tensor [T, C, H, W] (batch dropped) as memory rows: pixels (3 × uint8 per row), levels
    (``P`` × 3 bits) or stream values (``P`` × 16 bits), rows in (t, y, x, chunk) order."""
    x = torch.as_tensor(x).to(torch.int64)
    T, C, H, W = x.shape
    per, bits = (3, 8) if kind == "pixels" else (P, 3 if kind == "levels" else STREAM_BITS)
    n = _chunks(C, per)
    pad = torch.zeros(T, n * per, H, W, dtype=torch.int64)
    pad[:, :C] = x
    vals = pad.reshape(T, n, per, H, W).permute(0, 3, 4, 1, 2).reshape(-1, per).numpy()
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * i) for i, v in enumerate(r)) for r in vals]


def rows_tensor(rows: list[int], shape: tuple, kind: str, P: int) -> torch.Tensor:
    """Inverse of :func:`tensor_rows` for levels and stream values."""
    T, C, H, W = shape
    n = _chunks(C, P)
    bits = 3 if kind == "levels" else STREAM_BITS
    vals = np.array([[(r >> (bits * i)) & ((1 << bits) - 1) for i in range(P)] for r in rows], dtype=np.int64)
    if kind != "levels":
        vals = np.where(vals >= 1 << (bits - 1), vals - (1 << bits), vals)
    out = torch.from_numpy(vals).reshape(T, H, W, n, P).permute(0, 3, 4, 1, 2).reshape(T, n * P, H, W)
    return out[:, :C]


def memory_rows(mem: torch.Tensor, P: int) -> list[int]:
    """A memory ``M`` [T, heads, d_h, d_v] as template-memory lines (t, head, chunk, c)."""
    mem = torch.as_tensor(mem).to(torch.int64)
    T, heads, dh, dv = mem.shape
    cpg = _chunks(dv, P)
    mp = torch.zeros(T, heads, dh, cpg * P, dtype=torch.int64)
    mp[..., :dv] = mem
    lines = mp.reshape(T, heads, dh, cpg, P).permute(0, 1, 3, 2, 4).reshape(-1, P).numpy()
    return [sum((int(v) & ((1 << TM_BITS) - 1)) << (TM_BITS * i) for i, v in enumerate(r)) for r in lines]


def _size(shape, kind, P) -> tuple[int, int]:
    """(rows, rows per timestep) of a tensor."""
    if kind == "memory":
        T, heads, dh, dv = shape
        per_t = heads * _chunks(dv, P) * dh
    else:
        T, C, H, W = shape
        per_t = H * W * (1 if kind == "pixels" else _chunks(C, P))
    return T * per_t, per_t


MEM_OF_KIND = {"pixels": "lv", "levels": "lv", "stream": "st", "memory": "tm"}


# ---------------------------------------------------------------------------------------------
# descriptor word packing

def pack_fields(layout, values) -> int:
    """Descriptor field values (nested dicts/lists) -> the integer of a ``StructLayout``."""
    from amaranth import Shape
    from amaranth.lib import data

    def width(shape) -> int:
        return shape.size if isinstance(shape, data.Layout) else Shape.cast(shape).width

    def pack(lay, v) -> int:
        if isinstance(lay, data.StructLayout):
            out = 0
            for name, f in lay:
                out |= pack(f.shape, v.get(name, 0)) << f.offset
            return out
        if isinstance(lay, data.ArrayLayout):
            w = width(lay.elem_shape)
            return sum(pack(lay.elem_shape, v[i]) << (w * i) for i in range(min(lay.length, len(v))))
        iv, n = int(getattr(v, "value", v)), width(lay)
        if not 0 <= iv < 1 << n:
            raise CompileError(f"descriptor value {iv} does not fit {n} unsigned bits")
        return iv

    return pack(layout, values)


# ---------------------------------------------------------------------------------------------
# lowering

#: Stem output rows per band in the template pass (``lower_to_accel(stem_band_rows=...)``): at 8 the
#: shipped default's three crops take 8,442 ``lv`` rows (3 × 21 × 134) instead of 49,152, less than
#: the template pass's next peak, so its ``lv`` depth is set elsewhere (docs/accelerator.md).
STEM_BAND_ROWS = 8


#: The accelerator unit (``Accelerator(units=...)``) each hardware op's class runs on.
UNIT_OF = {"conv_engine": "conv", "vector_unit": "vec", "memory_unit": "mb"}
UNIT_NAMES = {"conv": "conv engine", "vec": "vector unit", "mb": "memory builder"}


def lower_to_accel(net: IntegerNetwork, lanes: int = 8, addr_bits: int = 16, graph: HwGraph | None = None,
                   units: tuple = UNITS, ext_weights: bool = False, cache_rows: int | None = None,
                   stem_band_rows: int | None = STEM_BAND_ROWS, stream_template_tables: bool = True) -> AccelProgram:
    """Place, describe and pack ``net`` for the accelerator (see the module docstring).

    ``units``: the units the accelerator has (``Accelerator(units=...)``); an op on a unit it
    leaves out is refused, naming the op and the unit. Fewer than 8 lanes are refused when the
    conv engine is present (the stem's 24-bit pixel word).

    ``ext_weights``: the weight lines live in external memory and ``w`` is a cache of
    ``cache_rows`` rows in two halves (default: twice the most lines one output chunk of any
    convolution needs, rounded up to whole memory banks, ``BANK_ROWS``: the cache takes the rows
    its banks have, so fills are fewer and so are the program's FETCH words: on the shipped default
    2,048 rows, 462 program words instead of 528 at 1,152 rows, 8 block RAMs less in all); a half
    smaller than one chunk's lines is refused, naming the layer.

    ``stem_band_rows``: the template pass's stem runs in bands of this many output rows when its
    output has more rows (:class:`Band`): its crops take one band's rows instead of the whole
    image's, at the price of one RUN per band and the padding words read as pixels. None: never.

    ``stream_template_tables``: the template pass's positional tables are not resident in ``cst``:
    the host writes each one at row 0 before the run that reads it (``AccelProgram.runs``), so
    ``cst`` holds the search pass's tables above one template table's rows, at the price of one RUN
    per table and the tables sent at every template pass."""
    P = lanes
    if P < 1 or (P < 8 and "conv" in units):
        raise CompileError(f"the accelerator needs at least 8 lanes, got {P}")
    graph = graph or fuse(net)[0]
    net = graph.net   # the compiler's network (its IR rewrite, compiler/fuse.py)
    progs = programs(graph)
    for hw in graph.nodes:
        u = UNIT_OF.get(REGISTRY[hw.kind].unit)
        if u is not None and u not in units:
            raise CompileError(f"{hw.name}: op {hw.kind!r} runs on the {UNIT_NAMES[u]}, which this accelerator "
                               f"configuration (units {', '.join(units)}) does not have")
    types = net.types
    images = {"w": [], "tab": [], "cst": [], "prog": []}
    weight_at: dict = {}
    placement: dict[str, Placement] = {}
    peaks = {"lv": 0, "st": 0, "tm": 0, "cst": 0, "lv2": 0, "st2": 0}

    # template slots: the template program's outputs, first in tm
    slot = 0
    for name in progs["template_update"].outputs if "template_update" in progs else ():
        rows, per_t = _size(types[name].shape, "memory", P)
        placement[name] = Placement("tm", slot, per_t)
        slot += rows
    guard = slot
    peaks["tm"] = guard

    bands = _band_plan(net, graph, progs, stem_band_rows, P) if "conv" in units else {}
    # the template pass's positional tables: written by the host before their runs, all at cst row 0
    streamed: dict[str, list] = {}
    if stream_template_tables and "template_update" in progs:
        for hw in progs["template_update"].nodes:
            first = net.layer(hw.layers[0])
            if hw.kind == "neuron" and first.op == "add_const":
                streamed[hw.name] = _size(types[first.name].shape, "stream", P)[0]
    images["cst"] = [0] * max(streamed.values(), default=0)
    sizes = {x: (types[x].shape[0] * bd.in_rows * bd.width, bd.in_rows * bd.width) for x, bd in bands.items()}

    nodes: list[AccelNode] = []
    for pname, prog in progs.items():
        _place_program(net, graph, prog, types, placement, peaks, guard, P, sizes=sizes)
        for hw in prog.nodes:
            if REGISTRY[hw.kind].view:
                continue
            unit, desc = _describe(net, hw, types, placement, images, weight_at, P, addr_bits, streamed)
            layout = {"conv_engine": desc_layout, "vector_unit": vec_desc_layout, "memory_unit": mb_desc_layout}[unit](addr_bits)
            code = {"conv_engine": Unit.CONV, "vector_unit": Unit.VEC, "memory_unit": Unit.MB}[unit].value
            bd = next((b for b in bands.values() if b.node == hw.name), None)
            node = AccelNode(hw.name, hw.kind, unit, pname, len(images["prog"]), desc, hw.output,
                             tuple(types[hw.output].shape), list(hw.layers))
            if bd is None:
                images["prog"].append(code | pack_fields(layout, desc) << 2)
            else:
                node.bands = _band_descs(desc, bd, placement[bd.input])
                node.seq = [("band", b) for b in range(bd.n)]
                images["prog"] += [code | pack_fields(layout, d) << 2 for d in node.bands]
            nodes.append(node)
    # the second read ports reach the rows of their operands, placed from row 0 in every pass
    # (only the banks holding those rows are stored twice: hw/banked_memory.py)
    second_rows = {m: peaks[m + "2"] for m in ("lv", "st")}
    w_rows = len(images["w"])
    if ext_weights:
        images["prog"], images["ext"], w_rows = _split_fills(nodes, images, P, addr_bits, cache_rows)
    first = {p: next(n.index for n in nodes if n.program == p) for p in progs}
    counts = {p: sum(n.n_desc for n in nodes if n.program == p) for p in progs}
    depths = {"prog": len(images["prog"]), "w": w_rows, "tab": len(images["tab"]),
              "cst": len(images["cst"]), "lv": peaks["lv"], "st": peaks["st"], "tm": peaks["tm"]}
    depths = {k: max(1, v) for k, v in depths.items()}
    for k, v in depths.items():
        if v > 1 << addr_bits:
            raise CompileError(f"memory {k!r} needs {v} rows, {v - (1 << addr_bits)} more than the {1 << addr_bits} "
                               f"that {addr_bits}-bit addresses reach")
    return AccelProgram(P, addr_bits, depths, images, {p: (first[p], counts[p]) for p in progs}, nodes, placement,
                        guard, {p: progs[p].inputs for p in progs}, {p: progs[p].outputs for p in progs},
                        tuple(u for u in UNITS if u in units), ext_weights,
                        second_rows, _cst_bits(images["cst"] + [r for rows in streamed.values() for r in rows], P), bands,
                        streamed, {x: types[x].kind for p in progs.values() for x in p.inputs},
                        {x: tuple(types[x].shape) for p in progs.values() for x in p.inputs})


def _split_fills(nodes: list, images: dict, P: int, A: int, cache_rows: int | None) -> tuple[list, list, int]:
    """External weights: the program with every convolution split into cache fills, the external
    image (the weight lines as 16-bit words) and the cache's rows. Sets each node's ``index``,
    ``fills`` and ``seq``; ``images["w"]`` becomes empty (the cache is filled at run time).

    The cache has two halves; a program's fills alternate between them (fill ``j`` in half
    ``j % 2``), and fill ``j + 1``'s FETCH is placed just before the conv descriptor of fill
    ``j``, so that it runs while that conv (and any vector or memory-builder descriptors after
    it) computes. It overwrites the half of fill ``j - 1``, whose conv has finished: the
    controller waits for every compute descriptor. The early FETCH belongs to the node of fill
    ``j``'s conv (its program words stay contiguous: a node run alone fetches the next weight
    conv's first fill)."""
    per_line = 8 * P // EXT_DATA_BITS
    lines = images["w"]
    ext = [(line >> (EXT_DATA_BITS * i)) & ((1 << EXT_DATA_BITS) - 1) for line in lines for i in range(per_line)]
    if len(ext) > 1 << EXT_ADDR_BITS:
        raise CompileError(f"{len(ext)} weight words exceed the external bus's {1 << EXT_ADDR_BITS}-word address range")
    fetched = [n for n in nodes if n.unit == "conv_engine" and not n.desc["tmem"]]
    for n in nodes:
        n.seq = []    # rebuilt below (a banded stem's band words become its fills' conv words)
    need = max((n.desc["w_chunk"] for n in fetched), default=1)
    cache = -(-2 * need // BANK_ROWS) * BANK_ROWS if cache_rows is None else cache_rows
    half = cache // 2
    small = next((n for n in fetched if n.desc["w_chunk"] > half), None)
    if small is not None:
        raise CompileError(f"{small.name}: one output chunk needs {small.desc['w_chunk']} weight lines, more than half "
                           f"of the {cache}-row weight cache (its two halves take alternate fills)")
    if half * per_line >= 1 << EXT_COUNT_BITS or cache > 1 << A:
        raise CompileError(f"a weight cache of {cache} rows is more than {A}-bit addresses reach, or its half more "
                           f"than one fetch moves ({(1 << EXT_COUNT_BITS) - 1} words)")
    fl, cl = fetch_desc_layout(A), desc_layout(A)
    entries: list[list] = []      # [owner node, program word, seq item]
    program, j, last_conv = None, 0, 0
    for n in nodes:
        if n.program != program:   # each program starts with fill 0 in half 0
            program, j = n.program, 0
        if n not in fetched:
            entries.append([n, images["prog"][n.index], ("unit",)])
            continue
        d = n.desc
        per_fill = max(1, half // d["w_chunk"])
        if n.bands and per_fill < d["chunks"]:
            raise CompileError(f"{n.name}: a banded stem's weights ({d['chunks']} chunks of {d['w_chunk']} lines) must "
                               f"fit half of the {cache}-row weight cache (every band reads them)")
        for a in range(0, d["chunks"], per_fill):
            b = min(d["chunks"], a + per_fill)
            words = (b - a) * d["w_chunk"] * per_line
            base = (j % 2) * half
            fetch = Unit.FETCH.value | pack_fields(fl, {"ext_addr": (d["w_base"] + a * d["w_chunk"]) * per_line,
                                                         "words": words, "row_base": base}) << 2
            if j == 0:
                entries.append([n, fetch, ("fetch", words)])
            else:   # before the previous fill's conv descriptor, in that conv's node
                entries.insert(last_conv, [entries[last_conv][0], fetch, ("fetch", words)])
            for band, dd in enumerate(n.bands) if n.bands else [(None, d)]:
                entries.append([n, Unit.CONV.value | pack_fields(cl, chunk_range_fields(dd, a, b, w_base=base)) << 2,
                                ("conv", a, b, band)])
            last_conv = len(entries) - 1
            n.fills.append((a, b, words))
            j += 1
    for pos, (owner, _, item) in enumerate(entries):
        if not owner.seq:
            owner.index = pos
        elif owner.index + len(owner.seq) != pos:
            raise AssertionError(f"{owner.name}: program words not contiguous")
        owner.seq.append(item)
    images["w"] = []
    return [w for _, w, _ in entries], ext, cache


def _place_program(net, graph, prog: Program, types, placement, peaks, guard, P, sizes=None):
    """Liveness-based placement of one program's tensors (first fit, largest buffers first or in producer order).

    The buffers an op reads through the second read port of ``lv`` or ``st``
    (:func:`_second_port_operand`) are placed first, from row 0 (``peaks[mem + "2"]`` records
    their peak), the others around them; ``peaks[mem]`` is the memory's peak. ``sizes``: ``(rows,
    rows per timestep)`` of the tensors not stored whole (a banded input, :class:`Band`)."""
    sizes = sizes or {}
    layer_node = {}
    for i, n in enumerate(prog.nodes):
        for l in n.layers:
            layer_node[l] = i
    views = {n.output: n for n in prog.nodes if REGISTRY[n.kind].view}
    # concat parts are written into the concat's buffer
    part_of: dict[str, tuple[str, int]] = {}
    for out, v in views.items():
        lay = net.layer(v.layers[0])
        if lay.op == "concat_time":
            off = 0
            for src in lay.inputs:
                if src in views or src in part_of or src not in layer_node:
                    raise CompileError(f"{out}: concat_time part {src!r} must be written by a hardware op of this pass")
                part_of[src] = (out, off)
                off += types[src].shape[0]

    def root(name):
        """The buffer a tensor lives in: itself, its concat, or a view's source."""
        if name in part_of:
            return root(part_of[name][0])
        if name in views:
            lay = net.layer(views[name].layers[0])
            if lay.op != "concat_time":
                return root(lay.inputs[0])
        return name

    last_use: dict[str, int] = {}
    first_def: dict[str, int] = {}
    for i, n in enumerate(prog.nodes):
        if not REGISTRY[n.kind].view:
            r = root(n.output)
            first_def.setdefault(r, i)
        for src in n.inputs:
            last_use[root(src)] = max(last_use.get(root(src), -1), i)
    end = len(prog.nodes)
    for o in prog.outputs:
        last_use[root(o)] = end
    for i_name in prog.inputs:
        first_def.setdefault(root(i_name), -1)

    def upsampled(name):
        if name in views:
            lay = net.layer(views[name].layers[0])
            return lay.op == "upsample" or (lay.op != "concat_time" and upsampled(lay.inputs[0]))
        return False

    second = {root(s) for s in (_second_port_operand(net, n, types, upsampled) for n in prog.nodes) if s is not None}
    # buffers: an output written over its operand joins the operand's buffer (one lifetime)
    pools = ("lv2", "st2", "tm", "lv", "st")   # the second-port operands first: the others fit around them
    group: dict[str, str] = {}                 # root -> the root whose buffer it lives in
    bufs: dict[str, list] = {}                 # that root -> [pool, rows, first step, last step]
    shape_of: dict[str, tuple[str, int]] = {}  # root -> (memory, rows per timestep)
    # the template slots (or an earlier program's memory inputs), placed already
    slots = {r for r in first_def if r in placement and placement[r].mem == "tm" and placement[r].base < guard}
    # placed already, [base, rows, first step, last step] by pool: the template slots live from
    # their producer (the template pass: its scratch may use a slot's rows before that) or the
    # pass's start (the search pass: never written there, the guard) to its end
    fixed: dict[str, list] = {"tm": [(placement[r].base, _size(types[r].shape, "memory", P)[0], first_def[r], end)
                                     for r in slots]}
    for r, d in sorted(first_def.items(), key=lambda kv: kv[1]):
        if r in slots:
            continue
        kind = types[r].kind
        rows, per_t = sizes[r] if r in sizes else _size(types[r].shape, kind, P)
        mem = MEM_OF_KIND[kind]
        pool = mem + "2" if r in second and mem in ("lv", "st") else mem
        shape_of[r] = (mem, per_t)
        src = _in_place_operand(net, prog.nodes[d], types) if d >= 0 and prog.nodes[d].output == r else None
        if src in group and last_use.get(src) == d and src not in prog.outputs:
            b = bufs[group[src]]
            if b[0] == pool and b[1] == rows and b[3] == d:
                group[r] = group[src]   # the output overwrites its operand, word by word after reading it
                b[3] = max(d, last_use.get(r, d))
                continue
        group[r] = r
        bufs[r] = [pool, rows, d, max(d, last_use.get(r, d))]
    # rows: first fit per pool, the buffers taken by size (largest first) or by first step,
    # whichever needs fewer rows; two buffers share rows only if one's last reader runs before
    # the other's producer. The other buffers of lv / st fit around their second-port operands
    # (in their rows too where those are dead), and tm's scratch around the template slots.
    base_of: dict[str, int] = {}
    for pool in pools:
        mine = [g for g, b in bufs.items() if b[0] == pool]
        best = None
        for key in (lambda g: (-bufs[g][1], bufs[g][2]), lambda g: bufs[g][2]):
            placed, bases = list(fixed.get(pool, [])), {}
            top = max([0] + [b0 + n0 for b0, n0, _, _ in placed])
            for g in sorted(mine, key=key):
                _, rows, first, last = bufs[g]
                base = 0
                for b0, n0 in sorted((b0, n0) for b0, n0, f0, l0 in placed if not (l0 < first or last < f0)):
                    if base + rows <= b0:
                        break
                    base = max(base, b0 + n0)
                placed.append((base, rows, first, last))
                bases[g] = base
                top = max(top, base + rows)
            if best is None or top < best[0]:
                best = (top, bases)
        peaks[pool] = max(peaks.get(pool, 0), best[0])
        base_of.update(best[1])
        if pool in ("lv2", "st2"):
            fixed[pool[:2]] = [(best[1][g], bufs[g][1], bufs[g][2], bufs[g][3]) for g in mine]
    for r, g in group.items():
        mem, per_t = shape_of[r]
        placement[r] = Placement(mem, base_of[g], per_t)

    # derived placements: concat parts and views, in program order
    for n in prog.nodes:
        name = n.output
        if name in part_of:      # the concat's buffer was placed above (it is a root)
            cat, off = part_of[name]
            pc = placement[cat]
            placement[name] = Placement(pc.mem, pc.base + off * pc.t_stride, pc.t_stride)
        if name in views:
            lay = net.layer(views[name].layers[0])
            src = placement.get(lay.inputs[0])
            if lay.op == "select_time":
                placement[name] = Placement(src.mem, src.base + lay.attrs["start"] * src.t_stride, src.t_stride, src.up)
            elif lay.op == "repeat_time":
                placement[name] = Placement(src.mem, src.base, 0, src.up)
            elif lay.op == "upsample":
                f = lay.attrs["factor"]
                if f & (f - 1) or f > 8:
                    raise CompileError(f"{name}: upsampling by {f} (only 2, 4 or 8)")
                placement[name] = Placement(src.mem, src.base, src.t_stride, src.up + int(math.log2(f)))


def _band_plan(net, graph, progs, band_rows, P) -> dict:
    """The template pass's host inputs read band by band: input -> :class:`Band` (a stem whose
    output has more than ``band_rows`` rows, and which is its input's only reader)."""
    prog = progs.get("template_update")
    if band_rows is None or prog is None:
        return {}
    if band_rows < 1:
        raise CompileError(f"stem_band_rows must be at least 1, got {band_rows}")
    out = {}
    for hw in prog.nodes:
        if hw.kind != "stem":
            continue
        conv = net.layer(hw.layers[0])
        x = conv.inputs[0]
        T, C, H, W = net.types[x].shape
        ho = net.types[hw.output].shape[2]
        if x not in prog.inputs or ho <= band_rows:
            continue
        readers = [n.name for n in graph.nodes if x in n.inputs]
        if readers != [hw.name]:
            raise CompileError(f"{x}: read by {', '.join(readers)}; a banded crop must be read by its stem alone")
        k, s, p = conv.attrs.get("kernel", net.params_of(conv)["weight"].shape[-1]), conv.attrs["stride"], conv.attrs["padding"]
        n = -(-ho // band_rows)
        out[x] = Band(x, hw.name, n, band_rows, (band_rows - 1) * s + k, W + 2 * p, p, s, k, ho)
    return out


def _band_descs(desc: dict, bd: Band, pin: Placement) -> list[dict]:
    """The conv descriptors of a banded stem, one per band: the whole layer's ``desc`` (its weights,
    tables, neuron, chunks) on the band's padded rows without padding, writing its output rows."""
    out = []
    per_row = desc["wo"] * desc["chunks"]
    for b in range(bd.n):
        _, rows = bd.rows_of(b)
        ho = (rows - bd.k) // bd.stride + 1
        d = dict(desc, pad=0, h=rows, w=bd.width, ho=ho, in_row=bd.width * desc["n_words"], in_base=pin.base,
                 in_t=pin.t_stride, out_base=desc["out_base"] + b * bd.out_rows * per_row)
        if (bd.width - bd.k) // bd.stride + 1 != desc["wo"]:
            raise AssertionError(f"{bd.node}: band width {bd.width} gives another output width than {desc['wo']}")
        out.append(d)
    return out


def _cst_bits(rows: list[int], P: int) -> int:
    """The fewest bits per lane (2..16) that hold every value of the positional-table rows."""
    if not rows:
        return STREAM_BITS
    values = rows_tensor(rows, (1, P, len(rows), 1), "stream", P)
    lo, hi = int(values.min()), int(values.max())
    return next(b for b in range(2, STREAM_BITS + 1) if -(1 << (b - 1)) <= lo and hi < 1 << (b - 1))


def _second_port_operand(net, hw, types, upsampled) -> str | None:
    """The input a hardware op reads through the second read port of ``lv`` or ``st``, or ``None``:
    the memory build's values ``V`` (the memory builder's ``v``), an add's operand ``b`` (the
    vector unit's; ``b`` is the upsampled operand, or the one of fewer timesteps).
    ``upsampled(name)``: whether a tensor is read through an upsampling view."""
    if hw.kind == "memory_build":
        return net.layer(hw.layers[0]).inputs[1]
    if hw.kind == "add":
        a, b = net.layer(hw.layers[0]).inputs
        T = types[hw.output].shape[0]
        if upsampled(a) or (types[b].shape[0] < T and types[a].shape[0] == T):
            a, b = b, a
        return b
    return None


def _residual(net, hw) -> str | None:
    """The residual a fused convolution adds (its ``add`` layer's input besides the requantised
    sum, the node's second layer), or ``None``."""
    layers = [net.layer(n) for n in hw.layers]
    add = next((l for l in layers if l.op == "add"), None)
    return None if add is None else next(s for s in add.inputs if s != layers[1].name)


def _in_place_operand(net, hw, types) -> str | None:
    """The operand a hardware op may overwrite with its output, or ``None``.

    A convolution's residual and an elementwise add's operand of the output's shape qualify: the
    unit reads each of their words once, for the output word at the same offset, and writes that
    output word only after the read (``hw/conv_engine.py``: ``res`` and ``out`` share the
    ``base + t·o_t + (oy·wo + ox)·chunks + chunk`` layout; ``hw/vector_unit.py``: ``a``, ``b`` and
    ``out`` likewise for an add without upsampling or a repeated timestep). The placement uses it
    when the op is the operand's last reader."""
    shape = tuple(types[hw.output].shape)
    if hw.kind == "spike_conv":
        cands = [r for r in [_residual(net, hw)] if r is not None]
    elif hw.kind == "add":
        cands = list(net.layer(hw.layers[0]).inputs)
    else:
        return None
    for c in cands:
        if tuple(types[c].shape) == shape and types[c].kind == types[hw.output].kind == "stream":
            return c
    return None


def _plain(pl: Placement, name: str, what: str) -> Placement:
    if pl.up:
        raise CompileError(f"{name}: {what} cannot read an upsampled view")
    return pl


def _describe(net, hw, types, placement, images, weight_at, P, A, streamed=None) -> tuple[str, dict]:
    """(unit, descriptor fields) of one hardware-op node; appends its parameters to the images
    (a positional table of a node in ``streamed``: into ``streamed[node]``, read from ``cst`` row 0)."""
    streamed = {} if streamed is None else streamed
    from spiketrack.sim.conv_engine_sim import _table_rows   # the one packer of table rows

    layers = [net.layer(n) for n in hw.layers]
    ops = {l.op: l for l in layers}
    neuron = ops.get("neuron")
    nfields = {"neuron": neuron is not None, "f_m": neuron.attrs["f_m"] if neuron else 8,
               "decays": neuron.attrs["decays"] if neuron else (),
               "rounding": neuron.attrs.get("rounding", "half_up") if neuron else "half_up"}
    out_t = types[hw.output]
    out_pl = placement[hw.output]
    if hw.kind in ("stem", "spike_conv"):
        conv, req = layers[0], layers[1]
        p = net.params_of(conv)
        w = np.asarray(p["weight"])
        src = conv.inputs[0]
        T, cin, h, wd = types[src].shape
        co = w.shape[0]
        groups = conv.attrs["groups"]
        dw = groups > 1 and groups == cin == co
        key = (conv.attrs.get("params_from") or conv.name, str(req.attrs["shift"]))
        if key not in weight_at:
            packed = ec.pack_conv(ec.Engine(P), w, np.asarray(p["bias"]), req.attrs["shift"], cin if dw else groups)
            chunks = -(-co // P) if dw or groups == 1 else groups * -(-(co // groups) // P)
            weight_at[key] = (len(images["w"]), len(images["tab"]))
            images["w"] += _rows(packed["weights"], 8)
            images["tab"] += _table_rows(packed["tables"], chunks, P)
        w_base, t_base = weight_at[key]
        rname = _residual(net, hw)
        res_base = None
        pin = _plain(placement[src], hw.name, "a convolution")
        T_out = out_t.shape[0]
        if rname is not None:
            rp = _plain(placement[rname], hw.name, "a residual")
            res_base = rp.base
        desc = conv_descriptor(depthwise=dw, k=conv.attrs.get("kernel", w.shape[-1]), stride=conv.attrs["stride"],
                               pad=conv.attrs["padding"], T=T_out, h=h, w=wd, c_in=cin, c_out=co, lanes=P,
                               in_base=pin.base, w_base=w_base, t_base=t_base, res_base=res_base,
                               out_base=out_pl.base, stem=hw.kind == "stem", groups=1 if dw else groups, **nfields)
        desc["in_t"] = pin.t_stride
        if rname is not None and T_out > 1 and rp.t_stride != desc["o_t"]:
            raise CompileError(f"{hw.name}: residual with {rp.t_stride} rows per timestep, the output has {desc['o_t']}")
        return "conv_engine", desc
    if hw.kind == "retrieval":
        r, req = layers[0], layers[1]
        q, mname = r.inputs
        T, C, H, W = types[q].shape
        _, heads, dh, dv = types[mname].shape
        if C != heads * dh or dh % P or dv % P:
            raise CompileError(f"{hw.name}: retrieval needs d_h = {dh} and d_v = {dv} to be multiples of {P} lanes")
        mp = placement[mname]
        t_base = len(images["tab"])
        desc = conv_descriptor(depthwise=False, k=1, stride=1, pad=0, T=T, h=H, w=W, c_in=C, c_out=heads * dv, lanes=P,
                               groups=heads, tmem=True, in_base=_plain(placement[q], hw.name, "a retrieval").base,
                               w_base=mp.base, t_base=t_base, out_base=out_pl.base, **nfields)
        images["tab"] += _table_rows(np.array([[0, req.attrs["shift"]]] * (heads * dv)), desc["chunks"], P)
        desc["in_t"] = placement[q].t_stride
        if types[mname].shape[0] != T:
            desc["w_t"] = 0 if types[mname].shape[0] == 1 else desc["w_t"]
        return "conv_engine", desc
    if hw.kind == "memory_build":
        mbl = layers[0]
        kname, vname = mbl.inputs
        T, ck, H, W = types[kname].shape
        _, heads, dh, dv = out_t.shape
        cv = types[vname].shape[1]
        N = H * W
        if dh % P or dv % P:
            raise CompileError(f"{hw.name}: memory build needs d_h = {dh} and d_v = {dv} to be multiples of {P} lanes")
        if D * D * N >= 1 << TM_BITS:
            raise CompileError(f"{hw.name}: {N} tokens could exceed the {TM_BITS}-bit template memory")
        kp, vp = placement[kname], placement[vname]
        return "memory_unit", {"T": T, "heads": heads, "dh": dh, "cpg": dv // P, "n": N, "kh": dh // P,
                               "k_base": kp.base, "k_t": kp.t_stride, "k_n": _chunks(ck, P),
                               "v_base": vp.base, "v_t": vp.t_stride, "v_n": _chunks(cv, P), "o_base": out_pl.base}
    T, C, H, W = out_t.shape
    ch = _chunks(C, P)
    base = {"mode": VecMode.NEURON, "const": 0, "half_even": 0, "T": T, "f_m": 8, "decays": decay_fields(()),
            "ho": H, "wo": W, "chunks": ch, "r_y": 1, "r_x": 1, "up": 0, "shift": 0, "a_base": 0, "a_t": H * W * ch,
            "a_row": W * ch, "a_col": ch, "a_ry": 0, "a_rx": 0, "b_base": 0, "b_t": 0, "b_row": 0,
            "c_base": 0, "o_base": out_pl.base, "o_t": H * W * ch}
    if hw.kind == "neuron":
        first = layers[0]
        src = _plain(placement[first.inputs[0]], hw.name, "a neuron")
        base.update(a_base=src.base, a_t=src.t_stride, f_m=nfields["f_m"], decays=decay_fields(nfields["decays"]),
                    half_even=int(nfields["rounding"] == "half_even"))
        if first.op == "add_const":
            const = torch.from_numpy(np.asarray(net.params_of(first)["value"])[:, 0]).to(torch.int64)
            if const.shape[0] != T:
                raise CompileError(f"{hw.name}: positional table of {const.shape[0]} timesteps for {T}")
            if hw.name in streamed:   # written by the host before its run, at row 0
                base.update(const=1, c_base=0)
                streamed[hw.name] = tensor_rows(const, "stream", P)
            else:
                base.update(const=1, c_base=len(images["cst"]))
                images["cst"] += tensor_rows(const, "stream", P)
        return "vector_unit", base
    if hw.kind == "add":
        x, y = layers[0].inputs
        b_name = _second_port_operand(net, hw, types, lambda n: placement[n].up > 0)
        a_name = x if b_name == y else y
        (a, b) = placement[a_name], placement[b_name]
        ta, tb = types[a_name].shape[0], types[b_name].shape[0]
        if a.up:
            raise CompileError(f"{hw.name}: both operands upsampled")
        wb = W >> b.up
        base.update(mode=VecMode.ADD, a_base=a.base, a_t=0 if ta < T else a.t_stride, b_base=b.base,
                    b_t=b.t_stride if tb == T else 0, b_row=wb * ch, up=b.up)
        return "vector_unit", base
    if hw.kind == "avg_pool":
        lay = layers[0]
        p = lay.attrs["size"]
        src = _plain(placement[lay.inputs[0]], hw.name, "pooling")
        wi = W * p
        base.update(mode=VecMode.POOL, r_y=p, r_x=p, shift=2 * (p.bit_length() - 1), a_base=src.base, a_t=src.t_stride,
                    a_row=p * wi * ch, a_col=p * ch, a_ry=wi * ch, a_rx=ch)
        return "vector_unit", base
    if hw.kind == "upsample_bilinear":
        lay = layers[0]
        f = lay.attrs["factor"]
        src = _plain(placement[lay.inputs[0]], hw.name, "bilinear upsampling")
        base.update(mode=VecMode.POOL, a_base=src.base, a_t=src.t_stride, **bilinear_fields(f, W // f, ch))
        return "vector_unit", base
    if hw.kind == "mul_const":
        mul, req = layers
        src = _plain(placement[mul.inputs[0]], hw.name, "a constant product")
        base.update(mode=VecMode.POOL, a_base=src.base, a_t=src.t_stride,
                    **horner_fields(csd_value(mul.attrs["terms"]), req.attrs["shift"]))
        return "vector_unit", base
    if hw.kind == "mean_fusion":
        lay = layers[0]
        src = _plain(placement[lay.inputs[0]], hw.name, "fusion")
        base.update(mode=VecMode.FUSION, T=1, r_y=types[lay.inputs[0]].shape[0], a_base=src.base, a_ry=src.t_stride,
                    a_t=0, o_t=H * W * ch)
        return "vector_unit", base
    raise CompileError(f"{hw.name}: no accelerator unit runs {hw.kind!r}")


def _rows(lines: np.ndarray, bits: int) -> list[int]:
    mask = (1 << bits) - 1
    return [sum((int(v) & mask) << (bits * i) for i, v in enumerate(r)) for r in np.asarray(lines)]

