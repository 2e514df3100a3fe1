"""The SDRAM chip model's rules, one by one, on scripted command sequences (no controller): each
rule has a legal sequence that passes and a variant, one cycle (or one command) off, that raises
:class:`SDRAMTimingError` naming that rule, its cycle and its command."""

from dataclasses import replace

import pytest

from spiketrack.hw.sdram.controller import CMD
from spiketrack.hw.sdram.model import SDRAMChipModel, SDRAMTimingError
from spiketrack.hw.sdram.timing import ULX3S_TIMINGS, mode_register

MHZ = 100            # tCK 10 ns: tRP/tRCD 21 ns -> 3 cycles, tRAS 44 -> 5, tRC/tRFC 66 -> 7, tRRD 15 -> 2
T = replace(ULX3S_TIMINGS, t_power_up=100, init_refreshes=2)   # power-up: 10 cycles
A10 = 1 << 10


def chip(**kw):
    return SDRAMChipModel(None, MHZ, timings=kw.pop("timings", T), **kw)


class Script:
    """Feeds one command (or NOP) per edge into a model."""

    def __init__(self, model):
        self.m = model

    def cmd(self, name, ba=0, a=0, dq_o=0, dq_oe=0, cke=1, cs_n=0, dqm=0):
        op = CMD[name]
        return self.m.step(cke, cs_n, op >> 2 & 1, op >> 1 & 1, op & 1, ba, a, dq_o, dq_oe, dqm)

    def nop(self, n=1, **kw):
        out = None
        for _ in range(n):
            out = self.cmd("NOP", **kw)
        return out

    def init(self, cl=2):
        """The legal initialisation: edge 10 PRECHARGE ALL, REF at 13 and 20, MRS at 27, NOP at 28."""
        self.nop(9)
        self.cmd("PRE", a=A10)
        self.nop(2)
        for _ in range(2):
            self.cmd("REF")
            self.nop(6)
        self.cmd("MRS", a=mode_register(cl))
        self.nop(1)
        return self


def fails(rule, fn):
    with pytest.raises(SDRAMTimingError) as e:
        fn()
    assert e.value.rule == rule, str(e.value)
    assert f"rule {rule} broken at cycle {e.value.cycle}" in str(e.value)
    return e.value


def legal_or_fails(ok, rule, fn):
    """Run ``fn``: without error when ``ok``, else it must break ``rule`` (:func:`fails`; its error returned)."""
    if ok:
        return fn()
    return fails(rule, fn)


def test_legal_init_read_write_precharge_refresh():
    s = Script(chip()).init()
    s.cmd("ACT", ba=1, a=0x123)
    s.nop(2)
    s.cmd("WRITE", ba=1, a=5, dq_o=0xBEEF, dq_oe=1)
    s.cmd("READ", ba=1, a=5)           # write-to-read: no spacing
    assert s.nop() == 0xBEEF           # CL2: the word is put on dq_i after the edge CL-1 later
    assert s.m.mem[(1, 0x123, 5)] == 0xBEEF
    s.nop(1)
    s.cmd("PRE", ba=1)
    s.nop(2)
    s.cmd("REF")
    assert s.m.counts == {"PREA": 1, "REF": 3, "MRS": 1, "ACT": 1, "WRITE": 1, "READ": 1, "PRE": 1}


def test_power_up_and_init_order():
    s = Script(chip())
    s.nop(8)
    e = fails("power-up", lambda: s.cmd("PRE", a=A10))    # edge 9: 90 ns of the 100
    assert e.cycle == 9 and e.command == "PRECHARGE ALL"
    s = Script(chip())
    s.nop(9)
    e = fails("init", lambda: s.cmd("REF"))
    assert e.cycle == 10 and e.command == "AUTO REFRESH"
    s = Script(chip())
    s.nop(9)
    s.cmd("PRE", a=A10)
    s.nop(2)
    s.cmd("REF")
    s.nop(6)
    fails("init", lambda: s.cmd("MRS", a=mode_register(2)))       # one refresh of two
    s = Script(chip())
    s.nop(9)
    s.cmd("PRE", a=A10)
    s.nop(2)
    fails("init", lambda: s.cmd("ACT"))                           # before LOAD MODE REGISTER


