"""Exact cycle model of :class:`spiketrack.hw.neuron_unit.NeuronUnit`.

``counters.busy`` for ``T`` timesteps of ``n_beats`` beats offered back to back (no gaps, output
always ready):

* ``T · n_beats + LATENCY`` (one beat per cycle, 4 pipeline stages), or
* ``HAZARD_DEPTH · (T · n_beats - 1) + LATENCY + 1`` when ``T > 1`` and ``n_beats < HAZARD_DEPTH``
  (a beat waits until the membrane word of the previous beat is written: one beat per
  ``HAZARD_DEPTH`` cycles, the last one leaves ``LATENCY`` cycles after it was taken).

Input gaps inside the sequence and output backpressure add one cycle each, counted by the unit
(``stall_in``, ``stall_out``): ``busy == neuron_cycles(...) + stall_in + stall_out``.
"""

from __future__ import annotations

from spiketrack.hw.neuron_unit import HAZARD_DEPTH, LATENCY

__all__ = ["neuron_cycles"]


def neuron_cycles(n_beats: int, T: int = 1) -> int:
    """Busy cycles of one pass (``T`` timesteps of ``n_beats`` beats each)."""
    if T > 1 and n_beats < HAZARD_DEPTH:
        return HAZARD_DEPTH * (T * n_beats - 1) + LATENCY + 1
    return T * n_beats + LATENCY
