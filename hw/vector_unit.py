"""Vector unit: the element-wise ops of the network, configured at run time by a descriptor.

Modes (one output word of ``P`` lanes per ``R`` cycles, ``R`` reads of the input memory ``a``):

* ``NEURON`` (§IS-6, §IS-7): ``x = sat(a [+ c])`` (``c``: the positional table, memory ``c``),
  then NI-LIF over ``T`` with the membrane in registers (time innermost): levels out. One read per
  word, ``R = NILIF_STAGES`` cycles (the spacing of the pipelined recurrence, ``hw/nilif.py``).
* ``ADD`` (§IS-6, §IS-10): ``sat(a + b)``; ``a`` may be one timestep broadcast over ``T``
  (``a_t = 0``), ``b`` may be read through nearest-neighbour upsampling by ``2**up``. ``R = 1``.
* ``POOL`` (§IS-10): the ``p × p`` window sum of ``a``, requantised by ``shift`` (``2·log2 p``). ``R = p²``.
  Two variants of its read sequence share the reduction, requantisation and clamp:

  - ``bil`` (§IS-13): bilinear upsampling by ``p = 2**up`` (2 or 4). Each output reads the
    ``2p × 2p`` grid ``x[row(ry), col(rx)]``, ``row(ry) = lo`` for ``ry < w_lo`` and ``hi`` after
    (columns the same): every tap is read ``w_y·w_x`` times, so the window sum is the exact
    ``Σ w_y·w_x·x`` with no multiplier; requantised by ``2·log2(2p)``. ``R = (2p)²``. The
    sequencer keeps, per axis, ``w_lo`` (odd, ``p - 1`` at the border, ``-2`` per output, ``+2p``
    when it wraps past 1, where ``lo``/``hi`` step one input on) and whether ``lo``/``hi`` are
    clamped at the border.
  - ``horner`` (§IS-12): ``x · m`` for a constant ``1 <= m <= 255``: the same word is read
    :data:`HORNER_STEPS` = 8 times, ``acc ← 2·acc + b_j · x`` (binary Horner: a doubling and an
    add per cycle, no multiplier), then requantised by ``shift``. ``b_j`` (``mbits`` bit ``j``) is
    bit ``7 - j`` of ``m' = m << (8 - bits(m))``; the ``8 - bits(m)`` extra doublings are added to
    the requantisation shift, which leaves the result exact (:func:`horner_fields`). ``R = 8``.
* ``FUSION`` (§IS-10): compare-only mean of ``T_in`` timesteps of levels. ``R = T_in``.

The epilogue is pipelined (read data registered, reduction, add/round, clamp/shift, the NI-LIF
input chosen by mode, then the NI-LIF pipeline that every mode passes through); no stage holds a
variable shift of the membrane.

Word layout of every tensor: ``base + t·(ho·wo·chunks) + (y·w + x)·chunks + chunk``, ``P`` lanes
(16-bit stream values, or 3-bit levels in the low bits). Exact cycles:
``hw/engine_cycles.vector_cost`` (``R`` per output word, plus :data:`VECTOR_OVERHEAD`).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.arith import at_least, clamp, times_const
from spiketrack.hw.banked_memory import READ_LATENCY
from spiketrack.hw.registers import LoopCounter, copies, delay, load_while_idle
from spiketrack.hw.conv_engine import MAX_T, STREAM_BITS, _assign, decay_terms
from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.nilif import NILIF_STAGES, NiLifPipeline, decay_term_layout
from spiketrack.quant.golden.neuron import D

__all__ = ["VectorUnit", "VecMode", "vec_desc_layout", "VECTOR_COUNTERS", "HORNER_STEPS", "horner_fields",
           "bilinear_fields", "reads_per_word"]

VECTOR_COUNTERS = ("busy", "reads", "saturated")
HORNER_STEPS = 8     #: reads (cycles) per output word of a Horner product: constants up to 255


class VecMode(enum.Enum, shape=2):
    NEURON = 0
    ADD = 1
    POOL = 2
    FUSION = 3


def vec_desc_layout(addr_bits: int = 16) -> data.StructLayout:
    A = addr_bits
    term = data.StructLayout({"en": 1, "neg": 1, "sh": 5})
    return data.StructLayout({
        "mode": VecMode, "const": 1, "half_even": 1, "T": 3, "f_m": 5,
        "bil": 1, "horner": 1, "mbits": 8,                    # POOL variants: bilinear reads, Horner product
        "decays": data.ArrayLayout(data.ArrayLayout(term, 2), MAX_T - 1),
        "ho": 9, "wo": 9, "chunks": 8, "r_y": 3, "r_x": 3,     # reduction window (POOL), or r_y = T_in (FUSION)
        "up": 2, "shift": 6,
        "a_base": A, "a_t": A, "a_row": A, "a_col": A,        # a: per output t, per output row / column
        "a_ry": A, "a_rx": A,                                  # a: per reduction row / column step
        "b_base": A, "b_t": A, "b_row": A,
        "c_base": A, "o_base": A, "o_t": A,
    })


def horner_fields(m: int, shift: int) -> dict:
    """Descriptor fields of ``requant(x · m, shift)`` (§IS-12, §IS-5) in the ``horner`` variant:
    ``mbits`` (bit ``j``: the bit of ``m`` added at step ``j``, most significant first, ``m``
    shifted up to 8 bits) and the requantisation shift plus those extra doublings. ``x · m'`` stays
    within the 24-bit accumulator for 16-bit ``x``; the shift field is 6 bits, signed."""
    if not 1 <= m <= (1 << HORNER_STEPS) - 1:
        raise ValueError(f"the vector unit multiplies by constants 1..{(1 << HORNER_STEPS) - 1}, got {m}")
    extra = HORNER_STEPS - m.bit_length()
    mp = m << extra
    s = shift + extra
    if not -32 <= s <= 31:
        raise ValueError(f"requantisation shift {s} outside the 6-bit field")
    return {"horner": 1, "mbits": sum(((mp >> (HORNER_STEPS - 1 - j)) & 1) << j for j in range(HORNER_STEPS)),
            "shift": s & 63, "r_y": 1, "r_x": 1, "a_ry": 0, "a_rx": 0}


def bilinear_fields(p: int, w_in: int, chunks: int) -> dict:
    """Descriptor fields of bilinear ``p``× upsampling (§IS-13) of a stream ``w_in`` words wide per
    channel chunk (besides ``a_base``, ``a_t``): ``p`` = 2 or 4, requantised by ``2·log2(2p)``."""
    if p not in (2, 4):
        raise ValueError(f"the vector unit upsamples bilinearly by 2 or 4, got {p}")
    return {"bil": 1, "up": p.bit_length() - 1, "shift": 2 * (2 * p).bit_length() - 2, "a_row": w_in * chunks,
            "a_col": chunks, "a_ry": w_in * chunks, "a_rx": chunks}


def reads_per_word(desc: dict) -> int:
    """Reads of ``a`` (= cycles) per output word that the unit's loops make for a descriptor."""
    mode = VecMode(getattr(desc["mode"], "value", desc["mode"]))
    if mode == VecMode.POOL and desc.get("bil"):
        if desc["up"] not in (1, 2):    # the unit's loop bound is 3 bits: 2 << 3 would truncate
            raise ValueError(f"bilinear descriptor: up must be 1 or 2 (2x or 4x upsampling), got {desc['up']}")
        return (2 << desc["up"]) ** 2
    if mode == VecMode.POOL and desc.get("horner"):
        if desc.get("r_y", 1) != 1:     # the unit would repeat the Horner steps r_y times
            raise ValueError(f"constant-product (Horner) descriptor: r_y must be 1, got {desc['r_y']}")
        return HORNER_STEPS
    if mode == VecMode.POOL:
        return desc["r_y"] * desc["r_x"]
    return desc["r_y"] if mode == VecMode.FUSION else 1


