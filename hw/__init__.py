"""spiketrack.hw: Amaranth 0.5 RTL of the SpikeTrack accelerator.

Units (one idea per file; each cites docs/integer_semantics.md §IS-n and is verified against its
golden function in ``spiketrack.quant.golden``):

* :mod:`~spiketrack.hw.events` - the spike-event stream format shared by all spiking units.
* :mod:`~spiketrack.hw.spike_encoder` - dense level words -> non-zero spike events.
* :mod:`~spiketrack.hw.synaptic_core` - accumulate-only synaptic core (conv, grouped/depthwise,
  1x1/linear, stem bit planes), ``P`` output lanes.
* :mod:`~spiketrack.hw.neuron_unit` - requantise, residual, NI-LIF membrane, fire.
* :mod:`~spiketrack.hw.memory_unit` - memory build / retrieval / spiking attention.
* :mod:`~spiketrack.hw.counters` - busy / stall / event counters.

Cycle-model convention: the exact cycle model of ``hw/<unit>.py`` is the sibling module
``hw/<unit>_cycles.py`` (pure Python, no Amaranth simulation). It predicts the unit's
``counters.busy`` with no input gaps and no backpressure; each unit counts the cycles lost to
gaps and backpressure itself, so under any stream timing
``counters.busy == model + counters.stall_in + counters.stall_out``, which tests assert with ``==``.
"""
