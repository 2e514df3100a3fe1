"""The registry of proofs: what each proves, on which unit and geometry, how, and its mutant.

Each :class:`Proof` builds its harness from a ``spiketrack.hw`` module object (the real one, or a
mutated copy from :func:`spiketrack.formal.mutants.load`), so re-pointing a proof at a rewritten
unit means changing its ``build`` function only. Each proof runs in its own folder
``build/formal/<name>/`` (its mutant in ``build/formal/<name>__<mutant>/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from spiketrack.formal import (accel, accel_top, accel_units, encoder, link, memory_unit, neuron_unit, retrieval_neuron,
                               synaptic_core)
from spiketrack.formal.mutants import Mutant, load
from spiketrack.formal.sby import ProofResult, run_sby
from spiketrack.hw.banked_memory import READ_LATENCY

__all__ = ["Proof", "PROOFS", "run_proof", "run_mutant"]


@dataclass(frozen=True)
class Proof:
    """One formal proof.

    Attributes
    ----------
    name : str
        Proof (and folder) name.
    prop : str
        The property in words, with its item of issue 16 (a)-(e).
    unit : str
        The ``spiketrack.hw`` module of the unit under proof.
    geometry : str
        The elaborated geometry the proof covers.
    build : callable
        ``build(hw_module) -> harness``.
    mode : str
        ``"prove"`` (k-induction, unbounded) or ``"bmc"`` (bounded).
    depth : int
        Induction length or BMC depth.
    mutants : tuple of Mutant
        Broken variants of the unit this proof must catch (one per property it carries).
    cut : tuple of str
        Submodules replaced by free values (see :func:`spiketrack.formal.sby.run_sby`).
    solver : str
        SMT solver.
    mutant_depth : int
        BMC depth of the mutation checks. A mutant must fail in the base case (a real
        counterexample from reset), so mutants always run as BMC, deep enough to reach the bug.
    fast : bool
        Runs in the default test suite (a few seconds); the others carry the ``formal`` marker.
    fast_mutants : bool
        With ``fast``: the mutation checks run in the default suite too. False puts them under the
        ``formal`` marker (a large design costs each mutant its own elaboration).
    flatten : bool
        Flatten the design first (logic that reaches no property is removed, see
        :func:`spiketrack.formal.sby.run_sby`).
    timeout : int
        Seconds the proof may run before it is reported ``TIMEOUT`` (its mutants: 600).
    """

    name: str
    prop: str
    unit: str
    geometry: str
    build: Callable
    mode: str
    depth: int
    mutants: tuple
    cut: tuple = ()
    solver: str = "yices"
    mutant_depth: int = 20
    fast: bool = False
    fast_mutants: bool = True
    flatten: bool = False
    timeout: int = 600


def run_proof(proof: Proof, *, timeout: int | None = None) -> ProofResult:
    """Run ``proof`` on the real unit (``timeout``: default ``proof.timeout``)."""
    return run_sby(proof.name, proof.build(load(proof.unit)), mode=proof.mode, depth=proof.depth,
                   solver=proof.solver, timeout=proof.timeout if timeout is None else timeout, cut=proof.cut,
                   flatten=proof.flatten)


def run_mutant(proof: Proof, mutant: Mutant, *, timeout: int = 600) -> ProofResult:
    """Run ``proof`` on ``mutant`` (one of ``proof.mutants``; expected verdict: ``FAIL``)."""
    depth = proof.depth if proof.mode == "bmc" else proof.mutant_depth
    return run_sby(f"{proof.name}__{mutant.name}", proof.build(load(proof.unit, mutant)),
                   mode="bmc", depth=depth, solver=proof.solver, timeout=timeout, cut=proof.cut, flatten=proof.flatten)


ENC = "spiketrack.hw.spike_encoder"
CORE = "spiketrack.hw.synaptic_core"
MEM = "spiketrack.hw.memory_unit"
NEU = "spiketrack.hw.neuron_unit"
RN = "spiketrack.hw.retrieval_neuron"
STREAM = "(a) {}: valid held until ready, payload stable while stalled"
IGNORES_READY = "the output register advances under backpressure"


CONV = "spiketrack.hw.conv_engine"
VEC = "spiketrack.hw.vector_unit"
MB = "spiketrack.hw.memory_builder"
TOP = "spiketrack.hw.accel.top"
LINK = "spiketrack.hw.link.frames"
UART = "spiketrack.hw.link.uart"
CONTRACT = ("(a) port contract (no output stream: results leave by a write port): i_desc ready whenever "
            "not busy, every out_en write while busy")
NILIF_DONE_EARLY = ("busy falls when the op's last word enters the NI-LIF pipeline (its write lands after)",
                    "nl.o_valid & nl.o_carry.op_end", "nl.i_valid & nl.i_carry.op_end")


REFUSED_EMPTY_WRITE_SKIPS = Mutant(
    "refused_empty_write_skips", "a refused WRITE of 0 rows goes to SKIP, which is ready for one cycle and drops the "
    "next command's header (the bug accel_rsp_transfers found, fixed in hw/accel/top.py)",
    "                with m.If((op == Op.WRITE) & (cnt == 0)):   # no payload, refused or not\n"
    "                    m.next = \"ACK\"\n"
    "                with m.Elif((op == Op.WRITE) & (e != Err.OK)):\n"
    "                    m.next = \"SKIP\"",
    "                with m.If((op == Op.WRITE) & (e != Err.OK)):\n"
    "                    m.next = \"SKIP\"\n"
    "                with m.Elif((op == Op.WRITE) & (cnt == 0)):\n"
    "                    m.next = \"ACK\"")


def mutant(*args) -> tuple:
    """A one-mutant tuple (``Mutant(*args)``)."""
    return (Mutant(*args),)



PROOFS = {p.name: p for p in [
    Proof("encoder_stream", STREAM.format("o_events"),
          ENC, encoder.GEOMETRY, encoder.stream_rules, "prove", 4, fast=True, cut=("dut.ctr",),
          mutants=mutant("valid_falls_early", "the held event is dropped whenever valid is high, ready or not",
                        "with m.Elif(sent):\n            m.d.sync += [pend_valid.eq(0), final.eq(0)]",
                        "with m.Elif(o.valid):\n            m.d.sync += [pend_valid.eq(0), final.eq(0)]")),
    Proof("encoder_transfers", "(a) o_events: every non-zero lane leaves as exactly one event, every map "
          "as one last event (never more out than in; equal when idle)",
          ENC, encoder.GEOMETRY, encoder.transfers, "bmc", 14, cut=("dut.ctr",),
          mutants=mutant("drop_lane", "only lane 0 of a word is queued (lane 1's events are lost)",
                        "rem.eq(sum((b << j for j, b in enumerate(nz)), 0))", "rem.eq(nz[0])")),
    Proof("encoder_counters", "(e) counters: busy == model + stall_in + stall_out after each map",
          ENC, encoder.GEOMETRY, encoder.counters, "bmc", 14,
          mutants=mutant("no_stall_out", "backpressure cycles are not counted",
                        "ctr.inc.stall_out.eq(o.valid & ~o.ready)", "ctr.inc.stall_out.eq(0)")),
    Proof("core_stream", STREAM.format("o_acc"),
          CORE, synaptic_core.GEOMETRY, synaptic_core.stream_rules, "prove", 3, cut=("dut.ctr",),
          mutants=mutant("ignores_ready", IGNORES_READY,
                         "adv = ~o.valid | o.ready", "adv = Const(1)")),
    Proof("core_transfers", "(a) o_acc: each packet is read out once, n_acc beats, last on the final beat",
          CORE, synaptic_core.GEOMETRY, synaptic_core.transfers, "bmc", 18, cut=("dut.ctr",),
          mutants=mutant("early_last", "last is set one beat early (the final beat is lost)",
                         "r1_last.eq(r_idx == p.n_acc - 1)", "r1_last.eq(r_idx == p.n_acc - 2)")),
    Proof("core_accumulate", "(c) no accumulator wraps and (d) no update is lost: each beat lane == "
          "bias + sum of level*w of its packet",
          CORE, synaptic_core.GEOMETRY, synaptic_core.accumulate, "bmc", 18, cut=("dut.ctr",),
          mutants=(Mutant("forward_3", "forwarding keeps 3 sums instead of 4 (a stage dropped)",
                          "FORWARD = 4      #:", "FORWARD = 3      #:"),
                   Mutant("acc_bits_minus_1", "the accumulator is one bit narrower than the worst case",
                          "self.acc_bits = need if acc_bits is None else acc_bits\n        if self.acc_bits < need:",
                          "self.acc_bits = need - 1 if acc_bits is None else acc_bits\n        if self.acc_bits < need - 1:"))),
    Proof("memory_template_write", "(b) the template memory is written only during a BUILD and only with "
          "template_mode high (never during RETRIEVE or ATTEND)",
          MEM, memory_unit.GEOMETRY, memory_unit.template_write, "bmc", 40, cut=("dut.ctr",),
          mutants=(Mutant("attend_writes_m", "ATTEND's build updates also write the template memory",
                          'd_we_m.eq(Dd["valid"] & Dd["build"] & ~Dd["scr"])', 'd_we_m.eq(Dd["valid"] & Dd["build"])'),
                   Mutant("retrieve_writes_m", "RETRIEVE's accumulator updates also write the template memory",
                          "build_m_we.eq(d_we_m | clr_m)", "build_m_we.eq(d_we_m | clr_m | d_we_r)"),
                   Mutant("no_template_gate", "the template_mode gate is dropped",
                          "m_wr.en.eq(build_m_we & self.template_mode)", "m_wr.en.eq(build_m_we)"))),
    Proof("memory_stream", STREAM.format("o_acc"), MEM, memory_unit.GEOMETRY, memory_unit.stream_rules, "prove", 3,
          cut=("dut.ctr",), mutants=mutant("ignores_ready", IGNORES_READY,
                                           "advance = ~o_valid | self.o_acc.ready", "advance = Const(1)")),
    Proof("memory_transfers", "(a) o_acc: a RETRIEVE/ATTEND of N tokens gives N*H*d_v/P beats, last on the "
          "final one; a BUILD none", MEM, memory_unit.GEOMETRY, memory_unit.transfers, "bmc", 24, cut=("dut.ctr",),
          mutants=mutant("extra_beat", "the readout runs one token past n_tokens",
                         "last_n = on == ntok - 1", "last_n = on == ntok")),
    Proof("neuron_stream", STREAM.format("o_spk"), NEU, neuron_unit.GEOMETRY, neuron_unit.stream_rules, "prove", 3,
          cut=("dut.ctr",), mutants=mutant("ignores_ready", IGNORES_READY, "        adv = ~o.valid | o.ready\n",
                                           "        adv = Const(1)\n")),
    Proof("neuron_transfers", "(a) o_spk: one output beat per input beat (never more; equal when idle)",
          NEU, neuron_unit.GEOMETRY, neuron_unit.transfers, "bmc", 16, cut=("dut.ctr",),
          mutants=mutant("drop_last_beat", "the map's last beat is dropped in stage 3",
                         "m.d.sync += [v3.eq(v2), meta3.eq(meta2)", "m.d.sync += [v3.eq(v2 & ~meta2.last), meta3.eq(meta2)")),
    Proof("neuron_saturation", "(c) counters.saturated counts exactly the clamped requantise results",
          NEU, neuron_unit.GEOMETRY, neuron_unit.saturation, "bmc", 18,
          mutants=mutant("no_low_saturation", "clamping at the low end is not counted",
                         "return Mux(v < lo, lo, Mux(v > hi, hi, v)), (v < lo) | (v > hi)",
                         "return Mux(v < lo, lo, Mux(v > hi, hi, v)), (v > hi)")),
    Proof("neuron_counters", "(e) counters: busy == model + stall_in + stall_out after each map",
          NEU, neuron_unit.GEOMETRY, neuron_unit.counters, "bmc", 18,
          mutants=mutant("no_stall_out", "backpressure cycles are not counted",
                         "ctr.inc.stall_out.eq(o.valid & ~o.ready & ~free_stall)", "ctr.inc.stall_out.eq(0)")),
    Proof("retrieval_neuron_stream", STREAM.format("o_spk"), RN, retrieval_neuron.GEOMETRY,
          retrieval_neuron.stream_rules, "prove", 3,
          mutants=mutant("neuron_ignores_ready", "the neuron unit's output is wired as always ready",
                         "wiring.connect(m, nu.o_spk, wiring.flipped(self.o_spk))",
                         "wiring.connect(m, nu.o_spk, wiring.flipped(self.o_spk))\n        m.d.comb += nu.o_spk.ready.eq(1)")),
    Proof("memory_counters", "(e) counters: busy == model + stall_in + stall_out after each command",
          MEM, memory_unit.GEOMETRY, memory_unit.counters, "bmc", 20,
          mutants=mutant("no_stall_in", "input gaps are not counted",
                         "ctr.inc.stall_in.eq(in_phase & ~self.i_events.valid)", "ctr.inc.stall_in.eq(0)")),
    # ------------------------------------------------------------ the accelerator that ships (formal/accel.py, link.py)
    # depth 51: every op that ends within it (the shortest takes 41 cycles at read latency 7); from
    # about step 50 each step takes 1.5-2x the one before (depth 80 had reached step 57 after 186 s)
    Proof("conv_contract", CONTRACT, CONV, accel.CONV_GEOMETRY, accel.conv_contract, "bmc", 51, cut=("dut.ctr",),
          mutants=mutant("done_early", *NILIF_DONE_EARLY)),
    Proof("vec_contract", CONTRACT, VEC, accel.UNIT_GEOMETRY, accel.vec_contract, "bmc", 80, cut=("dut.ctr",),
          mutants=mutant("done_early", *NILIF_DONE_EARLY)),
    Proof("mb_contract", CONTRACT + " (with lemmas: every pipeline stage valid only while active)", MB,
          # k = L + 5 = 12: two more than the unit's L + 3 = 10-stage line pipeline (s1, the L - 1 = 6
          # read-latency stages s1_0.., s1d, s2, wst); k = L + 4 failed in the induction step at L = 6
          accel.UNIT_GEOMETRY, accel.mb_contract_inductive, "prove", READ_LATENCY + 5, cut=("dut.ctr",),
          mutant_depth=READ_LATENCY + 8, fast=True,
          mutants=mutant("done_early", "busy falls when the op's last line leaves the multiplier stage, "
                         "two cycles before its write",
                         "m.d.comb += done.eq(wst.op_end)", "m.d.comb += done.eq(s1.valid & s1.op_end)")),
    Proof("conv_saturation", "(c) saturation counted exactly: counters.saturated == the lanes the requantiser "
          "clamps (its value out of the 16-bit range) + the residual adds that clamp + the NI-LIF membrane clamps",
          # depth 46: the shortest op at the top's read latency 7 takes 41 cycles (CONV_OVERHEAD 40 + 1), its
          # counts settle COUNTER_LAG later; the mutant's first uncounted clamp shows at step 42
          CONV, accel_units.CONV_ANY, accel_units.conv_saturation, "bmc", 46, flatten=True,
          mutants=mutant("requant_sat_uncounted", "clamps of the requantiser are not counted",
                         "m.d.sync += sat_flags.eq(Cat(q3.sat, r2.sat, nl.o_sat))",
                         "m.d.sync += sat_flags.eq(Cat(Const(0, P), r2.sat, nl.o_sat))")),
    # depth 48 at read latency 7: the ops of depth 36 at latency 1 (one of each shape), 2 * 6 cycles longer
    Proof("conv_counters", "(e) counters == engine_cycles.conv_cost model: busy == CONV_OVERHEAD + sum over output "
          "words of max(GROUP_MIN, sum max(1, nnz)) (the op's first word its own count); words, events "
          "(no stall counters: no output stream, no memory waits)",
          CONV, accel_units.CONV_POSITIONS, accel_units.conv_counters, "bmc", 48, flatten=True,
          mutants=mutant("no_group_spacing", "output words are not spaced GROUP_MIN cycles apart (the scanner "
                         "never holds a group's last word)",
                         "hold = hd.t.group_end & done_word & ~cool_zero", "hold = Const(0)")),
    # depth 32 at read latency 7: the op of depth 26 at latency 1 (an ADD of up to 4 words), 6 cycles longer
    Proof("vec_add_saturation", "(c) ADD: each lane written == clamp(a + b) computed without truncation, "
          "counters.saturated == clamped lanes", VEC, accel_units.VEC_ADD, accel_units.vec_add_saturation,
          "bmc", 32,
          mutants=(Mutant("add_sat_uncounted", "clamps of an ADD are not counted",
                          "add_sat = v1.valid & ((neuron & d.const) | is_add)",
                          "add_sat = v1.valid & neuron & d.const"),
                   Mutant("add_wraps", "a + b is formed in 16 bits (wraps before the clamp)",
                          '"sum": lanes_of(signed(B + 1))', '"sum": lanes_of(signed(B))'))),
    # depth 46 at read latency 7: the ops of depth 40 at latency 1, 6 cycles longer (the shortest op takes 22 cycles,
    # 16 at latency 1); 185-187 s on the loaded 2-core machine (each step from 40 on takes 10-25 s)
    Proof("vec_saturation", "(c) saturation counted exactly, every mode: counters.saturated == the lanes whose "
          "add (ADD, NEURON with the table) or requantised pooling sum leaves the 16-bit range + the NI-LIF "
          "membrane clamps", VEC, accel_units.VEC_ANY_DESC, accel_units.vec_saturation, "bmc", 46, flatten=True,
          timeout=1800,   # steps 41-45 take 1-2 min each since a47f5ff (10-11 min in all, idle machine)
          mutants=mutant("pool_sat_uncounted", "clamps of the pooling requantiser are not counted",
                         "m.d.sync += sat_flags.eq(Cat(v2.sat, pool_sat, nl.o_sat))",
                         "m.d.sync += sat_flags.eq(Cat(v2.sat, Const(0, P), nl.o_sat))")),
    # depth 42 at read latency 7: the ops of depth 36 at latency 1 (up to 16 reads, then 31 cycles), 6 cycles longer
    Proof("vec_counters", "(e) counters == engine_cycles.vector_cost model: busy == VECTOR_OVERHEAD + words*R, "
          "reads == words*(1 for NEURON, else R) (no stall counters)", VEC, accel_units.VEC_ANY,
          accel_units.vec_counters, "bmc", 42,
          mutants=mutant("neuron_word_3_cycles", "a NEURON word takes NILIF_STAGES - 1 cycles",
                         "Mux(neuron, NILIF_STAGES, 1))", "Mux(neuron, NILIF_STAGES - 1, 1))")),
    # depth 26 at read latency 7: the op of depth 20 at latency 1 (4 tokens, 2 lines: 8 steps), 6 cycles longer
    Proof("mb_accumulate", "(c) no product or accumulator wraps: each template-memory line written == sum_n k*v "
          "computed without truncation (levels <= D)", MB, accel_units.MB_SMALL, accel_units.mb_accumulate,
          "bmc", 26,
          mutants=mutant("product_4_bits", "k*v is kept in 4 bits (D*D = 16 needs 5)",
                         '"prod": data.ArrayLayout(5, P)', '"prod": data.ArrayLayout(4, P)')),
    # depth 36 at read latency 7: the ops of depth 24 at latency 1 (one op of 8 steps and a 1-step op after it,
    # or two 1-step ops), each MB_OVERHEAD - 6 = 6 cycles longer now, with their counts settled
    Proof("mb_counters", "(e) counters == engine_cycles.memory_build_cost model: busy == MB_OVERHEAD + steps, "
          "reads == steps (no stall counters)", MB, accel_units.MB_ANY, accel_units.mb_counters, "bmc", 36, fast=True,
          mutants=mutant("busy_misses_take", "the descriptor's take cycle is not counted as busy",
                         "ctr.inc.busy.eq(active | take), ctr.inc.reads.eq(running)",
                         "ctr.inc.busy.eq(active), ctr.inc.reads.eq(running)")),
    Proof("accel_rsp_stream", STREAM.format("o_rsp"), TOP, accel.TOP_GEOMETRY, accel.rsp_stream, "prove", 2,
          cut=accel.TOP_CUT, mutant_depth=14,
          mutants=(Mutant("reply_overwrites", "a new reply word is written while the previous one is stalled",
                          "can_reply = ~rsp_valid | self.o_rsp.ready", "can_reply = Const(1)"),
                   Mutant("valid_falls_early", "rsp_valid is cleared whether or not the word was taken",
                          "with m.If(self.o_rsp.valid & self.o_rsp.ready):", "with m.If(self.o_rsp.valid):"))),
    Proof("accel_rsp_transfers", "(a) o_rsp: no reply word duplicated or lost: each accepted command gets, in order, "
          "a status word with its op, then the words the protocol defines (READ answered OK: count rows of "
          "words_per_row words; STATUS: 1 + len(COUNTERS); others none), complete before the next header is accepted",
          # depth 14: each further step takes about twice the one before (step 16 after 3 min, 17 not
          # done in 15 min); two short commands and the third header fit, a READ of 2 rows does not
          TOP, accel.TOP_GEOMETRY, accel.rsp_transfers, "bmc", 14, cut=accel.TOP_CUT,
          mutants=(Mutant("ack_drops_status", "WRITE, RUN, GUARD, NOP and refused commands get no status word",
                          "                    m.d.sync += reply(op, err, cnt)\n                    m.next = \"HDR0\"",
                          "                    m.next = \"HDR0\""),
                   Mutant("ack_repeats", "the status word of WRITE, RUN, GUARD, NOP and refused commands is sent "
                          "again and again (ACK never returns to HDR0)",
                          "                    m.d.sync += reply(op, err, cnt)\n                    m.next = \"HDR0\"",
                          "                    m.d.sync += reply(op, err, cnt)"),
                   REFUSED_EMPTY_WRITE_SKIPS)),
    Proof("accel_counters", "(e) the top's counters equal, every cycle, the counts of what they count (two cycles "
          "late, as the top registers each increment): cycles; run_cycles (busy); runs (busy rising); descriptors "
          "(issued to a unit, completed when it is not busy); ctrl_cycles (busy, no unit working for the run); conv/vec/"
          "mb_busy; events (conv-engine w/tm reads while it owns the ports); saturated (the units' sum); every "
          "memory read and write enable (*_reads, *_writes); rsp_stall (o_rsp.valid & ~ready). Not guard_blocked "
          "(plus lemmas: the current unit is cur, a descriptor in flight is WAIT, busy is out of IDLE, act_*)",
          # k = 4: k = 3 fails in the induction step on runs (a start whose RANGE2 lies before the window)
          TOP, accel.TOP_GEOMETRY + "; program words name a unit (0-2)", accel_top.counters, "prove", 4,
          # fast: 3-7 s; its three mutants (4-7 s of solver and as much elaboration each) carry the formal marker
          cut=accel.TOP_CUT, mutant_depth=20, fast=True, fast_mutants=False,
          mutants=(Mutant("rsp_stall_counted_twice", "a stalled response cycle adds 2 to rsp_stall",
                          'bump("rsp_stall", rsp_valid & ~self.o_rsp.ready)',
                          'bump("rsp_stall", (rsp_valid & ~self.o_rsp.ready) << 1)'),
                   Mutant("last_descriptor_uncounted", "the last descriptor of a run is not counted",
                          "desc_inc.eq(desc_done)", "desc_inc.eq(desc_done & (left != 1))"),
                   Mutant("lv_reads_one_port", "reads on the level memory's second port (the memory builder's v) "
                          "are not counted",
                          'bump("lv_reads", en_lv.as_unsigned() + en_lv2)', 'bump("lv_reads", en_lv)'))),
    Proof("accel_commands", "(a) i_cmd: no command word lost or duplicated: each accepted word is taken as the header, "
          "address or payload word of the top's current command exactly when the protocol splits it so (payload "
          "words at their place in the row); headers decoded == commands counted",
          # depth 18: 161 s; depth 16: 35 s (each step about twice the one before)
          TOP, accel.TOP_GEOMETRY, accel_top.commands, "bmc", 18, cut=accel.TOP_CUT, flatten=True,
          mutants=(Mutant("ready_in_range", "i_cmd is ready one cycle more, after the address (RANGE): a word "
                          "offered then is taken and dropped",
                          'with m.State("RANGE"):',
                          'with m.State("RANGE"):\n                m.d.comb += self.i_cmd.ready.eq(1)'),
                   Mutant("payload_consumed_without_take", "the second payload word of a row is consumed without "
                          "being taken (ready low), then taken again as the next word",
                          "m.d.comb += [self.i_cmd.ready.eq(1), pay_we.eq(self.i_cmd.valid)]",
                          "m.d.comb += [self.i_cmd.ready.eq(widx != 1), pay_we.eq(self.i_cmd.valid)]"),
                   REFUSED_EMPTY_WRITE_SKIPS)),
    Proof("accel_template_write", "(b) during a search run no template slot (template-memory row below the "
          "guard) is written, and neither the run kind nor the guard changes while a run lasts",
          TOP, accel.TOP_GEOMETRY, accel.template_write, "prove", 4, cut=accel.TOP_CUT, mutant_depth=34,
          mutants=(Mutant("guard_ignored", "the memory builder's writes are not blocked below the guard",
                          "act[Unit.MB] & mb.out_en & ~tm_blocked)", "act[Unit.MB] & mb.out_en)"),
                   Mutant("guard_while_running", "a GUARD command is accepted while a run is in progress",
                          "                with m.Elif(running):\n                    m.d.sync += e_pre.eq(Err.BUSY)\n"
                          "                with m.Elif(op == Op.GUARD):\n                    pass",
                          "                with m.Elif(op == Op.GUARD):\n                    pass\n"
                          "                with m.Elif(running):\n                    m.d.sync += e_pre.eq(Err.BUSY)"),
                   Mutant("block_template_runs", "the guard blocks template runs instead of search runs",
                          "((run_kind == RunKind.SEARCH) & ~at_least(mb.out_addr, guard))",
                          "((run_kind == RunKind.TEMPLATE) & ~at_least(mb.out_addr, guard))"))),
    Proof("link_stream", "(a) o_cmd and o_byte: valid held until ready, payload stable while stalled",
          LINK, link.GEOMETRY, link.stream_rules, "prove", 2, mutant_depth=24, fast=True,
          mutants=(Mutant("cmd_reads_ahead", "the buffer read address advances while o_cmd is stalled",
                          "rd.addr.eq(Mux(take, ridx1, ridx))", "rd.addr.eq(ridx1)"),
                   Mutant("byte_valid_falls_early", "the UART byte is withdrawn whether or not it was taken",
                          "        with m.If(sent):\n            m.d.sync += txv.eq(0)",
                          "        with m.If(txv):\n            m.d.sync += txv.eq(0)"))),
    Proof("uart_stream", "(a) UART receiver o_byte: valid held until ready, payload stable while stalled",
          UART, "divisor 4 (cycles per bit), any line", link.uart_stream, "prove", 2, mutant_depth=90, fast=True,
          mutants=mutant("overwrites_stalled_byte", "a byte completing while the previous one is stalled overwrites it",
                         "with m.If(self.o_byte.valid & ~self.o_byte.ready):",
                         "with m.If(self.o_byte.valid & self.o_byte.ready):")),
    Proof("link_crc_step", "the RTL's CRC-16 step equals the host's CRC-16/CCITT-FALSE for every register and byte",
          LINK, "combinational: all 2^24 (register, byte) pairs", link.crc_step, "prove", 1, mutant_depth=2, fast=True,
          mutants=mutant("wrong_polynomial", "polynomial 0x1031 instead of 0x1021",
                         "Cat(0, c[:15]) ^ 0x1021", "Cat(0, c[:15]) ^ 0x1031")),
    Proof("link_rejects", "a frame with a bad CRC, an unknown command (kind > GUARD), a header op other than its "
          "kind or a wrong length is never executed: no word reaches o_cmd (one frame from reset)",
          LINK, link.GEOMETRY, link.rejects, "bmc", 20,
          mutants=(Mutant("crc_check_skipped", "the CRC comparison is dropped", "with m.If(crc != crc_rx):",
                          "with m.If(Const(0)):"),
                   Mutant("kind_check_skipped", "an unknown kind byte is not rejected", "with m.If(byte > Op.GUARD):",
                          "with m.If(Const(0)):"),
                   Mutant("write_without_address", "a WRITE's length check does not require the address word (a "
                          "one-word WRITE of 0 rows executes: the finding this proof made)",
                          "(widx >= 2) & (in_row == 0)", "(in_row == 0)"))),
]}
