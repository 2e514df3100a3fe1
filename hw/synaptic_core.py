"""Accumulate-only synaptic core: spike events -> ``acc += level · w`` over ``P`` lanes (§IS-4, §IS-11).

One :class:`SynapticCore` instance computes one layer's accumulators

    acc[c, p] = b_int[c] + Σ_{i ∈ receptive field of p} k[i] · w_int[c, i]        (§IS-4)

from the spike-event packets of :mod:`spiketrack.hw.events`, event by event (scatter form): an
input event ``(pos = y·W + x, chan = ci, level = k)`` is added, with the shift-add product
``k · w`` (``1·w = w``, ``2·w = w << 1``, ``3·w = (w << 1) + w``, ``4·w = w << 2``; there is no
multiplier anywhere), to every output it reaches: for each valid kernel tap ``(ky, kx)``
(``oy = (y + pad - ky) / s`` integral and in range, same for ``x``) and each chunk of ``P``
output channels of ``ci``'s group, one ``P``-lane read-modify-write of the accumulator memory per
cycle. Zero levels are never seen (the encoder skips them), so the cycles grow with the number of
non-zero events (one cycle per event x valid tap x channel chunk, see
:mod:`spiketrack.hw.synaptic_core_cycles`).

Supported layers (all of one kind: :class:`LayerGeometry`):

* ``k × k`` convolution with any stride and zero padding ``0 <= pad < k``;
* grouped and depthwise convolution (``groups``; depthwise is ``groups = C_in = C_out``);
* ``1 × 1`` convolution and linear over tokens (``h = 1``, ``w = L``, ``k = 1``);
* the stem's bit-plane accumulation (§IS-11): ``planes = 8`` packets (binary maps ``p_β``,
  levels 0/1) accumulate into the same accumulators, plane ``β`` shifted left by ``β`` (the
  packet counter is the shift); the readout follows the 8th packet.

Layer geometry and weights are **elaboration-time** (one core per layer shape): the per-position
tap ranges, the per-channel weight bases and the bias are small ROMs (``lib.memory``, synchronous
read) generated from the geometry, and every address update is an addition of a constant, so the
RTL has no multiplier and no divider (positions are never divided by ``W`` at run time). This keeps
verification (every case elaborates its own exact design) and synthesis (constants fold) simple;
run-time geometry registers are an open extension (docs/hw_cores.md).

Memories (all ``lib.memory`` with synchronous read ports)
---------------------------------------------------------
* ``w_mem``: ``G · nch · C_in/G · k²`` words of ``P`` signed ``w_bits`` lanes (int8 or int4,
  §IS-3); word ``((g·nch + ch)·C_in/G + ci_g)·k² + ky·k + kx`` holds
  ``w[g·C_out/G + ch·P + lane, ci_g, ky, kx]`` (zero in lanes past the group's channels).
* ``acc_mem``: ``H_out · W_out · G · nch`` words of ``P`` lanes of ``acc_bits``; word
  ``(opos · G + g) · nch + ch``. Cleared as it is read out (clear-on-read), so it is zero at the
  start of every packet group.
* ``bias_mem``: ``G · nch`` words (bias at the accumulator exponent, §IS-3, plus the word's first
  output channel and lane mask), read and added at readout.
* ``pos_rom`` (``H · W`` entries) and ``chan_rom`` (``C_in`` entries): tap ranges and bases.

Pipeline (one ``P``-lane update per cycle)
------------------------------------------
``F``: the accepted event's ROM reads. ``F2``: the ROM words registered. ``S``: the tap/chunk
sequencer (one update issued per cycle: weight and accumulator reads). ``B``: the two block-RAM read words are registered as they
are (an ECP5 EBR without output register has ~5.6 ns clock-to-out, so no logic follows it in
the same cycle). ``Q``: ``k · w`` (``<< β`` for the stem) is registered, and the forwarding
decision of ``C`` is registered (address compares against the updates still in flight). ``C``:
``old + k·w`` is registered into ``w1``, with ``old`` taken from the last :data:`FORWARD` (4)
sums ``w1..w4`` when the registered compare hit, so back-to-back updates of one word are exact.
``w1`` is written in the next cycle. After the last update the core waits :data:`DRAIN` (4)
cycles, then streams the accumulators (+ bias) out on ``o_acc``: one beat per accumulator word,
position-major, :data:`OUT_LATENCY` (3) cycles of latency (read, read register, sum register).

Limits: ``1 <= lanes``, ``w_bits ∈ {4, 8}``, ``k <= max_kernel``, ``0 <= pad < k``,
``planes ∈ {1, 8}``; events must carry ``pos < H·W`` and ``chan < C_in`` (as the encoder makes them).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, enum, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.events import event_stream
from spiketrack.quant.golden.arith import bit_width_signed
from spiketrack.quant.golden.neuron import D
from spiketrack.quant.golden.synapse import acc_bound

__all__ = ["LayerGeometry", "CorePlan", "SynapticCore", "Phase", "acc_layout", "level_times_weight_hw",
           "DRAIN", "OUT_LATENCY", "FORWARD", "CORE_COUNTERS"]

DRAIN = 4        #: cycles after the last update issue until it is in acc_mem (stages B, Q, C, write)
OUT_LATENCY = 3  #: readout: acc_mem/bias read, read-data register, output register (sum)
FORWARD = 4      #: write-history registers forwarded into stage C (updates in flight)
CORE_COUNTERS = ("busy", "stall_in", "stall_out", "events", "updates", "useful")


@dataclass(frozen=True)
class LayerGeometry:
    """Shape of one spiking layer as the synaptic core sees it.

    Parameters
    ----------
    c_in, c_out : int
        Input and output channels.
    h, w : int
        Input map height and width (``h = 1``, ``w = L`` for a linear layer over ``L`` tokens).
    k : int
        Square kernel size (1 for 1x1 / linear).
    stride, padding : int
        Convolution stride and zero padding (``0 <= padding < k``).
    groups : int
        Channel groups (``groups = c_in = c_out`` is depthwise).
    planes : int
        Packets accumulated before one readout: 1 for spiking layers, 8 for the stem (§IS-11,
        packet ``β`` is shifted left by ``β``).
    """

    c_in: int
    c_out: int
    h: int
    w: int
    k: int = 1
    stride: int = 1
    padding: int = 0
    groups: int = 1
    planes: int = 1

    def __post_init__(self):
        if min(self.c_in, self.c_out, self.h, self.w, self.k, self.stride, self.groups) < 1:
            raise ValueError(f"layer dimensions must be >= 1: {self}")
        if self.c_in % self.groups or self.c_out % self.groups:
            raise ValueError(f"groups={self.groups} must divide c_in={self.c_in} and c_out={self.c_out}")
        if not 0 <= self.padding < self.k:
            raise ValueError(f"padding must satisfy 0 <= padding < k, got padding={self.padding}, k={self.k}")
        if self.planes not in (1, 8):
            raise ValueError(f"planes must be 1 (spiking layer) or 8 (stem bit planes), got {self.planes}")
        if self.h_out < 1 or self.w_out < 1:
            raise ValueError(f"empty output map for {self}")

    @property
    def h_out(self) -> int:
        return (self.h + 2 * self.padding - self.k) // self.stride + 1

    @property
    def w_out(self) -> int:
        return (self.w + 2 * self.padding - self.k) // self.stride + 1

    @property
    def cig(self) -> int:
        """Input channels per group."""
        return self.c_in // self.groups

    @property
    def cog(self) -> int:
        """Output channels per group."""
        return self.c_out // self.groups

    def taps(self, y: int, n_out: int) -> list[tuple[int, int]]:
        """Valid ``(ky, oy)`` pairs of input row ``y`` (also used for columns), ``ky`` ascending."""
        out = []
        for ky in range(self.k):
            num = y + self.padding - ky
            if num % self.stride == 0 and 0 <= num // self.stride < n_out:
                out.append((ky, num // self.stride))
        return out

    @property
    def kind(self) -> str:
        """Short name: ``stem``, ``depthwise``, ``grouped``, ``conv`` (k > 1) or ``1x1``."""
        if self.planes > 1:
            return "stem"
        if self.groups > 1:
            return "depthwise" if self.groups == self.c_in == self.c_out else "grouped"
        return "conv" if self.k > 1 else "1x1"


class CorePlan:
    """Derived sizes and ROM contents of a :class:`SynapticCore` (shared with the cycle model).

    Parameters
    ----------
    geom : LayerGeometry
    lanes : int
        Parallel output lanes ``P``.
    """

    def __init__(self, geom: LayerGeometry, lanes: int):
        if lanes < 1:
            raise ValueError("lanes must be >= 1")
        self.geom, self.P = geom, lanes
        g = geom
        self.nch = -(-g.cog // lanes)                 # channel chunks per group
        self.G = g.groups
        self.wpp = self.G * self.nch                  # accumulator words per output position
        self.kk = g.k * g.k
        self.n_pos = g.h * g.w
        self.n_opos = g.h_out * g.w_out
        self.n_acc = self.n_opos * self.wpp
        self.n_w = self.G * self.nch * g.cig * self.kk
        self.pos_bits = max(1, ceil_log2(self.n_pos))
        self.chan_bits = max(1, ceil_log2(g.c_in))
        self.opos_bits = max(1, ceil_log2(self.n_opos))
        self.ochan_bits = max(1, ceil_log2(g.c_out))
        self.wa_bits = max(1, ceil_log2(self.n_w))
        self.aa_bits = max(1, ceil_log2(self.n_acc))

    @cached_property
    def pos_table(self) -> list[dict]:
        """Per input position: ``ny``, ``nx`` valid taps, ``tap`` (first tap's ``ky·k + kx``),
        ``obase`` (accumulator word of the first tap's output, group 0, chunk 0) and ``rem``
        (updates after the first, ``max(1, nch · ny · nx) - 1``)."""
        g = self.geom
        rows = [g.taps(y, g.h_out) for y in range(g.h)]
        cols = [g.taps(x, g.w_out) for x in range(g.w)]
        table = []
        for y in range(g.h):
            for x in range(g.w):
                ry, rx = rows[y], cols[x]
                if ry and rx:
                    (ky0, oy0), (kx0, ox0) = ry[0], rx[0]
                    table.append({"ny": len(ry), "nx": len(rx), "tap": ky0 * g.k + kx0,
                                  "obase": (oy0 * g.w_out + ox0) * self.wpp,
                                  "rem": self.nch * len(ry) * len(rx) - 1})
                else:
                    table.append({"ny": 0, "nx": 0, "tap": 0, "obase": 0, "rem": 0})
        return table

    @cached_property
    def chan_table(self) -> list[dict]:
        """Per input channel: ``wbase`` (weight word of chunk 0, tap 0) and ``abase`` (``g·nch``)."""
        g = self.geom
        out = []
        for ci in range(g.c_in):
            grp, cidx = divmod(ci, g.cig)
            out.append({"wbase": (grp * self.nch * g.cig + cidx) * self.kk, "abase": grp * self.nch})
        return out

    def n_iter(self, pos: int) -> int:
        """Updates issued for one event at ``pos`` (0: the event reaches no output)."""
        e = self.pos_table[pos]
        return self.nch * e["ny"] * e["nx"]

    def word_chan(self, wi: int) -> tuple[int, int]:
        """``(first output channel, valid lanes)`` of accumulator word ``wi`` of a position."""
        grp, ch = divmod(wi, self.nch)
        return grp * self.geom.cog + ch * self.P, min(self.P, self.geom.cog - ch * self.P)

    def weight_words(self, w: torch.Tensor) -> list[list[int]]:
        """``w[C_out, C_in/G, k, k]`` -> ``w_mem`` words (lists of ``P`` signed lanes)."""
        g = self.geom
        words = []
        for grp in range(self.G):
            for ch in range(self.nch):
                for cidx in range(g.cig):
                    for ky in range(g.k):
                        for kx in range(g.k):
                            lanes = []
                            for lane in range(self.P):
                                co = ch * self.P + lane
                                lanes.append(int(w[grp * g.cog + co, cidx, ky, kx]) if co < g.cog else 0)
                            words.append(lanes)
        return words

    def bias_words(self, bias: torch.Tensor | None) -> list[list[int]]:
        words = []
        for wi in range(self.wpp):
            c0, n = self.word_chan(wi)
            words.append([int(bias[c0 + i]) if (bias is not None and i < n) else 0 for i in range(self.P)])
        return words


class Phase(enum.Enum, shape=2):
    """Core phase."""
    IDLE = 0     #: waiting for the first event of a packet
    ACC = 1      #: accumulating events
    DRAIN = 2    #: last updates reach acc_mem
    READOUT = 3  #: streaming accumulators (+ bias) out, clearing them


def acc_layout(plan: CorePlan, acc_bits: int) -> data.StructLayout:
    """Payload of one ``o_acc`` beat.

    Members
    -------
    pos : unsigned
        Output position ``oy · W_out + ox``.
    chan : unsigned
        Output channel of lane 0 (lane ``i`` is channel ``chan + i``).
    acc : ArrayLayout(signed(acc_bits), P)
        Accumulators including the bias (§IS-4).
    mask : unsigned(P)
        Lanes that carry a real channel (the group's last chunk may be partial).
    last : 1
        Last beat of the map.
    """
    return data.StructLayout({
        "pos": plan.opos_bits,
        "chan": plan.ochan_bits,
        "acc": data.ArrayLayout(signed(acc_bits), plan.P),
        "mask": plan.P,
        "last": 1,
    })


def level_times_weight_hw(k, w):
    """``k · w`` for a level ``k`` (0..D, 3 bits) and signed ``w``: shifts and adds only (§IS-4).

    ``k = 4·k[2] + 2·k[1] + k[0]`` for ``k ∈ 0..4``: ``1·w = w``, ``2·w = w << 1``,
    ``3·w = (w << 1) + w``, ``4·w = w << 2``.
    """
    zero = Const(0, signed(1))
    return (Mux(k[0], w, zero) + Mux(k[1], w << 1, zero)) + Mux(k[2], w << 2, zero)


class SynapticCore(wiring.Component):
    """Event-driven accumulate-only synaptic core for one layer (§IS-4, §IS-11).

    Parameters
    ----------
    geom : LayerGeometry
        Layer shape (elaboration-time, see module docstring).
    weights : int tensor [C_out, C_in/G, k, k]
        Signed integer weights in the narrow ``w_bits`` range (§IS-3).
    bias : int tensor [C_out], optional
        Bias at the accumulator exponent; added at readout.
    lanes : int
        Parallel output lanes ``P`` (output channels per update).
    w_bits : int
        Weight width, 8 (int8) or 4 (int4).
    acc_bits : int, optional
        Accumulator width; default from the worst case ``acc_bound`` (§IS-4; input bound ``D``,
        255 for the stem). Must hold every value, the core does not saturate.
    max_kernel : int
        Largest kernel this core accepts (a synthesis bound; ``geom.k <= max_kernel``).

    Members
    -------
    i_events : In(stream.Signature(event_layout))
        Spike events (:mod:`spiketrack.hw.events`); one packet per spike map (``planes`` packets
        per readout).
    o_acc : Out(stream.Signature(acc_layout))
        Accumulators + bias, one beat per ``P``-lane word, position-major, after the packet(s).
    busy : Out(1)
        A packet or readout is in progress (or an event is taken this cycle).
    counters : Out(StructLayout)
        ``busy``, ``stall_in``, ``stall_out``, ``events``, ``updates`` (lane-word RMWs),
        ``useful`` (lane accumulations of real channels); see :mod:`spiketrack.hw.counters`.
    """

    def __init__(self, geom: LayerGeometry, weights: torch.Tensor, bias: torch.Tensor | None = None, *,
                 lanes: int = 8, w_bits: int = 8, acc_bits: int | None = None, max_kernel: int = 7):
        if w_bits not in (4, 8):
            raise ValueError(f"w_bits must be 4 or 8, got {w_bits}")
        if geom.k > max_kernel:
            raise ValueError(f"kernel {geom.k} exceeds max_kernel={max_kernel}")
        weights = torch.as_tensor(weights).to(torch.int64)
        exp_shape = (geom.c_out, geom.cig, geom.k, geom.k)
        if tuple(weights.shape) != exp_shape:
            raise ValueError(f"weights must have shape {exp_shape}, got {tuple(weights.shape)}")
        wmax = (1 << (w_bits - 1)) - 1
        if weights.numel() and int(weights.abs().max()) > wmax:
            raise ValueError(f"weights exceed the narrow int{w_bits} range ±{wmax}")
        self.geom, self.plan = geom, CorePlan(geom, lanes)
        self.lanes, self.w_bits = lanes, w_bits
        self.weights, self.bias = weights, (None if bias is None else torch.as_tensor(bias).to(torch.int64))
        need = bit_width_signed(int(acc_bound(weights, self.bias, 255 if geom.planes > 1 else D).max()))
        self.acc_bits = need if acc_bits is None else acc_bits
        if self.acc_bits < need:
            raise ValueError(f"acc_bits={acc_bits} cannot hold the worst case (needs {need}, §IS-4)")
        self.max_kernel = max_kernel
        p = self.plan
        super().__init__({
            "i_events": In(event_stream(p.pos_bits, p.chan_bits)),
            "o_acc": Out(stream.Signature(acc_layout(p, self.acc_bits))),
            "busy": Out(1),
            "counters": Out(counters_layout(CORE_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        g, p = self.geom, self.plan
        P, Bw, Ba = self.lanes, self.w_bits, self.acc_bits
        lane_w = lambda word, i: word[i * Bw:(i + 1) * Bw].as_signed()
        lane_a = lambda word, i: word[i * Ba:(i + 1) * Ba].as_signed()

        def pack(lanes, bits):
            return sum((v & ((1 << bits) - 1)) << (i * bits) for i, v in enumerate(lanes))

        # ---- memories
        m.submodules.w_mem = w_mem = Memory(shape=unsigned(P * Bw), depth=p.n_w,
                                            init=[pack(w, Bw) for w in p.weight_words(self.weights)])
        # bias word + the word's first output channel and lane mask (read together at readout)
        b_init = [pack(b, Ba) | (p.word_chan(wi)[0] << (P * Ba)) | (((1 << p.word_chan(wi)[1]) - 1) << (P * Ba + p.ochan_bits))
                  for wi, b in enumerate(p.bias_words(self.bias))]
        m.submodules.b_mem = b_mem = Memory(shape=unsigned(P * Ba + p.ochan_bits + P), depth=p.wpp, init=b_init)
        # no_rw_check: read/write collisions are never used (forwarding in stage C; the readout's
        # clear-on-read write never hits the word being read), so yosys adds no bypass logic.
        m.submodules.acc_mem = acc_mem = Memory(shape=unsigned(P * Ba), depth=p.n_acc, init=[0] * p.n_acc,
                                                attrs={"no_rw_check": 1})
        ny_bits = nx_bits = ceil_log2(g.k + 1)
        pos_shape = data.StructLayout({"ny": ny_bits, "nx": nx_bits, "tap": max(1, ceil_log2(p.kk)),
                                       "rem": max(1, ceil_log2(p.nch * g.k * g.k)),
                                       "obase": p.aa_bits})
        chan_shape = data.StructLayout({"wbase": p.wa_bits, "abase": p.aa_bits})
        m.submodules.pos_rom = pos_rom = Memory(shape=pos_shape, depth=p.n_pos, init=p.pos_table)
        m.submodules.chan_rom = chan_rom = Memory(shape=chan_shape, depth=g.c_in, init=p.chan_table)
        w_rd = w_mem.read_port()
        b_rd = b_mem.read_port()
        a_rd, a_wr = acc_mem.read_port(), acc_mem.write_port()
        pos_rd, chan_rd = pos_rom.read_port(), chan_rom.read_port()

        m.submodules.ctr = ctr = CounterBank(CORE_COUNTERS, inc_widths={"useful": ceil_log2(P + 1)})
        m.d.comb += self.counters.eq(ctr.counts)

        phase = Signal(Phase)
        closed = Signal()      # the packet's last event has been accepted
        plane = Signal(range(max(2, g.planes)))

        # ---- stage F: accepted event + its ROM reads (data valid in the next cycle, held while
        # the ROMs are not enabled); stage F2: the ROM words registered as they are
        ev = self.i_events
        f_valid, f_level, f_empty, f_last = Signal(), Signal(3), Signal(), Signal()
        f2_valid, f2_level, f2_empty, f2_last = Signal(), Signal(3), Signal(), Signal()
        f2_pos, f2_chan = Signal(pos_shape), Signal(chan_shape)
        seq_load = Signal()
        f_adv = ~f2_valid | seq_load          # F moves into F2 this cycle
        take = ev.valid & ev.ready
        m.d.comb += [
            ev.ready.eq(((phase == Phase.IDLE) | (phase == Phase.ACC)) & ~closed & (~f_valid | f_adv)),
            pos_rd.addr.eq(ev.payload.pos), pos_rd.en.eq(take),
            chan_rd.addr.eq(ev.payload.chan), chan_rd.en.eq(take),
        ]
        with m.If(take):
            m.d.sync += [f_valid.eq(1), f_level.eq(ev.payload.level), f_empty.eq(ev.payload.empty),
                         f_last.eq(ev.payload.last)]
            with m.If(ev.payload.last):
                m.d.sync += closed.eq(1)
            with m.If(phase == Phase.IDLE):
                m.d.sync += phase.eq(Phase.ACC)
        with m.Elif(f_adv):
            m.d.sync += f_valid.eq(0)
        with m.If(f_adv):
            m.d.sync += [f2_valid.eq(f_valid), f2_level.eq(f_level), f2_empty.eq(f_empty), f2_last.eq(f_last),
                         f2_pos.eq(pos_rd.data), f2_chan.eq(chan_rd.data)]
        # the cycle after a packet's first event is taken, the sequencer waits for F2 by design
        # (counted in the cycle model, not as an input stall)
        first = Signal()
        m.d.sync += first.eq(take & (phase == Phase.IDLE))

        # ---- stage S: tap / chunk sequencer
        s_active, s_noop, s_level, s_last = Signal(), Signal(), Signal(3), Signal()
        ny, nx = Signal(ny_bits), Signal(nx_bits)
        iy, ix = Signal(ny_bits), Signal(nx_bits)
        ch = Signal(range(max(2, p.nch)))
        w_ch, w_row, w_cur = (Signal(p.wa_bits + 1, name=n) for n in ("w_ch", "w_row", "w_cur"))
        a_ch, a_row, a_cur = (Signal(p.aa_bits + 1, name=n) for n in ("a_ch", "a_row", "a_cur"))
        last_x, last_y, last_c = ix == nx - 1, iy == ny - 1, ch == p.nch - 1
        # the event's last update is issued this cycle: a registered flag from a down-counter of
        # the remaining updates (keeps the tap compares out of the stream-ready logic)
        rem = Signal(range(max(2, p.nch * g.k * g.k)))
        last_iter = Signal()
        need = ~s_active | last_iter
        m.d.comb += seq_load.eq((phase == Phase.ACC) & need & f2_valid)
        issue = s_active & ~s_noop

        S = g.stride
        da_x = p.wpp                     # accumulator step when ox decreases by one
        da_y = g.w_out * p.wpp           # ... when oy decreases by one
        dw_c, da_c = g.cig * p.kk, 1     # chunk step
        pe, ce = f2_pos, f2_chan
        with m.If(seq_load):
            wb = ce.wbase + pe.tap
            ab = pe.obase + ce.abase
            m.d.sync += [rem.eq(pe.rem), last_iter.eq(f2_empty | (pe.rem == 0))]
            m.d.sync += [s_active.eq(1), s_noop.eq(f2_empty | (pe.ny == 0) | (pe.nx == 0)),
                         s_level.eq(f2_level), s_last.eq(f2_last), ny.eq(pe.ny), nx.eq(pe.nx),
                         iy.eq(0), ix.eq(0), ch.eq(0),
                         w_ch.eq(wb), w_row.eq(wb), w_cur.eq(wb), a_ch.eq(ab), a_row.eq(ab), a_cur.eq(ab)]
        with m.Elif(need):
            m.d.sync += s_active.eq(0)
        with m.Else():
            m.d.sync += [rem.eq(rem - 1), last_iter.eq(rem == 1)]
            with m.If(~last_x):
                m.d.sync += [ix.eq(ix + 1), w_cur.eq(w_cur + S), a_cur.eq(a_cur - da_x)]
            with m.Elif(~last_y):
                m.d.sync += [ix.eq(0), iy.eq(iy + 1),
                             w_row.eq(w_row + S * g.k), w_cur.eq(w_row + S * g.k),
                             a_row.eq(a_row - da_y), a_cur.eq(a_row - da_y)]
            with m.Else():
                m.d.sync += [ix.eq(0), iy.eq(0), ch.eq(ch + 1),
                             w_ch.eq(w_ch + dw_c), w_row.eq(w_ch + dw_c), w_cur.eq(w_ch + dw_c),
                             a_ch.eq(a_ch + da_c), a_row.eq(a_ch + da_c), a_cur.eq(a_ch + da_c)]

        # end of a packet: the last event's last update was issued this cycle
        with m.If((phase == Phase.ACC) & s_active & last_iter & s_last & ~seq_load):
            if g.planes > 1:
                with m.If(plane == g.planes - 1):
                    m.d.sync += [phase.eq(Phase.DRAIN), plane.eq(0)]
                with m.Else():
                    m.d.sync += [phase.eq(Phase.IDLE), plane.eq(plane + 1), closed.eq(0)]
            else:
                m.d.sync += phase.eq(Phase.DRAIN)

        # ---- stage B: the weight and accumulator words leave block RAM into registers (nothing
        # else on this path: an ECP5 EBR without output register has ~5.6 ns clock-to-out)
        b_valid = Signal()
        b_addr = Signal(p.aa_bits)
        b_level = Signal(3)
        b_plane = Signal.like(plane)
        m.d.comb += [w_rd.addr.eq(w_cur), w_rd.en.eq(1)]
        m.d.sync += [b_valid.eq(issue), b_addr.eq(a_cur), b_level.eq(s_level), b_plane.eq(plane)]
        q_valid, q_addr, q_level, q_plane = Signal(), Signal(p.aa_bits), Signal(3), Signal.like(plane)
        q_w = Signal(P * Bw, reset_less=True)
        q_a = Signal(P * Ba, reset_less=True)
        m.d.sync += [q_valid.eq(b_valid), q_addr.eq(b_addr), q_level.eq(b_level), q_plane.eq(b_plane),
                     q_w.eq(w_rd.data), q_a.eq(a_rd.data)]

        # ---- stage Q: k·w (<< plane) registered; the forwarding hits of stage C are decided here
        c_valid, c_addr = Signal(), Signal(p.aa_bits)
        c_raw = Signal(P * Ba, reset_less=True)
        prod = Signal(P * Ba, reset_less=True)
        for i in range(P):
            kw = level_times_weight_hw(q_level, lane_w(q_w, i))
            if g.planes > 1:
                kw = kw << q_plane
            m.d.sync += prod[i * Ba:(i + 1) * Ba].eq(kw)
        m.d.sync += [c_valid.eq(q_valid), c_addr.eq(q_addr), c_raw.eq(q_a)]

        # ---- stage C: old (forwarded) + k·w -> w1; w1 is written next cycle; w2..w4 history.
        # An update issued j <= FORWARD cycles before this one has not reached acc_mem when
        # this one read it; its sum sits in w_j when this one is in C.
        wv = [Signal(name=f"w{j}v") for j in range(1, FORWARD + 1)]
        wa = [Signal(p.aa_bits, name=f"w{j}a") for j in range(1, FORWARD + 1)]
        wd = [Signal(P * Ba, reset_less=True, name=f"w{j}d") for j in range(1, FORWARD + 1)]
        for j in range(1, FORWARD):
            m.d.sync += [wv[j].eq(wv[j - 1]), wa[j].eq(wa[j - 1]), wd[j].eq(wd[j - 1])]
        # in the next cycle w1 holds C's item of this cycle, w(j+1) holds wj; the most recent
        # hit wins. The selection is registered one-hot (sel[j] picks w(j+1), sel[FORWARD] the
        # block-RAM word), so stage C is an AND-OR and the adder.
        ahead = [(c_valid, c_addr)] + [(wv[j], wa[j]) for j in range(FORWARD - 1)]
        hits = [v & (a == q_addr) for v, a in ahead]
        sel = Signal(FORWARD + 1)
        for j in range(FORWARD + 1):
            earlier = hits[:j]
            this = hits[j] if j < FORWARD else Const(1)
            m.d.sync += sel[j].eq(this & ~Cat(*earlier).any() if earlier else this)
        old = 0
        for j, word in enumerate(wd + [c_raw]):
            old = old | Mux(sel[j], word, 0)
        new = Cat(*[(lane_a(old, i) + lane_a(prod, i))[:Ba] for i in range(P)])
        m.d.sync += [wv[0].eq(c_valid), wa[0].eq(c_addr), wd[0].eq(new)]
        w1v, w1a, w1d = wv[0], wa[0], wd[0]

        # ---- drain and readout
        drain = Signal(range(DRAIN + 1))
        o = self.o_acc
        adv = ~o.valid | o.ready
        r_idx = Signal(range(p.n_acc + 1))
        r_wi = Signal(range(max(2, p.wpp)))
        r_opos = Signal(range(max(2, p.n_opos)))
        r1_valid, r1_last = Signal(), Signal()
        r1_opos = Signal.like(r_opos)
        r_issue = (phase == Phase.READOUT) & (r_idx < p.n_acc) & adv
        clr_v, clr_a = Signal(), Signal(p.aa_bits)
        m.d.sync += [clr_v.eq(r_issue), clr_a.eq(r_idx)]

        with m.If(phase == Phase.READOUT):
            m.d.comb += [a_rd.addr.eq(r_idx), a_rd.en.eq(adv),
                         a_wr.addr.eq(clr_a), a_wr.data.eq(0), a_wr.en.eq(clr_v)]
        with m.Else():
            m.d.comb += [a_rd.addr.eq(a_cur), a_rd.en.eq(1),
                         a_wr.addr.eq(w1a), a_wr.data.eq(w1d), a_wr.en.eq(w1v)]
        m.d.comb += [b_rd.addr.eq(r_wi), b_rd.en.eq(adv)]

        with m.If(phase == Phase.DRAIN):
            with m.If(drain == DRAIN - 1):
                m.d.sync += [phase.eq(Phase.READOUT), drain.eq(0)]
            with m.Else():
                m.d.sync += drain.eq(drain + 1)

        with m.If(adv):
            m.d.sync += [r1_valid.eq(r_issue), r1_opos.eq(r_opos),
                         r1_last.eq(r_idx == p.n_acc - 1)]
        with m.If(r_issue):
            m.d.sync += r_idx.eq(r_idx + 1)
            with m.If(r_wi == p.wpp - 1):
                m.d.sync += [r_wi.eq(0), r_opos.eq(r_opos + 1)]
            with m.Else():
                m.d.sync += r_wi.eq(r_wi + 1)

        # r2: the read data leave block RAM into registers; the output register adds the bias
        r2_valid, r2_last, r2_opos = Signal(), Signal(), Signal.like(r_opos)
        r2_a = Signal(P * Ba, reset_less=True)
        r2_b = Signal.like(b_rd.data, reset_less=True)
        b_chan = r2_b[P * Ba:P * Ba + p.ochan_bits]
        b_mask = r2_b[P * Ba + p.ochan_bits:]
        with m.If(adv):
            m.d.sync += [r2_valid.eq(r1_valid), r2_last.eq(r1_last), r2_opos.eq(r1_opos),
                         r2_a.eq(a_rd.data), r2_b.eq(b_rd.data)]
            m.d.sync += [o.valid.eq(r2_valid), o.payload.pos.eq(r2_opos), o.payload.chan.eq(b_chan),
                         o.payload.mask.eq(b_mask), o.payload.last.eq(r2_last)]
            for i in range(P):
                m.d.sync += o.payload.acc[i].eq(lane_a(r2_a, i) + lane_a(r2_b, i))
        with m.If(o.valid & o.ready & o.payload.last):
            m.d.sync += [phase.eq(Phase.IDLE), closed.eq(0), r_idx.eq(0), r_wi.eq(0), r_opos.eq(0)]

        # ---- status and counters
        last_partial = g.cog - (p.nch - 1) * P
        m.d.comb += [
            self.busy.eq((phase != Phase.IDLE) | take),
            ctr.inc.busy.eq(self.busy),
            ctr.inc.stall_in.eq((phase == Phase.ACC) & need & ~f2_valid & ~(closed & ~f_valid) & ~first),
            ctr.inc.stall_out.eq((phase == Phase.READOUT) & o.valid & ~o.ready),
            ctr.inc.events.eq(take),
            ctr.inc.updates.eq(issue),
            ctr.inc.useful.eq(Mux(issue, Mux(last_c, last_partial, P), 0)),
        ]
        return m
