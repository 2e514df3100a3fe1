"""Building blocks of the formal harnesses: any environment, stream rules, idle checks.

Every harness is a plain ``Module`` whose submodule ``dut`` is the unit under proof. Its
properties (``Assert``) and environment constraints (``Assume``) sit in the harness's top module,
each with a message that names it (``run_sby`` reports failed properties by that message).
"""

from __future__ import annotations

from amaranth import Module, ResetSignal, Signal, Value
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume
from amaranth.lib.wiring import In

__all__ = ["any_environment", "past", "StreamCheck", "cycles_since_busy"]


def any_environment(m: Module, unit, *, keep=()) -> None:
    """Drive every input member of ``unit`` with a fresh arbitrary value each cycle (``AnySeq``).

    The synchronous reset is held low (``Assume``): registers start at their reset values, which
    is what reset gives. Members named in ``keep`` (``"i_events.valid"``, ...) are left to the
    caller, who drives them.
    """
    m.d.comb += Assume(~ResetSignal(), "env.no_reset")
    for path, member, value in unit.signature.flatten(unit):
        dotted = ".".join(str(p) for p in path)
        if member.flow == In and dotted not in keep:
            bits = Value.cast(value)
            m.d.comb += bits.eq(AnySeq(len(bits)))


def past(m: Module, value, name: str):
    """A register holding ``value`` of the previous cycle (reset value in the first cycle)."""
    reg = Signal.like(value, name=f"past_{name}")
    m.d.sync += reg.eq(value)
    return reg


class StreamCheck:
    """The Amaranth stream rules on one port, and its transfer count.

    As a property of a producer (``role="producer"``, the unit drives ``valid``/``payload``):
    ``valid`` is not withdrawn before a transfer, and ``payload`` is stable while ``valid`` is high
    and ``ready`` is low. As the unit's contract with its environment (``role="consumer"``) the
    same two rules are assumed of the environment instead.

    Attributes
    ----------
    fire : Value
        A transfer happens this cycle (``valid & ready``).
    count : Signal
        Transfers so far (``count_bits`` wide, saturating is never needed within a BMC depth).
    """

    def __init__(self, m: Module, port, name: str, *, role: str = "producer", count_bits: int = 8):
        self.port, self.name = port, name
        self.fire = port.valid & port.ready
        held = past(m, port.valid & ~port.ready, f"{name}_held")
        payload = past(m, port.payload.as_value(), f"{name}_payload")
        check = Assert if role == "producer" else Assume
        kind = "" if role == "producer" else "env."
        with m.If(held):
            m.d.comb += [check(port.valid, f"{kind}{name}.valid_held"),
                         check(port.payload.as_value() == payload, f"{kind}{name}.payload_stable")]
        self.count = Signal(count_bits, name=f"{name}_count")
        m.d.sync += self.count.eq(self.count + self.fire)


def cycles_since_busy(m: Module, busy, name: str = "idle", bits: int = 3):
    """Cycles since ``busy`` was last high (saturates at ``2**bits - 1``)."""
    n = Signal(bits, name=f"{name}_cycles")
    with m.If(busy):
        m.d.sync += n.eq(0)
    with m.Elif(n != (1 << bits) - 1):
        m.d.sync += n.eq(n + 1)
    return n
