"""Cycle model of :class:`~.controller.SDRAMController` for unstalled traffic.

:func:`controller_cycles` steps the controller's rules in Python, one clock cycle per step, from
reset: the initialisation, the refresh counter, the four timing counters, the open rows, the
read credits. The master offers each command as soon as the previous one is accepted (the first
in the first cycle after the initialisation), always has write data and always takes read data.
The result is exact: ``tests/test_sdram.py`` asserts that the gateware's cycle counts equal it.

The priority of one cycle (as in the gateware's ``RUN`` state): a due refresh (PRECHARGE ALL if a
row is open and tRAS / tWR allow, else AUTO REFRESH when tRP / tRFC / tRC allow); else the
current word (READ / WRITE when its row is open and tRCD, the read credit or the READ-to-WRITE
spacing allow); else PRECHARGE of the word's bank if it holds another row; else ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass

from .controller import SDRAMController, read_latency

__all__ = ["CycleResult", "controller_cycles", "FIFO_LATENCY"]

FIFO_LATENCY = 2
"""Cycles from the read FIFO's write to the word on ``rdata`` (``SyncFIFOBuffered``: one for the
queue, one for its output register)."""


@dataclass
class CycleResult:
    first_run: int        #: the first cycle after the initialisation (the first command's acceptance)
    accepted: list        #: the cycle each command was accepted
    last_transfer: int    #: the cycle of the last word's bus transfer (rdata or wdata)
    refreshes: int        #: AUTO REFRESH commands (the initialisation's included)
    row_opens: int
    stall_cycles: int

    @property
    def cycles(self) -> int:
        """Cycles from the first command's acceptance to the last word's transfer, both counted."""
        return self.last_transfer - self.accepted[0] + 1


def controller_cycles(ctrl: SDRAMController, commands, max_cycles=10_000_000) -> CycleResult:
    """Step ``ctrl``'s rules over ``commands`` (objects with ``addr``, ``count``, ``write``)."""
    c, g = ctrl.cyc, ctrl.geometry
    P = ctrl.refresh_period
    lat = read_latency(ctrl.cas_latency, ctrl.extra_read_latency)
    t_act = t_rw = t_pre = t_wr = 0
    ref_cnt = P - 1
    pu = c.power_up
    init_refs = ctrl.timings.init_refreshes
    state = "POWERUP"
    open_rows = {}
    cur = left = 0
    writing = False
    credits = ctrl.fifo_depth
    returns = {}            # cycle -> credits returned at its end
    accepted = []
    last = 0
    refreshes = opens = stalls = 0
    first_run = None
    ci = 0
    cycle = 0
    while True:
        if cycle > max_cycles:
            raise TimeoutError(f"{max_cycles} cycles")
        f_act = f_rw = f_pre = f_wr = 0
        ref_due = ref_cnt == 0
        next_ref = ref_cnt - 1 if ref_cnt else 0
        issue_word = False
        if state == "POWERUP":
            if pu:
                pu -= 1
            else:
                f_act = c.rp - 1
                state = "REFRESH"
        elif state == "REFRESH":
            if t_act == 0:
                f_act, next_ref = c.rfc - 1, P - 1
                refreshes += 1
                init_refs -= 1
                if init_refs == 0:
                    state = "MODE"
        elif state == "MODE":
            if t_act == 0:
                f_act = f_rw = f_pre = c.mrd - 1
                state = "RUN"
        else:
            if first_run is None:
                first_run = cycle
            busy = left != 0
            bank = (cur >> g.col_bits) & ((1 << g.bank_bits) - 1)
            row = (cur >> (g.col_bits + g.bank_bits)) & ((1 << g.row_bits) - 1)
            if ref_due:
                if open_rows:
                    if t_pre == 0:
                        f_act = c.rp - 1
                        open_rows = {}
                elif t_act == 0:
                    f_act, next_ref = c.rfc - 1, P - 1
                    refreshes += 1
            elif busy:
                if open_rows.get(bank) == row:
                    if writing:
                        if t_rw == 0 and t_wr == 0:
                            f_pre = c.wr - 1
                            issue_word = True
                            last = max(last, cycle)
                    elif t_rw == 0 and credits != 0:
                        f_wr = c.rtw - 1
                        issue_word = True
                        credits -= 1
                        # written to the FIFO in cycle + lat, on rdata FIFO_LATENCY later; the credit
                        # returns in the cycle after the transfer
                        t = cycle + lat + FIFO_LATENCY
                        last = max(last, t)
                        returns[t] = returns.get(t, 0) + 1
                elif bank in open_rows:
                    if t_pre == 0:
                        f_act = c.rp - 1
                        del open_rows[bank]
                else:
                    if t_act == 0:
                        f_act, f_rw, f_pre = max(c.rc, c.rrd) - 1, c.rcd - 1, c.ras - 1
                        open_rows[bank] = row
                        opens += 1
            if busy and not issue_word:
                stalls += 1
            if issue_word:
                cur, left = cur + 1, left - 1
            if not busy:
                if ci < len(commands):
                    cmd = commands[ci]
                    cur, left, writing = cmd.addr, cmd.count, bool(cmd.write)
                    accepted.append(cycle)
                    ci += 1
                elif cycle > last:
                    return CycleResult(first_run, accepted, last, refreshes, opens, stalls)
        credits += returns.pop(cycle, 0)
        t_act = max(t_act - 1 if t_act else 0, f_act)
        t_rw = max(t_rw - 1 if t_rw else 0, f_rw)
        t_pre = max(t_pre - 1 if t_pre else 0, f_pre)
        t_wr = max(t_wr - 1 if t_wr else 0, f_wr)
        ref_cnt = next_ref
        cycle += 1
