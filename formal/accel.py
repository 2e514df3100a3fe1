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

from amaranth import Array, Const, Module, Mux, Signal
from amaranth.hdl import Assert, Assume

from spiketrack.formal.harness import (StreamCheck, any_environment, elaborate_with_probes, fsm_in, output_rules, past,
                                       signal_named, under_proof)
from spiketrack.hw.accel import protocol

__all__ = ["UNIT_GEOMETRY", "CONV_GEOMETRY", "TOP_GEOMETRY", "TOP_CUT", "conv_contract", "vec_contract",
           "mb_contract", "rsp_stream", "rsp_transfers", "template_write",
           "mb_contract_inductive", "CommandSplit", "split_commands"]

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


class CommandSplit:
    """The host's view of ``i_cmd``: the accepted words split into commands by the protocol (see
    :func:`split_commands`). Members are harness signals: ``take`` (a word accepted this cycle),
    ``c_state`` (what the next accepted word is: 0 a header, 1 an address, 2 a WRITE's payload
    word), the current command's header fields ``h_op``, ``h_mem``, ``h_cnt``, its payload rows left
    ``p_rows`` and word within the row ``p_word``, ``gap`` (cycles the top waited for a payload word
    and got none), ``done`` (the command's last word arrived this cycle, or its payload timed out)
    and ``wpr`` (words per row of each memory id, 0 for an unknown id)."""

    def __init__(self, **signals):
        self.__dict__.update(signals)


def split_commands(m: Module, dut) -> CommandSplit:
    """Split the words ``dut`` accepts on ``i_cmd`` into commands (``protocol``): header, address,
    a WRITE's ``count * words_per_row`` payload words, ended early after ``dut.timeout`` cycles in
    which the top was ready and got no word (``protocol.TIMEOUT``). Counted in rows and words within
    a row: no multiplier for the solver. Assumes (``env.write_names_a_memory``) that a WRITE names
    one of the memories: the payload of a WRITE to an unknown memory has no defined length."""
    Op, i = protocol.Op, dut.i_cmd
    names = {v: k for k, v in protocol.MEM_IDS.items()}
    wpr = Array(Const(protocol.words_per_row(dut.widths[names[n]]) if n in names else 0, 4) for n in range(16))
    take = i.valid & i.ready
    c_state = Signal(range(3), name="c_state")            # 0 header, 1 address, 2 payload
    h_op, h_mem, h_cnt = Signal(4, name="h_op"), Signal(4, name="h_mem"), Signal(24, name="h_cnt")
    p_rows, p_word = Signal(24, name="p_rows"), Signal(4, name="p_word")   # payload rows left, word in row
    gap = Signal(range(dut.timeout), name="gap")          # cycles the top waited for a payload word
    done = Signal(name="cmd_done")                        # the current command's last word arrived
    hdr = i.payload
    with m.If((c_state == 0) & take & (hdr[:4] == Op.WRITE)):
        m.d.comb += Assume(hdr[4:8] <= protocol.Mem.TM, "env.write_names_a_memory")
    with m.Switch(c_state):
        with m.Case(0):
            with m.If(take):
                m.d.sync += [h_op.eq(hdr[:4]), h_mem.eq(hdr[4:8]), h_cnt.eq(hdr[8:]), c_state.eq(1)]
        with m.Case(1):
            with m.If(take):
                m.d.sync += [p_rows.eq(h_cnt), p_word.eq(0), gap.eq(0)]
                with m.If((h_op == Op.WRITE) & (h_cnt != 0)):
                    m.d.sync += c_state.eq(2)
                with m.Else():
                    m.d.comb += done.eq(1)
                    m.d.sync += c_state.eq(0)
        with m.Case(2):
            with m.If(take):
                m.d.sync += gap.eq(0)
                with m.If(p_word == wpr[h_mem] - 1):
                    m.d.sync += [p_word.eq(0), p_rows.eq(p_rows - 1)]
                    with m.If(p_rows == 1):
                        m.d.comb += done.eq(1)
                        m.d.sync += c_state.eq(0)
                with m.Else():
                    m.d.sync += p_word.eq(p_word + 1)
            with m.Elif(i.ready):
                m.d.sync += gap.eq(gap + 1)
                with m.If(gap == dut.timeout - 1):       # truncated
                    m.d.comb += done.eq(1)
                    m.d.sync += c_state.eq(0)
    return CommandSplit(take=take, c_state=c_state, h_op=h_op, h_mem=h_mem, h_cnt=h_cnt, p_rows=p_rows,
                        p_word=p_word, gap=gap, done=done, wpr=wpr)


