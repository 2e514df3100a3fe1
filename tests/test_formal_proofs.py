"""Formal proofs (issue 16): every proof passes on its unit, and fails on its mutant.

The fast proof(s) run in the default suite; the others carry the ``formal`` marker
(``make formal`` / ``pytest -m formal``). Results and run times: docs/formal.md.
"""

import pytest

from spiketrack.formal.proofs import PROOFS, run_mutant, run_proof


def _params():
    return [pytest.param(p, id=p.name, marks=() if p.fast else pytest.mark.formal) for p in PROOFS.values()]


@pytest.mark.parametrize("proof", _params())
def test_proof_holds(proof):
    res = run_proof(proof)
    assert res.status == "PASS", res.describe()
    assert res.mode == proof.mode and res.depth == proof.depth


def _mutant_params():
    return [pytest.param(p, mu, id=f"{p.name}-{mu.name}", marks=() if p.fast and p.fast_mutants else pytest.mark.formal)
            for p in PROOFS.values() for mu in p.mutants]


def test_every_mutant_edits_its_unit_as_it_is_now():
    """Each mutant's text occurs exactly once in its unit's source: a unit rewritten under a mutant
    (the slow mutation checks run in ``make formal`` only) is found here, in the default suite."""
    from spiketrack.formal.mutants import load

    stale = []
    for p in PROOFS.values():
        for mu in p.mutants:
            try:
                load(p.unit, mu)
            except ValueError as e:
                stale.append(f"{p.name}: {e}")
    assert not stale, "\n".join(stale)


@pytest.mark.parametrize("proof, mutant", _mutant_params())
def test_mutant_is_caught(proof, mutant):
    res = run_mutant(proof, mutant)
    assert res.status == "FAIL", res.describe()
    assert res.failed, f"FAIL without a named property:\n{res.describe()}"
    assert all(t.exists() for t in res.traces) and res.traces, res.describe()
