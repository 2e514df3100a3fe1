"""Output-stationary spiking conv engine, configured at run time by a layer descriptor (§IS-4..7).

One :class:`ConvEngine` runs every spiking convolution of a network, one layer (descriptor) at a
time: the layer's geometry, bases and epilogue come from the descriptor (``i_desc``), its weights
and per-channel tables from the weight and table memories the compiler fills
(:func:`spiketrack.hw.engine_cycles.pack_conv` layout), its input spike levels from the
activation memory. No geometry or weight is an elaboration-time constant.

Dataflow (the contract of :mod:`spiketrack.hw.engine_cycles`): for each ``P``-chunk of output
channels, output row, output column and timestep (time innermost), ``P`` accumulators in
registers gather the receptive field: every valid tap's input words (``G = P`` levels of one
position) are read once; each non-zero level ``k`` of a word reads one ``P``-lane weight line and
adds ``k · w`` (shift-add, no multiplier) to the accumulators: ``max(1, nnz)`` cycles per word.
Depthwise layers run lanes over channels (one word and one weight line per tap, one cycle).
The epilogue is pipelined behind: ``+ bias``, requantise by the channel's shift (§IS-5),
``+ residual`` (§IS-6), NI-LIF over the ``T`` timesteps with the membrane in registers (§IS-7),
and one output word per (timestep, position, chunk). No partial sum goes to memory.

A descriptor runs the output chunks ``c_first .. c_last`` (the whole layer: ``0 .. chunks - 1``;
the compiler splits a layer whose weights stream from external memory into one descriptor per
weight-cache fill). ``g_first`` / ``cig_first``: the first chunk's group input word and chunk
within the group.

Address arithmetic uses only adds and compares: every product (row strides, per-chunk weight
strides) is a descriptor field the compiler computes (:func:`conv_descriptor`).

Memory ports (reads: data ``read_latency`` cycles after the address, :mod:`~spiketrack.hw.banked_memory`)
------------------------------------------------------------------
``in``: activation words, ``3·G`` bits, address ``in_base + t·in_t + iy·in_row + ix·n_words + g``.
``w``: weight lines, ``P × 8`` bits, address ``w_base + (chunk - c_first)·w_chunk + (ky·k + kx)·w_col + ci``
(conv: ``w_col = C_in``; depthwise: ``w_col = 1``, no ``ci``; grouped: per group, ``ci`` of
the group). ``tm``: template-memory lines, ``P × 12`` bits unsigned, read instead of ``w`` by a
retrieval (``R = Q·M`` is a grouped 1×1 conv, one group per head, §IS-8), with one set of lines
per timestep (``+ t·w_t``).
``tab``: one row per chunk: ``P × (24-bit bias, 6-bit shift)``, address ``t_base + chunk``.
``res``: residual words, ``P × 16`` bits, and ``out``: output words (``P × 16`` stream values or
``P × 3`` levels in the low bits), both at ``base + t·o_t + (oy·wo + ox)·chunks + chunk``.
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.arith import clamp
from spiketrack.hw.banked_memory import READ_LATENCY
from spiketrack.hw.registers import LoopCounter, copies, delay, load_while_idle
from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.nilif import NILIF_STAGES, NiLifPipeline, decay_term_layout

__all__ = ["ConvEngine", "desc_layout", "conv_descriptor", "chunk_range_fields", "decay_fields", "decay_terms", "ENGINE_COUNTERS", "FIFO_DEPTH", "BIAS_BITS",
           "STREAM_BITS", "MAX_T", "TM_BITS"]

ENGINE_COUNTERS = ("busy", "words", "events", "saturated")
FIFO_DEPTH = 4     #: fetched input words waiting for the level scanner, plus read_latency - 1
BIAS_BITS = 24     #: bias and accumulator width
STREAM_BITS = 16   #: stream values, residuals, membranes
MAX_T = 4          #: timesteps per op (decays for t = 1..3)
TM_BITS = 12       #: template-memory lanes: unsigned M values (§IS-8, <= D²·N for N <= 256 tokens)
SHIFT_BITS = 6
#: The requantisation shifts the epilogue applies: right shifts up to 31 (5 bits), left up to 15 (4 bits).
SHIFT_MAX, SHIFT_MIN = 31, -15
SHIFT_R_BITS, SHIFT_L_BITS = SHIFT_MAX.bit_length(), (-SHIFT_MIN).bit_length()


def desc_layout(addr_bits: int = 16) -> data.StructLayout:
    """The layer descriptor (one per op; every field an unsigned or signed integer)."""
    A = addr_bits
    term = data.StructLayout({"en": 1, "neg": 1, "sh": 5})
    return data.StructLayout({
        "depthwise": 1, "stem": 1, "tmem": 1, "residual": 1, "neuron": 1, "half_even": 1,
        "k": 4, "stride": 3, "pad": 3, "T": 3, "f_m": 5,
        "decays": data.ArrayLayout(data.ArrayLayout(term, 2), MAX_T - 1),
        "h": 9, "w": 9, "ho": 9, "wo": 9, "n_words": 8, "chunks": 8, "wpg": 8, "cpg": 8,
        "c_first": 8, "c_last": 8, "g_first": 8, "cig_first": 8,
        "in_base": A, "in_row": A, "in_t": A,
        "w_base": A, "w_chunk": A, "w_row": A, "w_col": A, "w_t": A,
        "t_base": A, "res_base": A, "out_base": A, "o_t": A,
    })


def decay_fields(decays) -> list:
    """The descriptor's ``decays`` field from the IR attribute (per step t = 1..T-1, a list of
    ``[sign, shift]`` terms, §IS-7): ``MAX_T - 1`` entries of two ``{en, neg, sh}`` terms."""
    out = []
    for t in range(MAX_T - 1):
        d = list(decays[t]) if t < len(decays) else []
        out.append([{"en": int(i < len(d)), "neg": int(i < len(d) and d[i][0] < 0),
                     "sh": (d[i][1] if i < len(d) else 0)} for i in range(2)])
    return out


def decay_terms(decays, t) -> list:
    """The two ``(enable, negative, shift)`` decay terms of timestep ``t`` (a signal, 1..MAX_T-1)
    from a descriptor's ``decays`` view."""
    terms = []
    for i in range(2):
        def pick(f):
            v = getattr(decays[MAX_T - 2][i], f)
            for tt in range(MAX_T - 2, 0, -1):
                v = Mux(t == tt, getattr(decays[tt - 1][i], f), v)
            return v
        terms.append((pick("en"), pick("neg"), pick("sh")))
    return terms


