"""The registry of proofs: what each proves, on which unit and geometry, how, and its mutant.

Each :class:`Proof` builds its harness from a ``spiketrack.hw`` module object (the real one, or a
mutated copy from :func:`spiketrack.formal.mutants.load`), so re-pointing a proof at a rewritten
unit means changing its ``build`` function only. Each proof runs in its own folder
``build/formal/<name>/`` (its mutant in ``build/formal/<name>__<mutant>/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from spiketrack.formal import encoder
from spiketrack.formal.mutants import Mutant, load
from spiketrack.formal.sby import ProofResult, run_sby

__all__ = ["Proof", "PROOFS", "run_proof", "run_mutant"]


@dataclass(frozen=True)
class Proof:
    """One formal proof.

    Attributes
    ----------
    name : str
        Proof (and folder) name.
    prop : str
        The property in words, with its item of issue 16 (a)-(e).
    unit : str
        The ``spiketrack.hw`` module of the unit under proof.
    geometry : str
        The elaborated geometry the proof covers.
    build : callable
        ``build(hw_module) -> harness``.
    mode : str
        ``"prove"`` (k-induction, unbounded) or ``"bmc"`` (bounded).
    depth : int
        Induction length or BMC depth.
    mutant : Mutant
        A broken variant of the unit this proof must catch.
    cut : tuple of str
        Submodules replaced by free values (see :func:`spiketrack.formal.sby.run_sby`).
    solver : str
        SMT solver.
    fast : bool
        Runs in the default test suite (a few seconds); the others carry the ``formal`` marker.
    """

    name: str
    prop: str
    unit: str
    geometry: str
    build: Callable
    mode: str
    depth: int
    mutant: Mutant
    cut: tuple = ()
    solver: str = "yices"
    fast: bool = False


def run_proof(proof: Proof, *, timeout: int = 600) -> ProofResult:
    """Run ``proof`` on the real unit."""
    return run_sby(proof.name, proof.build(load(proof.unit)), mode=proof.mode, depth=proof.depth,
                   solver=proof.solver, timeout=timeout, cut=proof.cut)


def run_mutant(proof: Proof, *, timeout: int = 600) -> ProofResult:
    """Run ``proof`` on its mutant (expected verdict: ``FAIL`` with a counterexample)."""
    return run_sby(f"{proof.name}__{proof.mutant.name}", proof.build(load(proof.unit, proof.mutant)),
                   mode=proof.mode, depth=proof.depth, solver=proof.solver, timeout=timeout, cut=proof.cut)


ENC = "spiketrack.hw.spike_encoder"

PROOFS = {p.name: p for p in [
    Proof("encoder_stream", "(a) o_events: valid held until ready, payload stable while stalled",
          ENC, encoder.GEOMETRY, encoder.stream_rules, "prove", 4, fast=True, cut=("dut.ctr",),
          mutant=Mutant("valid_falls_early", "the held event is dropped whenever valid is high, ready or not",
                        "with m.Elif(sent):\n            m.d.sync += [pend_valid.eq(0), final.eq(0)]",
                        "with m.Elif(o.valid):\n            m.d.sync += [pend_valid.eq(0), final.eq(0)]")),
    Proof("encoder_transfers", "(a) o_events: every non-zero lane leaves as exactly one event, every map "
          "as one last event (never more out than in; equal when idle)",
          ENC, encoder.GEOMETRY, encoder.transfers, "bmc", 12, cut=("dut.ctr",),
          mutant=Mutant("drop_lane", "only lane 0 of a word is queued (lane 1's events are lost)",
                        "rem.eq(sum((b << j for j, b in enumerate(nz)), 0))", "rem.eq(nz[0])")),
    Proof("encoder_counters", "(e) counters: busy == model + stall_in + stall_out after each map",
          ENC, encoder.GEOMETRY, encoder.counters, "bmc", 10,
          mutant=Mutant("no_stall_out", "backpressure cycles are not counted",
                        "ctr.inc.stall_out.eq(o.valid & ~o.ready)", "ctr.inc.stall_out.eq(0)")),
]}
