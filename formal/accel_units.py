"""(c) widths and saturation, (e) counters of the accelerator's units (conv engine, vector unit,
memory builder: the run-time-configured units of ``hw/accel/top.py``).

Each harness drives the unit in any environment (:func:`~spiketrack.formal.harness.under_proof`:
every input free each cycle) and assumes only what its geometry string states: the descriptors
offered describe that geometry, and for the value proofs the data read are in the declared ranges
(levels ``<= D``). Read data are paired with their read by the unit's port contract: the data
``read_latency`` cycles after a cycle with the read enable (``a_en``, ``k_en``, ``in_en``) are the
data of that read.

* (c) values: the vector unit's ADD words equal ``clamp(a + b)`` and the memory builder's line
  writes equal ``Σ_n k·v``, each computed here from the words read, in registers wider than the
  unit's (no product, sum or accumulator wraps);
* (c) saturation counted exactly: ``counters.saturated`` of the conv engine and of the vector unit
  equals the number of clamps, each recomputed here from the value its clamp stage receives
  (internal registers read by name), for any descriptor and data;
* (e) the units have no stream output and never wait for memory, so there is no ``stall_in`` or
  ``stall_out``: their counter contract is ``busy`` (and ``reads``/``words``/``events``) equal to
  the cycle model of :mod:`spiketrack.hw.engine_cycles` (``conv_cost``, ``vector_cost``,
  ``memory_build_cost``), summed over every op since reset.

Counts are compared :data:`~spiketrack.hw.counters.COUNTER_LAG` cycles after ``busy`` falls (the
``saturated`` increment of the conv engine and vector unit passes one more register, so
``COUNTER_LAG - 1`` cycles, which the older units' harnesses use, are too early for it).

The units run with their memories at the top's read latency (:data:`~spiketrack.hw.banked_memory.READ_LATENCY`,
their default), as they ship. The harnesses with a ``read_latency`` argument run their unit at
another latency if asked (the (e) models' overheads follow it: ``CONV_OVERHEAD = 26 + 2·L``,
``VECTOR_OVERHEAD = 14 + L``, ``MB_OVERHEAD = 5 + L``); the registered proofs do not.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.hdl import Assert, Assume
from amaranth.lib import data

from spiketrack.formal.harness import (any_environment, cycles_since_busy, elaborate_with_probes, signal_named,
                                       submodule, under_proof)
from spiketrack.hw.banked_memory import READ_LATENCY
from spiketrack.hw.conv_engine import TM_BITS
from spiketrack.hw.counters import COUNTER_LAG
from spiketrack.quant.golden.neuron import D

__all__ = ["CONV_ANY", "CONV_POSITIONS", "VEC_ADD", "VEC_ANY", "VEC_ANY_DESC", "MB_SMALL", "MB_ANY", "conv_saturation",
           "conv_counters", "vec_add_saturation", "vec_saturation", "vec_counters", "mb_accumulate", "mb_counters"]

# The geometries at the top's read latency (``hw.banked_memory.READ_LATENCY``), as the units ship.
_LAT = f"read latency {READ_LATENCY}"
CONV_ANY = "P=4 lanes, 6-bit addresses; any descriptor, any data"
CONV_POSITIONS = (f"P=4 lanes, 6-bit addresses, {_LAT}; 1x1 conv, a 1x2 map of 1 input word per "
                  "position or a 1x1 map of 1 or 2 words, one chunk, T=1; any input data")
VEC_ADD = f"P=2 lanes, 6-bit addresses, {_LAT}; ADD ops, T=1..2, 1x1 or 1x2 map, one chunk; any 16-bit operands"
VEC_ANY_DESC = f"P=2 lanes, 6-bit addresses, {_LAT}; any descriptor, any data"
VEC_ANY = (f"P=2 lanes, 6-bit addresses, {_LAT}; every mode, T=1..2, 1x1 or 1x2 map, one chunk, window "
           "1..2 x 1..2; POOL's bil (up <= 2) and horner (r_y = 1) variants")
MB_SMALL = f"P=2 lanes, 6-bit addresses, {_LAT}; T=1, 1 head, d_h=2 lines, 1 value chunk, N=1..4 tokens; levels <= 4"
MB_ANY = f"P=2 lanes, 6-bit addresses, {_LAT}; T, heads, d_h, value chunks, N each 1..2, at most 8 token steps per op"

HI, LO = (1 << 15) - 1, -(1 << 15)   # the 16-bit stream range (STREAM_BITS)


def _later(m: Module, value, cycles: int, name: str):
    """``value`` delayed by ``cycles`` registers (reset value before that)."""
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_{i}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _descriptors(m: Module, dut, fields: dict) -> None:
    """Environment: every descriptor offered has ``fields``: an int is the value, a pair a range."""
    p = dut.i_desc.payload
    for name, v in fields.items():
        f = getattr(p, name)
        ok = (f >= v[0]) & (f <= v[1]) if isinstance(v, tuple) else f == v
        with m.If(dut.i_desc.valid):
            m.d.comb += Assume(ok, f"env.desc_{name}")


def _settled(m: Module, dut):
    """High once ``busy`` has been low for :data:`COUNTER_LAG` cycles (every count of the ops
    before has reached the counters)."""
    idle = cycles_since_busy(m, dut.busy)
    return ~dut.busy & (idle >= COUNTER_LAG)


def _clamp(v):
    return Mux(v < LO, LO, Mux(v > HI, HI, v)), (v < LO) | (v > HI)


# ---------------------------------------------------------------------------------------------- conv engine

def _conv(hw, read_latency: int = READ_LATENCY):
    return hw.ConvEngine(lanes=4, addr_bits=6, read_latency=read_latency)


def conv_saturation(hw) -> Module:
    """(c) ``counters.saturated`` counts exactly the clamps of the epilogue: the lanes whose
    requantised value (the requantiser's shifted value, before its clamp) leaves the 16-bit range,
    plus, in residual ops, the lanes whose clamped value plus residual leaves it, plus the NI-LIF
    pipeline's membrane clamps (its ``o_sat`` port). Computed here from the values the two clamp
    stages receive (the unit's ``q2`` and ``q3`` registers, read by name and viewed with the
    layouts below: a changed layout raises), independently of the unit's flags and popcount.
    Any descriptor, any data."""
    m = Module()
    dut = hw.ConvEngine(lanes=4, addr_bits=6)   # the memories' read latency of the top
    P, A = dut.lanes, dut.addr_bits
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    tag = data.StructLayout({"w": A, "group_end": 1, "op_end": 1, "t": 3, "o": A, "chunk": 8})
    lanes = lambda shape: data.ArrayLayout(shape, P)
    q2 = data.View(data.StructLayout({"valid": 1, "tag": tag, "v": lanes(signed(48)), "res": lanes(signed(16))}),
                   signal_named(body, "q2"))
    q3 = data.View(data.StructLayout({"valid": 1, "tag": tag, "q": lanes(signed(16)), "sat": P,
                                      "res": lanes(signed(16))}), signal_named(body, "q3"))
    d = data.View(hw.desc_layout(A), signal_named(body, "d"))
    nl = submodule(body, "nilif")
    flags = []
    for i in range(P):   # per lane: the requantise clamp, the residual clamp, the membrane clamp
        flags.append((q2.valid & _clamp(q2.v[i])[1]).as_unsigned())
        v = Signal(signed(17), name=f"ref_res_sum{i}")
        m.d.comb += v.eq(q3.q[i] + q3.res[i])
        flags.append((q3.valid & d.residual & _clamp(v)[1]).as_unsigned())
        flags.append(nl.o_sat[i].as_unsigned())
    _count_exactly(m, dut, flags)
    return m


def _count_exactly(m, dut, flags):
    """``counters.saturated`` equals the number of ``flags`` raised since reset, once settled."""
    expect = Signal(8)
    m.d.sync += expect.eq(expect + sum(flags))
    with m.If(_settled(m, dut)):
        m.d.comb += Assert(dut.counters.saturated[:8] == expect, "counters.saturated_exact")


def _all(conds):
    out = Const(1)
    for c in conds:
        out = out & c
    return out


def _nnz(word, lanes: int):
    """Non-zero 3-bit levels of a word."""
    return sum(((word[3 * j:3 * j + 3] != 0).as_unsigned() for j in range(lanes)), Const(0, 4))


def conv_counters(hw, read_latency: int = READ_LATENCY) -> Module:
    """(e) ``busy``, ``words`` and ``events`` equal ``engine_cycles.conv_cost``'s model, summed over
    the ops since reset: per op ``CONV_OVERHEAD`` plus, per output word (group: one position here),
    ``Σ max(1, nnz)`` over its input words, at least ``GROUP_MIN`` except for the op's first word;
    ``words`` the input words read, ``events`` their non-zero levels. The model's cycles are
    computed here from the input words as they are read (any data)."""
    from spiketrack.hw.engine_cycles import CONV_OVERHEAD, GROUP_MIN

    dut = _conv(hw, read_latency)
    overhead = CONV_OVERHEAD - 2 * (READ_LATENCY - read_latency)   # the model's 26 + 2 * read latency
    P, L = dut.lanes, dut.read_latency
    m = under_proof(dut)
    _descriptors(m, dut, dict(depthwise=0, stem=0, tmem=0, k=1, stride=1, pad=0, T=1, h=1, w=(1, 2), ho=1,
                              wo=(1, 2), n_words=(1, 2), chunks=1, cpg=1))
    p = dut.i_desc.payload
    with m.If(dut.i_desc.valid):
        m.d.comb += [Assume(p.wo == p.w, "env.desc_wo"), Assume(p.wpg == p.n_words, "env.desc_wpg"),
                     Assume((p.wo == 1) | (p.n_words == 1), "env.desc_two_words")]
    take = dut.i_desc.valid & dut.i_desc.ready
    n_words = Signal(2)
    first, wi = Signal(), Signal(2)
    group = Signal(8)                      # cycles of the current output word so far
    busy, words, events = Signal(32), Signal(32), Signal(32)
    in_arr = _later(m, dut.in_en, L, "in_arr")
    nnz = _nnz(dut.in_data, P)
    c = Mux(nnz == 0, 1, nnz)
    g = group + c
    cost = Mux(first | (g >= GROUP_MIN), g, GROUP_MIN)
    with m.If(take):
        m.d.sync += [n_words.eq(p.n_words), first.eq(1), wi.eq(0), group.eq(0), busy.eq(busy + overhead)]
    with m.Elif(in_arr):
        m.d.sync += [words.eq(words + 1), events.eq(events + nnz)]
        with m.If(wi == n_words - 1):
            m.d.sync += [wi.eq(0), group.eq(0), first.eq(0), busy.eq(busy + cost)]
        with m.Else():
            m.d.sync += [wi.eq(wi + 1), group.eq(g)]
    ctr = dut.counters
    with m.If(_settled(m, dut)):
        m.d.comb += [Assert(ctr.busy == busy, "counters.busy_model"), Assert(ctr.words == words, "counters.words_model"),
                     Assert(ctr.events == events, "counters.events_model")]
    return m


# ---------------------------------------------------------------------------------------------- vector unit

def _vec(hw, read_latency: int = READ_LATENCY):
    return hw.VectorUnit(lanes=2, addr_bits=6, read_latency=read_latency)


def vec_add_saturation(hw, read_latency: int = READ_LATENCY) -> Module:
    """(c) ADD ops: each word written equals ``clamp(a + b)`` per lane, computed here from the two
    words read; ``counters.saturated`` equals the number of clamped lanes."""
    dut = _vec(hw, read_latency)
    P, L = dut.lanes, dut.read_latency
    m = under_proof(dut)
    _descriptors(m, dut, dict(mode=hw.VecMode.ADD, const=0, T=(1, 2), ho=1, wo=(1, 2), chunks=1, r_y=1, r_x=1))
    take = dut.i_desc.valid & dut.i_desc.ready
    a_arr = _later(m, dut.a_en, L, "a_arr")   # an ADD reads a and b together (b_en with a_en)
    n_in, n_out = Signal(2), Signal(2)
    expect = [Signal(16 * P, name=f"ref_word{j}") for j in range(4)]
    n_sat = Signal(8)
    word, sats = [], []
    for i in range(P):
        a = dut.a_data[16 * i:16 * i + 16].as_signed()
        b = dut.b_data[16 * i:16 * i + 16].as_signed()
        s = Signal(signed(17), name=f"ref_sum{i}")
        m.d.comb += s.eq(a + b)
        v, sat = _clamp(s)
        word.append(v[:16])
        sats.append(sat.as_unsigned())
    with m.If(take):
        m.d.sync += [n_in.eq(0), n_out.eq(0)]
    with m.Else():
        with m.If(a_arr):
            m.d.sync += [n_in.eq(n_in + 1), n_sat.eq(n_sat + sum(sats))]
            for j in range(4):
                with m.If(n_in == j):
                    m.d.sync += expect[j].eq(Cat(*word))
        with m.If(dut.out_en):
            m.d.sync += n_out.eq(n_out + 1)
    for j in range(4):
        with m.If(dut.out_en & (n_out == j)):
            m.d.comb += Assert(dut.out_data == expect[j], "out.exact_value")
    with m.If(_settled(m, dut)):
        m.d.comb += Assert(dut.counters.saturated[:8] == n_sat, "counters.saturated_exact")
    return m


def vec_saturation(hw, read_latency: int = READ_LATENCY) -> Module:
    """(c) ``counters.saturated`` counts exactly the clamps of every mode: the lanes whose sum
    (ADD, or NEURON with the positional table) leaves the 16-bit range, the POOL lanes whose
    requantised window sum leaves it, and the NI-LIF pipeline's membrane clamps (its ``o_sat``
    port). Computed here from the values the clamp stages receive (the unit's ``v1b`` and ``v2``
    registers, read by name and viewed with the layouts below: a changed layout raises),
    independently of the unit's flags and popcount. Any descriptor, any data."""
    m = Module()
    dut = _vec(hw, read_latency)
    P, A = dut.lanes, dut.addr_bits
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    lanes = lambda shape: data.ArrayLayout(shape, P)
    head = {"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes(signed(16))}
    v1 = data.View(data.StructLayout({**head, "sum": lanes(signed(17)), "yh": lanes(signed(33)), "fbits": lanes(D)}),
                   signal_named(body, "v1b"))
    v2 = data.View(data.StructLayout({**head, "added": lanes(signed(16)), "pool": lanes(signed(48)), "fused": lanes(3),
                                      "sat": P}), signal_named(body, "v2"))
    d = data.View(hw.vec_desc_layout(A), signal_named(body, "d"))
    Mode = hw.VecMode
    adds = (d.mode == Mode.ADD) | ((d.mode == Mode.NEURON) & d.const)
    nl = submodule(body, "nilif")
    flags = []
    for i in range(P):   # per lane: the add clamp, the pooling clamp, the membrane clamp
        flags += [(v1.valid & adds & _clamp(v1.sum[i])[1]).as_unsigned(),
                  (v2.valid & (d.mode == Mode.POOL) & _clamp(v2.pool[i])[1]).as_unsigned(),
                  nl.o_sat[i].as_unsigned()]
    _count_exactly(m, dut, flags)
    return m


def vec_counters(hw, read_latency: int = READ_LATENCY) -> Module:
    """(e) ``busy`` and ``reads`` equal ``engine_cycles.vector_cost``'s model summed over the ops
    since reset: per op ``VECTOR_OVERHEAD + words · R`` cycles, ``R`` as ``vector_unit.reads_per_word``:
    ``NEURON_WORD_CYCLES`` (NEURON), 1 (ADD), ``r_y·r_x`` (POOL), ``(2·2**up)²`` (POOL, ``bil``),
    ``HORNER_STEPS`` (POOL, ``horner``), ``r_y = T_in`` (FUSION); ``words = T_out·ho·wo·chunks``
    (``T_out = 1`` for FUSION); ``reads`` of ``a`` ``words`` for NEURON, ``words · R`` otherwise.
    The POOL variants' descriptors as ``bilinear_fields`` / ``horner_fields`` make them: ``up <= 2``
    (upsampling by at most 4) with ``bil``, ``r_y = 1`` with ``horner`` (its 8 steps are the
    ``r_x`` loop; ``r_y`` would repeat them)."""
    from spiketrack.hw.engine_cycles import NEURON_WORD_CYCLES, VECTOR_OVERHEAD

    dut = _vec(hw, read_latency)
    overhead = VECTOR_OVERHEAD - (READ_LATENCY - read_latency)   # the model's 14 + read latency
    m = under_proof(dut)
    _descriptors(m, dut, dict(T=(1, 2), ho=1, wo=(1, 2), chunks=1, r_y=(1, 2), r_x=(1, 2)))
    p = dut.i_desc.payload
    Mode = hw.VecMode
    pool = p.mode == Mode.POOL
    with m.If(dut.i_desc.valid & pool):
        m.d.comb += [Assume(~p.bil | (p.up <= 2), "env.desc_bil_up"),
                     Assume(~p.horner | p.bil | (p.r_y == 1), "env.desc_horner_r_y")]
    take = dut.i_desc.valid & dut.i_desc.ready
    t_out = Mux(p.mode == Mode.FUSION, 1, p.T)
    words = Signal(4)
    m.d.comb += words.eq(t_out * p.wo)
    taps = Signal(4)                      # bilinear: 2·2**up reads per axis
    m.d.comb += taps.eq(Const(2, 4) << p.up)
    r_pool = Mux(p.bil, taps * taps, Mux(p.horner, hw.HORNER_STEPS, p.r_y * p.r_x))
    r = Signal(7)
    m.d.comb += r.eq(Mux(p.mode == Mode.NEURON, NEURON_WORD_CYCLES, Mux(p.mode == Mode.ADD, 1,
                                                                       Mux(pool, r_pool, p.r_y))))
    reads_per_word = Mux(p.mode == Mode.NEURON, 1, r)
    busy, reads = Signal(32), Signal(32)
    with m.If(take):
        m.d.sync += [busy.eq(busy + overhead + words * r), reads.eq(reads + words * reads_per_word)]
    ctr = dut.counters
    with m.If(_settled(m, dut)):
        m.d.comb += [Assert(ctr.busy == busy, "counters.busy_model"), Assert(ctr.reads == reads, "counters.reads_model")]
    return m


# ---------------------------------------------------------------------------------------------- memory builder

def _mb(hw, read_latency: int = READ_LATENCY):
    return hw.MemoryBuilder(lanes=2, addr_bits=6, read_latency=read_latency)


def mb_accumulate(hw, read_latency: int = READ_LATENCY) -> Module:
    """(c) Each template-memory line written equals ``Σ_n k_n · v_n`` (``k_n``: level ``c`` of
    token ``n``'s key word, ``c`` the line's key channel; ``v_n``: the value word's levels),
    computed here in wide registers from the words read: no product or accumulator wraps for
    levels ``<= D`` (each product ``<= D² = 16`` needs the unit's 5-bit product registers)."""
    dut = _mb(hw, read_latency)
    P, L = dut.lanes, dut.read_latency
    m = under_proof(dut)
    _descriptors(m, dut, dict(T=1, heads=1, dh=2, cpg=1, kh=1, n=(1, 4)))
    take = dut.i_desc.valid & dut.i_desc.ready
    n_tok = Signal(3)
    with m.If(take):
        m.d.sync += n_tok.eq(dut.i_desc.payload.n)
    arr = _later(m, dut.k_en, L, "kv_arr")
    with m.If(arr):
        m.d.comb += Assume(_all((dut.k_data[3 * j:3 * j + 3] <= D) & (dut.v_data[3 * j:3 * j + 3] <= D)
                                for j in range(P)), "env.level_in_range")
    tok, line, n_out = Signal(3), Signal(1), Signal(1)
    sums = [Signal(16, name=f"ref_sum{j}") for j in range(P)]
    expect = [[Signal(16, name=f"ref_line{c}_{j}") for j in range(P)] for c in range(2)]
    k = Mux(line, dut.k_data[3:6], dut.k_data[0:3])   # key channel c = line: lane c of key word 0
    prods = [k * dut.v_data[3 * j:3 * j + 3] for j in range(P)]
    with m.If(take):
        m.d.sync += [tok.eq(0), line.eq(0), n_out.eq(0), *[s.eq(0) for s in sums]]
    with m.Else():
        with m.If(arr):
            with m.If(tok == n_tok - 1):
                m.d.sync += [tok.eq(0), line.eq(line + 1), *[s.eq(0) for s in sums]]
                for c in range(2):
                    with m.If(line == c):
                        m.d.sync += [expect[c][j].eq(sums[j] + prods[j]) for j in range(P)]
            with m.Else():
                m.d.sync += [tok.eq(tok + 1), *[sums[j].eq(sums[j] + prods[j]) for j in range(P)]]
        with m.If(dut.out_en):
            m.d.sync += n_out.eq(n_out + 1)
    with m.If(dut.out_en):
        for j in range(P):
            lane = dut.out_data[TM_BITS * j:TM_BITS * (j + 1)]
            m.d.comb += Assert(lane == Mux(n_out, expect[1][j], expect[0][j]), "out.exact_sum")
    return m


def mb_counters(hw, read_latency: int = READ_LATENCY) -> Module:
    """(e) ``busy`` and ``reads`` equal ``engine_cycles.memory_build_cost``'s model summed over
    the ops since reset: per op ``MB_OVERHEAD + steps`` cycles and ``steps`` reads,
    ``steps = T · heads · cpg · d_h · N``."""
    from spiketrack.hw.engine_cycles import MB_OVERHEAD

    dut = _mb(hw, read_latency)
    overhead = MB_OVERHEAD - (READ_LATENCY - read_latency)   # the model's 5 + read latency
    m = under_proof(dut)
    _descriptors(m, dut, dict(T=(1, 2), heads=(1, 2), dh=(1, 2), cpg=(1, 2), n=(1, 2)))
    p = dut.i_desc.payload
    steps = Signal(6)
    m.d.comb += steps.eq(p.T * p.heads * p.cpg * p.dh * p.n)
    with m.If(dut.i_desc.valid):
        m.d.comb += Assume(steps <= 8, "env.desc_steps")
    take = dut.i_desc.valid & dut.i_desc.ready
    busy, reads = Signal(32), Signal(32)
    with m.If(take):
        m.d.sync += [busy.eq(busy + overhead + steps), reads.eq(reads + steps)]
    ctr = dut.counters
    with m.If(_settled(m, dut)):
        m.d.comb += [Assert(ctr.busy == busy, "counters.busy_model"), Assert(ctr.reads == reads, "counters.reads_model")]
    return m
