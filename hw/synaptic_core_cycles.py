"""Exact cycle model of :class:`spiketrack.hw.synaptic_core.SynapticCore`.

Predicts the core's ``busy`` cycles (``counters.busy``) for one readout (``planes`` packets), with
every event offered without gaps and ``o_acc`` always ready. Input gaps and output backpressure add
exactly one cycle each, which the core counts itself (``counters.stall_in``,
``counters.stall_out``), so under any stream timing

    counters.busy == core_cycles(plan, packets) + counters.stall_in + counters.stall_out

and the tests assert this with ``==``.

Per packet: ``3 + Σ_events max(1, nch · ny(pos) · nx(pos))`` (one cycle to take the first
event, one to read its tap and channel ROMs, one to register the ROM words, then one cycle per
issued ``P``-lane update; an event that reaches no output, or the ``empty`` event, costs one
cycle). After the last packet: ``DRAIN`` (4), then the readout, ``n_acc + OUT_LATENCY`` (one
beat per accumulator word, 3 cycles of latency).
"""

from __future__ import annotations

from spiketrack.hw.synaptic_core import DRAIN, OUT_LATENCY, CorePlan

__all__ = ["packet_cycles", "core_cycles", "useful_accumulations"]


def packet_cycles(plan: CorePlan, packet) -> int:
    """Busy cycles of one event packet (list of event dicts) before the drain."""
    n = 3
    for e in packet:
        n += 1 if e["empty"] else max(1, plan.n_iter(e["pos"]))
    return n


def core_cycles(plan: CorePlan, packets) -> int:
    """Busy cycles of one readout: ``planes`` packets, drain, readout (no gaps, no backpressure)."""
    if len(packets) != plan.geom.planes:
        raise ValueError(f"{plan.geom.planes} packets per readout, got {len(packets)}")
    return sum(packet_cycles(plan, pk) for pk in packets) + DRAIN + plan.n_acc + OUT_LATENCY


def useful_accumulations(plan: CorePlan, packets) -> int:
    """Lane accumulations of real output channels (the ``useful`` counter)."""
    cog, P = plan.geom.cog, plan.P
    per_event = sum(min(P, cog - ch * P) for ch in range(plan.nch))
    total = 0
    for pk in packets:
        for e in pk:
            if not e["empty"]:
                t = plan.pos_table[e["pos"]]
                total += per_event * t["ny"] * t["nx"]
    return total
