"""An SDR SDRAM controller that serves the external-memory bus (:mod:`spiketrack.hw.extmem`).

The controller runs in the core clock domain (``sync``) and drives the SDRAM's pins as plain
signals (:class:`SDRAMPinsSignature`); the board top connects them to the platform's ``sdram``
resource, drives the SDRAM clock and adds any I/O registers (``extra_read_latency``).

Operation (docs/sdram.md):

* **Initialisation**: ``t_power_up`` of COMMAND INHIBIT with CKE high, PRECHARGE ALL,
  ``init_refreshes`` AUTO REFRESH commands, LOAD MODE REGISTER (burst length 1, the CAS
  latency). ``init_done`` rises when the controller may issue its first ACTIVE.
* **Accesses**: burst length 1, one READ or WRITE command per word, so a word moves every
  cycle while its row is open. A bus command is cut at row ends: the bus address is
  ``{row, bank, column}`` (:class:`~.timing.SDRAMGeometry`), so the next row of a sequential
  transfer lies in the next bank.
* **Open-row policy**: a row stays open after its words, one open row per bank, until a command
  needs another row of that bank (PRECHARGE that bank, then ACTIVE) or a refresh closes every
  bank (PRECHARGE ALL).
* **Refresh**: a counter requests an AUTO REFRESH ``refresh_period`` cycles after the previous
  one; the request wins over every access (between two words), so the gap between two refreshes
  is at most ``refresh_period + refresh_latency_max`` cycles, which is at most ``t_refi``.
* **Timing**: four down-counters (ACTIVE/REFRESH/MODE allowed, READ/WRITE allowed, PRECHARGE
  allowed, WRITE after READ allowed) are loaded, on each command, with the largest of their
  remaining count and the command's constant: one conservative counter per command class
  instead of one per bank (a bank's rule is measured from the latest command of any bank).
* **Reads** are issued only while the read FIFO has a free place for the word (a credit count:
  FIFO entries plus words in flight), so the master may hold ``rdata.ready`` low forever.

No multiplier: every timing is a constant computed in Python (:mod:`.timing`).
"""

from __future__ import annotations

from amaranth import Array, Module, Mux, Signal
from amaranth.lib import fifo, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.counters import CounterBank, counters_layout
from spiketrack.hw.extmem import EXT_ADDR_BITS, EXT_COUNT_BITS, EXT_DATA_BITS, ExtBusSignature

from .timing import ULX3S_GEOMETRY, ULX3S_TIMINGS, CycleTimings, SDRAMGeometry, SDRAMTimings, mode_register, tck_ns

__all__ = ["SDRAMPinsSignature", "SDRAMController", "COUNTER_NAMES", "CMD", "read_latency"]

COUNTER_NAMES = ("refreshes", "row_opens", "read_words", "write_words", "stall_cycles")
"""The controller's counters (``counters`` member): AUTO REFRESH commands (the initialisation's
included), ACTIVE commands, READ and WRITE commands (words), and busy cycles (a bus command with
words left) in which no READ or WRITE was issued."""

CMD = {"NOP": 0b111, "ACT": 0b011, "READ": 0b101, "WRITE": 0b100, "BST": 0b110, "PRE": 0b010,
       "REF": 0b001, "MRS": 0b000}
"""SDRAM commands as ``{ras_n, cas_n, we_n}`` with ``cs_n`` low."""


def read_latency(cas_latency: int, extra_read_latency: int = 0) -> int:
    """Cycles from the cycle a READ is decided to the cycle its word is written into the read
    FIFO: one for the command register, one to the chip's sampling edge, ``cas_latency``, the
    capture register, and the board's extra input registers, less one (the chip's sampling edge
    is the capture's first)."""
    return cas_latency + 2 + extra_read_latency