class VectorUnit(wiring.Component):
    """The vector unit (see the module docstring).

    Members
    -------
    i_desc : In(stream.Signature(vec_desc_layout))
    a_addr, b_addr, c_addr : Out(addr_bits); a_data, b_data, c_data : In(16·P)
        Reads (data ``read_latency`` cycles after the address, :mod:`~spiketrack.hw.banked_memory`).
    a_en, b_en, c_en : Out(1)
        The read's data is used (read enables, counted as memory accesses).
    out_addr : Out(addr_bits), out_data : Out(16·P), out_en : Out(1)
    busy : Out(1)
    counters : Out(StructLayout)  ``busy``, ``reads`` (of ``a``), ``saturated``.
    """

    def __init__(self, lanes: int = 8, addr_bits: int = 16, read_latency: int = READ_LATENCY):
        self.lanes, self.addr_bits, self.read_latency = lanes, addr_bits, read_latency
        P, A, B = lanes, addr_bits, STREAM_BITS
        super().__init__({
            "i_desc": In(stream.Signature(vec_desc_layout(A))),
            "a_addr": Out(A), "a_data": In(B * P), "b_addr": Out(A), "b_data": In(B * P),
            "c_addr": Out(A), "c_data": In(B * P),
            "a_en": Out(1), "b_en": Out(1), "c_en": Out(1),
            "out_addr": Out(A), "out_data": Out(B * P), "out_en": Out(1),
            "busy": Out(1), "counters": Out(counters_layout(VECTOR_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        P, A, B, L = self.lanes, self.addr_bits, STREAM_BITS, self.read_latency
        m.submodules.ctr = ctr = CounterBank(VECTOR_COUNTERS, inc_widths={"saturated": 5})
        m.d.comb += self.counters.eq(ctr.counts)
        d = Signal(vec_desc_layout(A))
        setup, running, active = Signal(), Signal(), Signal()
        take = self.i_desc.valid & ~active
        m.d.comb += self.i_desc.ready.eq(~active)

        # ---------------------------------------------------------------- sequencer (one read per cycle)
        # the loops (innermost rx, then ry, t, ox, oy, chunk), each end flag a register set with its
        # counter (hw.banked_memory.LoopCounter): the compares fed the choice of every address
        # cursor's next value in one cycle
        lrx, lry, lt, lox, loy, lch = (LoopCounter(w, nm) for w, nm in
                                       ((3, "rx"), (3, "ry"), (3, "t"), (9, "ox"), (9, "oy"), (8, "chunk")))
        rx, ry, t, ox, oy, chunk = (lp.i for lp in (lrx, lry, lt, lox, loy, lch))
        uy, ux = Signal(4), Signal(4)                     # position inside the upsampling block
        a_cpos, a_rpos, a_row0, a_t0 = Signal(A), Signal(A), Signal(A), Signal(A)
        a_cur = Signal(A)
        b_cpos, b_row0, b_t0 = Signal(A), Signal(A), Signal(A)
        o_pos, o_t0 = Signal(A), Signal(A)
        b_cur, c_cpos, c_cur = Signal(A), Signal(A), Signal(A)    # b_t0 + b_cpos; c_base + o_pos; c_cpos + o_t0
        # base + chunk + 1 of each cursor: the next chunk's first address, kept in a register that
        # steps with the chunk (a three-operand sum fed the cursors' next-value choice: 12.3 ns on ULX3S)
        a_nch, b_nch, c_nch = Signal(A, name="a_nch"), Signal(A, name="b_nch"), Signal(A, name="c_nch")
        neuron = d.mode == VecMode.NEURON
        n_r_y = Mux(d.mode == VecMode.POOL, d.r_y, Mux(d.mode == VecMode.FUSION, d.r_y, 1))
        n_r_x = Mux(d.mode == VecMode.POOL, d.r_x, Mux(neuron, NILIF_STAGES, 1))   # neuron: read at the last step
        T_out = Mux(d.mode == VecMode.FUSION, 1, d.T)
        taps_m1 = (Const(2, 4) << d.up) - 1               # bilinear: 2p reads per axis
        # per-op loop bounds, registered in the setup cycle after the descriptor is taken
        nrx_m1, up_m1 = lrx.m1, Signal(4)
        bil, hor = Signal(), Signal()                     # the POOL variants (module docstring)
        # bilinear state per axis (§IS-13): w_lo, lo / hi not clamped, inputs left before hi clamps;
        # registered flags so that no compare lies on an address adder's path: s (the next read of
        # this output steps from lo to hi), s0 (the same at the output's first read), mv (lo steps
        # one input on at the next output)
        byw, bxw, by_lo, by_hi, bx_lo, bx_hi = Signal(3), Signal(3), Signal(), Signal(), Signal(), Signal()
        by_left, bx_left, n_in_y, n_in_x = Signal(9), Signal(9), Signal(9), Signal(9)
        sy, sy0, my, sx, sx0, mx = Signal(), Signal(), Signal(), Signal(), Signal(), Signal()

        def bil_reset(ax, n, p_m1):
            w, lo, hi, left, s_, s0, mv = ax
            return [w.eq(p_m1), lo.eq(0), hi.eq(1), left.eq(n), s_.eq(0), s0.eq(0), mv.eq(0)]

        def bil_next(ax):
            """One output on along an axis (lo steps when ``mv``); the next w_lo is 1 iff w_lo is 3."""
            w, lo, hi, left, s_, s0, mv = ax
            wrap, at3 = w == 1, w == 3
            s_new = bil & at3 & lo & hi
            return [w.eq(Mux(wrap, nrx_m1, w - 2)), lo.eq(lo | wrap), hi.eq(hi & ~(wrap & (left == 1))),
                    left.eq(left - wrap), s_.eq(s_new), s0.eq(s_new), mv.eq(at3 & lo)]

        def bil_read(ax, r):
            """The read index ``r`` of this output steps on to ``r + 1``."""
            w, lo, hi, left, s_, s0, mv = ax
            return s_.eq(bil & (r + 2 == w) & lo & hi)

        yax = (byw, by_lo, by_hi, by_left, sy, sy0, my)
        xax = (bxw, bx_lo, bx_hi, bx_left, sx, sx0, mx)

        with m.If(setup):
            pool = d.mode == VecMode.POOL
            p_m1 = (Const(1, 4) << d.up) - 1
            loops = {"nrx": lrx, "nry": lry, "tout": lt, "wo": lox, "ho": loy, "ch": lch}
            bounds = {n: Signal(lp.width, name=f"{n}_v") for n, lp in loops.items()}
            m.d.comb += [bounds["nrx"].eq(Mux(pool & d.bil, taps_m1, Mux(pool & d.horner, 7, n_r_x - 1))),
                         bounds["nry"].eq(Mux(pool & d.bil, taps_m1, n_r_y - 1)), bounds["tout"].eq(T_out - 1),
                         bounds["wo"].eq(d.wo - 1), bounds["ho"].eq(d.ho - 1), bounds["ch"].eq(d.chunks - 1)]
            zero = {n: b == 0 for n, b in bounds.items()}
            m.d.sync += [a_nch.eq(d.a_base + 1), b_nch.eq(d.b_base + 1), c_nch.eq(d.c_base + 1)]
            m.d.sync += [setup.eq(0), running.eq(1), bil.eq(pool & d.bil), hor.eq(pool & d.horner), up_m1.eq(p_m1),
                         *(st for n, lp in loops.items() for st in lp.bound(bounds[n], zero[n])),
                         *bil_reset(yax, n_in_y, p_m1), *bil_reset(xax, n_in_x, p_m1)]
        last_rx, last_ry, last_t, last_ox, last_oy, last_ch = (lp.last for lp in (lrx, lry, lt, lox, loy, lch))
        word_end = last_rx & last_ry
        op_end = word_end & last_t & last_ox & last_oy & last_ch
        up_last_x = ux == up_m1
        up_last_y = uy == up_m1
        m.d.comb += [self.a_addr.eq(a_cur), self.b_addr.eq(b_cur), self.c_addr.eq(c_cur)]

        with m.If(take):
            m.d.sync += [setup.eq(1), active.eq(1), chunk.eq(0), oy.eq(0), ox.eq(0), t.eq(0), ry.eq(0),
                         rx.eq(0), uy.eq(0), ux.eq(0), b_t0.eq(0), o_pos.eq(0), o_t0.eq(0)]
        # the descriptor and the cursors it starts load in every idle cycle (so in the take cycle),
        # their clock enables from register copies of ~active (hw.banked_memory.load_while_idle); the
        # sequencer moves the cursors only while running
        p = self.i_desc.payload
        done = Signal()
        loads = [(d, p), (a_cpos, p.a_base), (a_rpos, p.a_base), (a_row0, p.a_base), (a_t0, p.a_base),
                 (a_cur, p.a_base), (b_cpos, p.b_base), (b_row0, p.b_base), (b_cur, p.b_base), (c_cpos, p.c_base),
                 (c_cur, p.c_base), (n_in_y, p.ho >> p.up), (n_in_x, p.wo >> p.up)]
        load_while_idle(m, take, done, loads)
        issue = running
        read = issue & (~neuron | last_rx)
        m.d.comb += [self.a_en.eq(read), self.b_en.eq(issue & (d.mode == VecMode.ADD)),
                     self.c_en.eq(read & neuron & d.const)]
        with m.If(issue):
            with m.If(~last_rx):
                m.d.sync += [*lrx.step(),
                             a_cur.eq(a_cur + Mux(neuron | (bil & ~sx), 0, d.a_rx)), bil_read(xax, rx)]
            with m.Elif(~last_ry):
                nr = a_rpos + Mux(bil & ~sy, 0, d.a_ry)
                m.d.sync += [*lrx.restart(), *lry.step(),
                             a_rpos.eq(nr), a_cur.eq(nr), sx.eq(sx0), bil_read(yax, ry)]
            with m.Elif(~last_t):
                m.d.sync += [sx.eq(sx0), sy.eq(sy0)]
                nt = a_t0 + d.a_t
                m.d.sync += [*lrx.restart(), *lry.restart(), *lt.step(),
                             a_t0.eq(nt), a_rpos.eq(nt), a_cur.eq(nt),
                             b_t0.eq(b_t0 + d.b_t), b_cur.eq(b_cur + d.b_t), o_t0.eq(o_t0 + d.o_t),
                             c_cur.eq(c_cur + d.o_t)]
            with m.Else():
                m.d.sync += [*lrx.restart(), *lry.restart(), *lt.restart(), b_t0.eq(0), o_t0.eq(0)]
                with m.If(~last_ox):
                    m.d.sync += bil_next(xax) + [sy.eq(sy0)]
                    na = a_cpos + Mux(bil & ~mx, 0, d.a_col)
                    nc = c_cpos + d.chunks
                    nb = Mux(up_last_x, b_cpos + d.chunks, b_cpos)
                    m.d.sync += [*lox.step(),
                                 a_cpos.eq(na), a_t0.eq(na), a_rpos.eq(na), a_cur.eq(na),
                                 o_pos.eq(o_pos + d.chunks), ux.eq(Mux(up_last_x, 0, ux + 1)), b_cpos.eq(nb),
                                 b_cur.eq(nb), c_cpos.eq(nc), c_cur.eq(nc)]
                with m.Elif(~last_oy):
                    m.d.sync += bil_next(yax) + bil_reset(xax, n_in_x, up_m1)
                    na = a_row0 + Mux(bil & ~my, 0, d.a_row)
                    nb = Mux(up_last_y, b_row0 + d.b_row, b_row0)
                    nc = c_cpos + d.chunks
                    m.d.sync += [*lox.restart(), *loy.step(),
                                 a_row0.eq(na), a_cpos.eq(na), a_t0.eq(na), a_rpos.eq(na),
                                 a_cur.eq(na), o_pos.eq(o_pos + d.chunks), ux.eq(0),
                                 uy.eq(Mux(up_last_y, 0, uy + 1)), b_row0.eq(nb), b_cpos.eq(nb), b_cur.eq(nb),
                                 c_cpos.eq(nc), c_cur.eq(nc)]
                with m.Elif(~last_ch):
                    m.d.sync += bil_reset(xax, n_in_x, up_m1) + bil_reset(yax, n_in_y, up_m1)
                    na, nb, nc = a_nch, b_nch, c_nch
                    m.d.sync += [a_nch.eq(a_nch + 1), b_nch.eq(b_nch + 1), c_nch.eq(c_nch + 1)]
                    m.d.sync += [*lox.restart(), *loy.restart(), *lch.step(), a_row0.eq(na), a_cpos.eq(na), a_t0.eq(na),
                                 a_rpos.eq(na), a_cur.eq(na), o_pos.eq(chunk + 1), ux.eq(0), uy.eq(0),
                                 b_row0.eq(nb), b_cpos.eq(nb), b_cur.eq(nb), c_cpos.eq(nc), c_cur.eq(nc)]
                with m.Else():
                    m.d.sync += running.eq(0)

        # ---------------------------------------------------------------- read data -> reduction
        tag = data.StructLayout({"valid": 1, "first": 1, "end": 1, "op_end": 1, "hb": 1, "t": 3, "o": A})
        s1 = Signal(tag)
        m.d.sync += _assign(s1, {"valid": issue, "first": Mux(neuron, 1, (rx == 0) & (ry == 0)), "end": word_end,
                                 "op_end": op_end, "hb": ~hor | d.mbits.bit_select(rx, 1), "t": t, "o": o_t0 + o_pos})
        s1d = Signal(data.StructLayout({"tag": tag, "a": B * P, "b": B * P, "c": B * P}))   # read data registered
        s1 = delay(m, s1, L - 1, "s1")     # the cycle the read data arrives
        m.d.sync += [s1d.tag.eq(s1), s1d.tag.valid.eq(s1.valid & (~neuron | s1.end)),
                     s1d.a.eq(self.a_data), s1d.b.eq(self.b_data), s1d.c.eq(self.c_data)]
        lane = lambda word, i: word[B * i:B * (i + 1)].as_signed()
        lev = lambda word, i: word[3 * i:3 * i + 3]
        lanes_of = lambda shape: data.ArrayLayout(shape, P)
        # per-op mode flags, registered in the setup cycle (no mode decode on a datapath)
        is_add, is_pool, is_fus = Signal(), Signal(), Signal()
        with m.If(setup):
            m.d.sync += [is_add.eq(d.mode == VecMode.ADD), is_pool.eq(d.mode == VecMode.POOL),
                         is_fus.eq(d.mode == VecMode.FUSION)]
        # s1e: the value each lane adds, chosen and registered before the reduction's adder; the
        # choice (a level, a lane value or 0) comes from a register pair per lane, loaded with s1d
        # (one shared decode of hb and the mode fanned out to every lane's 16 bits: 12.5 ns on ULX3S)
        s1e = Signal(data.StructLayout({"tag": tag, "v": lanes_of(signed(B)), "b": B * P, "c": B * P}))
        m.d.sync += [s1e.tag.eq(s1d.tag), s1e.b.eq(s1d.b), s1e.c.eq(s1d.c)]
        use_lev = copies(m, s1.hb & is_fus, P, "use_lev")
        use_lane = copies(m, s1.hb & ~is_fus, P, "use_lane")
        for i in range(P):
            m.d.sync += s1e.v[i].eq(Mux(use_lev[i], lev(s1d.a, i), Mux(use_lane[i], lane(s1d.a, i), 0)))
        acc = Signal(lanes_of(signed(B + 8)))
        r2 = Signal(data.StructLayout({"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes_of(signed(B + 8)),
                                       "b": lanes_of(signed(B)), "c": lanes_of(signed(B))}))
        st = s1e.tag
        m.d.sync += _assign(r2, {"valid": st.valid & st.end, "op_end": st.valid & st.op_end, "t": st.t, "o": st.o})
        # the reduction's controls as a register copy per lane (each drives one lane's 24 adder
        # bits and accumulator enables): first / valid loaded with s1e (equal to s1e.tag's), the
        # per-op Horner flag from the setup cycle's register
        first_c = copies(m, s1d.tag.first, P, "first")
        valid_c = copies(m, s1d.tag.valid, P, "valid")
        hor_c = copies(m, hor, P, "hor")
        for i in range(P):
            v = s1e.v[i]
            sm = Mux(first_c[i], v, Mux(hor_c[i], acc[i] << 1, acc[i]) + v)      # Horner: acc <- 2·acc + [bit]·x
            with m.If(valid_c[i]):
                m.d.sync += acc[i].eq(sm)
            m.d.sync += [r2.x[i].eq(sm), r2.b[i].eq(lane(s1e.b, i)), r2.c[i].eq(lane(s1e.c, i))]

        # per-op constants (registered from the descriptor): pooling round/shift, fusion thresholds
        sh = d.shift.as_signed()
        # the pooling shifts' amounts: a register copy per lane (each drives one lane's shifter)
        sp = Mux(sh > 0, sh, 0).as_unsigned()[:5]
        sp_c = copies(m, sp, P, "sp_c")
        sn_c = copies(m, Mux(sh < 0, -sh, 0).as_unsigned()[:4], P, "sn_c")
        half_c = Signal(unsigned(32))
        fthr = [Signal(8, name=f"fthr{j}") for j in range(1, D + 1)]
        m.d.sync += [half_c.eq(Mux(sh > 0, Const(1, unsigned(32)) << (sp - 1)[:5], 0))]
        m.d.sync += [fthr[j - 1].eq(times_const(d.r_y, 2 * j - 1)) for j in range(1, D + 1)]

        # v1: x + b (add) or x + c (positional table), x + 2**(s-1) (pooling), fusion compares
        v1 = Signal(data.StructLayout({"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes_of(signed(B)),
                                       "sum": lanes_of(signed(B + 1)), "yh": lanes_of(signed(33)),
                                       "fbits": lanes_of(D)}))
        m.d.sync += _assign(v1, {"valid": r2.valid, "op_end": r2.op_end, "t": r2.t, "o": r2.o})
        # the fusion compares as carry chains (hw.arith.at_least); the ADD / table choice from a
        # register copy of is_add per lane
        add_c = copies(m, is_add, P, "add_c")
        for i in range(P):
            x = r2.x[i]
            m.d.sync += [v1.x[i].eq(x[:B]), v1.sum[i].eq(x[:B].as_signed() + Mux(add_c[i], r2.b[i], r2.c[i])),
                         v1.yh[i].eq(x + half_c),
                         v1.fbits[i].eq(Cat(*(at_least(x << 1, fthr[j - 1]) for j in range(1, D + 1))))]
        # v1b: the pooled value shifted right; v2: clamp the sum, shift the pooled value left, count
        # the fusion thresholds passed
        v1b = Signal.like(v1)
        m.d.sync += v1b.eq(v1)
        for i in range(P):
            m.d.sync += v1b.yh[i].eq(v1.yh[i] >> sp_c[i])
        v1 = v1b
        v2 = Signal(data.StructLayout({"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes_of(signed(B)),
                                       "added": lanes_of(signed(B)), "pool": lanes_of(signed(33 + 15)),
                                       "fused": lanes_of(3), "sat": P}))
        m.d.sync += _assign(v2, {"valid": v1.valid, "op_end": v1.op_end, "t": v1.t, "o": v1.o, "x": v1.x})
        add_sat = v1.valid & ((neuron & d.const) | is_add)
        for i in range(P):
            added, s_add = clamp(v1.sum[i], B)
            m.d.sync += [v2.added[i].eq(added), v2.pool[i].eq(v1.yh[i] << sn_c[i]), v2.sat[i].eq(add_sat & s_add),
                         v2.fused[i].eq(sum((v1.fbits[i][j].as_unsigned() for j in range(D)), Const(0, 3)))]
        # v2c: the pooled value clamped; v3: the NI-LIF input chosen by mode, registered so that the
        # clamp and the mode multiplexer do not share a cycle with each other or the NI-LIF's first stage
        v2c = Signal(data.StructLayout({"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes_of(signed(B)),
                                        "added": lanes_of(signed(B)), "pooled": lanes_of(signed(B)),
                                        "fused": lanes_of(3), "psat": P}))
        m.d.sync += _assign(v2c, {"valid": v2.valid, "op_end": v2.op_end, "t": v2.t, "o": v2.o, "x": v2.x,
                                  "added": v2.added, "fused": v2.fused})
        for i in range(P):
            pooled, s_pool = clamp(v2.pool[i], B)
            m.d.sync += [v2c.pooled[i].eq(pooled), v2c.psat[i].eq(v2.valid & is_pool & s_pool)]
        v3 = Signal(data.StructLayout({"valid": 1, "op_end": 1, "t": 3, "o": A, "x": lanes_of(signed(B))}))
        pool_sat = Signal(P)
        m.d.sync += [*_assign(v3, {"valid": v2c.valid, "op_end": v2c.op_end, "t": v2c.t, "o": v2c.o}),
                     pool_sat.eq(v2c.psat)]
        # the mode's choice as three flags, a register copy per lane (the descriptor holds for the
        # whole op): no decode of the mode in front of every lane's multiplexer
        v3_sel = copies(m, Cat(Mux(neuron, d.const, is_add), neuron & ~d.const, is_pool), P, "v3_sel")
        for i in range(P):
            sel_added, sel_x, sel_pool = v3_sel[i][0], v3_sel[i][1], v3_sel[i][2]
            m.d.sync += v3.x[i].eq(Mux(sel_added, v2c.added[i],
                                       Mux(sel_x, v2c.x[i], Mux(sel_pool, v2c.pooled[i], v2c.fused[i]))))
        # v3's step, a cycle ahead of v3: a register loaded from v2's step (v2 -> v2c -> v3 never
        # stall; the descriptor holds while the op's words pass)
        terms = Signal(data.ArrayLayout(decay_term_layout(), 2))
        for i, term in enumerate(decay_terms(d.decays, v2.t)):
            m.d.sync += [terms[i].en.eq(term[0]), terms[i].neg.eq(term[1]), terms[i].sh.eq(term[2])]

        # ---------------------------------------------------------------- NI-LIF (every mode passes through)
        m.submodules.nilif = nl = NiLifPipeline(P, data.StructLayout({"op_end": 1, "addr": A}), B)
        m.d.comb += [nl.i_x.eq(v3.x), nl.i_valid.eq(v3.valid), nl.i_t.eq(v3.t), nl.i_update.eq(neuron), nl.i_terms_next.eq(terms),
                     nl.i_carry.op_end.eq(v3.op_end), nl.i_carry.addr.eq(d.o_base + v3.o),
                     nl.f_m.eq(d.f_m), nl.half_even.eq(d.half_even)]
        levels_out = neuron | (d.mode == VecMode.FUSION)
        lv_word = Cat(*[Mux(nl.o_update, nl.o_k[i], nl.o_x[i][:3]) for i in range(P)])
        st_word = Cat(*[nl.o_x[i] for i in range(P)])
        m.d.comb += [self.out_en.eq(nl.o_valid), self.out_addr.eq(nl.o_carry.addr),
                     self.out_data.eq(Mux(levels_out, lv_word, st_word))]
        m.d.comb += done.eq(nl.o_valid & nl.o_carry.op_end)
        with m.If(done):
            m.d.sync += active.eq(0)
        sat_flags = Signal(3 * P)
        m.d.sync += sat_flags.eq(Cat(v2.sat, pool_sat, nl.o_sat))
        m.d.comb += [self.busy.eq(active | take), ctr.inc.busy.eq(active | take), ctr.inc.reads.eq(read),
                     ctr.inc.saturated.eq(sum((sat_flags[i].as_unsigned() for i in range(3 * P)), Const(0, 5)))]
        return m
