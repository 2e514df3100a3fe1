"""Block-RAM memories with registered ports: the accelerator's memories at the core clock.

A memory of the accelerator spans up to 64 banks of block RAM spread over the device. Read
straight from the units, one clock period would hold the address's route to the farthest block
RAM, the block RAM's clock-to-output (5.6 ns on an ECP5 of speed grade 6; Yosys maps the read port
without the block RAM's output register), the depth multiplexer and the route back.
:class:`BankedMemory` cuts a read into register-to-register steps that each hold one route and at
most one small gate:

1. the read address and enable are registered (these registers drive only step 2);
2. the bank-local address is registered once for all banks, and each bank has its own enable
   register (per-bank address registers made the whole accelerator unroutable at 100 MHz:
   docs/boards.md, builds u100h-u100j);
3. the block RAM reads (a synchronous read port);
4. each bank's read data is registered with no logic between the block RAM and the register, and
   a flag whether the bank was read; this register's only load is step 5, so the placer can put it
   next to its block RAM;
5. the bank's data and flag are registered again (the route from the block RAM's row of the device
   towards its group);
6. the banks' data, each masked by its flag, are ORed in groups of :data:`OR_GROUP` banks into a
   register per group;
7. the groups are ORed into the output register.

A memory of at most :data:`OR_GROUP` banks has one OR step, a memory of one bank none (its step-5
register is cleared when the bank was not read, as the OR steps' masks would): their
address is registered once more per missing step (before step 1) instead, which keeps the latency.

These are ``read_registers="data"``, the default: the ECP5 builds' 100 MHz core clock needs them.
A slow device runs ``read_registers="address"`` instead (the iCEBreaker's 24 MHz,
``bitstreams/accel_build.REDUCED``): the same :data:`READ_LATENCY` spent on the read address and
enable alone (``READ_LATENCY - 1`` registers in front of the block RAMs), the block RAMs' read
data straight to the port through a bank multiplexer whose select is the bank index registered
beside the block RAMs' read. A port then holds ``(READ_LATENCY - 1)·(addr_bits + 1)`` flip-flops
in place of two or three data registers of the row's width per bank: on the iCEBreaker's
memories 470 flip-flops fewer at P = 8 (docs/boards.md). A read then reaches its block RAM
``READ_LATENCY - 1`` cycles after its address rather than ``READ_LATENCY - 3`` to
``READ_LATENCY - 5`` (:func:`reach_cycles`): it returns what the default form returns wherever no
write lands in the row in between (on the iCEBreaker the memory builder reads only the spike-level
memory and writes only the template memory, and the host's commands are refused while a program
runs), and the collision check follows the read to its block RAM. A port's data then hold until
its next read, whatever its address does meanwhile (the accelerator's host row read relies on it:
``hw/accel/top.py``).

Read data therefore appears :data:`READ_LATENCY` cycles after the address (a plain synchronous
read port: 1). Writes are registered once (address, data and one enable per bank), so a write
lands one cycle after it is presented; the address and data registers load in every cycle (the
write enable drives only the per-bank enable registers, not the clock enables of a row's worth of
registers), and they are kept apart in synthesis (:func:`copies`' tag), so two memories written
from the same source keep registers of their own (synthesis would merge equal ones into one
register driving every memory's block RAMs across the device). A bank holds :data:`BANK_ROWS` rows (one ECP5 block RAM
deep at 18 bits); bank selection is a compare of the address's high bits (no divider).

A read that reaches a bank's block RAM in the cycle a write to the same row lands there (a
*collision*) returns an undefined value on the board: the banks carry Yosys's ``no_rw_check``
attribute, so synthesis maps them without the bypass that would emulate the old-data read of a
non-transparent port (``memory_libmap``'s read-first emulation: a register of write data per bank
and a multiplexer between the block RAM and its data register, on the critical path of the
shipped ULX3S build, docs/boards.md). Simulation returns the old row. The accelerator never reads a
row in the cycle it is written; :attr:`BankedMemory.collision` marks every cycle that does, and
the simulations of the accelerator refuse a run in which it rose (``Accelerator.collided``).

The data of a cycle whose read enable was low is not held: the units use read data only in the
cycles their enables announced (``hw/conv_engine.py``, ``hw/vector_unit.py``,
``hw/memory_builder.py``), and they delay their read tags by ``READ_LATENCY - 1``
(:func:`delay`).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spiketrack.hw.registers import COPY_TAG, copies, delay, load_groups, or_all

__all__ = ["BankedMemory", "bank_name", "bank_rows_of", "bank_spans", "READ_LATENCY", "READ_REGISTERS", "BANK_ROWS", "OR_GROUP",
           "check_read_registers", "or_levels", "reach_cycles"]

READ_LATENCY = 7   #: cycles from a read address to its data (address, bank address, block RAM, bank, bank again, group, output)
#: rows per bank (a power of two). 2,048: an ECP5 block RAM's 2048×9 shape holds a bank of the
#: accelerator's 24-, 80-, 96- and 128-bit rows with the fewest blocks (3, 9, 11, 15 per bank; at
#: 1,024 rows 2, 5, 6, 8: 213 blocks for the shipped default against 193, bitstreams/accel_build.estimate)
BANK_ROWS = 2048
OR_GROUP = 8       #: banks ORed into one group register (two OR steps reach 64 banks: 16 address bits)
MAX_OR_LEVELS = READ_LATENCY - 5
#: Where a read port's :data:`READ_LATENCY` registers are: after the block RAM (``"data"``, the
#: default) or in front of it (``"address"``, fewer flip-flops for a slow clock; module docstring)
READ_REGISTERS = ("data", "address")


def check_read_registers(value: str) -> str:
    """``value`` if it is one of :data:`READ_REGISTERS`; a ValueError naming them otherwise."""
    if value not in READ_REGISTERS:
        raise ValueError(f"read_registers must be one of {READ_REGISTERS}, got {value!r}")
    return value


def or_levels(banks: int) -> int:
    """OR steps after the banks' data registers for ``banks`` banks (0, 1 or 2)."""
    levels, n = 0, banks
    while n > 1:
        n, levels = -(-n // OR_GROUP), levels + 1
    return levels


def reach_cycles(reach_banks: int, read_registers: str = "data") -> int:
    """Cycles from a read's address to the cycle it reaches its block RAM (the cycle the row is
    read, and the one a write landing in that row collides with), for a port that reaches
    ``reach_banks`` banks."""
    check_read_registers(read_registers)
    return READ_LATENCY - 1 if read_registers == "address" else READ_LATENCY - 3 - or_levels(max(1, reach_banks))


def bank_rows_of(depth: int, bank_rows: int = BANK_ROWS) -> int:
    """Rows per bank of a memory of ``depth`` rows (``bank_rows``, or less for a small memory)."""
    return min(bank_rows, 1 << max(0, (depth - 1).bit_length()))


def bank_name(b: int) -> str:
    """The name of bank ``b``'s submodule in :class:`BankedMemory` (its block-RAM array in the Verilog)."""
    return f"bank{b}"


def bank_spans(depth: int, first: int, n: int, bank_rows: int = BANK_ROWS) -> list[tuple[str, int, int]]:
    """Where rows ``first .. first + n - 1`` of a memory of ``depth`` rows are stored: a list of
    (bank submodule name, first index in that bank, rows) in address order. The names are those
    of :class:`BankedMemory`'s submodules (the block-RAM arrays in its Verilog)."""
    if n < 0 or first < 0 or first + n > depth:
        raise IndexError(f"rows {first}..{first + n - 1} outside 0..{depth - 1}")
    R = bank_rows_of(depth, bank_rows)
    out = []
    while n:
        b, i = divmod(first, R)
        k = min(n, R - i)
        out.append((bank_name(b), i, k))
        first, n = first + k, n - k
    return out


class BankedMemory(wiring.Component):
    """A memory of ``depth`` rows of ``width`` bits in banks of :data:`BANK_ROWS` rows, with
    ``read_ports`` registered read ports of latency :data:`READ_LATENCY` and one registered
    write port.

    Parameters
    ----------
    width, depth : int
        Row width in bits and number of rows.
    addr_bits : int
        Width of the port addresses. Rows past ``depth`` are not stored: a write there in a bank
        past the last is dropped.
    read_ports : int
        Number of read ports.
    second_port_rows : int, optional
        Rows ``0 .. second_port_rows - 1`` are all that read ports 1 and up reach (default: every
        row; 0: those ports read nothing). Only the banks holding them get those ports, so only
        they are stored twice (a block RAM has one read port beside its write port). A read past
        the banks they reach returns 0; so does a read past the rows in a memory of one bank
        (what the simulations build: a misplaced operand shows).
    init : list of int, optional
        Initial rows (the rest start at 0); kept through a reset.
    bank_rows : int
        Rows per bank, a power of two.
    read_registers : {"data", "address"}
        Where a read port's registers are: after the block RAMs (the default, for a fast clock) or
        in front of them (fewer flip-flops; module docstring).

    Members
    -------
    r{i}_addr : In(addr_bits); r{i}_en : In(1); r{i}_data : Out(width)
        Read port ``i``: the row at ``addr`` appears on ``data`` :data:`READ_LATENCY` cycles after
        a cycle with ``en`` high.
    w_addr : In(addr_bits); w_data : In(width); w_en : In(1)
        The write port (the row is written one cycle later).

    Attributes
    ----------
    collision : Signal
        High in a cycle in which a read reaches a bank's block RAM while a write lands in the same
        row: that read's data are undefined on the board (simulation gives the old row).
    wrote, wrote_addr : Signal
        A write lands in this cycle, and its address.
    """

    def __init__(self, width: int, depth: int, addr_bits: int = 16, read_ports: int = 1, init=(),
                 bank_rows: int = BANK_ROWS, second_port_rows: int | None = None, read_registers: str = "data"):
        try:
            self.read_registers = check_read_registers(read_registers)
        except ValueError:
            self._MustUse__silence = True   # refused: never elaborated
            raise
        if bank_rows < 1 or bank_rows & (bank_rows - 1):
            raise ValueError(f"bank_rows must be a power of two, got {bank_rows}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if second_port_rows is not None and not 0 <= second_port_rows <= depth:
            raise ValueError(f"second_port_rows {second_port_rows} outside 0..{depth}")
        self.width, self.depth, self.addr_bits, self.read_ports = width, depth, addr_bits, read_ports
        self.second_port_rows = depth if second_port_rows is None else second_port_rows
        init = [int(r) for r in init]
        if len(init) > depth:
            raise ValueError(f"{len(init)} initial rows for a memory of depth {depth}")
        self.bank_rows = bank_rows_of(depth, bank_rows)
        R = self.bank_rows
        if or_levels(-(-depth // R)) > MAX_OR_LEVELS:
            self._MustUse__silence = True
            raise ValueError(f"depth {depth} needs {-(-depth // R)} banks of {R} rows: more than the "
                             f"{OR_GROUP ** MAX_OR_LEVELS} that {MAX_OR_LEVELS} OR steps reach")
        # no_rw_check: a read colliding with a write to its row is undefined (module docstring)
        self.banks = [Memory(shape=width, depth=min(R, depth - b * R), init=init[b * R:(b + 1) * R],
                             attrs={"no_rw_check": 1})
                      for b in range((depth + R - 1) // R)]
        sig = {}
        for i in range(read_ports):
            sig.update({f"r{i}_addr": In(addr_bits), f"r{i}_en": In(1), f"r{i}_data": Out(width)})
        sig.update({"w_addr": In(addr_bits), "w_data": In(width), "w_en": In(1)})
        super().__init__(sig)
        # the write reaching the banks this cycle (registered), for observers such as the proofs
        self.wrote = Signal(name="wrote")
        self.wrote_addr = Signal(addr_bits, name="wrote_addr")
        # a read port's enabled read of a bank's row in the cycle a write lands in that row (the
        # read's data are undefined on the board); no load in a board build, so synthesis drops it
        self.collision = Signal(name="collision")

    def row(self, i: int):
        """The simulator signal of row ``i`` (a backdoor for preloading and reading back)."""
        if not 0 <= i < self.depth:
            raise IndexError(f"row {i} outside 0..{self.depth - 1}")
        return self.banks[i // self.bank_rows].data[i % self.bank_rows]

    def _bank_of(self, addr):
        """(bank index bits, bank-local address bits) of ``addr``."""
        sh = (self.bank_rows - 1).bit_length()
        return addr[sh:], addr[:sh]

    def elaborate(self, platform):
        m = Module()
        nb = len(self.banks)
        for b, mem in enumerate(self.banks):
            m.submodules[bank_name(b)] = mem

        # ---------------------------------------------------------------- write port (registered)
        # loaded every cycle (no clock enable: the write enable reaches only the per-bank enable
        # registers); named with COPY_TAG, so that synthesis keeps each memory's registers apart
        # from another memory's written from the same source (bitstreams.synth.KEEP_COPIES)
        # The bank-local write address is a register per bank: each drives the address pins of its
        # own bank's block RAMs only (one register for all banks of lv spanned the device: 15.0 ns
        # of routing on ULX3S, build r4s1). ``wa`` (the whole address) feeds the observers only.
        wa = Signal(self.addr_bits, name=f"wa{COPY_TAG}", reset_less=True)
        wd = Signal(self.width, name=f"wd{COPY_TAG}", reset_less=True)
        m.d.sync += [wa.eq(self.w_addr), wd.eq(self.w_data)]
        w_hi, w_lo = self._bank_of(self.w_addr)
        wa_b = copies(m, w_lo, len(self.banks), "wa_b", reset_less=True)
        we = []
        for b, mem in enumerate(self.banks):
            e = Signal(name=f"we{b}")
            m.d.sync += e.eq(self.w_en & (w_hi == b))
            wp = mem.write_port()
            m.d.comb += [wp.addr.eq(wa_b[b]), wp.data.eq(wd), wp.en.eq(e)]
            we.append(e)
        m.d.comb += [self.wrote.eq(sum(e.as_unsigned() for e in we) != 0), self.wrote_addr.eq(wa)]

        # ---------------------------------------------------------------- read ports (READ_LATENCY)
        hits = []
        for i in range(self.read_ports):
            addr, en, data = (getattr(self, f"r{i}_{n}") for n in ("addr", "en", "data"))
            # port 0 reaches every bank, the others the banks of the first second_port_rows rows
            reach = self.depth if i == 0 else self.second_port_rows
            banks = self.banks[:-(-reach // self.bank_rows)]
            if not banks:   # a port that reaches no row: its data are 0
                m.d.comb += data.eq(0)
                continue
            if self.read_registers == "address":
                hits += self._address_registered_port(m, i, banks, reach, we, wa_b)
                continue
            levels = or_levels(len(banks))
            # steps the OR tree does not need: the address and enable registered again up front
            a0 = delay(m, addr, MAX_OR_LEVELS - levels, f"r{i}_ap")
            e0 = delay(m, en, MAX_OR_LEVELS - levels, f"r{i}_ep")
            a1, e1 = Signal(self.addr_bits, name=f"r{i}_a1", reset_less=True), Signal(name=f"r{i}_e1")
            m.d.sync += [a1.eq(a0), e1.eq(e0)]
            hi, lo = self._bank_of(a1)
            ab = Signal(len(lo), name=f"r{i}_a_b", reset_less=True)   # one bank address for all banks
            m.d.sync += ab.eq(lo)
            # a read past the banks reached returns 0; in one bank, past the rows reached (a compare,
            # registered beside a1, that a memory of several banks does without: its bank decode
            # stands for it)
            in_reach = 1
            if nb == 1 and reach < self.depth:
                in_reach = Signal(name=f"r{i}_in_reach")
                m.d.sync += in_reach.eq(a0 < reach)
            outs = []
            for b, mem in enumerate(banks):
                rp = mem.read_port()
                eb = Signal(name=f"r{i}_e_b{b}")
                m.d.sync += eb.eq(e1 & (hi == b) & in_reach if nb > 1 else e1 & in_reach)
                m.d.comb += [rp.addr.eq(ab), rp.en.eq(eb)]
                hits.append(eb & we[b] & (ab == wa_b[b]))
                read = Signal(name=f"r{i}_rd_b{b}")   # the block RAM's data this cycle is this bank's read
                m.d.sync += read.eq(eb)
                # the block RAM's output goes straight into q (no gate after its 5.8 ns clock-to-
                # output), q into q2; the first OR step masks the banks that were not read
                q = Signal(self.width, name=f"r{i}_q{b}", reset_less=True)
                q2 = Signal(self.width, name=f"r{i}_q2_{b}", reset_less=True)
                m.d.sync += q.eq(rp.data)
                if levels:
                    q_rd, q_rd2 = Signal(name=f"r{i}_q_rd{b}"), Signal(name=f"r{i}_q2_rd{b}")
                    m.d.sync += [q_rd.eq(read), q2.eq(q), q_rd2.eq(q_rd)]
                    outs.append(Mux(q_rd2, q2, 0))
                else:
                    # q2 is the output register, cleared when the bank was not read: the clear
                    # comes from one flag register per LOAD_GROUP bits (each the synchronous reset
                    # of its group), not from one register fanned out to the whole row
                    groups = load_groups(self.width)
                    for r, (lo, hi_) in zip(copies(m, read, len(groups), f"r{i}_q_rd{b}_"), groups):
                        m.d.sync += q2[lo:hi_].eq(Mux(r, q[lo:hi_], 0))
                    outs.append(q2)
            for lvl in range(levels):   # OR steps: groups of OR_GROUP registers into one register
                nxt = []
                for g in range(0, len(outs), OR_GROUP):
                    o = Signal(self.width, name=f"r{i}_or{lvl}_{g // OR_GROUP}", reset_less=True)
                    m.d.sync += o.eq(or_all(outs[g:g + OR_GROUP]))
                    nxt.append(o)
                outs = nxt
            m.d.comb += data.eq(outs[0])
        m.d.comb += self.collision.eq(or_all(hits) if hits else 0)
        return m

    def _address_registered_port(self, m, i, banks, reach, we, wa_b) -> list:
        """Read port ``i`` with ``read_registers="address"``: ``READ_LATENCY - 1`` address and enable
        registers, the block RAMs of ``banks``, their data through a multiplexer on the bank index
        registered beside the read (0 for a read past the banks reached; in one bank, past the
        rows reached). The block RAMs hold their data and the select loads only with a read, so
        the port's data hold until its next read. Returns the port's collision terms."""
        addr, en, data = (getattr(self, f"r{i}_{n}") for n in ("addr", "en", "data"))
        a = delay(m, addr, READ_LATENCY - 1, f"r{i}_ap")
        e = delay(m, en, READ_LATENCY - 1, f"r{i}_ep")
        hi, lo = self._bank_of(a)
        one_bank = len(self.banks) == 1
        # in one bank, a read past the rows reached reads nothing and gives 0
        within = (a < reach) if one_bank and reach < self.depth else 1
        hits, rdata = [], []
        for b, mem in enumerate(banks):
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(lo), rp.en.eq(e & within if one_bank else e & (hi == b))]
            hits.append(rp.en & we[b] & (lo == wa_b[b]))
            rdata.append(rp.data)
        if one_bank:
            if reach < self.depth:
                ok = Signal(name=f"r{i}_in_reach")
                with m.If(e):
                    m.d.sync += ok.eq(within)
                m.d.comb += data.eq(Mux(ok, rdata[0], 0))
            else:
                m.d.comb += data.eq(rdata[0])
        else:
            sel = Signal.like(hi, name=f"r{i}_sel")
            with m.If(e):
                m.d.sync += sel.eq(hi)
            with m.Switch(sel):
                for b, d in enumerate(rdata):
                    with m.Case(b):
                        m.d.comb += data.eq(d)
                with m.Default():
                    m.d.comb += data.eq(0)
        return hits