def test_cke_mode_and_cas_latency_speed():
    fails("CKE", lambda: Script(chip()).nop(cke=0))
    s = Script(chip()).init()
    s.nop(1)
    s = Script(chip())
    s.nop(9)
    s.cmd("PRE", a=A10)
    s.nop(2)
    for _ in range(2):
        s.cmd("REF")
        s.nop(6)
    fails("mode", lambda: s.cmd("MRS", a=mode_register(2) | 0b011))   # burst length 8
    # CL2 needs tCK >= 10 ns: at 125 MHz (8 ns) only CL3 is legal
    for cl, rule in ((3, None), (2, "tCK(CL)")):
        m = SDRAMChipModel(None, 125, timings=replace(T, t_power_up=80, t_rfc=50, t_rp=16))
        s = Script(m)
        s.nop(9)
        s.cmd("PRE", a=A10)
        s.nop(2)
        for _ in range(2):
            s.cmd("REF")
            s.nop(6)
        if rule is None:
            s.cmd("MRS", a=mode_register(cl))
        else:
            fails(rule, lambda: s.cmd("MRS", a=mode_register(cl)))


def test_bank_states():
    s = Script(chip()).init()
    fails("bank", lambda: s.cmd("READ", ba=2, a=0))
    s = Script(chip()).init()
    s.cmd("ACT", ba=2, a=7)
    s.nop(6)
    fails("bank", lambda: s.cmd("ACT", ba=2, a=8))
    s = Script(chip()).init()
    s.cmd("ACT", ba=2, a=7)
    s.nop(6)
    fails("bank", lambda: s.cmd("REF"))


@pytest.mark.parametrize("gap,ok", [(3, True), (2, False)])
def test_trcd(gap, ok):
    s = Script(chip()).init()
    s.cmd("ACT", ba=0, a=1)
    s.nop(gap - 1)
    e = legal_or_fails(ok, "tRCD", lambda: s.cmd("READ", ba=0, a=0))
    if not ok:
        assert e.command == "READ bank 0 col 0x0" and "needs 21 ns" in e.detail


@pytest.mark.parametrize("gap,ok", [(5, True), (4, False)])
def test_tras(gap, ok):
    s = Script(chip()).init()
    s.cmd("ACT", ba=3, a=1)
    s.nop(gap - 1)
    legal_or_fails(ok, "tRAS", lambda: s.cmd("PRE", ba=3))


@pytest.mark.parametrize("gap,ok", [(3, True), (2, False)])
def test_trp(gap, ok):
    s = Script(chip()).init()
    s.cmd("ACT", ba=3, a=1)
    s.nop(4)
    s.cmd("PRE", ba=3)                  # 5 cycles after ACT: tRAS met
    s.nop(gap - 1)
    legal_or_fails(ok, "tRP", lambda: s.cmd("ACT", ba=3, a=2))


@pytest.mark.parametrize("gap,ok", [(7, True), (6, False)])
def test_trc(gap, ok):
    # ACT, PRE after tRAS (5), ACT after tRP (3) would be 8: tRC (7) binds only with a longer tRAS
    # cut short... so use tRP 1 ns: ACT at 0, PRE at 5, ACT at gap
    s = Script(chip(timings=replace(T, t_rp=1))).init()
    s.cmd("ACT", ba=1, a=1)
    s.nop(4)
    s.cmd("PRE", ba=1)
    s.nop(gap - 6)
    legal_or_fails(ok, "tRC", lambda: s.cmd("ACT", ba=1, a=2))


@pytest.mark.parametrize("gap,ok", [(2, True), (1, False)])
def test_trrd(gap, ok):
    s = Script(chip()).init()
    s.cmd("ACT", ba=0, a=1)
    s.nop(gap - 1)
    legal_or_fails(ok, "tRRD", lambda: s.cmd("ACT", ba=1, a=1))


