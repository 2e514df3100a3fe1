"""The accelerator top's counters (e) and its command stream (a) (``hw/accel/top.py``).

Same top and geometry as :mod:`spiketrack.formal.accel` (``P = 8``, 4-bit addresses, every memory
2 rows, WRITE timeout 4, the three units cut: any unit behaviour, any command stream).

* :func:`counters` (e): every counter of ``protocol.COUNTERS`` whose definition is a count of
  signals a harness can see, kept again by the harness from those signals and compared with the
  top's counter register (read by name, ``ctr_<name>``) in every cycle. The signals are the top's
  ports (``busy``, ``o_rsp``), the units' ports (``busy``, ``i_desc.valid``, read enables,
  ``counters.saturated``) and the memories' ports (each read and write enable).
* :func:`commands` (a): no ``i_cmd`` word lost or duplicated. The harness splits the accepted
  words into commands by the protocol (:func:`~spiketrack.formal.accel.split_commands`), and the
  top takes each word in the state that the protocol says the word is (header, address or payload).
"""

from __future__ import annotations

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.hdl import Assert, Assume

from spiketrack.formal.accel import _top, split_commands
from spiketrack.formal.harness import any_environment, elaborate_with_probes, fsm_in, past, signal_named, submodule

__all__ = ["COUNTED", "NOT_COUNTED", "counters", "commands"]

#: counters proved by :func:`counters` (each against the signals it counts)
COUNTED = ("cycles", "run_cycles", "runs", "descriptors", "ctrl_cycles", "conv_busy", "vec_busy", "mb_busy",
           "events", "saturated", "lv_reads", "lv_writes", "st_reads", "st_writes", "tm_reads", "tm_writes",
           "w_reads", "tab_reads", "cst_reads", "prog_reads", "rsp_stall")
#: not proved: ``guard_blocked``'s increment is the top's own guard decision (``tm_blocked``: run kind,
#: guard, address); the fetch unit's counters exist only with an external memory
#: (``Accelerator(ext=...)``), which the proof's top does not have (they read 0 there)
NOT_COUNTED = ("guard_blocked", "fetch_busy", "ext_words", "w_writes")


def _lagged_count(m: Module, inc, name: str) -> Signal:
    """The count of ``inc`` over every cycle up to two before this one (the top registers each
    increment, then adds it: ``bump`` in ``hw/accel/top.py``), 32 bits, wrapping as the counters do."""
    n = Signal(32, name=f"model_{name}")
    m.d.sync += n.eq(n + past(m, inc, f"inc_{name}"))
    return n


def counters(hw) -> Module:
    """(e) The top's counters equal, in every cycle, the counts of what they are defined to count.

    Each counter counts the signal of its row below; the top registers the increment and adds it a
    cycle later, so the counter in cycle ``t`` holds the count over cycles ``0 .. t-2`` (``runs``:
    ``0 .. t``, it counts the start itself, the cycle before ``busy`` rises):

    ================================  ===========================================================
    ``cycles``                        every cycle since reset
    ``run_cycles``                    ``busy``
    ``runs``                          ``busy`` rising (a run starts)
    ``conv_busy`` ...  ``mb_busy``    the unit's ``busy``
    ``rsp_stall``                     ``o_rsp.valid & ~o_rsp.ready``
    ``*_reads``, ``*_writes``         the memory's read enables (``lv``, ``st``: both ports) and
                                      its write enable: every access, by a unit or the host
    ``saturated``                     the sum of the units' ``counters.saturated`` (the top adds
                                      each cycle's difference)
    ``descriptors``                   descriptors completed: a descriptor is issued to a unit
                                      (its ``i_desc.valid``) and completes in the first cycle
                                      after that in which the unit is not busy
    ``ctrl_cycles``                   ``busy`` and no unit working for the run: not (a
                                      descriptor issued in this run, and the unit of the current
                                      one, last issued or issued this cycle, busy)
    ``events``                        the conv engine's weight or template reads (``w_en``,
                                      ``tm_en``) while it owns the ports: a run is on and its
                                      current descriptor, issued in this run, is the conv engine's
    ================================  ===========================================================

    The descriptor, ``ctrl_cycles`` and ``events`` rows see the current unit through the units'
    ``i_desc.valid``; a program word whose unit field is 3 (the fetch unit, not built in this
    top: the controller issues to none and waits on a ``busy`` that stays 0) is assumed away (``env.program_names_a_unit``:
    the protocol's units are 0-2, the compiler emits no other). Lemmas (for k-induction) tie the
    harness's current unit and descriptor to the controller's ``cur``, ``act_*`` and FSM state
    ``WAIT``, and ``busy`` to the FSM out of ``IDLE``.
    """
    m = Module()
    dut = _top(hw)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    units = [submodule(body, u) for u in ("conv", "vec", "mb")]   # hw.Unit order: CONV, VEC, MB
    mems = dut.mems
    ctr = {name: signal_named(body, f"ctr_{name}") for name in COUNTED}
    m.d.comb += Assume(mems["prog"].r0_data[:2] != 3, "env.program_names_a_unit")

    busy = dut.busy
    rise = busy & ~past(m, busy, "busy")
    # the current unit: the one issued this cycle, else the one last issued (CONV from reset, as ``cur``)
    issued = [u.i_desc.valid for u in units]
    issue = issued[0] | issued[1] | issued[2]
    last_u = Signal(2, name="last_unit")
    issuing = Mux(issued[0], 0, Mux(issued[1], 1, 2))
    sel = Mux(issue, issuing, last_u)
    with m.If(issue):
        m.d.sync += last_u.eq(issuing)
    unit_busy = Array(u.busy for u in units)
    # a descriptor in flight: issued, waiting for its unit's busy to be low
    inflight = Signal(name="desc_inflight")
    done = inflight & ~unit_busy[last_u]
    m.d.sync += inflight.eq(issue | (inflight & ~done))
    # a descriptor issued in this run (the units own the ports from an op's decode to the run's end)
    ran_r = Signal(name="ran_in_run")
    ran = issue | ran_r
    m.d.sync += ran_r.eq(busy & ran)

    def reads(name):
        mem = mems[name]
        return mem.r0_en + mem.r1_en if hasattr(mem, "r1_en") else mem.r0_en

    conv = units[0]
    counted = {
        "cycles": Const(1, 1), "run_cycles": busy, "rsp_stall": dut.o_rsp.valid & ~dut.o_rsp.ready,
        "conv_busy": units[0].busy, "vec_busy": units[1].busy, "mb_busy": units[2].busy,
        "descriptors": done, "ctrl_cycles": busy & ~(ran & unit_busy[sel]),
        "events": busy & ran & (sel == 0) & (conv.w_en | conv.tm_en),
        **{f"{n}_reads": reads(n) for n in ("lv", "st", "tm", "w", "tab", "cst", "prog")},
        **{f"{n}_writes": mems[n].w_en for n in ("lv", "st", "tm")},
    }
    for name, inc in counted.items():
        m.d.comb += Assert(ctr[name] == _lagged_count(m, inc, name), f"ctr.{name}")
    runs = Signal(32, name="model_runs")
    m.d.sync += runs.eq(runs + rise)
    m.d.comb += Assert(ctr["runs"] == (runs + rise)[:32], "ctr.runs")
    sat = (units[0].counters.saturated + units[1].counters.saturated)[:32]
    m.d.comb += Assert(ctr["saturated"] == past(m, past(m, sat, "sat1"), "sat2"), "ctr.saturated")

    # lemmas: the harness's view of the controller is the controller's
    cur = signal_named(body, "cur")
    m.d.comb += [Assert((cur == sel) & (last_u != 3), "lemma.current_unit"),
                 Assert(inflight == fsm_in(body, "ctrl", "WAIT"), "lemma.in_flight_is_wait"),
                 Assert(busy == ~fsm_in(body, "ctrl", "IDLE"), "lemma.busy_unless_idle")]
    for k, u in enumerate(("conv", "vec", "mb")):
        m.d.comb += Assert(signal_named(body, f"act_{u}") == (busy & ran & (sel == k)), f"lemma.act_{u}")
    return m


