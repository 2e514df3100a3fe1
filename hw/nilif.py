"""The NI-LIF neuron of the run-time-configured units as a four-stage pipeline (§IS-7).

One definition for the conv engine's epilogue and the vector unit's NEURON mode. Per lane, with the
membrane ``h`` in a register:

* stage A1: the two shift-add decay terms of step ``t``, ``±(h >> a_j)``, each floored by its
  arithmetic shift (each lane reads the terms from a register copy of its own, loaded the cycle
  before: the caller gives them a cycle ahead of the input);
* stage A2: ``s = x`` at ``t = 0``, else ``s = Σ_j ±(h >> a_j) + x`` (unclamped);
* stage B: ``u = clamp(s)`` (saturation flagged at ``t > 0``) and the ``D`` comparisons
  ``s >= thr_j`` that give the level as a thermometer code;
* stage C: ``k = Σ_j therm_j``, ``h = u - r_k`` (the soft reset), and the outputs.

``thr_j`` and ``r_k`` are per-op constants computed from ``f_m`` and the rounding mode in three
register steps after they change (each lane compares against threshold registers of its own), so
the recurrence holds no variable shift and no division: ``k ≥ j`` exactly when ``u ≥ j·2^f_m - 2^(f_m-1)``, plus one at an exact tie for odd
``j`` under ``half_even`` (the tie rounds to the even level), and ``r_k = k << (f_m - d)``. A
threshold above the largest membrane value never fires. The equality with
:func:`spiketrack.quant.golden.neuron.fire` over every 16-bit membrane value at ``f_m`` = 2, 8 and
17, under both roundings, is a test (``tests/test_hw_nilif.py``).

Contract: the membrane written by step ``t - 1`` is read by step ``t`` of the same neuron, so two
consecutive inputs of one neuron (``t`` following ``t - 1``) must be at least :data:`NILIF_STAGES`
cycles apart; an input at ``t = 0`` starts a new neuron whatever came before. Outputs (levels, the
input value passed along for non-neuron ops, and a caller-defined ``carry`` payload) appear
exactly :data:`NILIF_STAGES` cycles after their input.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.arith import at_least, clamp
from spiketrack.hw.registers import copies
from spiketrack.quant.golden.neuron import D, LEVEL_BITS

__all__ = ["NiLifPipeline", "NILIF_STAGES", "decay_term_layout"]

NILIF_STAGES = 4   #: cycles from an input to its outputs, and the least spacing of one neuron's steps


def decay_term_layout() -> data.StructLayout:
    """One shift-add decay term: enabled, negative, shift amount (§IS-7)."""
    return data.StructLayout({"en": 1, "neg": 1, "sh": 5})


class NiLifPipeline(wiring.Component):
    """``lanes`` NI-LIF neurons with their membranes, pipelined over :data:`NILIF_STAGES` cycles.

    Parameters
    ----------
    lanes : int
        Neurons (one per lane).
    carry : data.Layout
        A payload delayed along with each input (addresses, tags).
    bits : int
        Stream and membrane value width ``B`` (inputs are ``signed(B)``).

    Members
    -------
    i_valid : In(1)
    i_t : In(3)
        The input's timestep; ``0`` starts a neuron (no decay, no saturation).
    i_update : In(1)
        The input is a neuron step (the membrane is written); otherwise ``x`` only passes through.
    i_x : In(ArrayLayout(signed(B), lanes))
    i_terms_next : In(ArrayLayout(decay_term_layout(), 2))
        The decay terms of the input given in the *next* cycle (ignored for an input at ``t = 0``).
        The pipeline registers one copy of them per lane (:func:`~spiketrack.hw.banked_memory.copies`),
        so no single register drives the shifters of every lane.
    i_carry : In(carry)
    f_m : In(5), half_even : In(1)
        The op's membrane exponent and fire rounding; stable from one cycle before the op's first
        input.
    o_valid, o_update : Out(1)
    o_k : Out(ArrayLayout(unsigned(3), lanes))
        Spike levels (0 when the input was not a neuron step).
    o_x : Out(ArrayLayout(signed(B), lanes))
        The input values, delayed.
    o_sat : Out(lanes)
        Per lane: the membrane sum saturated (a neuron step with ``t > 0``).
    o_carry : Out(carry)
    """

    def __init__(self, lanes: int, carry, bits: int = 16):
        self.lanes, self.bits = lanes, bits
        self._carry = carry
        P, B = lanes, bits
        super().__init__({
            "i_valid": In(1), "i_t": In(3), "i_update": In(1),
            "i_x": In(data.ArrayLayout(signed(B), P)),
            "i_terms_next": In(data.ArrayLayout(decay_term_layout(), 2)),
            "i_carry": In(carry),
            "f_m": In(5), "half_even": In(1),
            "o_valid": Out(1), "o_update": Out(1),
            "o_k": Out(data.ArrayLayout(unsigned(3), P)),
            "o_x": Out(data.ArrayLayout(signed(B), P)),
            "o_sat": Out(P),
            "o_carry": Out(carry),
        })

    def elaborate(self, platform):
        m = Module()
        P, B = self.lanes, self.bits
        hi = (1 << (B - 1)) - 1
        HB, SB = B + 2, B + 4         # membrane after the reset; the unclamped sum

        # per-op constants (three cycles after f_m / half_even; an op's first value reaches stage B
        # later than that): thresholds thr_j = (2j-1)·2^(f_m-1) (+1 for odd j under half_even, a tie
        # rounds to the even level) and reset amounts k·2^(f_m-3). f_m and half_even are registered
        # first, then the shifts, then the +1, so no path mixes the descriptor's routing, a shift
        # and an add.
        # base_j = (2j-1)·2^(f_m-1) and base1_j = base_j + 1, both from constants and muxes (base_j's
        # bit 0 is 0 from f_m = 2 on, so the +1 there sets it); each lane then registers its own
        # thresholds, thr_j = base1_j for odd j under half_even, else base_j: no register of the
        # thresholds drives the compares of every lane
        thr = [[Signal(signed(B + 2), name=f"thr{j}_l{i}") for j in range(1, D + 1)] for i in range(P)]
        thr_on = [[Signal(name=f"thr_on{j}_l{i}") for j in range(1, D + 1)] for i in range(P)]
        rst = [Signal(unsigned(B + 1), name=f"rst{k}") for k in range(D + 1)]
        fm, he = Signal.like(self.f_m, name="fm_q"), Signal(name="he_q")
        he2 = Signal(name="he_q2")
        base = [Signal(unsigned(B + 1), name=f"thr_base{j}") for j in range(1, D + 1)]
        base1 = [Signal(unsigned(B + 1), name=f"thr_base1_{j}") for j in range(1, D + 1)]
        on = [Signal(name=f"thr_on{j}") for j in range(1, D + 1)]
        m.d.sync += [fm.eq(self.f_m), he.eq(self.half_even), he2.eq(he)]
        for j in range(1, D + 1):
            # (j << f_m) - 2^(f_m-1) = (2j-1) << (f_m-1) for f_m >= 1; f_m = 0 gives j (2^31 wraps away)
            shifted = Mux(fm == 0, Const(j, unsigned(40)), Const(2 * j - 1, unsigned(40)) << (fm - 1)[:5])
            plus1 = Mux(fm == 0, Const(j + 1, unsigned(40)),
                        Mux(fm == 1, Const(2 * j, unsigned(40)), shifted | 1))
            # thr_j <= hi exactly when (2j-1)·2^(f_m-1) <= hi (the +1 of a tie never crosses it)
            fm_max = max(f for f in range(1, 32) if (2 * j - 1) << (f - 1) <= hi)
            m.d.sync += [base[j - 1].eq(shifted[:B + 1]), base1[j - 1].eq(plus1[:B + 1]), on[j - 1].eq(fm <= fm_max)]
            for i in range(P):
                tie = he2 if j % 2 == 1 else Const(0)
                m.d.sync += [thr[i][j - 1].eq(Mux(tie, base1[j - 1], base[j - 1])), thr_on[i][j - 1].eq(on[j - 1])]
        for k in range(D + 1):
            m.d.sync += rst[k].eq((Const(k, unsigned(40)) << (fm - LEVEL_BITS)[:5])[:B + 1])

        h = Signal(data.ArrayLayout(signed(HB), P))

        # stage A1: the decay terms h >> a_j, complemented when negative (-q = ~q + 1: the ones
        # go into x + n_1 + n_2, computed beside the shifts)
        sd = Signal(data.StructLayout({"valid": 1, "update": 1, "t0": 1, "carry": self._carry,
                                       "x": data.ArrayLayout(signed(B), P), "xn": data.ArrayLayout(signed(B + 2), P),
                                       "q": data.ArrayLayout(data.ArrayLayout(signed(HB), 2), P)}))
        m.d.sync += [sd.valid.eq(self.i_valid), sd.update.eq(self.i_update), sd.t0.eq(self.i_t == 0),
                     sd.carry.eq(self.i_carry), sd.x.eq(self.i_x)]
        lane_terms = copies(m, self.i_terms_next, P, "terms")
        for i in range(P):
            terms = data.View(data.ArrayLayout(decay_term_layout(), 2), lane_terms[i])
            negs = [term.en & term.neg for term in terms]
            m.d.sync += sd.xn[i].eq(self.i_x[i] + negs[0] + negs[1])
            for j, term in enumerate(terms):
                part = h[i] >> term.sh
                m.d.sync += sd.q[i][j].eq(Mux(term.en, Mux(term.neg, ~part, part), 0))

        # stage A2: s = Σ terms + x
        sa = Signal(data.StructLayout({"valid": 1, "update": 1, "t0": 1, "carry": self._carry,
                                       "x": data.ArrayLayout(signed(B), P), "s": data.ArrayLayout(signed(SB), P)}))
        m.d.sync += [sa.valid.eq(sd.valid), sa.update.eq(sd.update), sa.t0.eq(sd.t0), sa.carry.eq(sd.carry),
                     sa.x.eq(sd.x)]
        for i in range(P):
            m.d.sync += sa.s[i].eq(Mux(sd.t0, sd.x[i], sd.q[i][0] + sd.q[i][1] + sd.xn[i]))

        # stage B: clamp and the level comparisons
        sb = Signal(data.StructLayout({"valid": 1, "update": 1, "carry": self._carry, "sat": P,
                                       "x": data.ArrayLayout(signed(B), P), "u": data.ArrayLayout(signed(B), P),
                                       "therm": data.ArrayLayout(unsigned(D), P)}))
        m.d.sync += [sb.valid.eq(sa.valid), sb.update.eq(sa.update), sb.carry.eq(sa.carry), sb.x.eq(sa.x)]
        for i in range(P):
            s = sa.s[i]
            u, sat = clamp(s, B)     # the bit test of hw/arith (no carry chain beside the compares)
            m.d.sync += [sb.u[i].eq(u),
                         sb.sat[i].eq(sa.valid & sa.update & ~sa.t0 & sat),
                         sb.therm[i].eq(Cat(*[thr_on[i][j] & at_least(s, thr[i][j]) for j in range(D)]))]

        # stage C: level, soft reset, outputs
        m.d.sync += [self.o_valid.eq(sb.valid), self.o_update.eq(sb.update), self.o_carry.eq(sb.carry),
                     self.o_x.eq(sb.x), self.o_sat.eq(sb.sat)]
        # the thermometer code is monotone (thr_j rises with j, and thr_on_j implies thr_on_(j-1)),
        # so k is the index of its highest set bit and r_k is chosen by a priority select on the
        # code's bits: no adder between the stage-B register and the reset's subtraction
        for i in range(P):
            th = sb.therm[i]
            k = Signal(range(D + 1), name=f"k{i}")
            kv, r = Const(0, 3), Const(0, unsigned(B + 1))
            for kk in range(1, D + 1):
                kv, r = Mux(th[kk - 1], kk, kv), Mux(th[kk - 1], rst[kk], r)
            m.d.comb += k.eq(kv)
            m.d.sync += self.o_k[i].eq(Mux(sb.update, k, 0))
            with m.If(sb.valid & sb.update):
                m.d.sync += h[i].eq(sb.u[i] - r)
        return m