@pytest.mark.parametrize("gap,ok", [(2, True), (1, False)])
def test_twr(gap, ok):
    s = Script(chip()).init()
    s.cmd("ACT", ba=0, a=1)
    s.nop(4)
    s.cmd("WRITE", ba=0, a=1, dq_o=1, dq_oe=1)    # 5 cycles after ACT: tRAS met at any PRE after
    s.nop(gap - 1)
    e = legal_or_fails(ok, "tWR", lambda: s.cmd("PRE", ba=0))
    if not ok:
        assert "2 cycles" in e.detail            # 10 ns >= tWR's 15 ns fails first; both named


@pytest.mark.parametrize("gap,ok", [(7, True), (6, False)])
def test_trfc(gap, ok):
    s = Script(chip()).init()
    s.cmd("REF")
    s.nop(gap - 1)
    legal_or_fails(ok, "tRFC", lambda: s.cmd("ACT"))


@pytest.mark.parametrize("gap,ok", [(2, True), (1, False)])
def test_tmrd(gap, ok):
    s = Script(chip())
    s.nop(9)
    s.cmd("PRE", a=A10)
    s.nop(2)
    for _ in range(2):
        s.cmd("REF")
        s.nop(6)
    s.cmd("MRS", a=mode_register(2))
    s.nop(gap - 1)
    legal_or_fails(ok, "tMRD", lambda: s.cmd("ACT"))


def test_trefi_counted_every_cycle():
    s = Script(chip()).init()           # the last REF at edge 20; 7800 ns = 780 cycles
    s.nop(800 - 28)                     # up to edge 800: 780 cycles since, legal
    e = fails("tREFI", lambda: s.nop())
    assert e.cycle == 801 and "781 cycles" in e.detail
    s = Script(chip()).init()
    s.nop(800 - 29)
    s.cmd("REF")                        # edge 800: exactly 780 cycles: legal
    s.nop(700)


def test_tras_max():
    s = Script(chip(timings=replace(T, t_ras_max=2000, t_refi=10_000))).init()
    s.cmd("ACT")                        # edge 29
    s.nop(200)                          # edge 229: 2000 ns open, legal
    e = fails("tRAS max", lambda: s.nop())
    assert e.cycle == 230


def test_dq_contention_write_data_and_unsupported():
    def opened():
        s = Script(chip()).init()
        s.cmd("ACT", ba=0, a=1)
        s.nop(2)
        return s
    # READ at edge n: the chip drives DQ for the edges n + 2 and n + 3 (CL2 and the next)
    for later, ok in ((1, True), (2, False), (3, False), (4, True)):
        s = opened()
        s.cmd("READ")
        s.nop(later - 1)
        legal_or_fails(ok, "DQ contention", lambda: s.cmd("WRITE", dq_oe=1))
    s = opened()
    fails("WRITE data", lambda: s.cmd("WRITE", dq_oe=0))
    s = opened()
    fails("unsupported", lambda: s.cmd("READ", a=A10))
    s = opened()
    fails("unsupported", lambda: s.cmd("BST"))


def test_read_data_timing_and_garbage():
    for cl, extra in ((2, 0), (3, 0), (2, 1)):
        s = Script(chip(extra_read_latency=extra)).init(cl)
        s.cmd("ACT")
        s.nop(2)
        s.cmd("WRITE", a=9, dq_o=0x1234, dq_oe=1)
        out = [s.cmd("READ", a=9)] + [s.nop() for _ in range(4)]
        # the word is set after the edge CL - 1 (+ extra) after the READ's edge
        assert out == [None] * (cl - 1 + extra) + [0x1234] + [None] * (4 - (cl - 1 + extra))
        out = [s.cmd("READ", a=10)] + [s.nop() for _ in range(4)]
        assert 0 in out                    # never written: ``uninit``