def rsp_transfers(hw) -> Module:
    """(a) ``o_rsp``: no reply word duplicated or lost. Each command the top accepts gets, in
    order, exactly the reply ``protocol`` defines for it: a status word first (magic byte, the
    op of its command), then for a READ answered OK ``count`` rows of ``words_per_row`` words,
    for a STATUS the flags and counter words (``1 + len(COUNTERS)``, its count field), for every
    other command (or a refusal) nothing more.

    The harness is the host's side of the protocol, from the port transfers alone (no probe of the
    top's state). Commands: it splits the accepted ``i_cmd`` words into commands itself (header,
    address; a WRITE's payload of ``count * words_per_row`` words, ended early after ``timeout``
    cycles in which the top waited for a word and got none, ``protocol.TIMEOUT``). Replies: it
    reads ``o_rsp`` as the host driver does (``sim/accel_driver.py``), the status word telling
    whether rows follow. Properties:

    * ``rsp.reply_to_a_command``: a word where a status word is due is sent only while a command
      whose words all arrived is still unanswered (no extra word, no duplicated reply);
    * ``rsp.status_word_first``, ``rsp.status_op_in_order``, ``rsp.status_count``: that word is a
      status word, of the oldest unanswered command; a STATUS announces its data words;
    * ``rsp.previous_reply_complete``: when the top accepts a command header, the replies of all
      earlier commands are complete: sent, or the last word held on ``o_rsp`` (whose stream rules
      ``accel_rsp_stream`` proves), so no reply word is lost.

    Environment: ``i_cmd`` keeps the stream rules (``env.i_cmd.*``), ``o_rsp.ready`` is free, and a
    WRITE names one of the memories (``env.write_names_a_memory``: the payload of a WRITE to an
    unknown memory has no defined length; the top drops words until the payload pauses for
    ``timeout`` cycles).
    """
    dut = _top(hw)
    m = under_proof(dut)
    StreamCheck(m, dut.i_cmd, "i_cmd", role="consumer")
    Op, n_status = protocol.Op, 1 + len(protocol.COUNTERS)
    o = dut.o_rsp
    cmd = split_commands(m, dut)
    wpr, done, h_op, h_mem, h_cnt = cmd.wpr, cmd.done, cmd.h_op, cmd.h_mem, cmd.h_cnt
    n_cmd = Signal(8, name="n_cmd")                       # commands complete
    # the unanswered commands: at most two (the previous reply's last word may be held on o_rsp
    # when the next command completes; a third header needs it sent, rsp.previous_reply_complete)
    q_op, q_mem, q_cnt = (Array(Signal(w, name=f"q_{f}{k}") for k in range(2))
                          for f, w in (("op", 4), ("mem", 4), ("cnt", 24)))
    with m.If(done):
        m.d.sync += [q_op[n_cmd[0]].eq(h_op), q_mem[n_cmd[0]].eq(h_mem), q_cnt[n_cmd[0]].eq(h_cnt),
                     n_cmd.eq(n_cmd + 1)]
    # ------------------------------------------------------------ replies, as the host reads them
    n_rsp = Signal(8, name="n_rsp")                       # status words sent
    # data words still due: r_rows rows of r_nw words, r_word of the current row sent; none due
    # (r_rows == 0): a status word is due
    r_rows, r_word, r_nw = Signal(24, name="r_rows"), Signal(5, name="r_word"), Signal(5, name="r_nw")
    word = o.payload
    e_op, e_mem, e_cnt = q_op[n_rsp[0]], q_mem[n_rsp[0]], q_cnt[n_rsp[0]]
    ok = word[16:20] == protocol.Err.OK
    first = r_rows == 0

    def after(sent):   # (status words sent, data rows due) once the word on o_rsp is sent, if ``sent``
        rows_next = Mux(first, Mux(ok & (e_op == Op.READ), e_cnt, Mux(ok & (e_op == Op.STATUS), 1, 0)),
                        Mux(r_word == r_nw - 1, r_rows - 1, r_rows))
        return n_rsp + (sent & first), Mux(sent, rows_next, r_rows)

    sent = o.valid & o.ready
    n_rsp_next, r_rows_next = after(sent)
    m.d.sync += [n_rsp.eq(n_rsp_next), r_rows.eq(r_rows_next)]
    with m.If(sent & first):
        m.d.sync += [r_word.eq(0), r_nw.eq(Mux(e_op == Op.STATUS, n_status, wpr[e_mem]))]
    with m.Elif(sent):
        m.d.sync += r_word.eq(Mux(r_word == r_nw - 1, 0, r_word + 1))
    with m.If(sent & first):
        m.d.comb += [Assert(n_cmd != n_rsp, "rsp.reply_to_a_command"),
                     Assert(word[24:] == protocol.STATUS_MAGIC, "rsp.status_word_first"),
                     Assert(word[20:24] == e_op, "rsp.status_op_in_order")]
        with m.If(e_op == Op.STATUS):
            m.d.comb += Assert(word[:16] == n_status, "rsp.status_count")
    produced, due = after(o.valid)   # the word held on o_rsp counts as produced
    with m.If((cmd.c_state == 0) & cmd.take):
        m.d.comb += Assert((produced == n_cmd) & (due == 0), "rsp.previous_reply_complete")
    return m


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