def conv_descriptor(*, depthwise, k, stride, pad, T, h, w, c_in, c_out, lanes, in_base=0, w_base=0, t_base=0,
                    res_base=None, out_base=0, neuron=False, f_m=8, decays=(), stem=False, groups=1,
                    tmem=False, rounding="half_up", chunk_range=None) -> dict:
    """Descriptor field values for one layer (the products the RTL must not compute).

    ``groups > 1`` (not depthwise) needs ``C_in / groups`` and ``C_out / groups`` to be multiples of
    ``lanes`` (each group's channels start a word, in the input and in the output). ``tmem``: the weight lines come from the template memory
    (unsigned ``M`` values, one set of lines per timestep: retrieval, §IS-8). ``chunk_range``
    ``(first, end)``: the engine runs output chunks ``first .. end - 1`` only (default: all); its
    outputs, tables and inputs are addressed as in the whole layer's run, its weight lines from
    ``w_base`` (the first chunk's lines: the caller offsets ``w_base``).
    """
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    chunks = -(-c_out // lanes) if groups == 1 or depthwise else groups * -(-(c_out // groups) // lanes)
    if stem and c_in != 3:
        raise ValueError(f"the stem reads 3 pixel channels (one word per position), got {c_in}")
    if groups > 1 and not depthwise and ((c_in // groups) % lanes or (c_out // groups) % lanes):
        raise ValueError(f"grouped conv needs C_in/groups = {c_in // groups} and C_out/groups = {c_out // groups} "
                         f"to be multiples of {lanes} lanes (each group starts a word)")
    n_words = chunks if depthwise else 1 if stem else -(-c_in // lanes)
    wpg = 1 if depthwise else n_words // groups
    cpg = chunks if depthwise else chunks // groups
    cig = 1 if depthwise else c_in // groups
    terms = decay_fields(decays)
    desc = {
        "depthwise": int(depthwise), "stem": int(stem), "residual": int(res_base is not None), "neuron": int(neuron),
        "half_even": int(rounding == "half_even"),
        "k": k, "stride": stride, "pad": pad, "T": T, "f_m": f_m, "decays": terms,
        "h": h, "w": w, "ho": ho, "wo": wo, "n_words": n_words, "chunks": chunks, "wpg": wpg, "cpg": cpg,
        "c_first": 0, "c_last": chunks - 1, "g_first": 0, "cig_first": 0,
        "in_base": in_base, "in_row": w * n_words, "in_t": h * w * n_words,
        "w_base": w_base, "w_chunk": k * k * cig, "w_row": k * cig, "w_col": cig,
        "w_t": chunks * k * k * cig if tmem else 0, "tmem": int(tmem),
        "t_base": t_base, "res_base": res_base or 0, "out_base": out_base, "o_t": ho * wo * chunks,
    }
    return chunk_range_fields(desc, *chunk_range) if chunk_range else desc


def chunk_range_fields(desc: dict, first: int, end: int, w_base: int | None = None) -> dict:
    """A copy of a whole layer's descriptor ``desc`` that runs only output chunks ``first ..
    end - 1``: the loop bounds, the first chunk's group input word and chunk within its group,
    and ``w_base`` (default: the whole layer's base plus ``first · w_chunk``, the first chunk's
    lines where the whole layer's lines are; a weight cache passes its own row)."""
    chunks = desc["chunks"]
    if not 0 <= first < end <= chunks:
        raise ValueError(f"chunk range {first}..{end - 1} outside the layer's {chunks} chunks")
    dw = desc["depthwise"]
    return {**desc, "c_first": first, "c_last": end - 1, "g_first": 0 if dw else first // desc["cpg"] * desc["wpg"],
            "cig_first": 0 if dw else first % desc["cpg"],
            "w_base": desc["w_base"] + first * desc["w_chunk"] if w_base is None else w_base}


def _times_small(n, x):
    """``n · x`` for a small unsigned ``n`` (<= 7) by shift-add (address arithmetic only)."""
    return Mux(n[0], x, 0) + Mux(n[1], x << 1, 0) + Mux(n[2], x << 2, 0)


def _assign(view, values: dict) -> list:
    """``eq`` statements setting the named fields of a struct view (values may be expressions)."""
    return [getattr(view, k).eq(v) for k, v in values.items()]


def _at_most(mask, n: int):
    """At most ``n`` (1 or 2) bits of ``mask`` set, by table lookups on 4-bit groups (LUT logic, no
    carry chain): two bits of a word mean one left after the current event."""
    groups = [mask[i:i + 4] for i in range(0, len(mask), 4)]
    counts = [Array([Const(min(bin(v).count("1"), 3), 2) for v in range(1 << len(gp))])[gp] for gp in groups]
    total = Const(0, 2)
    over = Const(0, 1)
    for c in counts:   # saturating sum of the group counts, flag once above n
        s = total + c
        over = over | (s > n)
        total = Mux(s > n, 3, s)[:2]
    return ~over


def _lowest(mask, width):
    """Index of the lowest set bit of ``mask`` (0 if none): a priority encoder."""
    idx = Const(0, range(width))
    for j in reversed(range(width)):
        idx = Mux(mask[j], j, idx)
    return idx


class ConvEngine(wiring.Component):
    """The conv engine (see the module docstring).

    Parameters
    ----------
    lanes : int
        ``P`` (= ``G``, the levels per activation word).
    addr_bits : int
        Width of every memory address and descriptor base/stride.

    Members
    -------
    i_desc : In(stream.Signature(desc_layout))
        One descriptor per layer; taken when the engine is idle.
    in_addr, w_addr, tm_addr, tab_addr, res_addr : Out(addr_bits)
        Read addresses (data expected ``read_latency`` cycles later).
    in_en, w_en, tm_en, tab_en, res_en : Out(1)
        The read's data is used (read enables: what a memory-access counter counts; the data
        of a cycle without its enable is never used).
    in_data : In(3·P), w_data : In(8·P), tm_data : In(12·P), tab_data : In(30·P), res_data : In(16·P)
        Read data.
    out_addr : Out(addr_bits), out_data : Out(16·P), out_en : Out(1)
        Output word writes.
    busy : Out(1)
        A layer is in progress (from the cycle its descriptor is taken to its last write).
    counters : Out(StructLayout)
        ``busy`` cycles, input ``words`` read, non-zero ``events``, ``saturated`` elements.
    """

    def __init__(self, lanes: int = 8, addr_bits: int = 16, read_latency: int = READ_LATENCY):
        self.lanes, self.addr_bits, self.read_latency = lanes, addr_bits, read_latency
        P, A = lanes, addr_bits
        super().__init__({
            "i_desc": In(stream.Signature(desc_layout(A))),
            "in_addr": Out(A), "in_data": In(3 * P), "tm_addr": Out(A),
            "in_en": Out(1), "w_en": Out(1), "tm_en": Out(1), "tab_en": Out(1), "res_en": Out(1),
            "w_addr": Out(A), "w_data": In(8 * P), "tm_data": In(TM_BITS * P),
            "tab_addr": Out(A), "tab_data": In((BIAS_BITS + SHIFT_BITS) * P),
            "res_addr": Out(A), "res_data": In(STREAM_BITS * P),
            "out_addr": Out(A), "out_data": Out(STREAM_BITS * P), "out_en": Out(1),
            "busy": Out(1),
            "counters": Out(counters_layout(ENGINE_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        P, A, L = self.lanes, self.addr_bits, self.read_latency
        FD = FIFO_DEPTH + L - 1     # the fetch round trip grows with the read latency
        m.submodules.ctr = ctr = CounterBank(ENGINE_COUNTERS, inc_widths={"saturated": 6})
        m.d.comb += self.counters.eq(ctr.counts)

        d = Signal(desc_layout(A))          # the running layer's descriptor
        setup, active = Signal(), Signal()
        take = self.i_desc.valid & ~active
        m.d.comb += self.i_desc.ready.eq(~active)

        # ---------------------------------------------------------------- per-op constants (setup cycle)
        # the loops, each end flag a register set with its counter (hw.banked_memory.LoopCounter;
        # the compares fed the step's enables and multiplexers in one cycle: conv.cig_i 13.6 ns,
        # in_c 12.7 ns on ULX3S, build r2s3; the issue stage's fed the queue pop and every
        # counter's enable, the ULX3S critical path): the generator's column, row, chunk and
        # chunk within its group; the issue stage's group word, kernel column, row and timestep
        lx, ly, lc, lcig = (LoopCounter(w, nm) for w, nm in ((9, "g_ox"), (9, "g_oy"), (8, "g_chunk"), (8, "cig_i")))
        lg, lkx, lky, lt = (LoopCounter(w, nm) for w, nm in ((8, "g"), (4, "kx_i"), (4, "ky_i"), (3, "t")))
        s_nw, s_row = Signal(A + 2), Signal(A + 2)                    # stride·n_words, stride·in_row
        p_nw, p_row = Signal(signed(A + 3)), Signal(signed(A + 3))    # -pad·n_words, -pad·in_row
        neg_pad = Signal(signed(5))
        gen_run = Signal()
        with m.If(setup):
            m.d.sync += [setup.eq(0), gen_run.eq(1),
                         *lx.bound(d.wo - 1, d.wo == 1), *ly.bound(d.ho - 1, d.ho == 1),
                         *lc.bound(d.c_last, last=d.c_first == d.c_last),
                         *lcig.bound(d.cpg - 1, d.cpg == 1, last=d.cig_first == d.cpg - 1),
                         *lg.limits(d.wpg - 1, d.wpg == 1), *lt.limits(d.T - 1, d.T == 1),
                         s_nw.eq(_times_small(d.stride, d.n_words)), s_row.eq(_times_small(d.stride, d.in_row)),
                         p_nw.eq(-_times_small(d.pad, d.n_words)), p_row.eq(-_times_small(d.pad, d.in_row)),
                         neg_pad.eq(-d.pad.as_signed())]

        # ---------------------------------------------------------------- position generator
        # Walks (chunk, output row, output column) one position per cycle into a 4-stage pipeline
        # (window clipping, offsets) and a queue; the issue stage below takes one position from the
        # queue per output position. Every stage holds one add deep of logic.
        QD = 4
        g_chunk, g_oy, g_ox = lc.i, ly.i, lx.i
        iy0, ix0 = Signal(signed(11)), Signal(signed(11))   # top-left input row / column of the window
        in_r, in_c = Signal(signed(A + 3)), Signal(signed(A + 3))   # iy0·in_row, ix0·n_words
        wchunk, o_pos = Signal(A), Signal(A)
        g_base = Signal(8)                     # first input word of the chunk's group
        rec1 = Signal(data.StructLayout({"valid": 1, "last": 1, "iy0": signed(11), "ix0": signed(11),
                                         "in_r": signed(A + 3), "in_c": signed(A + 3), "wchunk": A, "o_pos": A,
                                         "chunk": 8, "gsel": 8}))
        rec2 = Signal(data.StructLayout({"valid": 1, "last": 1, "ky_lo": 4, "kx_lo": 4, "hi_y": 5, "hi_x": 5,
                                         "in_part": A, "in_col": A, "wchunk": A, "o_pos": A, "chunk": 8}))
        rec3 = Signal(data.StructLayout({"valid": 1, "last": 1, "ny_m1": 4, "nx_m1": 4, "in_off": A, "ty": A,
                                         "tx": A, "wchunk": A, "o_pos": A, "chunk": 8}))
        entry = data.StructLayout({"last": 1, "ny_m1": 4, "nx_m1": 4, "in_off": A, "w_off": A, "o_pos": A, "chunk": 8})
        q = [Signal(entry, name=f"posq{i}") for i in range(QD)]
        q_n, q_rd, q_wr = Signal(range(QD + 1)), Signal(range(QD)), Signal(range(QD))
        q_pop = Signal()
        # occ = q_n + rec1.valid + rec2.valid + rec3.valid, kept as a register so that the step
        # condition is one LUT deep (the sum was the core clock's critical path on the ULX3S)
        occ = Signal(range(QD + 1))
        gen_step = gen_run & (occ < QD)
        m.d.sync += occ.eq(occ + gen_step - q_pop)

        # the descriptor is taken into ``d`` with no logic in between (it comes from the controller's
        # program-word register, across the device); the walk starts from ``d`` in the setup cycle,
        # before the generator's first step
        with m.If(take):
            m.d.sync += [setup.eq(1), active.eq(1)]
        with m.If(setup):
            m.d.sync += [g_chunk.eq(d.c_first), g_oy.eq(0), g_ox.eq(0),
                         iy0.eq(-d.pad.as_signed()), ix0.eq(-d.pad.as_signed()),
                         in_r.eq(-_times_small(d.pad, d.in_row)), in_c.eq(-_times_small(d.pad, d.n_words)),
                         wchunk.eq(d.w_base), o_pos.eq(d.c_first), g_base.eq(d.g_first), lcig.i.eq(d.cig_first)]
        m.d.sync += rec1.valid.eq(gen_step)
        with m.If(gen_step):
            m.d.sync += _assign(rec1, {"last": lx.last & ly.last & lc.last, "iy0": iy0, "ix0": ix0, "in_r": in_r, "in_c": in_c,
                                       "wchunk": wchunk, "o_pos": o_pos, "chunk": g_chunk,
                                       "gsel": Mux(d.depthwise, g_chunk, g_base)})
            with m.If(~lx.last):
                m.d.sync += [*lx.step(), ix0.eq(ix0 + d.stride), in_c.eq(in_c + s_nw), o_pos.eq(o_pos + d.chunks)]
            with m.Elif(~ly.last):
                m.d.sync += [*lx.restart(), *ly.step(), iy0.eq(iy0 + d.stride), ix0.eq(neg_pad),
                             in_r.eq(in_r + s_row), in_c.eq(p_nw), o_pos.eq(o_pos + d.chunks)]
            with m.Elif(~lc.last):
                m.d.sync += [*lx.restart(), *ly.restart(), *lc.step(), iy0.eq(neg_pad), ix0.eq(neg_pad),
                             in_r.eq(p_row), in_c.eq(p_nw), wchunk.eq(wchunk + d.w_chunk), o_pos.eq(g_chunk + 1)]
                with m.If(lcig.last):
                    m.d.sync += [*lcig.restart(), g_base.eq(g_base + d.wpg)]
                with m.Else():
                    m.d.sync += lcig.step()
            with m.Else():
                m.d.sync += gen_run.eq(0)

        def window(i0, n_in):
            lo = Mux(i0 < 0, -i0, 0)[:4]
            end = n_in.as_signed() - i0
            return lo, Mux(end < d.k, end, d.k)[:5]

        ky_lo, hi_y = window(rec1.iy0, d.h)
        kx_lo, hi_x = window(rec1.ix0, d.w)
        m.d.sync += [rec2.valid.eq(rec1.valid),
                     *_assign(rec2, {"last": rec1.last, "ky_lo": ky_lo, "kx_lo": kx_lo, "hi_y": hi_y, "hi_x": hi_x,
                                     "in_part": (Mux(rec1.iy0 < 0, 0, rec1.in_r) + rec1.gsel)[:A],
                                     "in_col": (Mux(rec1.ix0 < 0, 0, rec1.in_c) + d.in_base)[:A],
                                     "wchunk": rec1.wchunk, "o_pos": rec1.o_pos, "chunk": rec1.chunk})]
        m.d.sync += [rec3.valid.eq(rec2.valid),
                     *_assign(rec3, {"last": rec2.last, "ny_m1": (rec2.hi_y - rec2.ky_lo - 1)[:4],
                                     "nx_m1": (rec2.hi_x - rec2.kx_lo - 1)[:4],
                                     "in_off": (rec2.in_part + rec2.in_col)[:A],
                                     "ty": _times_small(rec2.ky_lo, d.w_row)[:A], "tx": _times_small(rec2.kx_lo, d.w_col)[:A],
                                     "wchunk": rec2.wchunk, "o_pos": rec2.o_pos, "chunk": rec2.chunk})]
        with m.If(rec3.valid):
            for i in range(QD):
                with m.If(q_wr == i):
                    m.d.sync += _assign(q[i], {"last": rec3.last, "ny_m1": rec3.ny_m1, "nx_m1": rec3.nx_m1,
                                               "in_off": rec3.in_off, "w_off": (rec3.wchunk + rec3.ty + rec3.tx)[:A],
                                               "o_pos": rec3.o_pos, "chunk": rec3.chunk})
            m.d.sync += q_wr.eq(q_wr + 1)
        with m.If(q_pop):
            m.d.sync += q_rd.eq(q_rd + 1)
        m.d.sync += q_n.eq(q_n + rec3.valid - q_pop)
        head = Signal(entry)
        for i in range(QD):
            with m.If(q_rd == i):
                m.d.comb += head.eq(q[i])

        # ---------------------------------------------------------------- issue: one input word per cycle
        cur_valid, cur_last = Signal(), Signal()
        cur_chunk = Signal(8)
        t, ky_i, kx_i, g = lt.i, lky.i, lkx.i, lg.i
        in_pos, in_rowa, in_tap, in_cur = (Signal(A, name=n) for n in ("in_pos", "in_rowa", "in_tap", "in_cur"))
        w_pos, w_rowa, w_tap, w_g = (Signal(A, name=n) for n in ("w_pos", "w_rowa", "w_tap", "w_g"))
        o_cur = Signal(A)                  # output word offset: position + t·o_t
        f1_valid, f2_valid = Signal(), Signal()
        # words in flight + in the ring + in the head register, kept as a register; the ring holds
        # FD words and the head one, so FD + 1 may be outstanding
        credit = Signal(range(FD + 2))
        issue = cur_valid & (credit <= FD)
        # (the kernel loops' bounds come with each position: the window clipped at the borders)
        last_g = d.depthwise | lg.last
        last_kx, last_ky, last_t = lkx.last, lky.last, lt.last
        group_end = last_g & last_kx & last_ky
        pos_end = group_end & last_t
        op_end = pos_end & cur_last
        m.d.comb += [self.in_addr.eq(in_cur), self.in_en.eq(issue)]
        load = (q_n != 0) & (~cur_valid | (issue & pos_end))
        m.d.comb += q_pop.eq(load)
        with m.If(load):
            m.d.sync += [cur_valid.eq(1), cur_last.eq(head.last),
                         cur_chunk.eq(head.chunk), t.eq(0), ky_i.eq(0), kx_i.eq(0), g.eq(0), o_cur.eq(head.o_pos),
                         in_pos.eq(head.in_off), in_rowa.eq(head.in_off), in_tap.eq(head.in_off), in_cur.eq(head.in_off),
                         w_pos.eq(head.w_off), w_rowa.eq(head.w_off), w_tap.eq(head.w_off), w_g.eq(head.w_off),
                         *lg.restart(), *lkx.bound(head.nx_m1, head.nx_m1 == 0),
                         *lky.bound(head.ny_m1, head.ny_m1 == 0), *lt.restart()]
        with m.Elif(issue & pos_end):
            m.d.sync += cur_valid.eq(0)
        with m.If(issue & ~pos_end):
            with m.If(~last_g):
                m.d.sync += [*lg.step(), w_g.eq(w_g + P), in_cur.eq(in_cur + 1)]
            with m.Elif(~last_kx):
                ni = in_tap + d.n_words
                nw = w_tap + d.w_col
                m.d.sync += [*lg.restart(), *lkx.step(), in_tap.eq(ni), in_cur.eq(ni), w_tap.eq(nw), w_g.eq(nw)]
            with m.Elif(~last_ky):
                ni = in_rowa + d.in_row
                nw = w_rowa + d.w_row
                m.d.sync += [*lg.restart(), *lkx.restart(), *lky.step(), in_rowa.eq(ni), in_tap.eq(ni),
                             in_cur.eq(ni), w_rowa.eq(nw), w_tap.eq(nw), w_g.eq(nw)]
            with m.Else():
                ni = in_pos + d.in_t
                nw = w_pos + d.w_t   # template-memory weights: one set of lines per timestep
                m.d.sync += [*lg.restart(), *lkx.restart(), *lky.restart(), *lt.step(), o_cur.eq(o_cur + d.o_t),
                             in_pos.eq(ni), in_rowa.eq(ni), in_tap.eq(ni), in_cur.eq(ni),
                             w_pos.eq(nw), w_rowa.eq(nw), w_tap.eq(nw), w_g.eq(nw)]

        # ---------------------------------------------------------------- fetch -> f2 (read data registered) -> FIFO
        tag = data.StructLayout({"w": A, "group_end": 1, "op_end": 1, "t": 3, "o": A, "chunk": 8})
        f1_tag = Signal(tag)
        m.d.sync += [f1_valid.eq(issue),
                     *_assign(f1_tag, {"w": Mux(d.depthwise, w_tap, w_g), "group_end": group_end, "op_end": op_end,
                                       "t": t, "o": o_cur, "chunk": cur_chunk})]
        slot = data.StructLayout({"w": 3 * P, "t": tag, "nz": P, "single": 1})
        f2 = Signal(data.StructLayout({"w": 3 * P, "t": tag}))
        f2_next = delay(m, f1_valid, L - 1, "f1v")
        m.d.sync += [f2_valid.eq(f2_next), f2.w.eq(self.in_data), f2.t.eq(delay(m, f1_tag, L - 1, "f1t"))]
        levels_in = [f2.w[3 * j:3 * j + 3] for j in range(P)]
        pixels_in = [f2.w[8 * c:8 * c + 8] for c in range(3)]     # stem word: 3 uint8 channels (§IS-11)
        f2_nz = Mux(d.stem, Cat(*[px != 0 for px in pixels_in]), Cat(*[lv != 0 for lv in levels_in]))
        # a ring of FD words (written at wp from registers: its enables do not depend on the scanner)
        # behind a head register that the scanner reads; a pop loads the head from the ring
        fe = [Signal(slot, name=f"fifo{i}") for i in range(FD)]
        wp, rp, n_ring = Signal(range(FD), name="ring_wp"), Signal(range(FD), name="ring_rp"), Signal(range(FD + 1))
        hd, hd_valid = Signal(slot, name="fifo_head"), Signal(name="head_valid")
        pop = Signal()
        new = Signal(slot)
        m.d.comb += [new.w.eq(f2.w), new.t.eq(f2.t), new.nz.eq(f2_nz), new.single.eq(_at_most(f2_nz, 1))]
        # the entry that f2 goes into, one register per entry, set a cycle ahead from f2_valid's and
        # wp's next values (each entry's ~70 flip-flops take their enable from a register, not from
        # f2_valid & (wp == i))
        wp_next = Mux(f2_valid, Mux(wp == FD - 1, 0, wp + 1), wp)
        w_sel = Signal(FD, name="ring_w_sel")
        m.d.sync += w_sel.eq(Mux(f2_next, Const(1, FD) << wp_next, 0))
        for i in range(FD):
            with m.If(w_sel[i]):
                m.d.sync += fe[i].eq(new)
        with m.If(f2_valid):
            m.d.sync += wp.eq(Mux(wp == FD - 1, 0, wp + 1))
        load_head = (~hd_valid | pop) & (n_ring != 0)
        ring_out = Signal(slot)
        for i in range(FD):
            with m.If(rp == i):
                m.d.comb += ring_out.eq(fe[i])
        with m.If(load_head):
            m.d.sync += [hd.eq(ring_out), rp.eq(Mux(rp == FD - 1, 0, rp + 1))]
        m.d.sync += [hd_valid.eq(load_head | (hd_valid & ~pop)), n_ring.eq(n_ring + f2_valid - load_head),
                     credit.eq(credit + issue - pop)]

        # ---------------------------------------------------------------- level scanner -> e1
        levels = [hd.w[3 * j:3 * j + 3] for j in range(P)]
        pixels = [hd.w[8 * c:8 * c + 8] for c in range(3)]
        started, rem, rem_single = Signal(), Signal(P), Signal()
        mask = Mux(started, rem, hd.nz)
        single = Mux(started, rem_single, hd.single)
        j = _lowest(mask, P)
        rest = mask & (mask - 1)            # the lowest set bit cleared
        is_ev = Mux(d.depthwise, 1, mask != 0)
        done_word = d.depthwise | single    # at most one non-zero level left: this cycle ends the word
        # one output word (group) per NILIF_STAGES cycles at most: the neuron's recurrence over t
        # needs that spacing (engine_cycles: a group costs max(NILIF_STAGES, its cycles))
        cool, cool_zero = Signal(range(NILIF_STAGES)), Signal(init=1)
        hold = hd.t.group_end & done_word & ~cool_zero
        have = hd_valid & ~hold
        m.d.comb += pop.eq(have & done_word)
        with m.If(have):
            m.d.sync += [started.eq(~done_word), rem.eq(rest), rem_single.eq(_at_most(mask, 2))]
        with m.If(take):
            m.d.sync += [cool.eq(0), cool_zero.eq(1)]
        with m.Elif(pop & hd.t.group_end):
            m.d.sync += [cool.eq(NILIF_STAGES - 1), cool_zero.eq(0)]
        with m.Elif(~cool_zero):
            m.d.sync += [cool.eq(cool - 1), cool_zero.eq(cool == 1)]

        e1 = Signal(data.StructLayout({"valid": 1, "ev": 1, "level": 8, "levels": 3 * P, "tag": tag}))
        lv_sel = Signal(8)
        for jj in range(P):
            with m.If(j == jj):
                m.d.comb += lv_sel.eq(levels[jj] if jj >= 3 else Mux(d.stem, pixels[jj], levels[jj]))
        e1_tag = Signal(tag)
        m.d.comb += _assign(e1_tag, {"t": hd.t.t, "o": hd.t.o, "chunk": hd.t.chunk,
                                     "group_end": have & hd.t.group_end & done_word,
                                     "op_end": have & hd.t.op_end & done_word,
                                     "w": hd.t.w + Mux(d.depthwise, 0, j)})
        m.d.sync += _assign(e1, {"valid": have, "ev": have & is_ev, "level": lv_sel, "levels": hd.w, "tag": e1_tag})

        # ---------------------------------------------------------------- e2: weight/table/residual read data
        m.d.comb += [self.w_addr.eq(e1.tag.w), self.tm_addr.eq(e1.tag.w), self.tab_addr.eq(d.t_base + e1.tag.chunk),
                     self.res_addr.eq(d.res_base + e1.tag.o),
                     self.w_en.eq(e1.valid & e1.ev & ~d.tmem), self.tm_en.eq(e1.valid & e1.ev & d.tmem),
                     self.tab_en.eq(e1.valid & e1.tag.group_end),
                     self.res_en.eq(e1.valid & e1.tag.group_end & d.residual)]
        e2 = delay(m, e1, L, "e2")       # the cycle the read data arrives
        Ba = BIAS_BITS
        TB = BIAS_BITS + SHIFT_BITS
        side = data.StructLayout({"valid": 1, "ev": 1, "tag": tag, "tab": TB * P, "res": STREAM_BITS * P})

        # e2d: the read data in registers, each lane's weight already chosen between the weight and
        # the template memory (the memories' output registers feed one select; the select comes from
        # a register copy of ``d.tmem`` per lane, loaded while the op runs: the descriptor is stable
        # from the cycle after ``take``, many cycles before the first read data)
        WS = max(8, TM_BITS + 1)
        e2d = Signal(data.StructLayout({"s": side, "k": data.ArrayLayout(8, P), "w": data.ArrayLayout(signed(WS), P)}))
        m.d.sync += _assign(e2d.s, {"valid": e2.valid, "ev": e2.ev, "tag": e2.tag, "tab": self.tab_data,
                                    "res": self.res_data})
        tmem_l = copies(m, d.tmem, P, "tmem")
        for lane in range(P):
            m.d.sync += [e2d.k[lane].eq(Mux(d.depthwise, e2.levels[3 * lane:3 * lane + 3], e2.level)),
                         e2d.w[lane].eq(Mux(tmem_l[lane], self.tm_data[TM_BITS * lane:TM_BITS * (lane + 1)].as_unsigned(),
                                            self.w_data[8 * lane:8 * lane + 8].as_signed()))]

        # e2e: e2d again, a register stage that carries the read data from beside the memories'
        # read multiplexers to the lanes' shift-add (112 endpoints of e2p above 10 ns on ULX3S
        # when e2p took e2d directly); it lengthens an op by one cycle (CONV_OVERHEAD). The levels k
        # skip it: their per-product copies below load from e2d
        e2e = Signal(data.StructLayout({"s": side, "w": data.ArrayLayout(signed(WS), P)}))
        m.d.sync += [e2e.s.eq(e2d.s), e2e.w.eq(e2d.w)]

        # e2p, e3: k·w by shift-add over two stages (§IS-4: 1·w, 2·w = w << 1, 3·w = (w << 1) + w,
        # 4·w = w << 2; the stem's pixel p: Σ_β p_β · (w << β), its bit planes added, §IS-11)
        # (k from a register copy per lane and partial product, loaded with e2e: one k bit fed
        # the adder-input LUTs of all four products, 110 late e2p endpoints on build r2s3)
        e2p = Signal(data.StructLayout({"s": side, "part": data.ArrayLayout(data.ArrayLayout(signed(Ba), 4), P)}))
        m.d.sync += e2p.s.eq(e2e.s)
        for lane in range(P):
            w = e2e.w[lane]
            kq = copies(m, e2d.k[lane], 4, f"k{lane}_")
            for q in range(4):
                k = kq[q]
                m.d.sync += e2p.part[lane][q].eq(Mux(k[2 * q], w << (2 * q), 0) + Mux(k[2 * q + 1], w << (2 * q + 1), 0))
        e3 = Signal(data.StructLayout({"s": side, "prod": data.ArrayLayout(signed(Ba), P)}))
        m.d.sync += e3.s.eq(e2p.s)
        for lane in range(P):
            pt = e2p.part[lane]
            m.d.sync += e3.prod[lane].eq((pt[0] + pt[1]) + (pt[2] + pt[3]))

        # ---------------------------------------------------------------- e3: accumulate (registers)
        # ``ev`` and ``group_end`` are 0 in a cycle without a word (gated at e1), so the
        # accumulators need no enable: acc <- group_end ? 0 : acc + (ev ? k·w : 0). r0 takes the
        # group's sum and its table row every cycle (valid only with r0.valid), r1 adds the bias.
        acc = Signal(data.ArrayLayout(signed(Ba), P))
        r0 = Signal(data.StructLayout({"valid": 1, "tag": tag, "s": data.ArrayLayout(signed(Ba), P),
                                       "tab": TB * P, "res": STREAM_BITS * P}))
        m.d.sync += [r0.valid.eq(e3.s.tag.group_end), r0.tag.eq(e3.s.tag), r0.tab.eq(e3.s.tab), r0.res.eq(e3.s.res)]
        # ev and group_end as a register copy per lane, loaded with e3 (each drives one lane's 24
        # accumulator bits)
        ev_c = copies(m, e2p.s.ev, P, "ev")
        ge_c = copies(m, e2p.s.tag.group_end, P, "ge")
        for lane in range(P):
            s = (acc[lane] + Mux(ev_c[lane], e3.prod[lane], 0))[:Ba].as_signed()
            m.d.sync += [acc[lane].eq(Mux(ge_c[lane], 0, s)), r0.s[lane].eq(s)]
        r1 = Signal(data.StructLayout({"valid": 1, "tag": tag, "x": data.ArrayLayout(signed(Ba + 1), P),
                                       "shift": data.ArrayLayout(signed(SHIFT_BITS), P),
                                       "half": data.ArrayLayout(unsigned(32), P),
                                       "res": data.ArrayLayout(signed(STREAM_BITS), P)}))
        m.d.sync += [r1.valid.eq(r0.valid), r1.tag.eq(r0.tag)]
        for lane in range(P):
            row = r0.tab[TB * lane:TB * (lane + 1)]
            sh_row = row[Ba:].as_signed()
            sp_row = Mux(sh_row > 0, sh_row, 0).as_unsigned()[:5]
            m.d.sync += [r1.x[lane].eq(r0.s[lane] + row[:Ba].as_signed()), r1.shift[lane].eq(sh_row),
                         r1.half[lane].eq(Mux(sh_row > 0, Const(1, unsigned(32)) << (sp_row - 1)[:5], 0)),
                         r1.res[lane].eq(r0.res[STREAM_BITS * lane:STREAM_BITS * (lane + 1)].as_signed())]

        # ---------------------------------------------------------------- requantise + residual (§IS-5, §IS-6)
        # q1: y + 2**(s-1) (s > 0); q1b: >> s; q2: << -s; q3: clamp; r2: + residual, clamp
        B = STREAM_BITS
        lanes_of = lambda shape: data.ArrayLayout(shape, P)
        q1 = Signal(data.StructLayout({"valid": 1, "tag": tag, "y": lanes_of(signed(33)), "sp": lanes_of(SHIFT_R_BITS),
                                       "sn": lanes_of(SHIFT_L_BITS), "res": lanes_of(signed(B))}))
        m.d.sync += [q1.valid.eq(r1.valid), q1.tag.eq(r1.tag)]
        for lane in range(P):
            sh = r1.shift[lane]
            sp = Mux(sh > 0, sh, 0).as_unsigned()[:SHIFT_R_BITS]
            m.d.sync += [q1.y[lane].eq(r1.x[lane] + r1.half[lane]), q1.sp[lane].eq(sp),
                         q1.sn[lane].eq(Mux(sh < 0, -sh, 0).as_unsigned()[:SHIFT_L_BITS]), q1.res[lane].eq(r1.res[lane])]
        q2 = Signal(data.StructLayout({"valid": 1, "tag": tag, "v": lanes_of(signed(33 + 15)), "res": lanes_of(signed(B))}))
        q1b = Signal.like(q1)               # the right shift, then (q2) the left shift
        m.d.sync += q1b.eq(q1)
        for lane in range(P):
            m.d.sync += q1b.y[lane].eq(q1.y[lane] >> q1.sp[lane])
        q1 = q1b
        m.d.sync += [q2.valid.eq(q1.valid), q2.tag.eq(q1.tag), q2.res.eq(q1.res)]
        for lane in range(P):
            m.d.sync += q2.v[lane].eq(q1.y[lane] << q1.sn[lane])
        q3 = Signal(data.StructLayout({"valid": 1, "tag": tag, "q": lanes_of(signed(B)), "sat": P,
                                       "res": lanes_of(signed(B))}))
        m.d.sync += [q3.valid.eq(q2.valid), q3.tag.eq(q2.tag), q3.res.eq(q2.res)]
        for lane in range(P):
            qv, sq = clamp(q2.v[lane], B)
            m.d.sync += [q3.q[lane].eq(qv), q3.sat[lane].eq(q2.valid & sq)]
        r2 = Signal(data.StructLayout({"valid": 1, "tag": tag, "x": lanes_of(signed(B)), "sat": P}))
        m.d.sync += [r2.valid.eq(q3.valid), r2.tag.eq(q3.tag)]
        for lane in range(P):
            qr, sr = clamp(q3.q[lane] + q3.res[lane], B)
            m.d.sync += [r2.x[lane].eq(Mux(d.residual, qr, q3.q[lane])), r2.sat[lane].eq(q3.valid & d.residual & sr)]
        # r2's step, a cycle ahead of r2: a register loaded from q2's step (q2 -> q3 -> r2 never
        # stall, and the descriptor holds while the op's words pass), so the NI-LIF's per-lane copies
        # load from a register, not from the step decode
        terms_next = Signal(data.ArrayLayout(decay_term_layout(), 2))
        for i, term in enumerate(decay_terms(d.decays, q2.tag.t)):
            m.d.sync += [terms_next[i].en.eq(term[0]), terms_next[i].neg.eq(term[1]), terms_next[i].sh.eq(term[2])]

        # ---------------------------------------------------------------- NI-LIF over T (§IS-7), hw/nilif.py
        m.submodules.nilif = nl = NiLifPipeline(P, data.StructLayout({"op_end": 1, "addr": A}), B)
        m.d.comb += [nl.i_valid.eq(r2.valid), nl.i_t.eq(r2.tag.t), nl.i_update.eq(d.neuron), nl.i_x.eq(r2.x),
                     nl.i_terms_next.eq(terms_next), nl.i_carry.op_end.eq(r2.valid & r2.tag.op_end),
                     nl.i_carry.addr.eq(d.out_base + r2.tag.o), nl.f_m.eq(d.f_m), nl.half_even.eq(d.half_even)]
        lv_word = Cat(*[nl.o_k[lane] for lane in range(P)])
        st_word = Cat(*[nl.o_x[lane] for lane in range(P)])
        m.d.comb += [self.out_en.eq(nl.o_valid), self.out_addr.eq(nl.o_carry.addr),
                     self.out_data.eq(Mux(nl.o_update, lv_word, st_word))]
        done = nl.o_valid & nl.o_carry.op_end
        with m.If(done):
            m.d.sync += active.eq(0)
        # the descriptor loads in every idle cycle (so in the take cycle), its clock enables from
        # register copies of ~active, one per group of bits (hw.banked_memory.load_while_idle)
        load_while_idle(m, take, done, [(d, self.i_desc.payload)])

        sat_flags = Signal(3 * P)
        m.d.sync += sat_flags.eq(Cat(q3.sat, r2.sat, nl.o_sat))
        popcnt = sum((sat_flags[i].as_unsigned() for i in range(3 * P)), Const(0, 6))
        m.d.comb += [
            self.busy.eq(active | take),
            ctr.inc.busy.eq(active | take),
            ctr.inc.words.eq(f1_valid),
            ctr.inc.events.eq(e1.valid & e1.ev),   # depthwise: every word is one (vector) event
            ctr.inc.saturated.eq(popcnt),
        ]
        return m
