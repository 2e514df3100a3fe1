"""spiketrack.formal: SymbiYosys proofs of the gateware's contracts (docs/formal.md).

* :mod:`~spiketrack.formal.sby` - ``run_sby``: the one helper that writes, runs and parses a proof.
* :mod:`~spiketrack.formal.harness` - any environment, stream rules, transfer counts, probes.
* :mod:`~spiketrack.formal.encoder`, :mod:`~spiketrack.formal.synaptic_core`,
  :mod:`~spiketrack.formal.neuron_unit`, :mod:`~spiketrack.formal.memory_unit`,
  :mod:`~spiketrack.formal.retrieval_neuron` - the harnesses of each unit (one function each).
* :mod:`~spiketrack.formal.accel`, :mod:`~spiketrack.formal.accel_units`,
  :mod:`~spiketrack.formal.accel_top`, :mod:`~spiketrack.formal.link` - the accelerator that
  ships: its units, its top (replies, template guard, counters, command stream) and the host link.
* :mod:`~spiketrack.formal.proofs` - the registry: property, unit, geometry, method, mutants.
* :mod:`~spiketrack.formal.mutants` - broken variants of the units, to show each proof can fail.

``python -m spiketrack.formal`` runs every proof and mutant and prints the table of the docs.
"""
