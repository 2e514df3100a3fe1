"""A behavioural SDR SDRAM chip for ``amaranth.sim`` that checks the timing rules.

:class:`SDRAMChipModel` is a simulator process (``sim.add_process(model.process)``) on the pins
of an :class:`~.controller.SDRAMPinsSignature` interface. At every rising edge of ``sync`` it
samples the pins (the values of the cycle that ends at that edge, as the chip's input registers
would), decodes the command and checks it against the part's rules in nanoseconds
(:class:`~.timing.SDRAMTimings`: the time between two commands is edges times ``tCK``, the
controller's cycle constants are not used). Data are kept in a dict; a READ's word is put on
``dq_i`` for the cycle that ends ``CL`` edges after the READ's edge.

The chip's clock is the controller's clock with no skew, and the pins have no delay: the board's
clock phase, pad delays and I/O registers are not modelled (``extra_read_latency`` delays the
returned word by whole cycles, as input registers on the board top would).

A broken rule raises :class:`SDRAMTimingError` naming the rule, the edge (cycle) and the
command. The rules (``SDRAMTimingError.rule``):

``power-up``      a command other than NOP / INHIBIT before ``t_power_up``
``init``          the initialisation order (PRECHARGE ALL, ``init_refreshes`` AUTO REFRESH,
                  LOAD MODE REGISTER) not kept, or ACTIVE / READ / WRITE before it ends
``CKE``           CKE low (power-down and self refresh are not modelled)
``mode``          a mode register value the model does not implement (burst length 1 only)
``tCK(CL)``       the clock faster than the part at the programmed CAS latency
``bank``          READ / WRITE to a bank with no open row, ACTIVE to an open bank, AUTO REFRESH
                  or LOAD MODE REGISTER with a bank open
``tRCD`` ``tRP`` ``tRC`` ``tRRD`` ``tRAS`` ``tRAS max`` ``tWR`` ``tRFC`` ``tMRD``
                  the datasheet rules (:class:`~.timing.SDRAMTimings`)
``tREFI``         more than ``t_refi`` since the previous AUTO REFRESH (checked every cycle
                  once the first refresh of the initialisation is issued)
``DQ contention`` the controller drives DQ while the chip drives it: in the cycle of a read word
                  and the next (the chip lets DQ go ``tHZ`` after the edge that ends its word)
``WRITE data``    a WRITE while DQ is not driven
``unsupported``   auto precharge, BURST TERMINATE
"""

from __future__ import annotations

from fractions import Fraction

from .controller import CMD
from .timing import ULX3S_GEOMETRY, ULX3S_TIMINGS, SDRAMGeometry, SDRAMTimings, tck_ns

__all__ = ["SDRAMTimingError", "SDRAMChipModel"]

_NAMES = {v: k for k, v in CMD.items()}
GARBAGE = 0xDEAD   #: ``dq_i`` in cycles without a read word


class SDRAMTimingError(AssertionError):
    """A broken SDRAM rule.

    Attributes
    ----------
    rule : str
        The rule (see the module docstring).
    cycle : int
        The edge at which the chip sampled the offending command (edges counted from the first).
    command : str
        The command, e.g. ``"READ bank 1 col 0x1ff"``.
    """

    def __init__(self, rule: str, cycle: int, command: str, detail: str):
        self.rule, self.cycle, self.command, self.detail = rule, cycle, command, detail
        super().__init__(f"SDRAM rule {rule} broken at cycle {cycle} by {command}: {detail}")


