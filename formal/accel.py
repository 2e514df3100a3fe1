"""Harnesses of the accelerator that ships: its three units and its top (``hw/accel/top.py``).

The units (:class:`~spiketrack.hw.conv_engine.ConvEngine`,
:class:`~spiketrack.hw.vector_unit.VectorUnit`,
:class:`~spiketrack.hw.memory_builder.MemoryBuilder`) have one stream port, the descriptor input
``i_desc``; their results leave through a memory write port (``out_en``/``out_addr``/``out_data``,
no ready), so they have no output stream to hold the stream rules. What the top's controller
relies on instead (it asserts ``i_desc.valid`` for exactly one cycle, ISSUE, waits for ``busy`` to
fall, WAIT, and routes the write port to the unit only while its descriptor runs) is the unit's
port contract, proved by :func:`unit_contract`:

* ``i_desc.ready_when_idle``: the unit is ready whenever it is not busy (a one-cycle issue is
  never lost);
* ``out.write_only_while_busy``: every memory write happens while ``busy`` is high (no write
  lands after the controller moved on).

Geometry: ``P = 2`` lanes (conv engine ``P = 4``: its stem reads three pixel lanes), 6-bit
addresses; every descriptor field, every read-data word and every ``valid`` is free each cycle.

The top (:class:`~spiketrack.hw.accel.top.Accelerator`) at its smallest: ``P = 8`` lanes (the
least it accepts), 4-bit addresses, every memory 2 rows, WRITE timeout 4 cycles. Its three units
are cut (yosys ``cutpoint``: every unit output free each cycle), so the top's proofs hold for any
behaviour of the units, and the command stream ``i_cmd`` is free.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import Assert

from spiketrack.formal.harness import (any_environment, elaborate_with_probes, fsm_in, output_rules, past, signal_named,
                                       under_proof)

__all__ = ["UNIT_GEOMETRY", "CONV_GEOMETRY", "TOP_GEOMETRY", "TOP_CUT", "conv_contract", "vec_contract",
           "mb_contract", "rsp_stream", "template_write",
           "mb_contract_inductive"]

UNIT_GEOMETRY = "P=2 lanes, 6-bit addresses, any descriptor"
CONV_GEOMETRY = "P=4 lanes, 6-bit addresses, any descriptor"
TOP_GEOMETRY = ("P=8, 4-bit addresses, every memory 2 rows (program rows start as memory-build descriptors), "
                "timeout 4; units cut (any unit behaviour)")
TOP_CUT = ("dut.conv", "dut.vec", "dut.mb")
_DEPTHS = {k: 2 for k in ("prog", "w", "tab", "cst", "lv", "st", "tm")}


def unit_contract(dut) -> Module:
    """The port contract of one unit (module docstring), in any environment."""
    m = under_proof(dut)
    _contract(m, dut)
    return m


def _contract(m, dut):
    with m.If(~dut.busy):
        m.d.comb += Assert(dut.i_desc.ready, "i_desc.ready_when_idle")
    with m.If(dut.out_en):
        m.d.comb += Assert(dut.busy, "out.write_only_while_busy")


def conv_contract(hw) -> Module:
    return unit_contract(hw.ConvEngine(lanes=4, addr_bits=6))


def vec_contract(hw) -> Module:
    return unit_contract(hw.VectorUnit(lanes=2, addr_bits=6))


def mb_contract(hw) -> Module:
    return unit_contract(hw.MemoryBuilder(lanes=2, addr_bits=6))


def mb_contract_inductive(hw) -> Module:
    """:func:`mb_contract` with lemmas that make it k-inductive: while the sequencer reads
    (``k_en``) or any pipeline stage (``s1``, its read-latency delays ``s1_0``.., ``s1d``, ``s2``,
    ``wst``: ``valid`` is each record's bit 0) holds a line, the unit is ``active``."""
    m = Module()
    dut = hw.MemoryBuilder(lanes=2, addr_bits=6)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    _contract(m, dut)
    active = signal_named(body, "active")
    delayed = tuple(f"s1_{i}" for i in range(dut.read_latency - 1))   # the read tag waiting for the data
    for stage in ("s1", *delayed, "s1d", "s2", "wst"):
        with m.If(signal_named(body, stage)[0]):
            m.d.comb += Assert(active, f"lemma.{stage}_valid_while_active")
    with m.If(dut.k_en):
        m.d.comb += Assert(active, "lemma.reading_while_active")
    return m


def _top(hw):
    # the program rows start as memory-build descriptors (the host may overwrite them): a search
    # run reaches the memory builder without a WRITE first, so counterexamples are short
    mb = hw.Unit.MB.value
    return hw.Accelerator(lanes=8, depths=_DEPTHS, addr_bits=4, timeout=4, init={"prog": [mb, mb]})


def rsp_stream(hw) -> Module:
    """(a) ``o_rsp`` keeps ``valid`` until ready and its payload stable, any command stream."""
    return output_rules(_top(hw), "o_rsp")


def template_write(hw) -> Module:
    """(b) During a search run no template slot of the template memory is written.

    A *search frame* is a run whose kind (the top's ``run_kind``, set from the RUN command) is
    SEARCH, from the cycle ``busy`` rises to the cycle it falls; the template slots are the rows
    below the guard (``guard``, set by the GUARD command) as it was when the run started. The
    harness latches both at the start and asserts that they do not change during the run
    (``run.kind_stable``, ``run.guard_stable``: no command re-targets a running frame), and that
    the template memory's write port (observed on the memory itself, whoever drives it: a unit or
    the host) writes no row below that guard while the run lasts (a write lands on the memory's
    banks one cycle after it is presented at the memory's port, so the cycle after the run's last
    is observed too). Two lemmas make it k-inductive: the controller is out of IDLE, and the memory
    builder owns the ports (``act_mb``), only while ``running``.

    The memory builder's address is free, past the memory's end included: this proof found a
    write past the end (row ``depth + r``, which the memory decodes as row ``r``) landing on a
    template slot; the top now blocks writes past the end (``tm_blocked``).
    """
    m = Module()
    dut = _top(hw)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    kind, guard = signal_named(body, "run_kind"), signal_named(body, "guard")
    search = hw.RunKind.SEARCH
    rise = dut.busy & ~past(m, dut.busy, "busy")
    kind_r, guard_r = Signal.like(kind, name="frame_kind"), Signal.like(guard, name="frame_guard")
    with m.If(rise):
        m.d.sync += [kind_r.eq(kind), guard_r.eq(guard)]
    frame_kind, frame_guard = Mux(rise, kind, kind_r), Mux(rise, guard, guard_r)
    # lemmas: the controller is out of IDLE only while a run lasts, and the memory builder owns the
    # template memory's write port (``act_mb``, set at an op's DECODE, cleared with ``running``) only
    # then. The top registers the unit's write (``tw_en``) before the memory's port, which selects
    # it by ``running`` a cycle later; without the lemmas the induction step starts from a state
    # with ``act_mb`` high and no run, and a write presented then (not blocked: ``tm_blocked``
    # needs ``running``) lands in the first cycle of a run that starts at once
    running, act_mb = signal_named(body, "running"), signal_named(body, "act_mb")
    with m.If(~fsm_in(body, "ctrl", "IDLE")):
        m.d.comb += Assert(running, "lemma.running_unless_idle")
    with m.If(act_mb):
        m.d.comb += Assert(running, "lemma.act_mb_only_while_running")
    tm = dut.mems["tm"]   # a write lands one cycle after it is presented (hw/banked_memory.py)
    with m.If(dut.busy):
        m.d.comb += [Assert(kind == frame_kind, "run.kind_stable"), Assert(guard == frame_guard, "run.guard_stable")]
    with m.If(past(m, dut.busy, "busy_w") & (kind_r == search) & tm.wrote):
        m.d.comb += Assert(tm.wrote_addr >= guard_r, "tm.no_template_write_in_search")
    return m
