"""Deliberately broken variants of the hardware units, to show that each proof can fail.

A :class:`Mutant` is one source edit of one ``spiketrack.hw`` module (the text ``old``, which must
occur exactly once, replaced by ``new``). :func:`load` executes the edited source as a fresh
module object (the installed module is not touched), so a proof's harness built from that module
elaborates the broken unit. An edit whose ``old`` text no longer exists raises, so a rewritten
unit cannot make a mutation check pass vacuously.
"""

from __future__ import annotations

import importlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Mutant", "load"]


@dataclass(frozen=True)
class Mutant:
    """One source edit of a unit.

    Attributes
    ----------
    name : str
        Short name (used in the proof folder name).
    what : str
        What the edit breaks, in words.
    old, new : str
        Source text replaced (must occur exactly once) and its replacement.
    """

    name: str
    what: str
    old: str
    new: str


def load(module_name: str, mutant: Mutant | None = None) -> types.ModuleType:
    """The module ``module_name``, or a fresh copy of it with ``mutant``'s edit applied."""
    module = importlib.import_module(module_name)
    if mutant is None:
        return module
    source = Path(module.__file__).read_text()
    n = source.count(mutant.old)
    if n != 1:
        raise ValueError(f"mutant {mutant.name}: {mutant.old!r} occurs {n} times in {module.__file__} "
                         "(expected exactly once; the unit changed, update the mutant)")
    copy = types.ModuleType(f"{module_name}__{mutant.name}")
    copy.__file__ = module.__file__
    sys.modules[copy.__name__] = copy   # dataclasses look their module up there
    exec(compile(source.replace(mutant.old, mutant.new), f"{module.__file__} [{mutant.name}]", "exec"),
         copy.__dict__)
    return copy