class SDRAMPinsSignature(wiring.Signature):
    """The SDRAM's pins seen from the controller (active-low names as on the chip; the
    ``sdram`` resource of amaranth-boards inverts ``cs``, ``we``, ``ras``, ``cas`` itself, so the
    board top connects ``res.cs.o`` to ``~cs_n`` and so on).

    Members
    -------
    cke, cs_n, ras_n, cas_n, we_n : Out(1)
    ba : Out(bank_bits)
    a : Out(addr_pins)
    dq_o : Out(16)
        Write data, driven onto DQ while ``dq_oe`` is high.
    dq_oe : Out(1)
    dq_i : In(16)
        DQ as read from the pins.
    dqm : Out(2)
        Byte masks (always 0: the bus moves whole words).
    """

    def __init__(self, geometry: SDRAMGeometry = ULX3S_GEOMETRY):
        super().__init__({
            "cke": Out(1, init=1), "cs_n": Out(1, init=1), "ras_n": Out(1, init=1),
            "cas_n": Out(1, init=1), "we_n": Out(1, init=1),
            "ba": Out(geometry.bank_bits), "a": Out(geometry.addr_pins),
            "dq_o": Out(EXT_DATA_BITS), "dq_oe": Out(1), "dq_i": In(EXT_DATA_BITS),
            "dqm": Out(EXT_DATA_BITS // 8),
        })


class SDRAMController(wiring.Component):
    """SDR SDRAM controller for the external-memory bus (see the module docstring).

    Parameters
    ----------
    clock_mhz : float
        The core clock (the SDRAM's clock) in MHz; every timing in ns becomes
        ``ceil(t / tCK)`` cycles.
    cas_latency : int
        2 or 3; at most the part's speed at that latency (``timings.tck_min``).
    timings : SDRAMTimings
        The part's rules (:data:`~.timing.ULX3S_TIMINGS`).
    geometry : SDRAMGeometry
        Banks, rows, columns (:data:`~.timing.ULX3S_GEOMETRY`).
    fifo_depth : int
        Words of the read FIFO. The controller reads at one word per cycle while the master
        takes them if ``fifo_depth`` covers the round trip (READ to FIFO to credit back:
        ``read_latency + 3`` cycles).
    extra_read_latency : int
        Registers the board top puts between the DQ pins and ``dq_i`` (0 in the simulations).

    Members
    -------
    bus : In(ExtBusSignature())
        The memory side of the external-memory bus.
    sdram : Out(SDRAMPinsSignature(geometry))
        The SDRAM's pins (every output leaves a register).
    init_done : Out(1)
        The initialisation sequence is complete.
    counters : Out(counters_layout(COUNTER_NAMES))
        Wrap-around 32-bit counts (:class:`~spiketrack.hw.counters.CounterBank`, lag
        :data:`~spiketrack.hw.counters.COUNTER_LAG`).

    Attributes
    ----------
    cyc : CycleTimings
        The timing set in cycles.
    refresh_period : int
        Cycles from a refresh to the request of the next one.
    refresh_latency_max : int
        The most cycles from a refresh request to its AUTO REFRESH.
    """

    def __init__(self, clock_mhz, cas_latency: int = 2, timings: SDRAMTimings = ULX3S_TIMINGS,
                 geometry: SDRAMGeometry = ULX3S_GEOMETRY, fifo_depth: int = 16, extra_read_latency: int = 0):
        self._MustUse__silence = True          # until built: a refused one is no unused elaboratable
        if tck_ns(clock_mhz) < timings.tck_min(cas_latency):
            raise ValueError(f"{clock_mhz} MHz is faster than the part at CAS latency {cas_latency} "
                             f"(tCK {float(timings.tck_min(cas_latency))} ns or more)")
        if geometry.bank_bits + geometry.row_bits + geometry.col_bits > EXT_ADDR_BITS:
            raise ValueError(f"{geometry} has more words than the bus's {EXT_ADDR_BITS}-bit address reaches")
        if fifo_depth < 2:
            raise ValueError(f"fifo_depth {fifo_depth} below 2")
        self.clock_mhz, self.cas_latency, self.timings, self.geometry = clock_mhz, cas_latency, timings, geometry
        self.fifo_depth, self.extra_read_latency = fifo_depth, extra_read_latency
        c = self.cyc = CycleTimings.of(timings, clock_mhz, cas_latency)
        # a request at cycle d is served by d + latency: PRECHARGE ALL waits for tRAS / tWR of the
        # last ACTIVE / WRITE (issued at d - 1 at the latest), then tRP; or, all banks closed,
        # the ACTIVE-class counter's longest load
        self.refresh_latency_max = max(max(c.ras, c.wr) - 1 + c.rp, c.rc, c.rfc, c.mrd)
        self.refresh_period = c.refi - self.refresh_latency_max
        if self.refresh_period < 1:
            raise ValueError(f"t_refi {timings.t_refi} ns leaves no refresh period at {clock_mhz} MHz")
        self._MustUse__silence = False
        super().__init__({
            "bus": In(ExtBusSignature()),
            "sdram": Out(SDRAMPinsSignature(geometry)),
            "init_done": Out(1),
            "counters": Out(counters_layout(COUNTER_NAMES)),
        })

    def elaborate(self, platform):
        m = Module()
        c, g, bus, pins = self.cyc, self.geometry, self.bus, self.sdram
        nbanks = 1 << g.bank_bits
        a10 = 1 << 10

        # ------------------------------------------------------------ the command of this cycle
        cmd = Signal(3, init=CMD["NOP"])
        cmd_ba = Signal(g.bank_bits)
        cmd_a = Signal(g.addr_pins)
        m.d.sync += [pins.ras_n.eq(cmd[2]), pins.cas_n.eq(cmd[1]), pins.we_n.eq(cmd[0]),
                     pins.ba.eq(cmd_ba), pins.a.eq(cmd_a), pins.cke.eq(1)]
        m.d.comb += pins.dqm.eq(0)

        def issue(name, ba=0, a=0):
            m.d.comb += [cmd.eq(CMD[name]), cmd_ba.eq(ba), cmd_a.eq(a)]

        # ------------------------------------------------------------ timing counters
        def timer(name, longest):
            t = Signal(range(max(longest, 1) + 1), name=f"t_{name}")
            floor = Signal.like(t, name=f"t_{name}_load")
            dec = Mux(t == 0, 0, t - 1)
            m.d.sync += t.eq(Mux(floor > dec, floor, dec))
            return t, floor

        t_act, f_act = timer("act", max(c.rc, c.rrd, c.rp, c.rfc, c.mrd))   # ACTIVE / REFRESH / MODE
        t_rw, f_rw = timer("rw", max(c.rcd, c.mrd))                         # READ / WRITE
        t_pre, f_pre = timer("pre", max(c.ras, c.wr, c.mrd))                # PRECHARGE
        t_wr, f_wr = timer("wr", c.rtw)                                     # WRITE after READ

        def after_act():
            m.d.comb += [f_act.eq(max(c.rc, c.rrd) - 1), f_rw.eq(c.rcd - 1), f_pre.eq(c.ras - 1)]

        def after_pre():
            m.d.comb += f_act.eq(c.rp - 1)

        # ------------------------------------------------------------ refresh request
        ref_cnt = Signal(range(self.refresh_period), init=self.refresh_period - 1)
        ref_due = Signal()
        m.d.comb += ref_due.eq(ref_cnt == 0)
        with m.If(ref_cnt != 0):
            m.d.sync += ref_cnt.eq(ref_cnt - 1)

        def refresh():
            issue("REF")
            m.d.comb += [f_act.eq(c.rfc - 1), counters_inc.refreshes.eq(1)]
            m.d.sync += ref_cnt.eq(self.refresh_period - 1)

        m.submodules.counters = counters = CounterBank(COUNTER_NAMES)
        counters_inc = counters.inc
        m.d.comb += self.counters.eq(counters.counts)

        # ------------------------------------------------------------ the bus command in progress
        cur = Signal(EXT_ADDR_BITS)        # the next word's address
        left = Signal(EXT_COUNT_BITS)      # its words not yet issued
        writing = Signal()
        busy = Signal()
        m.d.comb += [busy.eq(left != 0), bus.cmd.ready.eq(~busy)]
        with m.If(bus.cmd.valid & ~busy):
            m.d.sync += [cur.eq(bus.cmd.payload.addr), left.eq(bus.cmd.payload.count),
                         writing.eq(bus.cmd.payload.write)]
        col = cur[:g.col_bits]
        bank = cur[g.col_bits:g.col_bits + g.bank_bits]
        row = cur[g.col_bits + g.bank_bits:g.col_bits + g.bank_bits + g.row_bits]

        open_valid = Signal(nbanks)
        open_row = Array(Signal(g.row_bits, name=f"open_row{b}") for b in range(nbanks))
        bank_open = open_valid.bit_select(bank, 1)
        row_hit = bank_open & (open_row[bank] == row)

        # ------------------------------------------------------------ read path
        credits = Signal(range(self.fifo_depth + 1), init=self.fifo_depth)
        m.submodules.rfifo = rfifo = fifo.SyncFIFOBuffered(width=EXT_DATA_BITS, depth=self.fifo_depth)
        m.d.comb += [bus.rdata.valid.eq(rfifo.r_rdy), bus.rdata.payload.eq(rfifo.r_data),
                     rfifo.r_en.eq(bus.rdata.ready)]
        issue_read, issue_write = Signal(), Signal()
        taken = bus.rdata.valid & bus.rdata.ready
        m.d.sync += credits.eq(credits - issue_read + taken)
        # a READ decided in cycle n: pins in n + 1, the chip samples at the end of n + 1, drives
        # DQ in cycle n + 1 + CL (+ the board's registers), captured into dq_q at its end
        lat = read_latency(self.cas_latency, self.extra_read_latency)
        pipe = Signal(lat)
        m.d.sync += pipe.eq((pipe << 1) | issue_read)
        dq_q = Signal(EXT_DATA_BITS)
        m.d.sync += dq_q.eq(pins.dq_i)
        m.d.comb += [rfifo.w_en.eq(pipe[lat - 1]), rfifo.w_data.eq(dq_q)]

        # ------------------------------------------------------------ write path
        m.d.sync += [pins.dq_oe.eq(issue_write), pins.dq_o.eq(bus.wdata.payload)]

        with m.If(issue_read | issue_write):
            m.d.sync += [cur.eq(cur + 1), left.eq(left - 1)]

        m.d.comb += [counters_inc.read_words.eq(issue_read), counters_inc.write_words.eq(issue_write)]

        # ------------------------------------------------------------ sequence
        pu_cnt = Signal(range(c.power_up + 1), init=c.power_up)
        init_refs = Signal(range(self.timings.init_refreshes + 1), init=self.timings.init_refreshes)

        with m.FSM(name="state"):
            with m.State("POWERUP"):
                m.d.sync += pins.cs_n.eq(1)     # COMMAND INHIBIT
                with m.If(pu_cnt != 0):
                    m.d.sync += pu_cnt.eq(pu_cnt - 1)
                with m.Else():
                    m.d.sync += pins.cs_n.eq(0)
                    issue("PRE", a=a10)
                    after_pre()
                    m.next = "REFRESH"
            with m.State("REFRESH"):
                with m.If(t_act == 0):
                    refresh()
                    m.d.sync += init_refs.eq(init_refs - 1)
                    with m.If(init_refs == 1):
                        m.next = "MODE"
            with m.State("MODE"):
                with m.If(t_act == 0):
                    issue("MRS", a=mode_register(self.cas_latency))
                    m.d.comb += [f_act.eq(c.mrd - 1), f_rw.eq(c.mrd - 1), f_pre.eq(c.mrd - 1)]
                    m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.init_done.eq(1)
                with m.If(ref_due):
                    with m.If(open_valid != 0):
                        with m.If(t_pre == 0):
                            issue("PRE", a=a10)
                            after_pre()
                            m.d.sync += open_valid.eq(0)
                    with m.Elif(t_act == 0):
                        refresh()
                with m.Elif(busy):
                    with m.If(row_hit):
                        with m.If(writing):
                            with m.If((t_rw == 0) & (t_wr == 0) & bus.wdata.valid):
                                issue("WRITE", ba=bank, a=col)
                                m.d.comb += [issue_write.eq(1), bus.wdata.ready.eq(1), f_pre.eq(c.wr - 1)]
                        with m.Else():
                            with m.If((t_rw == 0) & (credits != 0)):
                                issue("READ", ba=bank, a=col)
                                m.d.comb += [issue_read.eq(1), f_wr.eq(c.rtw - 1)]
                    with m.Elif(bank_open):
                        with m.If(t_pre == 0):
                            issue("PRE", ba=bank)
                            after_pre()
                            m.d.sync += open_valid.bit_select(bank, 1).eq(0)
                    with m.Else():
                        with m.If(t_act == 0):
                            issue("ACT", ba=bank, a=row)
                            after_act()
                            m.d.comb += counters_inc.row_opens.eq(1)
                            m.d.sync += [open_valid.bit_select(bank, 1).eq(1), open_row[bank].eq(row)]
                m.d.comb += counters_inc.stall_cycles.eq(busy & ~issue_read & ~issue_write)
        return m
