"""Memory-build unit: ``M = Kᵀ·V`` per head (§IS-8), configured at run time by a descriptor.

One line of the template memory per (timestep, head, value chunk, key channel), in the order the
conv engine's retrieval reads them (``hw/conv_engine.py``: ``t·w_t + (h·cpg + cc)·d_h + c``), so
the output address is a plain counter. For each line the unit walks the ``N`` tokens: it reads the
key word holding channel ``c`` (one level, lane ``c mod P``) and the value word of chunk ``cc``
(``P`` levels), and adds ``k·v`` (two 3-bit levels: shift-add, no multiplier) to ``P``
accumulators in registers. ``N`` cycles per line, plus :data:`MB_OVERHEAD` per op
(``hw/engine_cycles.memory_build_cost``). Memory values are unsigned and at most ``D²·N``; the
compiler refuses a build whose values could exceed :data:`~spiketrack.hw.conv_engine.TM_BITS`.

Word layouts: keys and values are level words (``3·P`` bits) at
``base + t·x_t + n·x_n + chunk`` (``n``: token, ``x_n``: the tensor's chunks per position).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.banked_memory import READ_LATENCY
from spiketrack.hw.registers import LoopCounter, copies, delay, load_while_idle
from spiketrack.hw.conv_engine import TM_BITS, _assign
from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.engine_cycles import MB_OVERHEAD

__all__ = ["MemoryBuilder", "mb_desc_layout", "MB_COUNTERS", "MB_OVERHEAD"]

MB_COUNTERS = ("busy", "reads")


def mb_desc_layout(addr_bits: int = 16) -> data.StructLayout:
    """The memory-build descriptor."""
    A = addr_bits
    return data.StructLayout({
        "T": 3, "heads": 5, "dh": 8, "cpg": 8, "n": 13,      # lines: T·heads·cpg·dh, N tokens each
        "kh": 8,                                             # key words per head (d_h / P)
        "k_base": A, "k_t": A, "k_n": A,
        "v_base": A, "v_t": A, "v_n": A,
        "o_base": A,
    })


class MemoryBuilder(wiring.Component):
    """The memory-build unit (see the module docstring).

    Parameters
    ----------
    lanes : int
        ``P``: value lanes per word and accumulators.
    addr_bits : int
        Width of every address and descriptor base/stride.

    Members
    -------
    i_desc : In(stream.Signature(mb_desc_layout))
    k_addr, v_addr : Out(addr_bits); k_data, v_data : In(3·P); k_en, v_en : Out(1)
        Level-word reads (data ``read_latency`` cycles after the address, :mod:`~spiketrack.hw.banked_memory`).
    out_addr : Out(addr_bits), out_data : Out(TM_BITS·P), out_en : Out(1)
        Template-memory line writes.
    busy : Out(1)
    counters : Out(StructLayout)  ``busy`` cycles, ``reads`` (token steps, two words each).
    """

    def __init__(self, lanes: int = 8, addr_bits: int = 16, read_latency: int = READ_LATENCY):
        self.lanes, self.addr_bits, self.read_latency = lanes, addr_bits, read_latency
        P, A = lanes, addr_bits
        super().__init__({
            "i_desc": In(stream.Signature(mb_desc_layout(A))),
            "k_addr": Out(A), "k_data": In(3 * P), "k_en": Out(1),
            "v_addr": Out(A), "v_data": In(3 * P), "v_en": Out(1),
            "out_addr": Out(A), "out_data": Out(TM_BITS * P), "out_en": Out(1),
            "busy": Out(1), "counters": Out(counters_layout(MB_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        P, A = self.lanes, self.addr_bits
        m.submodules.ctr = ctr = CounterBank(MB_COUNTERS)
        m.d.comb += self.counters.eq(ctr.counts)
        d = Signal(mb_desc_layout(A))
        setup, running, active = Signal(), Signal(), Signal()
        take = self.i_desc.valid & ~active
        m.d.comb += self.i_desc.ready.eq(~active)

        # ---------------------------------------------------------------- sequencer: t, h, cc, c, n
        # The first key and value addresses of each line are kept as registers (``kline`` = the
        # key word of channel c, ``khline`` = the first key word of head h, ``vline`` = the value
        # chunk, all from t·k_t / t·v_t + base), so every restart loads an address that is at
        # most one add away from a register (it was two: t·k_t + (word + 1); the memory
        # builder's address restart was the ULX3S builds' critical path three times).
        # the loops (innermost n, then c, cc, h, t), each end flag a register set with its counter
        # (hw.banked_memory.LoopCounter), bounds registered one cycle after the descriptor
        ln, lc, lcc, lh, lt = (LoopCounter(w, nm) for w, nm in ((13, "n"), (8, "c"), (8, "cc"), (5, "h"), (3, "t")))
        n = ln.i
        kl = Signal(range(P))                  # lane of key channel c in its word
        kt0, vt0 = Signal(A), Signal(A)        # t·k_t, t·v_t (+ base)
        kline, khline, vline = Signal(A), Signal(A), Signal(A)
        k_cur, v_cur = Signal(A), Signal(A)
        line = Signal(A)
        with m.If(setup):
            m.d.sync += [setup.eq(0), running.eq(1)]
            for lp, bound in ((ln, d.n), (lc, d.dh), (lcc, d.cpg), (lh, d.heads), (lt, d.T)):
                m.d.sync += lp.bound(bound - 1, bound == 1)
        line_end = ln.last
        op_end = ln.last & lc.last & lcc.last & lh.last & lt.last
        m.d.comb += [self.k_addr.eq(k_cur), self.v_addr.eq(v_cur), self.k_en.eq(running), self.v_en.eq(running)]

        def restart(k, v):
            return [*ln.restart(), k_cur.eq(k), v_cur.eq(v)]

        with m.If(take):
            m.d.sync += [setup.eq(1), active.eq(1), kl.eq(0), *(lp.i.eq(0) for lp in (ln, lc, lcc, lh, lt))]
        # the descriptor and the cursors it starts load in every idle cycle (so in the take cycle),
        # their clock enables from register copies of ~active (hw.banked_memory.load_while_idle); the
        # sequencer moves the cursors only while running
        p = self.i_desc.payload
        done = Signal()
        loads = [(d, p), (kt0, p.k_base), (vt0, p.v_base), (kline, p.k_base), (khline, p.k_base),
                 (vline, p.v_base), (line, p.o_base), (k_cur, p.k_base), (v_cur, p.v_base)]
        load_while_idle(m, take, done, loads)
        with m.If(running):
            with m.If(~ln.last):
                m.d.sync += [*ln.step(), k_cur.eq(k_cur + d.k_n), v_cur.eq(v_cur + d.v_n)]
            with m.Elif(~lc.last):   # the next channel: the same key word, or the next one after lane P - 1
                nkl_wrap = kl == P - 1
                nk = Mux(nkl_wrap, kline + 1, kline)
                m.d.sync += [*lc.step(), kl.eq(Mux(nkl_wrap, 0, kl + 1)), kline.eq(nk), *restart(nk, vline)]
            with m.Elif(~lcc.last):  # the head's next value chunk: its keys again
                nv = vline + 1
                m.d.sync += [*lcc.step(), *lc.restart(), kl.eq(0), kline.eq(khline), vline.eq(nv),
                             *restart(khline, nv)]
            with m.Elif(~lh.last):
                nkh, nv = khline + d.kh, vline + 1
                m.d.sync += [*lh.step(), *lcc.restart(), *lc.restart(), kl.eq(0), kline.eq(nkh), khline.eq(nkh),
                             vline.eq(nv), *restart(nkh, nv)]
            with m.Elif(~lt.last):
                nkt, nvt = kt0 + d.k_t, vt0 + d.v_t
                m.d.sync += [*lt.step(), *lh.restart(), *lcc.restart(), *lc.restart(), kl.eq(0), kt0.eq(nkt),
                             vt0.eq(nvt), kline.eq(nkt), khline.eq(nkt), vline.eq(nvt), *restart(nkt, nvt)]
            with m.Else():
                m.d.sync += running.eq(0)

        # ---------------------------------------------------------------- read data -> accumulate
        s1 = Signal(data.StructLayout({"valid": 1, "first": 1, "end": 1, "op_end": 1, "lane": range(P)}))
        m.d.sync += _assign(s1, {"valid": running, "first": n == 0, "end": line_end, "op_end": op_end, "lane": kl})
        s1d = Signal(data.StructLayout({"tag": s1.shape(), "v": 3 * P}))   # read data registered
        s1r = delay(m, s1, self.read_latency - 1, "s1")   # the tag of the read data arriving now
        m.d.sync += [s1d.tag.eq(s1r), s1d.v.eq(self.v_data)]
        # the key level of the line's lane, chosen as it arrives and registered once per lane (one
        # chosen k fanned out to every lane's product: 11.8 ns on ULX3S)
        k_in = Signal(3)
        for j in range(P):
            with m.If(s1r.lane == j):
                m.d.comb += k_in.eq(self.k_data[3 * j:3 * j + 3])
        ks = copies(m, k_in, P, "mb_k")
        s2 = Signal(data.StructLayout({"tag": s1.shape(), "prod": data.ArrayLayout(5, P)}))
        m.d.sync += s2.tag.eq(s1d.tag)
        for j in range(P):
            v, k = s1d.v[3 * j:3 * j + 3], ks[j]
            m.d.sync += s2.prod[j].eq(Mux(k[0], v, 0) + Mux(k[1], v << 1, 0) + Mux(k[2], v << 2, 0))   # k·v (§IS-8)
        s1 = s2.tag
        acc = Signal(data.ArrayLayout(TM_BITS + 4, P))
        wst = Signal(data.StructLayout({"valid": 1, "op_end": 1, "addr": A}))
        # first / valid as a register copy per lane, loaded with s2 (equal to s2.tag's)
        first_c = copies(m, s1d.tag.first, P, "mb_first")
        valid_c = copies(m, s1d.tag.valid, P, "mb_valid")
        for j in range(P):
            prod = s2.prod[j]
            s = Mux(first_c[j], prod, acc[j] + prod)
            with m.If(valid_c[j]):
                m.d.sync += acc[j].eq(s)
        m.d.sync += _assign(wst, {"valid": s1.valid & s1.end, "op_end": s1.valid & s1.op_end, "addr": line})
        with m.If(s1.valid & s1.end):
            m.d.sync += line.eq(line + 1)
        m.d.comb += [self.out_en.eq(wst.valid), self.out_addr.eq(wst.addr),
                     self.out_data.eq(Cat(*[acc[j][:TM_BITS] for j in range(P)]))]
        m.d.comb += done.eq(wst.op_end)
        with m.If(done):
            m.d.sync += active.eq(0)
        m.d.comb += [self.busy.eq(active | take), ctr.inc.busy.eq(active | take), ctr.inc.reads.eq(running)]
        return m
