"""Memory-retrieval unit: memory build ``M = Kᵀ V``, retrieval ``R = Q · M`` and spiking attention.

One component, :class:`MemoryUnit`, does the three spike x spike / spike x memory products of
SpikeTrack (docs/integer_semantics.md §IS-8, spec §4.4 and §5.2):

* ``BUILD slot``   (template pass):  ``M[slot, h, c, j] = Σ_n kK[h, c, n] · kV[h, j, n]``
* ``RETRIEVE slot`` (search pass):   ``R[h, j, n] = Σ_c kQ[h, c, n] · M[slot, h, c, j]``
* ``ATTEND``       (backbone attention on one set of tokens): build into a private scratch
  memory, then retrieve from it: ``R = Q · (Kᵀ V)``.

Data flow
---------
Spikes arrive as the shared event stream (:mod:`spiketrack.hw.events`, one packet per spike map).
A BUILD/ATTEND command takes two packets on ``i_events``: first the V map (``chan = h·d_v + j``),
then the K map (``chan = h·d_h + c``); a RETRIEVE/ATTEND command takes one Q packet
(``chan = h·d_h + c``). ``pos`` is the token ``n``.

* V events are written into a V buffer (one lane of a ``P``-lane word per event).
* Every K event ``(n, chan = h·d_h + c, level k)`` walks the ``d_v / P`` chunks of the V row
  ``V[n, h, :]`` and adds ``k · v`` to ``M[slot, h, c, chunk]``, ``P`` lanes per cycle.
  ``k · v`` (both levels 0..D) is the shift-add product of §IS-4 / §IS-8; there is no multiplier.
* Every Q event ``(n, chan = h·d_h + c, k)`` walks the chunks of ``M[slot, h, c, :]`` and adds
  ``k · M`` (shift-add, §IS-4) to the accumulator row ``R[n, h, chunk]`` (``P`` lanes per cycle).
* After the Q packet the accumulators are streamed out on ``o_acc`` (token-major, one beat per
  ``(n, h, chunk)``) and cleared as they leave (clear-on-read), ready for the next pass.

The accumulators are the integer ``R_int`` at exponent ``3d`` (§IS-8). The attention scale
``2·d_h**-0.5 = 2**-σ`` is folded into the requantise shift of the following neuron unit:
``shift = 3d + σ - f_m`` (§IS-8, §IS-5); the neuron (requantise + fire, and for the MRM query the
T-step membrane of §IS-7) is :mod:`spiketrack.hw.neuron_unit`, not duplicated here.

Read-modify-write pipeline (one ``P``-lane update per cycle, 5 stages): a read is issued in
cycle ``t`` (synchronous, non-transparent ``lib.memory`` read ports), the block-RAM output is
registered in ``t + 1``, the shift-add product ``k·x`` is registered in ``t + 2``, the sum is
registered in ``t + 3`` and written in ``t + 4`` (the write ports are fed from registers only,
for ECP5 timing). Updates of one word in flight are forwarded from a four-deep write
history, so back-to-back updates never lose a value (§IS-4: every update is exact and the
order of accumulation does not matter). After the last update of a phase the unit waits
``DRAIN = 4`` cycles before the memory is read by the next phase.

Unidirectional contract (spec §5.1, §IS-8)
------------------------------------------
The template memory ``M`` has exactly one write port. Its enable is
``template_mode & (clear of a BUILD | build update of a BUILD)``; the retrieval datapath has no
path to it (the retrieval stage writes only the accumulator memory, ATTEND builds only into
the scratch memory). A search pass therefore never changes a template memory, whatever the
command sequence; ``tests/test_hw_memory_unit.py`` reads every word before and after to show it.

Memories (all ``lib.memory``, synchronous read)
-----------------------------------------------
* ``m``: ``n_slots`` banks (one per MRM site x template timestep), word = ``P`` lanes of
  ``B_M = bits(D²·n_max)`` (§IS-8: no saturation can occur), address ``Cat(chunk, c, h, slot)``.
  Retained across frames; replaced only by a BUILD of the same slot.
* ``scratch``: one bank like ``m`` for ATTEND.
* ``vbuf``: ``n_max·H·d_v/P`` words of ``P`` 3-bit levels (lane-granular writes).
* ``racc``: ``n_max·H·d_v/P`` words of ``P`` lanes of ``B_R = bits(D·d_h·D²·n_max)``.

Limits: ``d_h``, ``d_v`` and ``lanes`` are powers of two (``d_h ∈ {4, 16, 64}`` in §IS-8);
``1 <= n_tokens <= n_max``; ``heads >= 1``. Event positions must be ``< n_tokens`` and channels
in range (as the encoder produces them). The exact cycle model is
:mod:`spiketrack.hw.memory_unit_cycles`.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory, MemoryData
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2, exact_log2

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.events import event_layout
from spiketrack.quant.golden.arith import bit_width_unsigned
from spiketrack.quant.golden.neuron import D

__all__ = ["Op", "MemoryUnit", "MemoryUnitGeometry", "level_times", "DRAIN", "OUT_LATENCY", "MEMORY_COUNTERS"]

DRAIN = 4        #: cycles after the last update issue until it is in memory (pipeline A->E)
OUT_LATENCY = 2  #: o_acc pipeline: racc read, then output register


class Op(enum.Enum, shape=2):
    """Command opcode."""
    BUILD = 0     #: template pass: clear slot, V packet, K packet -> M[slot]   (needs template_mode)
    RETRIEVE = 1  #: search pass: Q packet -> R = Q·M[slot] -> o_acc
    ATTEND = 2    #: backbone attention: V, K packets -> scratch; Q packet -> R = Q·scratch -> o_acc


def level_times(k, x):
    """``k · x`` for a spike level ``k`` (0..D, 3 bits) by shifts and adds only (§IS-4).

    ``k = 4·k[2] + 2·k[1] + k[0]``: ``1·x = x``, ``2·x = x << 1``, ``3·x = (x << 1) + x``,
    ``4·x = x << 2``. Unsigned ``x``.
    """
    return (Mux(k[0], x, 0) + Mux(k[1], x << 1, 0)) + Mux(k[2], x << 2, 0)


class MemoryUnitGeometry:
    """Derived sizes of a :class:`MemoryUnit` (shared with the cycle model).

    Parameters
    ----------
    heads, d_h, d_v : int
        Heads, key/query channels per head, value channels per head (``d_h``, ``d_v`` powers of 2).
    n_max : int
        Largest token count ``N`` of any pass.
    n_slots : int
        Template memory banks (MRM sites x template timesteps).
    lanes : int
        Parallel lanes ``P`` (power of 2, clamped to ``d_v``).
    """

    def __init__(self, heads: int, d_h: int, d_v: int, n_max: int, n_slots: int = 1, lanes: int = 4):
        if heads < 1 or n_max < 1 or n_slots < 1:
            raise ValueError("heads, n_max and n_slots must be >= 1")
        self.heads, self.d_h, self.d_v, self.n_max, self.n_slots = heads, d_h, d_v, n_max, n_slots
        self.dhb = exact_log2(d_h)
        self.dvb = exact_log2(d_v)
        self.lanes = min(lanes, d_v)
        self.lb = exact_log2(self.lanes)
        self.n_chunks = d_v // self.lanes
        self.cb = exact_log2(self.n_chunks)
        self.hb = ceil_log2(heads)
        self.chanb = self.dhb + self.hb           # K/Q channel bits (h·d_h + c)
        self.vchanb = self.dvb + self.hb          # V channel bits (h·d_v + j)
        self.sb = ceil_log2(n_slots)
        self.pos_bits = max(1, ceil_log2(n_max))
        self.chan_bits = max(1, self.chanb, self.vchanb)
        self.ntok_bits = bit_width_unsigned(n_max)
        self.m_bits = bit_width_unsigned(D * D * n_max)                 # B_M (§IS-8)
        self.r_bits = bit_width_unsigned(D * D * D * d_h * n_max)       # R accumulator width
        self.slot_words = 1 << (self.cb + self.chanb)                   # words of one M bank
        self.row_shift = self.cb + self.hb                              # words per token in vbuf/racc
        self.tok_words = 1 << self.row_shift
        self.buf_words = n_max << self.row_shift

    def clear_cycles(self, n_tokens: int) -> int:
        """Cycles of the CLEAR phase of a BUILD/ATTEND (V buffer rows of N tokens, one M bank)."""
        return max(n_tokens << self.row_shift, self.slot_words)

    def out_beats(self, n_tokens: int) -> int:
        """Beats on ``o_acc`` for one retrieval (one per token, head and chunk)."""
        return n_tokens * self.heads * self.n_chunks


def acc_layout(geom: MemoryUnitGeometry) -> data.StructLayout:
    """Payload of ``o_acc``: ``P`` accumulators of one (token, head, chunk)."""
    return data.StructLayout({
        "acc": data.ArrayLayout(unsigned(geom.r_bits), geom.lanes),
        "pos": geom.pos_bits,            # token n
        "chan": max(1, geom.vchanb),     # output channel h·d_v + j of lane 0
        "last": 1,
    })


def cmd_layout(geom: MemoryUnitGeometry) -> data.StructLayout:
    """Payload of ``cmd``."""
    return data.StructLayout({
        "op": Op,
        "slot": max(1, geom.sb),
        "n_tokens": geom.ntok_bits,
    })


MEMORY_COUNTERS = ("busy", "stall_in", "stall_out", "events", "commands")
"""Counter names of the memory unit (:mod:`spiketrack.hw.counters`): ``busy`` cycles not idle,
``stall_in`` cycles waiting for an input event (``i_events.valid`` low in an input phase),
``stall_out`` cycles with ``o_acc.valid & ~o_acc.ready``, ``events`` non-empty events
consumed, ``commands`` commands accepted."""


class MemoryUnit(wiring.Component):
    """Memory build / retrieval / spiking attention unit (§IS-8).

    Parameters
    ----------
    heads, d_h, d_v, n_max, n_slots, lanes : see :class:`MemoryUnitGeometry`.

    Members
    -------
    cmd : In(stream.Signature(cmd_layout)), in
        One command (``op``, ``slot``, ``n_tokens``); accepted only when idle.
    template_mode : Signal(1), in
        Template pass in progress. Gates the write port of the template memory (unidirectional
        contract, §IS-8): with it low nothing can write ``M``.
    i_events : In(stream.Signature(event_layout)), in
        Spike events (:mod:`spiketrack.hw.events`): V packet then K packet for BUILD/ATTEND,
        Q packet for RETRIEVE/ATTEND.
    o_acc : Out(stream.Signature(acc_layout)), out
        Retrieval accumulators ``R_int`` (exponent 3d), ``P`` lanes per beat, token-major,
        ``last`` on the final beat; feed to the neuron unit with shift ``3d + σ - f_m``.
    busy : Signal(1), out
        A command is in progress.
    counters : Out(counters_layout(MEMORY_COUNTERS)), out
        Busy / stall / event / command counters (a :class:`~spiketrack.hw.counters.CounterBank`;
        complete ``COUNTER_LAG`` cycles after the unit goes idle).
    """

    def __init__(self, heads: int, d_h: int, d_v: int, n_max: int, n_slots: int = 1, lanes: int = 4):
        g = self.geom = MemoryUnitGeometry(heads, d_h, d_v, n_max, n_slots, lanes)
        P = g.lanes
        self.m_data = MemoryData(shape=unsigned(P * g.m_bits), depth=n_slots * g.slot_words, init=[])
        self.s_data = MemoryData(shape=unsigned(P * g.m_bits), depth=g.slot_words, init=[])
        self.v_data = MemoryData(shape=unsigned(P * 3), depth=g.buf_words, init=[])
        self.r_data = MemoryData(shape=unsigned(P * g.r_bits), depth=g.buf_words, init=[])
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(g))),
            "template_mode": In(1),
            "i_events": In(stream.Signature(event_layout(g.pos_bits, g.chan_bits))),
            "o_acc": Out(stream.Signature(acc_layout(g))),
            "busy": Out(1),
            "counters": Out(counters_layout(MEMORY_COUNTERS)),
        })

    def m_word(self, slot: int, h: int, c: int, chunk: int) -> int:
        """Address of ``M[slot, h, c, chunk·P : (chunk+1)·P]`` in :attr:`m_data`."""
        g = self.geom
        return (((slot << g.chanb) | (h << g.dhb) | c) << g.cb) | chunk

    def elaborate(self, platform):
        g = self.geom
        P, BM, BR = g.lanes, g.m_bits, g.r_bits
        m = Module()

        # ``no_rw_check``: the value a read returns when it collides with a write to the same
        # address in the same cycle is never used (stage D forwards the writes of the last
        # four cycles; the phases that write vbuf/scratch end before those memories are read;
        # R_OUT's clear-on-read write never hits the word being read for a valid beat).
        # The attribute tells yosys the collision result is "don't care", so it does not
        # emulate read-first semantics with a bypass mux after the EBR (``emulate_read_first``
        # in memory_libmap), which was the extra logic level on the ECP5 critical path.
        # Simulation (amaranth.sim, Verilog) keeps the non-transparent (old data) semantics.
        attrs = {"no_rw_check": 1}
        m.submodules.m_mem = m_mem = Memory(data=self.m_data, attrs=attrs)
        m.submodules.s_mem = s_mem = Memory(data=self.s_data, attrs=attrs)
        m.submodules.v_mem = v_mem = Memory(data=self.v_data, attrs=attrs)
        m.submodules.r_mem = r_mem = Memory(data=self.r_data, attrs=attrs)
        # Non-transparent synchronous read ports: the EBR output goes straight into fabric
        # registers (timing); read-after-write hazards are resolved by forwarding (stage D).
        m_wr, m_rd = m_mem.write_port(), m_mem.read_port()
        s_wr, s_rd = s_mem.write_port(), s_mem.read_port()
        v_wr, v_rd = v_mem.write_port(granularity=3), v_mem.read_port()
        r_wr, r_rd = r_mem.write_port(), r_mem.read_port()

        # ---- command registers
        op = Signal(Op)
        slot = Signal(max(1, g.sb))
        ntok = Signal(g.ntok_bits)

        ev = self.i_events.payload
        ev_chan = ev.chan[:g.chanb]                       # h·d_h + c
        ev_h = ev.chan[g.dhb:g.dhb + g.hb]                # head of a K/Q event
        ev_pos = ev.pos[:max(0, ceil_log2(g.n_max))]
        ck = Signal(max(1, g.cb))                         # chunk of the current K/Q event
        last_chunk = ck == g.n_chunks - 1
        ckb = ck[:g.cb]
        m_addr = Cat(ckb, ev_chan, slot[:g.sb])           # M[slot, h, c, chunk]
        s_addr = Cat(ckb, ev_chan)                        # scratch[h, c, chunk]
        row_addr = Cat(ckb, ev_h, ev_pos)                 # vbuf / racc [n, h, chunk]

        # ---- read-modify-write pipeline, one update per cycle:
        #   A (t)   issue reads            B (t+1) EBR outputs -> raw registers
        #   C (t+2) select, k·x -> reg     D (t+3) old (forwarded) + k·x -> register w1
        #   E (t+4) write w1 (the EBR write port is fed from registers only: ECP5 timing)
        # A read latched at the end of t misses the writes committed at the ends of t .. t+3;
        # stage D takes those from the write history w1..w4 (forwarding, exact).
        tag_w = max(len(m_wr.addr), len(s_wr.addr), len(r_wr.addr)) + 2   # address + kind + scratch

        def stage(name):
            return {"valid": Signal(name=f"{name}_valid"), "build": Signal(name=f"{name}_build"),
                    "scr": Signal(name=f"{name}_scr"), "level": Signal(3, name=f"{name}_level"),
                    "tag": Signal(tag_w, name=f"{name}_tag")}
        A, B, C, Dd = stage("a"), stage("b"), stage("c"), stage("d")
        for src, dst in ((A, B), (B, C), (C, Dd)):
            m.d.sync += [dst[k].eq(src[k]) for k in dst]

        lane_m = lambda w, i: w[i * BM:(i + 1) * BM]
        lane_r = lambda w, i: w[i * BR:(i + 1) * BR]
        # datapath registers carry no reset (qualified by valid bits; keeps rst off the EBR paths)
        m_raw, s_raw = Signal(P * BM, reset_less=True), Signal(P * BM, reset_less=True)
        r_raw, v_raw = Signal(P * BR, reset_less=True), Signal(P * 3, reset_less=True)
        m.d.sync += [m_raw.eq(m_rd.data), s_raw.eq(s_rd.data), r_raw.eq(r_rd.data), v_raw.eq(v_rd.data)]

        # stage C: operand select and the shift-add product k·x (§IS-4, §IS-8)
        ms_raw = Mux(C["scr"], s_raw, m_raw)
        d_p = Signal(P * BR, reset_less=True)
        d_old = Signal(P * BR, reset_less=True)
        for i in range(P):
            x = Mux(C["build"], v_raw[i * 3:(i + 1) * 3], lane_m(ms_raw, i))
            old = Mux(C["build"], lane_m(ms_raw, i), lane_r(r_raw, i))
            m.d.sync += [lane_r(d_p, i).eq(level_times(C["level"], x)), lane_r(d_old, i).eq(old)]

        # write history: w1 = stage E (being written this cycle), w2..w4 = written at the ends of
        # the last three cycles; forward flags (newest first) registered in stage C
        w = [{"valid": Signal(name=f"w{k}_valid"), "tag": Signal(tag_w, name=f"w{k}_tag"),
              "data": Signal(P * BR, name=f"w{k}_data", reset_less=True)} for k in (1, 2, 3, 4)]
        f = [Signal(name=f"fwd{k}") for k in (1, 2, 3, 4)]
        m.d.sync += [
            f[0].eq(C["valid"] & Dd["valid"] & (C["tag"] == Dd["tag"])),
            f[1].eq(C["valid"] & w[0]["valid"] & (C["tag"] == w[0]["tag"])),
            f[2].eq(C["valid"] & w[1]["valid"] & (C["tag"] == w[1]["tag"])),
            f[3].eq(C["valid"] & w[2]["valid"] & (C["tag"] == w[2]["tag"])),
        ]
        d_old_f = Mux(f[0], w[0]["data"], Mux(f[1], w[1]["data"],
                      Mux(f[2], w[2]["data"], Mux(f[3], w[3]["data"], d_old))))
        d_new = Cat(*[(lane_r(d_old_f, i) + lane_r(d_p, i))[:BR] for i in range(P)])
        m.d.sync += [w[0]["valid"].eq(Dd["valid"]), w[0]["tag"].eq(Dd["tag"]), w[0]["data"].eq(d_new)]
        for k in range(1, len(w)):
            m.d.sync += [w[k][x].eq(w[k - 1][x]) for x in ("valid", "tag", "data")]
        # stage E writes the registered sum w1
        d_addr = w[0]["tag"][2:]
        d_new_m = Cat(*[lane_r(w[0]["data"], i)[:BM] for i in range(P)])
        d_new_r = w[0]["data"]

        # Write-port controls come from registers only (timing, ECP5): stage-E write enables are
        # decoded in stage D, and the CLEAR phase runs on registered flags (clr_*) rather than
        # on compares of its counter, so each write port sees one mux level (clear/update).
        d_we_m, d_we_s, d_we_r = Signal(), Signal(), Signal()
        m.d.sync += [
            d_we_m.eq(Dd["valid"] & Dd["build"] & ~Dd["scr"]),
            d_we_s.eq(Dd["valid"] & Dd["build"] & Dd["scr"]),
            d_we_r.eq(Dd["valid"] & ~Dd["build"]),
        ]
        clr_v, clr_m, clr_s = Signal(), Signal(), Signal()   # CLEAR: vbuf rows / M bank / scratch
        out_phase = Signal()                                 # R_OUT (clear-on-read of racc)
        x_addr = Signal.like(r_rd.addr)                      # racc word of the beat in flight
        cnt = Signal(range(max(g.buf_words, g.slot_words, DRAIN) + 1))
        clr_addr = cnt[:g.cb + g.chanb]

        # Build path write requests (the ONLY drivers of the template write port).
        build_m_we = Signal()      # clear or update of a template bank during BUILD
        build_m_addr = Signal.like(m_wr.addr)
        build_m_data = Signal.like(m_wr.data)
        m.d.comb += [
            m_wr.en.eq(build_m_we & self.template_mode),   # unidirectional gate (§IS-8)
            m_wr.addr.eq(build_m_addr),
            m_wr.data.eq(build_m_data),
            build_m_we.eq(d_we_m | clr_m),
            build_m_addr.eq(Mux(clr_m, Cat(clr_addr, slot[:g.sb]), d_addr)),
            build_m_data.eq(Mux(clr_m, 0, d_new_m)),
            s_wr.en.eq(d_we_s | clr_s),
            s_wr.addr.eq(Mux(clr_s, clr_addr, d_addr)),
            s_wr.data.eq(Mux(clr_s, 0, d_new_m)),
            r_wr.en.eq(d_we_r),                        # R_OUT adds its clear-on-read writes
            r_wr.addr.eq(Mux(out_phase, x_addr, d_addr)),
            r_wr.data.eq(Mux(out_phase, 0, d_new_r)),
        ]

        # read ports: always enabled, except racc in R_OUT (held under backpressure)
        m.d.comb += [
            m_rd.en.eq(1), s_rd.en.eq(1), v_rd.en.eq(1), r_rd.en.eq(1),
            m_rd.addr.eq(m_addr), s_rd.addr.eq(s_addr), v_rd.addr.eq(row_addr), r_rd.addr.eq(row_addr),
        ]

        # ---- output pipeline: X (racc read in flight / held) -> O (registered beat)
        o_valid = Signal()
        o_data = Signal(P * BR, reset_less=True)
        o_pos = Signal(g.pos_bits)
        o_chan = Signal(max(1, g.vchanb))
        o_last = Signal()
        x_valid = Signal()
        x_pos = Signal(g.pos_bits)
        x_chan = Signal(max(1, g.vchanb))
        x_last = Signal()
        out_done = Signal()
        on = Signal(g.pos_bits + 1)
        oh = Signal(max(1, g.hb))
        ock = Signal(max(1, g.cb))
        m.d.comb += [
            self.o_acc.valid.eq(o_valid),
            self.o_acc.payload.acc.eq(o_data),
            self.o_acc.payload.pos.eq(o_pos),
            self.o_acc.payload.chan.eq(o_chan),
            self.o_acc.payload.last.eq(o_last),
        ]

        v_rows = Signal.like(cnt)
        m.d.comb += v_rows.eq(ntok << g.row_shift)
        n_clear = Mux(v_rows > g.slot_words, v_rows, g.slot_words)

        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.cmd.valid):
                    m.d.sync += [
                        op.eq(self.cmd.payload.op), slot.eq(self.cmd.payload.slot),
                        ntok.eq(self.cmd.payload.n_tokens), cnt.eq(0), ck.eq(0),
                        on.eq(0), oh.eq(0), ock.eq(0), out_done.eq(0), x_valid.eq(0),
                        clr_v.eq(self.cmd.payload.op != Op.RETRIEVE),
                        clr_m.eq(self.cmd.payload.op == Op.BUILD),
                        clr_s.eq(self.cmd.payload.op == Op.ATTEND),
                    ]
                    with m.If(self.cmd.payload.op == Op.RETRIEVE):
                        m.next = "R_ACC"
                    with m.Else():
                        m.next = "CLEAR"

            with m.State("CLEAR"):
                m.d.sync += cnt.eq(cnt + 1)
                # clr_v is high while cnt < v_rows, clr_m / clr_s while cnt < slot_words
                with m.If(clr_v):
                    m.d.comb += [v_wr.en.eq((1 << P) - 1), v_wr.addr.eq(cnt), v_wr.data.eq(0)]
                with m.If(cnt == v_rows - 1):
                    m.d.sync += clr_v.eq(0)
                with m.If(cnt == g.slot_words - 1):
                    m.d.sync += [clr_m.eq(0), clr_s.eq(0)]
                with m.If(cnt == n_clear - 1):
                    m.next = "V_LOAD"

            with m.State("V_LOAD"):
                m.d.comb += self.i_events.ready.eq(1)
                vj = ev.chan[:g.dvb]
                vh = ev.chan[g.dvb:g.dvb + g.hb]
                lane = vj[:g.lb]
                with m.If(self.i_events.valid & ~ev.empty):
                    m.d.comb += [
                        v_wr.en.eq(Const(1, P) << lane),
                        v_wr.addr.eq(Cat(vj[g.lb:], vh, ev_pos)),
                        v_wr.data.eq(Cat(*[ev.level] * P)),
                    ]
                with m.If(self.i_events.valid & ev.last):
                    m.next = "K_LOAD"

            for state, build in (("K_LOAD", True), ("R_ACC", False)):
                with m.State(state):
                    with m.If(self.i_events.valid):
                        m.d.comb += self.i_events.ready.eq(ev.empty | last_chunk)
                        with m.If(~ev.empty):
                            tgt = (Mux(op == Op.ATTEND, s_addr, m_addr) if build else row_addr)
                            m.d.comb += [
                                A["valid"].eq(1), A["build"].eq(build), A["scr"].eq(op == Op.ATTEND),
                                A["level"].eq(ev.level), A["tag"].eq(Cat(A["build"], A["scr"], tgt)),
                            ]
                            m.d.sync += ck.eq(Mux(last_chunk, 0, ck + 1))
                        with m.If(ev.last & (ev.empty | last_chunk)):
                            m.d.sync += cnt.eq(0)
                            m.next = "DRAIN_K" if build else "DRAIN_R"

            for state in ("DRAIN_K", "DRAIN_R"):
                with m.State(state):   # let the last update reach memory before it is read
                    m.d.sync += cnt.eq(cnt + 1)
                    with m.If(cnt == DRAIN - 1):
                        if state == "DRAIN_R":
                            m.d.sync += out_phase.eq(1)
                            m.next = "R_OUT"
                        else:
                            with m.If(op == Op.ATTEND):
                                m.next = "R_ACC"
                            with m.Else():
                                m.next = "IDLE"

            with m.State("R_OUT"):
                advance = ~o_valid | self.o_acc.ready
                o_row = Cat(ock[:g.cb], oh[:g.hb], on[:len(ev_pos)])
                m.d.comb += [r_rd.en.eq(advance), r_rd.addr.eq(o_row)]
                with m.If(advance):
                    m.d.sync += [o_valid.eq(x_valid), o_data.eq(r_rd.data), o_pos.eq(x_pos),
                                 o_chan.eq(x_chan), o_last.eq(x_last), x_valid.eq(~out_done)]
                    # clear-on-read: the beat moving X -> O is zeroed in racc
                    with m.If(x_valid):
                        m.d.comb += r_wr.en.eq(1)   # addr x_addr, data 0 (out_phase)
                    with m.If(out_done & ~x_valid):
                        m.d.sync += out_phase.eq(0)
                        m.next = "IDLE"
                    with m.If(~out_done):
                        last_c = ock == g.n_chunks - 1
                        last_h = oh == g.heads - 1
                        last_n = on == ntok - 1
                        m.d.sync += [
                            x_addr.eq(o_row), x_pos.eq(on),
                            x_chan.eq(Cat(Const(0, g.lb), ock[:g.cb], oh[:g.hb])),
                            x_last.eq(last_c & last_h & last_n),
                        ]
                        with m.If(last_c):
                            m.d.sync += ock.eq(0)
                            with m.If(last_h):
                                m.d.sync += [oh.eq(0), on.eq(on + 1)]
                                with m.If(last_n):
                                    m.d.sync += out_done.eq(1)
                            with m.Else():
                                m.d.sync += oh.eq(oh + 1)
                        with m.Else():
                            m.d.sync += ock.eq(ock + 1)

        # ---- status and counters
        # cmd.ready as a plain compare of the state register (a continuous assign in Verilog, so
        # event-driven simulators see it from time 0)
        # (in_phase likewise: an expression of the state register, defined from time 0)
        busy = Signal()
        in_phase = fsm.ongoing("V_LOAD") | fsm.ongoing("K_LOAD") | fsm.ongoing("R_ACC")
        m.d.comb += [self.cmd.ready.eq(fsm.ongoing("IDLE")), busy.eq(~self.cmd.ready), self.busy.eq(busy)]
        m.submodules.ctr = ctr = CounterBank(MEMORY_COUNTERS)
        m.d.comb += [
            self.counters.eq(ctr.counts),
            ctr.inc.busy.eq(busy),
            ctr.inc.stall_in.eq(in_phase & ~self.i_events.valid),
            ctr.inc.stall_out.eq(self.o_acc.valid & ~self.o_acc.ready),
            ctr.inc.events.eq(self.i_events.valid & self.i_events.ready & ~ev.empty),
            ctr.inc.commands.eq(self.cmd.valid & self.cmd.ready),
        ]
        return m