def commands(hw) -> Module:
    """(a) ``i_cmd``: no command word lost or duplicated. The harness splits the accepted words into
    commands by the protocol (:func:`~spiketrack.formal.accel.split_commands`: header, address, a
    WRITE's ``count * words_per_row`` payload words, or fewer when the payload pauses for
    ``timeout`` cycles) and checks that the top takes each word in the state that consumes a word of
    that kind (its host FSM ``host``, read by name):

    * ``cmd.header_as_header``, ``cmd.address_as_address``, ``cmd.payload_as_payload``: a word taken
      is the header, address or payload word of the top's current command exactly when it is one
      by the protocol (so no word is taken outside a command, none is taken by two, and no command
      takes a word of the next);
    * ``cmd.payload_word_index``: a payload word lands at its place in the row (the top's word
      flag registered for it, ``pay_w<k>``, is that of the harness's word within the row, and no
      other flag is set);
    * ``cmd.headers_counted``: the headers the top has decoded equal the commands the harness
      has counted.

    Environment: any ``i_cmd`` (valid and payload free each cycle; the stream rules are not
    needed) and ``o_rsp.ready``, and a WRITE names one of the memories
    (``env.write_names_a_memory``).
    """
    m = Module()
    dut = _top(hw)
    body = elaborate_with_probes(m, dut)
    any_environment(m, dut)
    cmd = split_commands(m, dut)
    take, c_state = cmd.take, cmd.c_state

    def host(*states):
        return fsm_in(body, "host", *states)

    with m.If(take):
        m.d.comb += [Assert(host("HDR0") == (c_state == 0), "cmd.header_as_header"),
                     Assert(host("HDR1") == (c_state == 1), "cmd.address_as_address"),
                     Assert(host("WDATA", "SKIP") == (c_state == 2), "cmd.payload_as_payload")]
    # the top registers each payload word with one write flag per word of the row (``pay``,
    # ``pay_w0``, ``pay_w1``, ...) before it reaches the row: the flag of the harness's word alone
    taken_as_payload, p_word = past(m, take & (c_state == 2), "payload_taken"), past(m, cmd.p_word, "p_word")
    flags = []
    while any(s.name == f"pay_w{len(flags)}" for s in body._driving.keys()):
        flags.append(signal_named(body, f"pay_w{len(flags)}"))
    assert flags, "the top has no payload word flags pay_w0, pay_w1, ...: update the harness"
    written = past(m, take & (c_state == 2) & host("WDATA"), "payload_written")   # not a refused WRITE's (SKIP)
    with m.If(taken_as_payload):
        m.d.comb += Assert(Cat(*flags) == Mux(written, (Const(1, len(flags)) << p_word)[:len(flags)], 0),
                           "cmd.payload_word_index")
    headers, decoded = Signal(8, name="headers"), Signal(8, name="headers_decoded")
    m.d.sync += [headers.eq(headers + (take & (c_state == 0))), decoded.eq(decoded + (take & host("HDR0")))]
    m.d.comb += Assert(headers == decoded, "cmd.headers_counted")
    return m
