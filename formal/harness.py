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

__all__ = ["any_environment", "past", "StreamCheck", "cycles_since_busy", "elaborate_with_probes", "submodule", "signal_named", "fsm_in", "output_rules", "under_proof"]


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
    same two rules are assumed of the environment instead; ``role="observe"`` only counts.

    Attributes
    ----------
    fire : Value
        A transfer happens this cycle (``valid & ready``).
    count : Signal
        Transfers so far (``count_bits`` wide, saturating is never needed within a BMC depth).
    """

    def __init__(self, m: Module, port, name: str, *, role: str = "producer", count_bits: int = 8):
        self.port, self.name = port, name
        if role not in ("producer", "consumer", "observe"):
            raise ValueError(f"role must be producer, consumer or observe, got {role!r}")
        self.fire = port.valid & port.ready
        if role != "observe":
            held = past(m, port.valid & ~port.ready, f"{name}_held")
            payload = past(m, Value.cast(port.payload), f"{name}_payload")
            check = Assert if role == "producer" else Assume
            kind = "" if role == "producer" else "env."
            with m.If(held):
                m.d.comb += [check(port.valid, f"{kind}{name}.valid_held"),
                             check(Value.cast(port.payload) == payload, f"{kind}{name}.payload_stable")]
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


def elaborate_with_probes(m: Module, unit, name: str = "dut") -> Module:
    """Add ``unit`` to ``m`` as submodule ``name`` and return its elaborated ``Module``, whose
    named submodules (memories, ...) a harness may observe (see :func:`submodule`)."""
    body = unit.elaborate(platform=None)
    unit._MustUse__silence = True   # elaborated here, by hand: not an unused elaboratable
    m.submodules[name] = body
    return body


def submodule(body: Module, name: str):
    """The submodule ``name`` of an elaborated ``Module`` (e.g. the memory ``"m_mem"``)."""
    try:
        return body._named_submodules[name][0]
    except KeyError:
        raise KeyError(f"the unit has no submodule {name!r} (has {sorted(body._named_submodules)}); "
                       "update the harness to the unit") from None


def signal_named(body: Module, name: str) -> Signal:
    """The signal called ``name`` that an elaborated ``Module`` drives (a unit's internal
    register, e.g. ``"guard"``), for a harness to observe; it must be unique. This reads
    Amaranth's private ``Module._driving``."""
    found = [s for s in body._driving.keys() if s.name == name]
    if len(found) != 1:
        raise KeyError(f"the unit drives {len(found)} signals named {name!r} (expected one); "
                       "update the harness to the unit")
    return found[0]


def fsm_in(body: Module, fsm: str, *states: str):
    """High while the FSM ``fsm`` of an elaborated ``Module`` is in one of ``states`` (reads the
    private ``Module._generated`` and the FSM's state encoding)."""
    try:
        f = body._generated[fsm]
    except KeyError:
        raise KeyError(f"the unit has no FSM {fsm!r}; update the harness to the unit") from None
    missing = [s for s in states if s not in f.encoding]
    if missing:
        raise KeyError(f"FSM {fsm!r} has no states {missing} (has {list(f.encoding)}); update the harness")
    return f.state.matches(*(f.encoding[s] for s in states))


def output_rules(unit, *ports: str, environment=None) -> Module:
    """Harness of (a): the stream rules on the output ports ``ports`` of ``unit``, in any
    environment (``environment(m, unit)`` may add the unit's declared input ranges)."""
    m = under_proof(unit)
    if environment is not None:
        environment(m, unit)
    for name in ports:
        StreamCheck(m, getattr(unit, name), name)
    return m


def under_proof(unit) -> Module:
    """A new harness ``Module`` with ``unit`` as submodule ``dut`` in :func:`any_environment`."""
    m = Module()
    m.submodules.dut = unit
    any_environment(m, unit)
    return m
