"""SDRAMController against the timing-checking chip model (docs/sdram.md).

(a) random traffic with random stalls on every stream: read data equal to a plain memory's, no
    rule broken; (b) refreshes across a long idle time and long stalled transfers; (c) the
    controller built with a wrong parameter breaks the rule the parameter stands for, and the
    model names it; (d) cycle counts equal the cycle model's (:mod:`spiketrack.hw.sdram.cycles`),
    the sequential-read throughput at 62.5 MHz included; (e) the same traffic through
    :class:`~spiketrack.hw.extmem.ExtMemoryModel` reads the same words.

Simulations use :data:`FAST_INIT_TIMINGS` (2 µs power-up) in both the controller and the model;
``test_full_power_up`` runs the datasheet's 200 µs once.
"""

import random
from dataclasses import replace
from fractions import Fraction

import pytest

from spiketrack.hw.extmem import ExtMemoryModel
from spiketrack.hw.sdram import SDRAMChipModel, SDRAMController, SDRAMTimingError
from spiketrack.hw.sdram.bench import FAST_INIT_TIMINGS, BusCommand, random_commands, reference_reads, run_traffic
from spiketrack.hw.sdram.cycles import controller_cycles
from spiketrack.hw.sdram.timing import ULX3S_GEOMETRY, ULX3S_TIMINGS

G = ULX3S_GEOMETRY
ROW_WORDS = 1 << G.col_bits


def build(mhz, cl=2, ctrl_timings=FAST_INIT_TIMINGS, chip_timings=FAST_INIT_TIMINGS, extra=0, chip_extra=None,
          **kw):
    dut = SDRAMController(mhz, cas_latency=cl, timings=ctrl_timings, extra_read_latency=extra, **kw)
    chip = SDRAMChipModel(dut.sdram, mhz, timings=chip_timings,
                          extra_read_latency=extra if chip_extra is None else chip_extra)
    return dut, chip


def traffic(seed, n=40, region=1 << 14):
    """Random commands in the low ``region`` words (8 rows of each bank) plus directed ones:
    count 1 at a row's last column, a run across a row end (into the next bank), one across
    two rows, and the top of the address space."""
    rng = random.Random(seed)
    cmds = random_commands(rng, n, region, 700, long_every=10, long_count=1300)
    top = G.words
    extra = [(ROW_WORDS - 1, 1), (ROW_WORDS - 3, 6), (3 * ROW_WORDS - 5, ROW_WORDS + 10), (top - 7, 7),
             (G.join(1, 5, 0) - 1, 2), (G.join(3, 0, 0) + ROW_WORDS - 1, 2)]   # bank 3 -> bank 0 of row 1
    for addr, count in extra:
        data = [rng.randrange(1 << 16) for _ in range(count)]
        cmds.insert(rng.randrange(len(cmds) + 1), BusCommand(addr, count, True, data))
        cmds.insert(rng.randrange(len(cmds) + 1), BusCommand(addr, count, False))
    cmds.append(BusCommand(ROW_WORDS - 3, 6, False))
    return cmds


def check(r, cmds):
    ref = reference_reads(cmds)
    assert len(r.reads) == len(ref)
    for i, (got, want) in enumerate(zip(r.reads, ref)):
        assert got == want, f"read {i}: first difference at word {next(k for k in range(len(want)) if got[k] != want[k])}"
    nr = sum(c.count for c in cmds if not c.write)
    nw = sum(c.count for c in cmds if c.write)
    assert r.counters["read_words"] == nr == r.chip.counts.get("READ", 0)
    assert r.counters["write_words"] == nw == r.chip.counts.get("WRITE", 0)
    assert r.counters["refreshes"] == r.chip.counts["REF"] == len(r.chip.refresh_cycles)
    assert r.counters["row_opens"] == r.chip.counts["ACT"]


# ----------------------------------------------------------------------------------- (a)
@pytest.mark.parametrize("mhz,cl,extra,seed", [(62.5, 2, 0, 1), (100, 3, 0, 2), (48, 2, 1, 3)])
def test_random_traffic_with_stalls(mhz, cl, extra, seed):
    dut, chip = build(mhz, cl, extra=extra)
    cmds = traffic(seed)
    r = run_traffic(dut, cmds, clock_mhz=mhz, chip=chip, seed=seed, p_cmd=0.3, p_wdata=0.3, p_rdata=0.4)
    check(r, cmds)
    assert r.chip.counts.get("PRE", 0) > 0          # row conflicts happened (PRECHARGE of one bank)
    assert max(c.count for c in cmds) > 2 * ROW_WORDS


