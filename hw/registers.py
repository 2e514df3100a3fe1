"""Register helpers of the gateware: delays, register copies kept apart in synthesis, loop
counters with registered end flags, and loads gated by a unit's idle state.

They serve timing on the boards: a control value that fans out far comes from copies of a
register (:func:`copies`, :func:`load_while_idle`), and a sequencer's end-of-loop test is a
register (:class:`LoopCounter`), not a compare in front of its enables.
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, Value

__all__ = ["delay", "copies", "COPY_TAG", "LoopCounter", "load_groups", "load_while_idle", "LOAD_GROUP", "or_all"]


def delay(m: Module, value, cycles: int, name: str = "d"):
    """``value`` delayed by ``cycles`` registers (``cycles = 0``: ``value`` itself)."""
    v = value
    for i in range(cycles):
        nxt = Signal.like(v, name=f"{name}_{i}")
        m.d.sync += nxt.eq(v)
        v = nxt
    return v


LOAD_GROUP = 48      #: register bits per idle copy (:func:`load_while_idle`)
COPY_TAG = "__dup"   #: in a register's name: synthesis keeps it apart from equal registers (:func:`copies`)


def copies(m: Module, value, n: int, name: str, reset_less: bool = False) -> list:
    """``n`` registers that each load ``value``: one copy per consumer group, so a control value
    that fans out to many lanes reaches each group from a register of its own. Synthesis merges
    equal registers; the board builds keep the ones named with :data:`COPY_TAG` apart
    (``bitstreams.synth.KEEP_COPIES``). ``reset_less``: copies of a value the reset need not clear
    (an address loaded every cycle), without reset logic."""
    regs = [Signal(Value.cast(value).shape(), name=f"{name}{COPY_TAG}{k}", reset_less=reset_less) for k in range(n)]
    m.d.sync += [r.eq(value) for r in regs]
    return regs


class LoopCounter:
    """A loop counter ``i`` over ``first .. n - 1`` whose end flag ``last`` (``i == n - 1``) is a
    register, set in the same cycle as the counter: a sequencer's enables and multiplexers then see
    a register instead of an equality compare (13.3 ns on ULX3S, build r2s3).

    The bound is registered once per op (:meth:`bound`); a restart takes the registered flag
    ``one`` (``n == 1``), a step compares the incremented counter with ``n - 1``.

    Parameters
    ----------
    width : int
        Bits of the counter and of its bound ``m1`` (``n - 1``).
    name : str
        The counter's name; ``last_<name>``, ``<name>_m1`` and ``<name>_one`` name the others.
    """

    def __init__(self, width: int, name: str):
        self.width = width
        self.i = Signal(width, name=name)
        self.last = Signal(name=f"last_{name}")
        self.m1 = Signal(width, name=f"{name}_m1")
        self.one = Signal(name=f"{name}_one")

    def bound(self, m1, one=None, last=None) -> list:
        """Statements loading the bound ``m1`` (``n - 1``), ``one`` (``n == 1``, as the caller
        computes it; a loop that never restarts needs none) and ``last``: its value for the
        counter's first value (default ``one``: the counter starts at 0)."""
        if one is None and last is None:
            raise ValueError("bound() needs one, last or both")
        return [*self.limits(m1, one), self.last.eq(one if last is None else last)]

    def limits(self, m1, one=None) -> list:
        """Statements loading the bound ``m1`` and ``one`` only, ``last`` left alone: for a loop
        that is restarted (:meth:`restart`) before its first step."""
        return [self.m1.eq(m1), *([] if one is None else [self.one.eq(one)])]

    def restart(self) -> list:
        """Statements restarting the loop at 0."""
        return [self.i.eq(0), self.last.eq(self.one)]

    def step(self) -> list:
        """Statements moving to the next value."""
        nxt = (self.i + 1)[:self.width]
        return [self.i.eq(nxt), self.last.eq(nxt == self.m1)]


def load_groups(width: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` bit ranges splitting ``width`` bits into equal groups of at most
    :data:`LOAD_GROUP` bits (the last one shorter): one register copy of a control flag each."""
    n = -(-width // LOAD_GROUP)
    step = -(-width // n)
    return [(k * step, min(width, (k + 1) * step)) for k in range(n) if k * step < width]


def load_while_idle(m: Module, take, done, loads, name: str = "d_idle") -> None:
    """Load each ``(target, value)`` of ``loads`` in every cycle a unit is idle, instead of under
    its ``take`` gate: the unit is idle after reset and after a cycle with ``done``, not after a
    cycle with ``take`` (``done`` wins), so the loads happen in the take cycle too. "Idle" is kept
    in register copies, one per :data:`LOAD_GROUP` bits of the targets, each the clock enable of
    its group: the enables of hundreds of bits come from registers near them, not from one gate.
    A value wider than its target is cut to the target's width (as ``target.eq(value)`` does); a
    narrower one is refused."""
    target = Cat(*[t for t, _ in loads])
    value = Cat(*[Value.cast(v)[:len(Value.cast(t))] for t, v in loads])
    if len(target) != len(value):
        raise ValueError(f"targets of {len(target)} bits, values of {len(value)}")
    groups = load_groups(len(target))
    idle = [Signal(init=1, name=f"{name}{COPY_TAG}{k}") for k in range(len(groups))]
    with m.If(take):
        m.d.sync += [r.eq(0) for r in idle]
    with m.If(done):
        m.d.sync += [r.eq(1) for r in idle]
    for e, (lo, hi) in zip(idle, groups):
        with m.If(e):
            m.d.sync += target[lo:hi].eq(value[lo:hi])


def or_all(values):
    """The OR of a list of equally wide values."""
    out = values[0]
    for v in values[1:]:
        out = out | v
    return out
