"""Harnesses of :class:`spiketrack.hw.memory_unit.MemoryUnit`.

Geometry: ``heads = 1``, ``d_h = d_v = 2``, ``n_max = 2`` tokens, ``n_slots = 2`` template
banks, ``P = 2`` lanes (one chunk per row; two M words per bank). Commands are free within the
declared ranges (``op`` BUILD / RETRIEVE / ATTEND, ``1 <= n_tokens <= n_max``); ``template_mode``
and the event stream are free.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.hdl import Assert, Assume

from spiketrack.formal.harness import (any_environment, cycles_since_busy, elaborate_with_probes, output_rules,
                                      submodule, under_proof)
from spiketrack.hw.counters import COUNTER_LAG

__all__ = ["GEOMETRY", "template_write", "stream_rules", "transfers", "counters"]

GEOMETRY = "heads=1, d_h=d_v=2, n_max=2, 2 slots, P=2"


def _unit(hw):
    return hw.MemoryUnit(heads=1, d_h=2, d_v=2, n_max=2, n_slots=2, lanes=2)


def _commands(m, hw, dut):
    """Environment: commands in the declared ranges; returns the op of the command in progress."""
    cmd = dut.cmd
    with m.If(cmd.valid):
        m.d.comb += [Assume(cmd.payload.op.as_value() != 3, "env.op_in_range"),
                     Assume((cmd.payload.n_tokens >= 1) & (cmd.payload.n_tokens <= dut.geom.n_max),
                            "env.n_tokens_in_range")]
    op = Signal(hw.Op)
    with m.If(cmd.valid & cmd.ready):
        m.d.sync += op.eq(cmd.payload.op)
    return op


def template_write(hw) -> Module:
    """(b) The template memory is written only while a BUILD command is in progress, and only with
    ``template_mode`` high: never during RETRIEVE or ATTEND, whatever ``template_mode`` does."""
    m = Module()
    dut = _unit(hw)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    op = _commands(m, hw, dut)
    we = submodule(body, "m_mem").write_ports[0].en
    with m.If(we):
        m.d.comb += [Assert(dut.busy & (op == hw.Op.BUILD), "m.write_only_during_build"),
                     Assert(dut.template_mode, "m.write_only_in_template_mode")]
    return m


def stream_rules(hw) -> Module:
    """(a) ``o_acc`` keeps ``valid`` until ready and its payload stable, any environment."""
    return output_rules(_unit(hw), "o_acc", environment=lambda m, dut: _commands(m, hw, dut))


def transfers(hw) -> Module:
    """(a) A RETRIEVE or ATTEND of ``N`` tokens gives exactly ``N·H·d_v/P`` beats, ``last`` on the
    final one; a BUILD gives none."""
    dut = _unit(hw)
    m = under_proof(dut)
    _commands(m, hw, dut)
    cmd, o = dut.cmd, dut.o_acc
    per_token = dut.geom.heads * dut.geom.n_chunks
    expect, beats, retrieves, lasts = Signal(8), Signal(8), Signal(4), Signal(4)
    fire = o.valid & o.ready
    out_cmd = cmd.valid & cmd.ready & (cmd.payload.op != hw.Op.BUILD)
    with m.If(out_cmd):
        m.d.sync += [expect.eq(expect + cmd.payload.n_tokens * per_token), retrieves.eq(retrieves + 1)]
    m.d.sync += [beats.eq(beats + fire), lasts.eq(lasts + (fire & o.payload.last))]
    m.d.comb += [Assert(beats <= expect, "o_acc.no_duplicate_beat"),
                 Assert(lasts <= retrieves, "o_acc.no_duplicate_last")]
    with m.If(fire):
        m.d.comb += Assert(o.payload.last == (beats == expect - 1), "o_acc.last_on_final_beat")
    with m.If(~dut.busy):
        m.d.comb += [Assert(beats == expect, "o_acc.no_lost_beat"), Assert(lasts == retrieves, "o_acc.no_lost_last")]
    return m


def counters(hw) -> Module:
    """(e) ``busy == model + stall_in + stall_out`` after every command, any stream timing.

    Model (:mod:`spiketrack.hw.memory_unit_cycles`, ``C = d_v/P = 1`` chunk, so every event costs
    one cycle): CLEAR ``clear_cycles(N)`` and K drain ``DRAIN`` for BUILD/ATTEND, Q drain ``DRAIN``
    and readout ``out_beats(N) + OUT_LATENCY`` for RETRIEVE/ATTEND, plus one cycle per event.
    """
    dut = _unit(hw)
    m = under_proof(dut)
    _commands(m, hw, dut)
    g, cmd, ev = dut.geom, dut.cmd, dut.i_events
    assert g.n_chunks == 1, "the model below charges one cycle per event"
    build = lambda n: g.clear_cycles(n) + hw.DRAIN
    search = lambda n: hw.DRAIN + g.out_beats(n) + hw.OUT_LATENCY
    fixed = {hw.Op.BUILD: build, hw.Op.RETRIEVE: search, hw.Op.ATTEND: lambda n: build(n) + search(n)}
    cost = 0
    for op, f in fixed.items():
        for n in range(1, g.n_max + 1):
            cost = Mux((cmd.payload.op == op) & (cmd.payload.n_tokens == n), f(n), cost)
    model = Signal(32)
    m.d.sync += model.eq(model + Mux(cmd.valid & cmd.ready, cost, 0) + (ev.valid & ev.ready))
    idle = cycles_since_busy(m, dut.busy)
    c = dut.counters
    with m.If(~dut.busy & (idle >= COUNTER_LAG - 1)):
        m.d.comb += Assert(c.busy == (model + c.stall_in + c.stall_out)[:32], "counters.busy_identity")
    return m
