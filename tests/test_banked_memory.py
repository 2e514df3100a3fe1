"""hw/banked_memory.BankedMemory against a list of rows: random reads on two ports and random
writes, for memories of one bank, of one OR step and of two OR steps. Every read's data appears
exactly READ_LATENCY cycles after its address and equals the row the block RAM held when the read
reached it (after the address registers); a write lands at the end of the cycle after it is
presented."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spiketrack.hw.banked_memory import (OR_GROUP, READ_LATENCY, READ_REGISTERS, BankedMemory, bank_spans, or_levels,
                                         reach_cycles)


@pytest.mark.parametrize("read_registers", READ_REGISTERS)
@pytest.mark.parametrize("depth,bank_rows,second", [(5, 8, None), (20, 8, None), (70, 8, None), (5, 8, 3), (20, 8, 8),
                                                     (70, 8, 20), (20, 8, 0)])
def test_reads_and_writes_match_a_list(depth, bank_rows, second, read_registers):
    """``second``: the rows port 1 reaches (``second_port_rows``); its reads past their banks (in
    one bank: past them) give 0. ``read_registers``: the registers after the block RAMs, or in
    front of them (the read reaches the block RAM later)."""
    width, cycles = 12, 300
    rng = random.Random(depth)
    init = [rng.randrange(1 << width) for _ in range(depth)]
    dut = BankedMemory(width, depth, addr_bits=8, read_ports=2, init=init, bank_rows=bank_rows,
                       second_port_rows=second, read_registers=read_registers)
    banks = -(-depth // bank_rows)
    limit = [depth, depth if second is None else second]
    levels = [or_levels(max(1, -(-n // bank_rows))) for n in limit]
    assert levels[0] == (0 if banks == 1 else 1 if banks <= OR_GROUP else 2)
    # the cycle a read issued at c reaches the block RAM: after the address registers that the
    # OR steps leave room for, the first address register and the bank's address register (the
    # block RAM, the two bank data registers and the OR steps follow); with the registers in
    # front of the block RAMs, after all READ_LATENCY - 1 of them
    if read_registers == "data":
        reach = [READ_LATENCY - 3 - lv for lv in levels]
    else:
        reach = [READ_LATENCY - 1] * 2
    assert reach == [reach_cycles(-(-n // bank_rows), read_registers) for n in limit]
    rows, snapshots, writes, pending, checked = list(init), {}, [], [], []
    landing, reaching, seen = {}, {}, set()   # cycle -> row written; cycle -> rows read; collision cycles

    async def bench(ctx):
        for cyc in range(cycles):
            w_en, w_addr, w_data = rng.random() < 0.3, rng.randrange(depth), rng.randrange(1 << width)
            # now and then a write that lands in a row as a read reaches it (a collision)
            due = sorted(reaching.get(cyc + 1, ()))
            if due and rng.random() < 0.3:
                w_addr = rng.choice(due)
            ctx.set(dut.w_en, w_en)
            ctx.set(dut.w_addr, w_addr)
            ctx.set(dut.w_data, w_data)
            for i in range(2):
                en, a = rng.random() < 0.6, rng.randrange(depth)
                ctx.set(getattr(dut, f"r{i}_en"), en)
                ctx.set(getattr(dut, f"r{i}_addr"), a)
                # port 1 reaches whole banks (its rows, in a memory of one bank)
                past = a >= (limit[i] if banks == 1 else -(-limit[i] // bank_rows) * bank_rows)
                if en:
                    pending.append((cyc + READ_LATENCY, i, a, cyc, past))
                    if not past:
                        reaching.setdefault(cyc + reach[i], set()).add(a)
            if ctx.get(dut.collision):
                seen.add(cyc)
            for due, i, a, issued, past in [p for p in pending if p[0] == cyc]:
                got = ctx.get(getattr(dut, f"r{i}_data"))
                if not past and landing.get(issued + reach[i]) == a:
                    continue                 # a collision: undefined on the board
                exp = 0 if past else snapshots[issued + reach[i]][a]
                assert got == exp, f"cycle {cyc}: port {i} read row {a}: {got:#x}, expected {exp:#x}"
                checked.append(due)
            snapshots[cyc] = list(rows)      # the rows the block RAMs hold during this cycle
            if w_en:
                writes.append((cyc + 1, w_addr, w_data))
                landing[cyc + 1] = w_addr
            for wc, wa, wd in [w for w in writes if w[0] == cyc]:
                rows[wa] = wd                # written at the end of this cycle
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(checked) > cycles // 2
    collided = {c for c, a in landing.items() if a in reaching.get(c, ()) and c < cycles}
    assert collided, "the random reads and writes never collided: the collision check went untested"
    assert seen == collided, f"collision high in {sorted(seen - collided)}, missed in {sorted(collided - seen)}"
    # only the banks port 1 reaches hold its read port (a second copy of their block RAM)
    assert [len(b.read_ports) for b in dut.banks] == [2 if k * bank_rows < limit[1] else 1 for k in range(banks)]


def test_an_unknown_read_register_place_is_refused():
    from spiketrack.hw.accel.top import Accelerator

    with pytest.raises(ValueError, match="read_registers must be one of"):
        BankedMemory(8, 16, read_registers="bram")
    with pytest.raises(ValueError, match=r"read_registers must be one of \('data', 'address'\), got 'fast'"):
        Accelerator(read_registers="fast")


def test_too_many_banks_is_refused():
    with pytest.raises(ValueError, match="banks"):
        BankedMemory(8, 8 * OR_GROUP ** 2 + 1, addr_bits=12, bank_rows=8)


@pytest.mark.parametrize("depth,bank_rows", [(1152, 1024), (56, 1024), (300, 64)])
def test_bank_spans_name_the_arrays_that_hold_the_rows(depth, bank_rows):
    """`bank_spans` (the backdoor reads' map, sim/cocotb_pump.memory_reader) puts every row in the
    bank submodule and index that BankedMemory stores it at, in address order, and refuses rows
    outside the memory."""
    mem = BankedMemory(8, depth, bank_rows=bank_rows)
    for never_elaborated in (mem, *mem.banks):   # only their names and shapes are read
        never_elaborated._MustUse__silence = True
    R = mem.bank_rows
    names = dict(zip(mem.banks, (f"bank{b}" for b in range(len(mem.banks)))))
    rows = [(name, i) for first, n in [(0, depth), (depth // 3, depth - depth // 3 - 1), (depth - 1, 1)]
            for name, b0, k in bank_spans(depth, first, n, bank_rows) for i in range(b0, b0 + k)]
    want = [(names[mem.banks[r // R]], r % R) for first, n in [(0, depth), (depth // 3, depth - depth // 3 - 1),
                                                               (depth - 1, 1)] for r in range(first, first + n)]
    assert rows == want
    assert len(bank_spans(depth, 0, depth, bank_rows)) == len(mem.banks)
    for first, n in [(-1, 2), (depth - 1, 2), (0, depth + 1)]:
        with pytest.raises(IndexError, match="outside"):
            bank_spans(depth, first, n, bank_rows)


@pytest.mark.parametrize("n,first", [(1, 0), (3, 0), (5, 2), (4, 3)])
def test_loop_counter_flags_its_last_value_as_a_register(n, first):
    """LoopCounter over ``first .. n - 1``, then restarted over ``0 .. n - 1``: in every cycle
    ``last`` equals ``i == n - 1`` (the compare it stands for), through steps and a restart."""
    from amaranth import Module, Signal

    from spiketrack.hw.registers import LoopCounter

    m = Module()
    lp = LoopCounter(4, "i")
    load, restart = Signal(), Signal()
    with m.If(load):
        m.d.sync += [lp.i.eq(first), *lp.bound(n - 1, n == 1, last=first == n - 1)]
    with m.Elif(restart):
        m.d.sync += lp.restart()
    with m.Elif(~lp.last):
        m.d.sync += lp.step()
    seen = []

    async def bench(ctx):
        ctx.set(load, 1)
        await ctx.tick()
        ctx.set(load, 0)
        for cyc in range(2 * n + 4):
            i, last = ctx.get(lp.i), ctx.get(lp.last)
            seen.append(i)
            assert last == (i == n - 1), (cyc, i, last)
            ctx.set(restart, cyc == n)   # restart once, after the first walk has ended
            await ctx.tick()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    walk = list(range(first, n))
    assert seen[:len(walk)] == walk and 0 in seen[n + 1:] and seen[-1] == n - 1


def test_loop_counter_bound_needs_a_flag():
    from spiketrack.hw.registers import LoopCounter

    with pytest.raises(ValueError, match="one, last or both"):
        LoopCounter(4, "i").bound(3)


@pytest.mark.parametrize("depth,bank_rows,second", [(5, 8, None), (5, 8, 3), (20, 8, None), (20, 8, 8)])
def test_address_registers_hold_the_data_until_the_next_read(depth, bank_rows, second):
    """read_registers="address": after a read's data appear they stay on the port, whatever the
    address does while the enable is low, until the next read (the host's row read latches them a
    cycle late: hw/accel/top.py); a read past the rows a port reaches gives 0 and holds it too."""
    width = 12
    init = [(7 * r + 3) % (1 << width) for r in range(depth)]
    dut = BankedMemory(width, depth, addr_bits=8, read_ports=2, init=init, bank_rows=bank_rows,
                       second_port_rows=second, read_registers="address")
    port = 1 if second is not None else 0
    reach = depth if second is None else (second if depth <= bank_rows else -(-second // bank_rows) * bank_rows)
    rng = random.Random(depth)
    seen = []

    async def bench(ctx):
        for row in (1, depth - 1, 2):
            ctx.set(getattr(dut, f"r{port}_en"), 1)
            ctx.set(getattr(dut, f"r{port}_addr"), row)
            await ctx.tick()
            ctx.set(getattr(dut, f"r{port}_en"), 0)
            want = init[row] if row < reach else 0
            for cyc in range(1, READ_LATENCY + 12):
                ctx.set(getattr(dut, f"r{port}_addr"), rng.randrange(depth))   # wanders, never read
                if cyc >= READ_LATENCY:
                    got = ctx.get(getattr(dut, f"r{port}_data"))
                    assert got == want, f"row {row}, cycle {cyc} after the read: {got:#x}, expected {want:#x}"
                    seen.append(got)
                await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 3 * 12 and len(set(seen)) > 1