# ----------------------------------------------------------------------------------- (b)
def test_refresh_across_idle_and_stalled_transfers():
    mhz = 62.5
    dut, chip = build(mhz)
    refi = dut.cyc.refi                               # 487 cycles in 7800 ns at 62.5 MHz
    rng = random.Random(5)
    data = [rng.randrange(1 << 16) for _ in range(3000)]
    cmds = [BusCommand(100, 3000, True, data), BusCommand(100, 3000, False)]
    # the master takes a read word in one cycle of ten, and offers a write word in one of five
    r = run_traffic(dut, cmds, clock_mhz=mhz, chip=chip, seed=6, p_wdata=0.8, p_rdata=0.9, idle_after=5 * refi)
    check(r, cmds)
    refs = [c for c in chip.refresh_cycles if c > r.start]
    gaps_all = [b - a for a, b in zip(refs, refs[1:])]
    # a refresh is requested refresh_period cycles after the previous one and served within
    # refresh_latency_max (PRECHARGE ALL after tRAS / tWR, then tRP): never later than t_refi
    assert dut.refresh_period <= min(gaps_all)
    assert max(gaps_all) == chip.max_refresh_gap <= dut.refresh_period + dut.refresh_latency_max <= refi
    busy_refs = [c for c in refs if c <= r.last_word]
    idle_refs = [c for c in refs if c > r.last_word]
    assert len(busy_refs) >= (r.last_word - r.start) // refi
    assert len(idle_refs) >= 5
    # idle: nothing open, the request is served when it comes
    gaps = {b - a for a, b in zip(idle_refs, idle_refs[1:])}
    assert gaps == {dut.refresh_period}


def test_full_power_up():
    """The datasheet's 200 µs power-up at 62.5 MHz (12,500 cycles), then a write and a read."""
    dut, chip = build(62.5, ctrl_timings=ULX3S_TIMINGS, chip_timings=ULX3S_TIMINGS)
    cmds = [BusCommand(5, 3, True, [1, 2, 3]), BusCommand(4, 5, False)]
    r = run_traffic(dut, cmds, clock_mhz=62.5, chip=chip)
    assert r.reads == [[0, 1, 2, 3, 0]]
    c = dut.cyc
    # PRECHARGE ALL after 12,500 cycles, the first AUTO REFRESH tRP later, eight tRFC apart, LOAD
    # MODE REGISTER tRFC after the eighth; the first command is accepted in the cycle after
    assert (c.power_up, c.rp, c.rfc) == (12_500, 2, 5)
    assert r.start == c.power_up + c.rp + 8 * c.rfc + 1 == 12_543
    assert chip.counts["PREA"] == 1 and chip.counts["REF"] == 8 and chip.counts["MRS"] == 1


# ----------------------------------------------------------------------------------- (c)
def mutant(mhz, field, value, cmds, cl=2, seed=0, **stalls):
    """Run ``cmds`` twice: with the datasheet timing set (no rule broken, reads correct), then
    with ``field`` of the controller's timing set changed to ``value`` (the model keeps the
    datasheet value). Returns the error the model raises on the second run."""
    dut, chip = build(mhz, cl)
    r = run_traffic(dut, cmds, clock_mhz=mhz, chip=chip, seed=seed, max_cycles=20_000, **stalls)
    assert r.reads == reference_reads(cmds)
    wrong = replace(FAST_INIT_TIMINGS, **{field: value})
    dut, chip = build(mhz, cl, ctrl_timings=wrong)
    with pytest.raises(SDRAMTimingError) as e:
        run_traffic(dut, cmds, clock_mhz=mhz, chip=chip, seed=seed, max_cycles=20_000, **stalls)
    return e.value


def short_commands(seed, n, rows_per_bank=64):
    rng = random.Random(seed)
    return random_commands(rng, n, rows_per_bank * 4 * ROW_WORDS, 3)


@pytest.mark.parametrize("field,value,rule", [
    ("t_rcd", 16, "tRCD"),           # 21 ns -> 2 cycles at 62.5 MHz; 16 ns -> 1
    ("t_rp", 16, "tRP"),
    ("t_rfc", 48, "tRFC"),           # 66 ns -> 5 cycles; 48 ns -> 3
    ("t_refi", 8500, "tREFI"),
    ("t_power_up", 1000, "power-up"),
    ("init_refreshes", 2, "init"),
])
def test_wrong_parameter_breaks_its_rule(field, value, rule):
    e = mutant(62.5, field, value, short_commands(7, 60) + [BusCommand(0, 1500)])
    assert e.rule == rule, str(e)


def test_wrong_write_recovery_and_tras():
    # PRECHARGE right after a WRITE or an ACTIVE happens only when a refresh comes then
    e = mutant(62.5, "t_wr_ck", 1, [BusCommand(0, 4000, True, [7] * 4000)])
    assert e.rule == "tWR" and e.command == "PRECHARGE ALL", str(e)
    e = mutant(100, "t_ras", 10, short_commands(9, 400), p_cmd=0.5, seed=9)
    assert e.rule == "tRAS", str(e)


