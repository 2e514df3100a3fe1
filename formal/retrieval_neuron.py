"""Harness of :class:`spiketrack.hw.retrieval_neuron.RetrievalNeuron` (memory unit -> neuron unit).

Geometry: the memory unit of :mod:`spiketrack.formal.memory_unit` (``heads = 1``,
``d_h = d_v = 2``, ``n_max = 2``, 2 slots, ``P = 2``) with ``n_tokens = 2`` per retrieval, ``σ = 1``,
neuron ``B_m = 6``, ``f_m = 4``, ``T = 1``.
"""

from __future__ import annotations

from amaranth import Module

from spiketrack.formal.harness import output_rules

__all__ = ["GEOMETRY", "stream_rules"]

GEOMETRY = "memory unit heads=1, d_h=d_v=2, n_max=2, P=2 -> neuron B_m=6, f_m=4, T=1"


def stream_rules(hw) -> Module:
    """(a) ``o_spk`` keeps ``valid`` until ready and its payload stable, any environment."""
    return output_rules(hw.RetrievalNeuron(heads=1, d_h=2, d_v=2, n_max=2, n_tokens=2, sigma=1, f_m=4,
                                           bits=6, n_slots=2, lanes=2), "o_spk")
