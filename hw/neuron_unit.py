"""NI-LIF neuron unit: accumulators -> requantise -> (+ residual) -> membrane -> spike levels (§IS-5..7).

Per lane of every ``o_acc`` beat of a :class:`~spiketrack.hw.synaptic_core.SynapticCore` (the
accumulators already include the bias, §IS-4), exactly
:func:`spiketrack.quant.golden.neuron.neuron_layer`:

1. requantise (§IS-5): ``x = clamp(shift_round(acc, s_c), B_m)`` with round-half-up,
   ``s_c = f_acc,c - f_m`` per output channel (an int, or a per-channel table);
2. residual / membrane shortcut (§IS-6, optional ``i_res`` stream): ``x = clamp(x + r, B_m)``;
3. NI-LIF (§IS-7) with the membrane kept across the ``T`` timesteps of one pass in a
   ``lib.memory`` membrane memory (one word per beat): ``U[0] = X[0]``;
   ``U[t] = clamp(decay_t(H[t-1]) + X[t], B_m)`` with the shift-add decay
   ``decay(h) = Σ_j σ_j (h >> a_j)`` (:class:`~spiketrack.quant.golden.neuron.Decay` terms,
   elaboration-time per timestep); fire ``k = clamp((U + 2**(f_m-1)) >> f_m, 0, D)`` (the
   multi-level threshold compare; with ``rounding="half_even"`` an exact tie, low ``f_m`` bits of
   ``U`` equal to ``2**(f_m-1)``, drops an odd result by one: an ``f_m``-bit compare and a
   subtract of one bit per lane); soft reset ``H = U - (k << (f_m - d))`` is what is stored.
   With ``T = 1`` there is no membrane memory (stateless neuron).

Every clamped element is counted (``counters.saturated``), as in the golden model.

The output is one beat of ``P`` spike levels per input beat (the ``level_word`` layout of
:mod:`spiketrack.hw.spike_encoder`), which the next layer's :class:`SpikeEncoder` turns into events.
The unit processes timestep after timestep: beats ``0..n_beats-1`` of timestep 0, then of timestep 1,
and so on (the core reads out once per timestep); the timestep counter wraps after ``T``.

Pipeline (4 stages, one beat per cycle, a single stall signal ``adv = ~o.valid | o.ready``):
``1`` input registered, membrane word and per-channel shifts read; ``2`` requantise and residual add
(registered with the membrane word); ``3`` decay + input -> ``U``; ``4`` fire, output register.
With ``T > 1`` a write stage ``W`` follows stage 4 unconditionally in the next cycle: it forms the
soft reset ``H = U - (k << (f_m - d))`` from registered ``U`` and ``k`` and writes it to the
membrane memory (kept out of stage 4 for timing: the fire carry chain, the reset carry chain and
the route to the block-RAM data port in one cycle limited the ECP5 Fmax to 98 MHz). The membrane
word of beat ``b`` is thus written after the third advance that follows its read, plus one cycle;
with ``T > 1`` and fewer than ``HAZARD_DEPTH`` = 5 beats per map, the unit takes a beat only when
stages 1-3 and ``W`` are empty.
Exact cycles: :mod:`spiketrack.hw.neuron_unit_cycles`.
"""

from __future__ import annotations

import torch
from amaranth import Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.spike_encoder import level_word_layout
from spiketrack.quant.golden.neuron import LEVEL_BITS, ROUNDINGS, D, Decay

__all__ = ["NeuronUnit", "res_layout", "NEURON_COUNTERS", "LATENCY", "HAZARD_DEPTH"]

NEURON_COUNTERS = ("busy", "stall_in", "stall_out", "events", "saturated")
LATENCY = 4        #: cycles from taking a beat to its output beat being valid
HAZARD_DEPTH = 5   #: maps of fewer beats than this (with T > 1) take one beat per 5 cycles


def res_layout(bits: int, lanes: int) -> data.StructLayout:
    """Payload of the residual stream: ``res``: ``P`` signed values at ``(f_m, B_m)`` (§IS-6)."""
    return data.StructLayout({"res": data.ArrayLayout(signed(bits), lanes)})