def test_wrong_cas_latency_speed():
    # a timing set that claims CL2 at 8 ns: the controller accepts 125 MHz at CL2, the chip not
    wrong = replace(FAST_INIT_TIMINGS, tck_min_cl2=8)
    dut = SDRAMController(125, cas_latency=2, timings=wrong)
    chip = SDRAMChipModel(dut.sdram, 125, timings=FAST_INIT_TIMINGS)
    with pytest.raises(SDRAMTimingError) as e:
        run_traffic(dut, [BusCommand(0, 1)], clock_mhz=125, chip=chip)
    assert e.value.rule == "tCK(CL)" and e.value.command.startswith("LOAD MODE REGISTER")
    with pytest.raises(ValueError, match="faster than the part"):
        SDRAMController(125, cas_latency=2)


def test_read_capture_one_cycle_late_reads_wrong_words():
    """The controller's capture one cycle later than the chip's data (a CAS-latency mismatch on
    the read path): no rule of the chip is broken, the data check fails."""
    dut, chip = build(62.5, extra=1, chip_extra=0)
    cmds = [BusCommand(0, 8, True, list(range(1, 9))), BusCommand(0, 8, False), BusCommand(3, 1, False)]
    r = run_traffic(dut, cmds, clock_mhz=62.5, chip=chip)
    assert r.reads[0] == [2, 3, 4, 5, 6, 7, 8, 0xDEAD]
    assert r.reads != reference_reads(cmds)


# ----------------------------------------------------------------------------------- (d)
def test_sequential_read_throughput_62_5_mhz():
    """16 K words read from address 0 with no stall at 62.5 MHz (CL2): the cycle count equals
    the cycle model's, and the model's breakdown: one cycle to accept the command, one per word,
    tRCD (2) per row opened, tRP + tRFC (2 + 5) per refresh (each lands inside a row and
    reopens it), and the read latency (CL + 2 + the FIFO's 2)."""
    mhz, n = 62.5, 16 * 1024
    dut, chip = build(mhz)
    cmds = [BusCommand(0, n, False)]
    r = run_traffic(dut, cmds, clock_mhz=mhz, chip=chip)
    assert r.reads[0] == [0] * n
    model = controller_cycles(dut, cmds)
    assert r.start == model.first_run
    assert r.cycles == model.cycles
    runs_refs = r.counters["refreshes"] - FAST_INIT_TIMINGS.init_refreshes
    rows = n // ROW_WORDS
    c = dut.cyc
    assert r.counters["row_opens"] == rows + runs_refs
    assert r.counters["stall_cycles"] == model.stall_cycles == r.counters["row_opens"] * c.rcd + runs_refs * (c.rp + c.rfc)
    assert r.cycles == 1 + n + r.counters["stall_cycles"] + (2 + 2) + 2
    assert (rows, runs_refs, r.counters["row_opens"], r.counters["stall_cycles"], r.cycles) == (32, 34, 66, 370, 16_761)
    assert Fraction(n, r.cycles) == Fraction(16_384, 16_761)      # 0.97751 words per cycle


def test_cycle_model_equals_gateware_on_random_unstalled_traffic():
    for mhz, cl, seed in ((100, 3, 11), (62.5, 2, 12)):
        dut, chip = build(mhz, cl)
        cmds = traffic(seed, n=25)
        r = run_traffic(dut, cmds, clock_mhz=mhz, chip=chip)
        check(r, cmds)
        model = controller_cycles(dut, cmds)
        assert (r.cycles, r.counters["refreshes"], r.counters["row_opens"], r.counters["stall_cycles"]) == \
            (model.cycles, model.refreshes, model.row_opens, model.stall_cycles)


# ----------------------------------------------------------------------------------- (e)
def same_reads(p_rdata):
    depth = 1 << 15                          # 16 rows of each bank
    cmds = traffic(21, n=40, region=depth)
    cmds = [c for c in cmds if c.addr + c.count <= depth]
    stalls = dict(p_cmd=0.3, p_wdata=0.3, p_rdata=p_rdata)
    dut, chip = build(62.5)
    b = run_traffic(dut, cmds, clock_mhz=62.5, chip=chip, seed=22, **stalls)
    assert b.reads == reference_reads(cmds)
    a = run_traffic(ExtMemoryModel(depth), cmds, clock_mhz=62.5, seed=22, **stalls)
    assert sum(len(x) for x in a.reads) > 5000
    assert a.reads == b.reads


def test_same_reads_as_ext_memory_model():
    same_reads(p_rdata=0.0)


def test_same_reads_as_ext_memory_model_with_rdata_stalls():
    same_reads(p_rdata=0.3)
