"""Harnesses of :class:`spiketrack.hw.memory_unit.MemoryUnit`.

Geometry: ``heads = 1``, ``d_h = d_v = 2``, ``n_max = 2`` tokens, ``n_slots = 2`` template
banks, ``P = 2`` lanes (one chunk per row; two M words per bank). Commands are free within the
declared ranges (``op`` BUILD / RETRIEVE / ATTEND, ``1 <= n_tokens <= n_max``); ``template_mode``
and the event stream are free.
"""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.hdl import Assert, Assume

from spiketrack.formal.harness import any_environment, elaborate_with_probes, output_rules, submodule, under_proof

__all__ = ["GEOMETRY", "template_write", "stream_rules", "transfers"]

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
