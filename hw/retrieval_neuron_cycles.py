"""Exact cycle model of :class:`spiketrack.hw.retrieval_neuron.RetrievalNeuron`.

``counters.busy`` of one command, no input gaps and the output always ready:

* BUILD: the memory unit's :func:`~spiketrack.hw.memory_unit_cycles.build_cycles` (the neuron
  unit is idle);
* RETRIEVE / ATTEND: the memory unit's cycles plus the neuron unit's pipeline ``LATENCY``: the
  neuron unit takes each accumulator beat in the cycle the memory unit offers it (the chain
  refuses geometries where its membrane hazard would throttle, ``HAZARD_DEPTH``), and its last
  output beat leaves ``LATENCY`` cycles after the memory unit's last beat.

With gaps and backpressure: ``busy == model + stall_in + stall_out`` (the chain's counters).
"""

from __future__ import annotations

from spiketrack.hw.memory_unit import MemoryUnitGeometry
from spiketrack.hw.memory_unit_cycles import attend_cycles, build_cycles, retrieve_cycles
from spiketrack.hw.neuron_unit import LATENCY

__all__ = ["chain_build_cycles", "chain_retrieve_cycles", "chain_attend_cycles"]


def chain_build_cycles(geom: MemoryUnitGeometry, n_tokens: int, v_events, k_events) -> int:
    """Busy cycles of a BUILD command."""
    return build_cycles(geom, n_tokens, v_events, k_events)


def chain_retrieve_cycles(geom: MemoryUnitGeometry, n_tokens: int, q_events) -> int:
    """Busy cycles of a RETRIEVE command, query events to the last output spike beat."""
    return retrieve_cycles(geom, n_tokens, q_events) + LATENCY


def chain_attend_cycles(geom: MemoryUnitGeometry, n_tokens: int, v_events, k_events, q_events) -> int:
    """Busy cycles of an ATTEND command."""
    return attend_cycles(geom, n_tokens, v_events, k_events, q_events) + LATENCY