class SDRAMChipModel:
    """A behavioural x16 SDR SDRAM with timing checks (see the module docstring).

    Parameters
    ----------
    pins : SDRAMPinsSignature interface
        The controller's ``sdram`` member.
    clock_mhz : float
        The clock of the ``sync`` domain.
    timings : SDRAMTimings
        The rules checked (the part's datasheet values).
    geometry : SDRAMGeometry
    extra_read_latency : int
        Whole cycles added to the read data's way to ``dq_i`` (the board's input registers).
    uninit : int
        The word a never-written location reads.
    init : dict, optional
        Initial contents ``{(bank, row, col): word}``.

    Attributes
    ----------
    mem : dict
        ``{(bank, row, col): word}``.
    counts : dict
        Commands seen, by name (``"ACT"``, ``"READ"``, ...; ``"PREA"`` for PRECHARGE ALL).
    refresh_cycles : list of int
        The edges of every AUTO REFRESH.
    max_refresh_gap : int
        The longest gap between two AUTO REFRESH commands, in cycles (0 before the second).
    cycle : int
        Edges seen.
    """

    def __init__(self, pins, clock_mhz, timings: SDRAMTimings = ULX3S_TIMINGS,
                 geometry: SDRAMGeometry = ULX3S_GEOMETRY, extra_read_latency: int = 0, uninit: int = 0,
                 init=None):
        self.pins, self.timings, self.geometry = pins, timings, geometry
        self.tck = tck_ns(clock_mhz)
        self.extra_read_latency, self.uninit = extra_read_latency, uninit
        self.mem = dict(init or {})
        self.counts = {}
        self.refresh_cycles = []
        self.max_refresh_gap = 0
        self.cycle = 0
        nb = 1 << geometry.bank_bits
        self._row = [None] * nb          # open row per bank
        self._t_act = [None] * nb        # last ACTIVE per bank
        self._t_pre = [None] * nb        # last PRECHARGE per bank
        self._t_wr = [None] * nb         # last WRITE per bank
        self._t_ref = None               # last AUTO REFRESH
        self._t_mrs = None
        self._phase = "power-up"         # power-up, precharge, refresh, ready
        self._init_refs = 0
        self._cl = None
        self._drive = set()              # edges whose sampled dq_oe must be low (chip drives DQ)
        self._out = {}                   # edge -> word to put on dq_i after that edge

    # ------------------------------------------------------------------ helpers
    def _ns(self, since: int) -> Fraction:
        return (self.cycle - since) * self.tck

    def _fail(self, rule, command, detail):
        raise SDRAMTimingError(rule, self.cycle, command, detail)

    def _need(self, rule, command, since, t_ns, what, ck=0):
        """``rule`` holds if ``since`` is None or at least ``t_ns`` ns and ``ck`` cycles ago."""
        if since is None:
            return
        t = Fraction(str(t_ns))
        n = self.cycle - since
        if self._ns(since) < t or n < ck:
            self._fail(rule, command, f"{n} cycles ({float(self._ns(since)):g} ns) after {what}, "
                                      f"needs {float(t):g} ns" + (f" and {ck} cycles" if ck else ""))

    def _check_refresh_interval(self):
        if self._t_ref is not None and self._ns(self._t_ref) > Fraction(str(self.timings.t_refi)):
            self._fail("tREFI", "(no AUTO REFRESH)",
                       f"{self.cycle - self._t_ref} cycles ({float(self._ns(self._t_ref)):g} ns) since the "
                       f"AUTO REFRESH at cycle {self._t_ref}, limit {self.timings.t_refi} ns")

    # ------------------------------------------------------------------ one edge
    def step(self, cke, cs_n, ras_n, cas_n, we_n, ba, a, dq_o, dq_oe, dqm):
        """Apply the pins sampled at one edge; return the word to drive on ``dq_i`` after it
        (or None)."""
        self.cycle += 1
        T = self.timings
        n = self.cycle
        if dq_oe and n in self._drive:
            self._fail("DQ contention", "(DQ driven)", "the controller drives DQ in a cycle the chip drives it")
        self._drive.discard(n)
        if not cke:
            self._fail("CKE", "(CKE low)", "power-down / self refresh are not modelled")
        self._check_refresh_interval()
        for b, r in enumerate(self._row):
            if r is not None and self._ns(self._t_act[b]) > Fraction(str(T.t_ras_max)):
                self._fail("tRAS max", f"(bank {b} open)", f"row {r} open since cycle {self._t_act[b]}")
        word = self._out.pop(n, None)
        op = CMD["NOP"] if cs_n else (ras_n << 2) | (cas_n << 1) | we_n
        if op == CMD["NOP"]:
            return word
        name = _NAMES[op]
        nb = len(self._row)
        bank = ba
        cmd = {"ACT": f"ACTIVE bank {bank} row {a:#x}", "READ": f"READ bank {bank} col {a & 0x3ff:#x}",
               "WRITE": f"WRITE bank {bank} col {a & 0x3ff:#x}", "PRE": "PRECHARGE ALL" if a >> 10 & 1
               else f"PRECHARGE bank {bank}", "REF": "AUTO REFRESH", "MRS": f"LOAD MODE REGISTER {a:#x}",
               "BST": "BURST TERMINATE"}[name]
        key = "PREA" if name == "PRE" and a >> 10 & 1 else name
        self.counts[key] = self.counts.get(key, 0) + 1

        # commands that hold the chip busy
        if self._phase == "power-up" and self._ns(0) < Fraction(str(T.t_power_up)):
            self._fail("power-up", cmd, f"{float(self._ns(0)):g} ns after power-up, needs {T.t_power_up} ns")
        self._need("tRFC", cmd, self._t_ref, T.t_rfc, "AUTO REFRESH")
        self._need("tMRD", cmd, self._t_mrs, T.t_mrd, "LOAD MODE REGISTER", T.t_mrd_ck)
        if name in ("BST",):
            self._fail("unsupported", cmd, "burst terminate is not modelled")
        if self._phase == "power-up":
            if key != "PREA":
                self._fail("init", cmd, "the first command after power-up must be PRECHARGE ALL")
            self._phase = "refresh"
        elif self._phase == "refresh" and name in ("ACT", "READ", "WRITE"):
            self._fail("init", cmd, "before LOAD MODE REGISTER")

        if name == "ACT":
            if self._row[bank] is not None:
                self._fail("bank", cmd, f"bank {bank} has row {self._row[bank]:#x} open")
            self._need("tRP", cmd, self._t_pre[bank], T.t_rp, f"PRECHARGE of bank {bank}")
            self._need("tRC", cmd, self._t_act[bank], T.t_rc, f"ACTIVE of bank {bank}")
            for b in range(nb):
                if b != bank:
                    self._need("tRRD", cmd, self._t_act[b], T.t_rrd, f"ACTIVE of bank {b}")
            row = a & ((1 << self.geometry.row_bits) - 1)
            self._row[bank], self._t_act[bank] = row, n
        elif name in ("READ", "WRITE"):
            if a >> 10 & 1:
                self._fail("unsupported", cmd, "auto precharge is not modelled")
            if self._row[bank] is None:
                self._fail("bank", cmd, f"bank {bank} has no open row")
            self._need("tRCD", cmd, self._t_act[bank], T.t_rcd, f"ACTIVE of bank {bank}")
            loc = (bank, self._row[bank], a & ((1 << self.geometry.col_bits) - 1))
            if name == "WRITE":
                if not dq_oe:
                    self._fail("WRITE data", cmd, "DQ not driven")
                old = self.mem.get(loc, self.uninit)
                keep = (0xFF if dqm & 1 else 0) | (0xFF00 if dqm & 2 else 0)
                self.mem[loc] = (old & keep) | (dq_o & ~keep & 0xFFFF)
                self._t_wr[bank] = n
            else:
                word_out = self.mem.get(loc, self.uninit)
                self._out[n + self._cl - 1 + self.extra_read_latency] = word_out
                self._drive.update((n + self._cl, n + self._cl + 1))
        elif name == "PRE":
            banks = range(nb) if a >> 10 & 1 else [bank]
            for b in banks:
                if self._row[b] is not None:
                    self._need("tRAS", cmd, self._t_act[b], T.t_ras, f"ACTIVE of bank {b}")
                    self._need("tWR", cmd, self._t_wr[b], T.t_wr, f"WRITE to bank {b}", T.t_wr_ck)
                    self._row[b] = None
                self._t_pre[b] = n
        elif name in ("REF", "MRS"):
            for b in range(nb):
                if self._row[b] is not None:
                    self._fail("bank", cmd, f"bank {b} has row {self._row[b]:#x} open")
                self._need("tRP", cmd, self._t_pre[b], T.t_rp, f"PRECHARGE of bank {b}")
                self._need("tRC", cmd, self._t_act[b], T.t_rc, f"ACTIVE of bank {b}")
            if name == "REF":
                if self._t_ref is not None:
                    self.max_refresh_gap = max(self.max_refresh_gap, n - self._t_ref)
                self._t_ref = n
                self.refresh_cycles.append(n)
                if self._phase == "refresh":
                    self._init_refs += 1
            else:
                if self._phase == "refresh" and self._init_refs < T.init_refreshes:
                    self._fail("init", cmd, f"after {self._init_refs} AUTO REFRESH, needs {T.init_refreshes}")
                if a & 0b111 or (a >> 7) & 0b11 or a >> 10 or ba:
                    self._fail("mode", cmd, "only burst length 1, standard operation is modelled")
                cl = (a >> 4) & 0b111
                if cl not in (2, 3):
                    self._fail("mode", cmd, f"CAS latency {cl}")
                if self.tck < T.tck_min(cl):
                    self._fail("tCK(CL)", cmd, f"tCK {float(self.tck):g} ns at CAS latency {cl}, needs "
                                               f"{float(T.tck_min(cl)):g} ns or more")
                self._cl = cl
                self._t_mrs = n
                self._phase = "ready"
        if name in ("ACT", "READ", "WRITE") and self._cl is None:
            self._fail("init", cmd, "no LOAD MODE REGISTER yet")
        return word

    # ------------------------------------------------------------------ the simulator process
    async def process(self, ctx):
        """The simulator process: ``sim.add_process(model.process)``."""
        p = self.pins
        last = None
        async for _clk, _rst, *v in ctx.tick().sample(p.cke, p.cs_n, p.ras_n, p.cas_n, p.we_n, p.ba, p.a,
                                                        p.dq_o, p.dq_oe, p.dqm):
            word = self.step(*v)
            # a cycle with no read word shows GARBAGE, so a capture in the wrong cycle is seen
            out = GARBAGE if word is None else word
            if out != last:
                ctx.set(p.dq_i, out)
                last = out
