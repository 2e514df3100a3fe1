"""A small pass framework: a pass is ``pass(graph) -> (graph, changed)``.

:func:`run_passes` applies passes in order, each until it reports no change (bounded), and
records what each did, so a compile report can show the lowering step by step (FINN's
``model.transform`` in miniature).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Pass", "PassRecord", "run_passes"]

G = TypeVar("G")
Pass = Callable[[Any], tuple[Any, bool]]


@dataclass
class PassRecord:
    """What one pass did: how many times it changed the graph before reaching a fixed point."""

    name: str
    changes: int = 0
    notes: list[str] = field(default_factory=list)


def run_passes(graph: G, passes: Sequence[Pass], max_rounds: int = 1000) -> tuple[G, list[PassRecord]]:
    """Apply each pass until it changes nothing; return the final graph and one record per pass.

    Raises
    ------
    RuntimeError
        A pass that still changes the graph after ``max_rounds`` applications (a pass bug: its
        rewrite does not converge).
    """
    records = []
    for p in passes:
        rec = PassRecord(getattr(p, "__name__", type(p).__name__))
        for _ in range(max_rounds):
            graph, changed = p(graph)
            if not changed:
                break
            rec.changes += 1
        else:
            raise RuntimeError(f"pass {rec.name} did not converge in {max_rounds} rounds")
        records.append(rec)
    return graph, records