def _clamp(v, bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return Mux(v < lo, lo, Mux(v > hi, hi, v)), (v < lo) | (v > hi)


def _popcount(bits):
    total = Const(0, 1)
    for b in bits:
        total = total + b
    return total


class NeuronUnit(wiring.Component):
    """Requantise + residual + NI-LIF neuron for ``P`` lanes per beat (§IS-5, §IS-6, §IS-7).

    Parameters
    ----------
    in_layout : StructLayout
        Payload of ``i_acc``: ``pos``, ``chan``, ``acc[P]`` (signed or unsigned), ``last`` and
        optionally ``mask`` (all lanes exist without it). The synaptic core's ``acc_layout``
        and the memory unit's (:mod:`spiketrack.hw.memory_unit`, no mask, unsigned) both fit.
    n_beats : int
        Beats per map (one timestep).
    c_out : int
        Output channels (size of a per-channel shift table).
    shift : int or int tensor [C_out]
        ``f_acc - f_m`` (§IS-5); per channel when a tensor. Values in ``[-15, 31]``.
    f_m : int
        Membrane fractional bits (``>= d``).
    bits : int
        Membrane width ``B_m``.
    T : int
        Timesteps of one pass (membrane kept across them; 1 = stateless).
    betas : tuple of Decay
        One decay constant per step ``t = 1..T-1`` (§IS-7).
    residual : bool
        Add a residual stream ``i_res`` (§IS-6).
    rounding : str
        Fire rounding, ``"half_up"`` or ``"half_even"`` (§IS-7,
        :func:`spiketrack.quant.golden.neuron.fire`).

    Members
    -------
    i_acc : In(stream.Signature(in_layout))
        Accumulator beats (bias included).
    i_res : In(stream.Signature(res_layout))
        Residual values at ``(f_m, B_m)``, one beat per ``i_acc`` beat (only if ``residual``).
    o_spk : Out(stream.Signature(level_word_layout))
        Spike levels 0..D per lane, with the beat's ``pos``, ``chan``, ``mask`` and ``last``.
    busy : Out(1)
        A beat is in the pipeline (or taken this cycle).
    counters : Out(StructLayout)
        ``busy``, ``stall_in``, ``stall_out``, ``events`` (beats taken), ``saturated``
        (clamped elements: requantise + residual + membrane, as the golden ``n_saturated``).
    """

    def __init__(self, in_layout: data.StructLayout, *, n_beats: int, c_out: int, shift, f_m: int, bits: int,
                 T: int = 1, betas: tuple[Decay, ...] = (), residual: bool = False, rounding: str = "half_up"):
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}, got {rounding!r}")
        self.rounding = rounding
        if f_m < LEVEL_BITS:
            raise ValueError(f"f_m={f_m} must be >= {LEVEL_BITS} (§IS-7)")
        if T < 1 or len(betas) < T - 1:
            raise ValueError(f"{T} timesteps need {T - 1} decay constants, got {len(betas)}")
        self.in_layout = in_layout
        self.lanes = in_layout.members["acc"].length
        self.acc_bits = Shape.cast(in_layout.members["acc"].elem_shape).width
        self.has_mask = "mask" in in_layout.members
        self.n_beats, self.c_out, self.f_m, self.bits, self.T = n_beats, c_out, f_m, bits, T
        self.betas, self.residual = tuple(betas[:T - 1]), residual
        if isinstance(shift, int):
            self.shift = shift
        else:
            s = torch.as_tensor(shift).to(torch.int64).reshape(-1)
            if s.numel() != c_out:
                raise ValueError(f"per-channel shift needs {c_out} values, got {s.numel()}")
            self.shift = s.tolist() if len(set(s.tolist())) > 1 else int(s[0])
        shifts = [self.shift] if isinstance(self.shift, int) else self.shift
        if min(shifts) < -15 or max(shifts) > 31:
            raise ValueError("requantise shifts must lie in [-15, 31]")
        pos_bits = Shape.cast(in_layout.members["pos"]).width
        chan_bits = Shape.cast(in_layout.members["chan"]).width
        self.pos_bits, self.chan_bits = pos_bits, chan_bits
        members = {
            "i_acc": In(stream.Signature(in_layout)),
            "o_spk": Out(stream.Signature(level_word_layout(pos_bits, chan_bits, self.lanes))),
            "busy": Out(1),
            "counters": Out(counters_layout(NEURON_COUNTERS)),
        }
        if residual:
            members["i_res"] = In(stream.Signature(res_layout(bits, self.lanes)))
        super().__init__(members)

    @property
    def hazard(self) -> bool:
        """Whether beats must wait for the membrane write of the previous timestep (T > 1, few beats)."""
        return self.T > 1 and self.n_beats < HAZARD_DEPTH

    def elaborate(self, platform):
        m = Module()
        P, Bm, f_m = self.lanes, self.bits, self.f_m
        Bh = Bm + 2  # stored H = U - (k << (f_m - d)) needs one bit more than U (§IS-7)
        m.submodules.ctr = ctr = CounterBank(NEURON_COUNTERS, inc_widths={"saturated": ceil_log2(3 * P + 1)})
        m.d.comb += self.counters.eq(ctr.counts)

        i, o = self.i_acc, self.o_spk

        def lane_on(meta, j):   # lane j of a beat carries a real channel
            return meta.mask[j] if self.has_mask else Const(1)

        adv = ~o.valid | o.ready
        v1, v2, v3 = Signal(), Signal(), Signal()
        wv = Signal()   # membrane write stage W holds a beat (T > 1)
        ok = (~v1 & ~v2 & ~v3 & ~wv) if self.hazard else Const(1)
        in_valid = i.valid & self.i_res.valid if self.residual else i.valid
        take = in_valid & adv & ok
        m.d.comb += i.ready.eq(adv & ok & (self.i_res.valid if self.residual else 1))
        if self.residual:
            m.d.comb += self.i_res.ready.eq(adv & ok & i.valid)

        beat = Signal(range(max(2, self.n_beats)))
        t = Signal(range(max(2, self.T)))
        with m.If(take):
            with m.If(beat == self.n_beats - 1):
                m.d.sync += beat.eq(0)
                m.d.sync += t.eq(Mux(t == self.T - 1, 0, t + 1))
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        # membrane memory (T > 1): one word of P lanes of H per beat
        if self.T > 1:
            m.submodules.mem = mem = Memory(shape=unsigned(P * Bh), depth=self.n_beats, init=[],
                                            attrs={"no_rw_check": 1})
            h_rd, h_wr = mem.read_port(), mem.write_port()
            m.d.comb += [h_rd.addr.eq(beat), h_rd.en.eq(adv)]

        # per-channel shifts: ROM indexed by the beat's first channel (sync read with the membrane)
        sh_bits = 6
        if not isinstance(self.shift, int):
            tbl = [[(self.shift[c + j] if c + j < self.c_out else 0) & 63 for j in range(P)]
                   for c in range(self.c_out)]
            m.submodules.sh_rom = sh_rom = Memory(shape=unsigned(P * sh_bits), depth=self.c_out,
                                                  init=[sum(v << (j * sh_bits) for j, v in enumerate(r)) for r in tbl])
            sh_rd = sh_rom.read_port()
            m.d.comb += [sh_rd.addr.eq(i.payload.chan), sh_rd.en.eq(adv)]

        # ---- stage 1: registered input
        s1 = Signal(self.in_layout, reset_less=True)
        r1 = Signal(data.ArrayLayout(signed(Bm), P), reset_less=True)
        t1, t2, t3 = Signal.like(t), Signal.like(t), Signal.like(t)
        a1, a2, a3 = Signal.like(beat), Signal.like(beat), Signal.like(beat)
        with m.If(adv):
            m.d.sync += [v1.eq(take), s1.eq(i.payload), t1.eq(t), a1.eq(beat)]
            if self.residual:
                m.d.sync += r1.eq(self.i_res.payload.res)

        # ---- stage 2: requantise (§IS-5) and residual add (§IS-6)
        x2 = Signal(data.ArrayLayout(signed(Bm), P), reset_less=True)
        h2 = Signal(unsigned(P * Bh), reset_less=True)
        meta2 = Signal(self.in_layout, reset_less=True)
        sat2 = []
        for j in range(P):
            y = s1.acc[j]
            if isinstance(self.shift, int):
                s = self.shift
                r = (y + (1 << (s - 1))) >> s if s > 0 else y << (-s)
            else:
                s = sh_rd.data[j * sh_bits:(j + 1) * sh_bits].as_signed()
                sp = Mux(s > 0, s, 0).as_unsigned()[:5]
                sn = Mux(s < 0, -s, 0).as_unsigned()[:4]
                half = Mux(s > 0, Const(1, unsigned(32)) << (sp - 1)[:5], 0)
                r = ((y + half) >> sp) << sn
            xq, sq = _clamp(r, Bm)
            if self.residual:
                xr, sr = _clamp(xq + r1[j], Bm)
                sat2.append(lane_on(s1, j) & sq)
                sat2.append(lane_on(s1, j) & sr)
            else:
                xr = xq
                sat2.append(lane_on(s1, j) & sq)
            with m.If(adv):
                m.d.sync += x2[j].eq(xr)
        with m.If(adv):
            m.d.sync += [v2.eq(v1), meta2.eq(s1), t2.eq(t1), a2.eq(a1)]
            if self.T > 1:
                m.d.sync += h2.eq(h_rd.data)

        # ---- stage 3: U = t == 0 ? X : clamp(decay_t(H) + X, B_m)   (§IS-7)
        u3 = Signal(data.ArrayLayout(signed(Bm), P), reset_less=True)
        meta3 = Signal(self.in_layout, reset_less=True)
        sat3 = []
        for j in range(P):
            x = x2[j]
            if self.T > 1:
                h = h2[j * Bh:(j + 1) * Bh].as_signed()
                dec = Const(0, signed(Bh + 2))
                for tt in range(self.T - 1, 0, -1):   # t = tt uses betas[tt - 1]
                    d_t = Const(0, signed(2))
                    for sg, sh in self.betas[tt - 1].terms:   # each term floored separately
                        d_t = d_t + (h >> sh) if sg > 0 else d_t - (h >> sh)
                    dec = Mux(t2 == tt, d_t, dec)
                uc, su = _clamp(dec + x, Bm)
                u = Mux(t2 == 0, x, uc)
                sat3.append(lane_on(meta2, j) & su & (t2 != 0))
            else:
                u = x
            with m.If(adv):
                m.d.sync += u3[j].eq(u)
        with m.If(adv):
            m.d.sync += [v3.eq(v2), meta3.eq(meta2), t3.eq(t2), a3.eq(a2)]

        # ---- stage 4: fire, output register
        ks = []
        with m.If(adv):
            m.d.sync += [o.valid.eq(v3), o.payload.pos.eq(meta3.pos), o.payload.chan.eq(meta3.chan),
                         o.payload.mask.eq(meta3.mask if self.has_mask else (1 << P) - 1),
                         o.payload.last.eq(meta3.last)]
        for j in range(P):
            q = (u3[j] + (1 << (f_m - 1))) >> f_m
            if self.rounding == "half_even":   # exact tie with an odd result: round down to even
                q = q - (q[0] & (u3[j][:f_m] == (1 << (f_m - 1))))
            k = Mux(q < 0, 0, Mux(q > D, D, q))[:3]
            ks.append(k)
            with m.If(adv):
                m.d.sync += o.payload.levels[j].eq(k)

        # ---- stage W (T > 1): soft reset H = U - (k << (f_m - d)) from registers, membrane write
        if self.T > 1:
            uw = Signal(data.ArrayLayout(signed(Bm), P), reset_less=True)
            kw = Signal(data.ArrayLayout(unsigned(3), P), reset_less=True)
            aw = Signal.like(beat)
            m.d.sync += [wv.eq(v3 & adv), aw.eq(a3)]
            new_h = []
            for j in range(P):
                m.d.sync += [uw[j].eq(u3[j]), kw[j].eq(ks[j])]
                hj = Signal(signed(Bh), name=f"new_h{j}")   # sign-extended to the stored width
                m.d.comb += hj.eq(uw[j] - (kw[j] << (f_m - LEVEL_BITS)))
                new_h.append(hj)
            m.d.comb += [h_wr.addr.eq(aw), h_wr.data.eq(Cat(*new_h)), h_wr.en.eq(wv)]

        # In hazard mode the cycle W writes is one the unit could not take a beat in anyway, so
        # backpressure then costs nothing, except after the final beat of the pass (it holds busy).
        free_stall = Const(0)
        if self.hazard:
            t4 = Signal.like(t)
            with m.If(adv):
                m.d.sync += t4.eq(t3)
            free_stall = wv & ~(o.payload.last & (t4 == self.T - 1))
        busy = take | v1 | v2 | v3 | o.valid   # W's cycle always has o.valid (both follow v3 & adv)
        m.d.comb += [
            self.busy.eq(busy),
            ctr.inc.busy.eq(busy),
            ctr.inc.events.eq(take),
            ctr.inc.stall_out.eq(o.valid & ~o.ready & ~free_stall),
            ctr.inc.stall_in.eq((v1 | v2 | v3 | o.valid) & adv & ok & ~in_valid & ~((t == 0) & (beat == 0))),
            ctr.inc.saturated.eq(Mux(adv & v1, _popcount(sat2), 0) + Mux(adv & v2, _popcount(sat3), 0)),
        ]
        return m
