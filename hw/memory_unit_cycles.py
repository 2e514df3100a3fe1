"""Exact cycle model of :class:`spiketrack.hw.memory_unit.MemoryUnit`.

Counts the cycles the unit is busy (``busy`` high, i.e. not idle) for one command, with every
input event offered without gaps and ``o_acc`` always ready. Input gaps and output backpressure
add exactly one cycle each; the unit counts them itself (``counters.stall_in``,
``counters.stall_out``), so under any stream timing

    counters.busy == predicted cycles + counters.stall_in + counters.stall_out

and the tests assert this with ``==``.

Per phase (``C = d_v / P`` chunks per M/R row, ``H`` heads, ``N`` tokens):

============  =====================================================================
CLEAR         ``max(N · H' · C, d_h · H' · C)`` (``H'`` = heads rounded up to a power of 2)
V_LOAD        one cycle per V event (an empty packet is one event)
K_LOAD        ``C`` per non-empty K event, 1 per empty event, + ``DRAIN`` (4)
R_ACC         ``C`` per non-empty Q event, 1 per empty event, + ``DRAIN`` (4)
R_OUT         ``N · H · C + OUT_LATENCY`` (one beat per (token, head, chunk), + 2)
============  =====================================================================

BUILD = CLEAR + V_LOAD + K_LOAD; RETRIEVE = R_ACC + R_OUT; ATTEND = all five.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from spiketrack.hw.memory_unit import DRAIN, OUT_LATENCY, MemoryUnitGeometry

__all__ = ["Event", "events_from_levels", "phase_cycles", "build_cycles", "retrieve_cycles",
           "attend_cycles", "n_spikes"]


@dataclass(frozen=True)
class Event:
    """One spike event (fields of :func:`spiketrack.hw.events.event_layout`)."""
    pos: int
    chan: int
    level: int
    empty: int = 0
    last: int = 0


def events_from_levels(levels: torch.Tensor, rng: random.Random | None = None) -> list[Event]:
    """Event packet of a spike map ``levels[C, N]`` (channel ``chan``, token ``pos``).

    Non-zero entries only; token-major order, or a random order with ``rng`` (accumulation
    order does not matter, §IS-4). An all-zero map gives one ``empty`` event.
    """
    nz = torch.nonzero(levels)
    evs = [Event(pos=int(n), chan=int(c), level=int(levels[c, n])) for c, n in nz.tolist()]
    if rng is not None:
        rng.shuffle(evs)
    else:
        evs.sort(key=lambda e: (e.pos, e.chan))
    if not evs:
        return [Event(0, 0, 0, empty=1, last=1)]
    evs[-1] = Event(evs[-1].pos, evs[-1].chan, evs[-1].level, 0, 1)
    return evs


def n_spikes(events: list[Event]) -> int:
    """Non-empty events in a packet."""
    return sum(1 for e in events if not e.empty)


def _walk(geom: MemoryUnitGeometry, events: list[Event]) -> int:
    return sum(1 if e.empty else geom.n_chunks for e in events)


def phase_cycles(geom: MemoryUnitGeometry, op: str, n_tokens: int, v_events=(), k_events=(),
                 q_events=()) -> dict[str, int]:
    """Cycles per phase of one command (``op`` in ``"build"``, ``"retrieve"``, ``"attend"``)."""
    out: dict[str, int] = {}
    if op in ("build", "attend"):
        out["clear"] = geom.clear_cycles(n_tokens)
        out["v_load"] = len(v_events)
        out["k_load"] = _walk(geom, k_events) + DRAIN
    if op in ("retrieve", "attend"):
        out["r_acc"] = _walk(geom, q_events) + DRAIN
        out["r_out"] = geom.out_beats(n_tokens) + OUT_LATENCY
    return out


def build_cycles(geom: MemoryUnitGeometry, n_tokens: int, v_events, k_events) -> int:
    """Busy cycles of a BUILD command."""
    return sum(phase_cycles(geom, "build", n_tokens, v_events, k_events).values())


def retrieve_cycles(geom: MemoryUnitGeometry, n_tokens: int, q_events) -> int:
    """Busy cycles of a RETRIEVE command."""
    return sum(phase_cycles(geom, "retrieve", n_tokens, q_events=q_events).values())


def attend_cycles(geom: MemoryUnitGeometry, n_tokens: int, v_events, k_events, q_events) -> int:
    """Busy cycles of an ATTEND command."""
    return sum(phase_cycles(geom, "attend", n_tokens, v_events, k_events, q_events).values())
