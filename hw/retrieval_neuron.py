"""Memory unit -> neuron unit: a retrieval layer end to end, from query spikes to output spikes.

The integer network lowers every spike-product layer as ``retrieve -> requant -> neuron``
(docs/integer_semantics.md §IS-8, §IS-5, §IS-7): the MRM's two retrievals (``sn_r``,
``sn_attn``, over the ``T`` template timesteps) and the backbone attention (``sn_a``).
:class:`RetrievalNeuron` is that chain in hardware: the :class:`~spiketrack.hw.memory_unit.MemoryUnit`'s
``o_acc`` stream drives a :class:`~spiketrack.hw.neuron_unit.NeuronUnit` directly, whose requantise
shift is ``3d + σ - f_m`` (the attention scale ``2^-σ`` folded in, §IS-8).

Each RETRIEVE (or ATTEND) command produces one timestep: its ``n_tokens · heads · d_v / P`` beats
go through the neuron unit, whose membrane memory carries the state to the next command, so ``T``
commands on the slots of the ``T`` template timesteps give the ``T``-step output of the layer
(spec §5.2 step 4). Exactly :func:`spiketrack.quant.golden.neuron.neuron_layer` applied to
:func:`spiketrack.quant.golden.memory.retrieve`'s accumulators.

Exact cycles: :mod:`spiketrack.hw.retrieval_neuron_cycles`.
"""

from __future__ import annotations

from amaranth import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.events import event_layout
from spiketrack.hw.memory_unit import MemoryUnit, MemoryUnitGeometry, acc_layout, cmd_layout
from spiketrack.hw.neuron_unit import HAZARD_DEPTH, NeuronUnit
from spiketrack.hw.spike_encoder import level_word_layout
from spiketrack.quant.golden.memory import retrieval_shift
from spiketrack.quant.golden.neuron import Decay

__all__ = ["RetrievalNeuron", "RETRIEVAL_NEURON_COUNTERS"]

RETRIEVAL_NEURON_COUNTERS = ("busy", "stall_in", "stall_out", "events")
"""Counter names: ``busy`` cycles the memory unit or the neuron unit is busy, ``stall_in`` the
memory unit's input stalls, ``stall_out`` cycles with ``o_spk.valid & ~o_spk.ready``, ``events``
non-empty input events."""


class RetrievalNeuron(wiring.Component):
    """A :class:`MemoryUnit` whose accumulators feed a :class:`NeuronUnit` (§IS-8, §IS-5, §IS-7).

    Parameters
    ----------
    heads, d_h, d_v, n_max, n_slots, lanes : int
        Memory unit geometry (:class:`~spiketrack.hw.memory_unit.MemoryUnitGeometry`).
    n_tokens : int
        Tokens of every retrieval (the neuron unit's map is ``n_tokens · heads · d_v / P`` beats).
    sigma : int
        Attention scale exponent ``σ`` (scale ``2^-σ``).
    f_m, bits : int
        Membrane fractional bits and width of the neuron.
    T : int
        Timesteps (retrievals) of one pass; the membrane is kept across them.
    betas : tuple of Decay
        One decay per step ``t = 1..T-1`` (§IS-7).

    Members
    -------
    cmd : In(stream.Signature(cmd_layout)), in
        Memory unit command (BUILD / RETRIEVE / ATTEND); RETRIEVE and ATTEND need
        ``n_tokens`` equal to the elaborated ``n_tokens``.
    template_mode : Signal(1), in
        Gates the template memory's write port (the unidirectional contract).
    i_events : In(stream.Signature(event_layout)), in
        Spike events (V, K packets for BUILD; Q for RETRIEVE; V, K, Q for ATTEND).
    o_spk : Out(stream.Signature(level_word_layout)), out
        Output spike levels, ``P`` lanes per beat, ``pos`` = token, ``chan`` = ``h·d_v + j`` of lane 0.
    busy : Signal(1), out
        Either unit is busy.
    counters : Out(counters_layout(RETRIEVAL_NEURON_COUNTERS)), out
        See :data:`RETRIEVAL_NEURON_COUNTERS` (complete ``COUNTER_LAG`` cycles after idle).
    """

    def __init__(self, *, heads: int, d_h: int, d_v: int, n_max: int, n_tokens: int, sigma: int, f_m: int,
                 bits: int, n_slots: int = 1, lanes: int = 4, T: int = 1, betas: tuple[Decay, ...] = ()):
        n_beats = MemoryUnitGeometry(heads, d_h, d_v, n_max, n_slots, lanes).out_beats(n_tokens)
        problem = (f"n_tokens={n_tokens} must lie in 1..n_max={n_max}" if not 1 <= n_tokens <= n_max else
                   f"{n_beats} beats per retrieval with T={T}: the neuron unit would throttle the memory unit "
                   f"(needs >= {HAZARD_DEPTH} beats); use fewer lanes" if T > 1 and n_beats < HAZARD_DEPTH else None)
        if problem:
            self._MustUse__silence = True   # refused: never elaborated
            raise ValueError(problem)
        self.memory = MemoryUnit(heads, d_h, d_v, n_max, n_slots, lanes)
        g = self.geom = self.memory.geom
        self.n_tokens = n_tokens
        self.shift = retrieval_shift(sigma, f_m)
        self.neuron = NeuronUnit(acc_layout(g), n_beats=n_beats, c_out=heads * d_v, shift=self.shift, f_m=f_m,
                                 bits=bits, T=T, betas=betas)
        self.m_data = self.memory.m_data
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout(g))),
            "template_mode": In(1),
            "i_events": In(stream.Signature(event_layout(g.pos_bits, g.chan_bits))),
            "o_spk": Out(stream.Signature(level_word_layout(g.pos_bits, max(1, g.vchanb), g.lanes))),
            "busy": Out(1),
            "counters": Out(counters_layout(RETRIEVAL_NEURON_COUNTERS)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = mem = self.memory
        m.submodules.neuron = nu = self.neuron
        m.submodules.ctr = ctr = CounterBank(("busy", "stall_out"))
        wiring.connect(m, wiring.flipped(self.cmd), mem.cmd)
        wiring.connect(m, wiring.flipped(self.i_events), mem.i_events)
        wiring.connect(m, mem.o_acc, nu.i_acc)
        wiring.connect(m, nu.o_spk, wiring.flipped(self.o_spk))
        busy = mem.busy | nu.busy
        m.d.comb += [
            mem.template_mode.eq(self.template_mode),
            self.busy.eq(busy),
            ctr.inc.busy.eq(busy),
            ctr.inc.stall_out.eq(self.o_spk.valid & ~self.o_spk.ready),
            self.counters.busy.eq(ctr.counts.busy),
            self.counters.stall_out.eq(ctr.counts.stall_out),
            self.counters.stall_in.eq(mem.counters.stall_in),   # same COUNTER_LAG as this bank
            self.counters.events.eq(mem.counters.events),
        ]
        return m
