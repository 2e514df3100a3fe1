"""The SpikeTrack accelerator: the run-time-configured units, their memories, a program controller
and the host command interface, in one component.

Units: :class:`~spiketrack.hw.conv_engine.ConvEngine` (stem, spiking convs, retrievals),
:class:`~spiketrack.hw.vector_unit.VectorUnit` (NI-LIF, adds, pooling, fusion) and
:class:`~spiketrack.hw.memory_builder.MemoryBuilder` (``M = Kᵀ·V``). They run one descriptor
at a time, in program order: the compiler (``compiler/accel.py``) orders, places and sizes
everything, so the controller only fetches, issues and waits.

Memories (``P`` lanes; block RAM in banks with registered ports,
:class:`~spiketrack.hw.banked_memory.BankedMemory`: read data :data:`READ_LATENCY` cycles after
the address, writes land a cycle after they are presented; contents kept through a reset):

=======  ===========  ==================================================================
``prog`` descriptors  ``unit[1:0] | payload``: one per hardware op
``w``    ``8·P``      weight lines (``engine_cycles.pack_conv``)
``tab``  ``30·P``     per-chunk bias and shift rows
``cst``  ``16·P``     positional tables (the vector unit's ``c``)
``lv``   ``3·P``      spike-level words and the stem's pixel words (3 × uint8)
``st``   ``16·P``     stream words (16-bit values)
``tm``   ``12·P``     template-memory lines ``M`` (rows below the guard: template slots)
=======  ===========  ==================================================================

Ports: ``lv`` and ``st`` have two read ports each (conv ``in`` / ``res``, vector ``a`` / ``b``,
memory build ``k`` / ``v``; the second reaches rows ``0 .. second_port_rows - 1``), every memory one write port (a unit while a program runs, the host
otherwise). Read ports are enabled only when their data is used, and every enabled read and every
write is counted (``protocol.COUNTERS``): the energy figures come from these counters.

Cycle contract (``compiler/accel.py``): a program of ``n`` descriptors takes
``Σ unit_cycles + n · DESC_OVERHEAD + RUN_OVERHEAD`` cycles from the RUN command's acceptance to
``busy`` falling. With external weights, ``FETCH`` descriptors run beside the others (their
controller time is one cycle more than ``DESC_OVERHEAD``; a weight conv descriptor may wait for
its fill, and the run's end for the fetch unit): ``compiler/accel.py: controller_cycles`` is the
exact timeline.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, Value
from amaranth.lib import enum, stream, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.accel.protocol import (COUNTERS, EXT_ROW_BITS, MEM_IDS, STATUS_MAGIC, TIMEOUT, Err, Mem, Op, RunKind,
                                          words_per_row)
from spiketrack.hw.arith import at_least
from spiketrack.hw.banked_memory import BANK_ROWS, READ_LATENCY, BankedMemory, check_read_registers
from spiketrack.hw.registers import COPY_TAG, copies, load_groups, or_all
from spiketrack.hw.conv_engine import BIAS_BITS, SHIFT_BITS, STREAM_BITS, TM_BITS, ConvEngine, desc_layout
from spiketrack.hw.extmem import EXT_ADDR_BITS, EXT_DATA_BITS, MODEL_LATENCY, ExtBusSignature, ExtMemoryModel
from spiketrack.hw.fetch_unit import FetchUnit, fetch_desc_layout
from spiketrack.hw.memory_builder import MemoryBuilder, mb_desc_layout
from spiketrack.hw.vector_unit import VecMode, VectorUnit, vec_desc_layout

__all__ = ["Accelerator", "Unit", "UNITS", "is_built", "mem_widths", "prog_width", "cst_stored_row", "cst_row_value", "DESC_OVERHEAD",
           "RUN_OVERHEAD"]

DESC_OVERHEAD = 2 + READ_LATENCY   #: controller cycles per descriptor beyond the unit's busy cycles (fetch, decode, done)
RUN_OVERHEAD = 1    #: controller cycles per run (start)


class _Port:
    """One port of a :class:`BankedMemory`, by role: ``addr``, ``en``, ``data`` (of a memory the
    configuration leaves out: fresh signals that drive nothing, its data reads 0)."""

    def __init__(self, addr, en, data):
        self.addr, self.en, self.data = addr, en, data


class Unit(enum.Enum, shape=2):
    CONV = 0
    VEC = 1
    MB = 2
    FETCH = 3   #: the fetch unit (external weights: ``Accelerator(ext=...)``)


#: The units an accelerator can have (``Accelerator(units=...)``): conv engine, vector unit, memory builder.
UNITS = ("conv", "vec", "mb")
#: Where an accelerator's external memory is (``Accelerator(ext=...)``): none (no fetch unit), a bus
#: port to the board's SDRAM controller, or a model inside the design (simulation).
EXT_KINDS = (None, "port", "model")
#: The memories each unit reads or writes (besides ``prog``); a memory no present unit uses is not built.
MEM_USERS = {"conv": ("w", "tab", "tm", "lv", "st"), "vec": ("cst", "lv", "st"), "mb": ("lv", "tm")}


def is_built(name: str, units: tuple) -> bool:
    """Whether an accelerator with ``units`` builds memory ``name``: the program memory always,
    the others when a present unit uses them (:data:`MEM_USERS`)."""
    return name == "prog" or any(name in MEM_USERS[u] for u in units)


def prog_width(lanes: int, addr_bits: int = 16, units: tuple = UNITS, ext=None) -> int:
    """Bits of one program word: the unit and the widest descriptor (of the units present, and of
    the fetch unit with an external memory)."""
    sizes = {"conv": desc_layout, "vec": vec_desc_layout, "mb": mb_desc_layout}
    extra = [fetch_desc_layout(addr_bits).size] if ext else []
    return 2 + max([sizes[u](addr_bits).size for u in units] + extra)


def mem_widths(lanes: int, addr_bits: int = 16, units: tuple = UNITS, ext=None) -> dict[str, int]:
    """Row width of each memory, by name (``protocol.MEM_IDS``)."""
    P = lanes
    return {"prog": prog_width(P, addr_bits, units, ext), "w": 8 * P, "tab": (BIAS_BITS + SHIFT_BITS) * P, "cst": STREAM_BITS * P,
            "lv": 3 * P, "st": STREAM_BITS * P, "tm": TM_BITS * P}


def cst_stored_row(row: int, lanes: int, bits: int) -> int:
    """A positional-table row as memory ``cst`` stores it: each lane's 16-bit value cut to its low
    ``bits`` (``Accelerator(cst_bits=...)``; the compiler chooses ``bits`` so that no value
    changes: :func:`cst_row_value` restores it)."""
    mask = (1 << bits) - 1
    return sum(((row >> (STREAM_BITS * i)) & mask) << (bits * i) for i in range(lanes))


def cst_row_value(stored: int, lanes: int, bits: int) -> int:
    """Inverse of :func:`cst_stored_row`: each lane sign-extended back to 16 bits."""
    out = 0
    for i in range(lanes):
        v = (stored >> (bits * i)) & ((1 << bits) - 1)
        v -= (v >> (bits - 1)) << bits
        out |= (v & ((1 << STREAM_BITS) - 1)) << (STREAM_BITS * i)
    return out


class Accelerator(wiring.Component):
    """The accelerator top (see the module docstring).

    Parameters
    ----------
    lanes : int
        ``P`` (at least 8: the stem's pixel word is 24 bits).
    depths : dict of str to int
        Rows of each memory (``prog``, ``w``, ``tab``, ``cst``, ``lv``, ``st``, ``tm``), from the
        compiled program.
    addr_bits : int
        Width of the units' addresses.
    timeout : int
        Cycles without a payload word before a WRITE ends as truncated.
    init : dict of str to list of int, optional
        Initial rows of memories (a board's bitstream can carry the program, weights and tables:
        ``AccelProgram.images``). Rows not given start at 0.
    units : tuple of str
        The units present (a subset of :data:`UNITS`; default all three). A unit left out is not
        built: its outputs are held at 0, so a descriptor for it finishes after the controller's
        ``DESC_OVERHEAD`` cycles and writes nothing (the compiler places no op on it); program
        words are as wide as the widest descriptor of the units present, and a memory no present
        unit uses (:data:`MEM_USERS`) is not built: its depth is 0, so every host access to it is
        refused as out of range. Without the conv engine (no stem) any ``lanes >= 1`` is accepted.
        The iCEBreaker configuration has the memory builder alone.
    counters : tuple of str, optional
        The counters of ``protocol.COUNTERS`` that are built besides ``runs`` and ``descriptors``
        (default: all); the others read 0 (a small device saves their adders).
    ext : None, ``"port"`` or ``"model"``
        The external memory (weights streamed from a board's SDRAM, ``compiler/accel.py``): with
        it, a :class:`~spiketrack.hw.fetch_unit.FetchUnit` runs ``Unit.FETCH`` descriptors, which
        copy external words into the weight memory ``w`` (then a weight cache). ``"port"``: the
        bus is the member ``ext`` (a board's SDRAM controller); ``"model"``: an
        :class:`~spiketrack.hw.extmem.ExtMemoryModel` inside the design holds ``ext_init``
        (simulation: its fixed latency keeps the cycle model exact). None: no fetch unit; a
        ``FETCH`` descriptor then finishes after ``DESC_OVERHEAD`` cycles and moves nothing.
    ext_init : list of int, optional
        The model's 16-bit words (``ext="model"``).
    ext_depth : int, optional
        External words the host may address as memory ``EXT`` (``protocol``; two words a row).
        Default: the model's ``len(ext_init)``, or the bus's whole range with a port.
    cst_bits : int
        Bits per lane that memory ``cst`` stores (2..16, default 16): the host writes and reads
        16-bit lanes (the protocol's row), the memory keeps their low ``cst_bits`` and the vector
        unit and the host read them sign-extended (:func:`cst_stored_row`). The compiler chooses
        the fewest bits that hold every positional-table value (``AccelProgram.cst_bits``).
    second_port_rows : dict, optional
        ``{"lv": rows, "st": rows}``: the rows (from row 0) that the second read port of ``lv`` and
        ``st`` reaches (the memory builder's ``v``, the vector unit's ``b``); only their banks are
        stored twice (:class:`~spiketrack.hw.banked_memory.BankedMemory`). The compiler places the
        operands read there (``AccelProgram.second_port_rows``). Default: every row.
    bank_rows : int
        Rows per block-RAM bank of every memory (:class:`~spiketrack.hw.banked_memory.BankedMemory`;
        default :data:`~spiketrack.hw.banked_memory.BANK_ROWS`, what the boards build). A larger
        power of two gives fewer banks, with the same read latency and the same behaviour at the
        ports (the simulations use one bank per memory: ``sim/accel_cocotb.SIM_BANK_ROWS``).
    read_registers : {"data", "address"}
        Where every memory's read-port registers are (:class:`~spiketrack.hw.banked_memory.BankedMemory`):
        after the block RAMs (default, the ECP5 builds' 100 MHz) or in front of them (fewer
        flip-flops, for the iCEBreaker); with ``"address"`` the host's row read also masks the
        memories' data without a register (the data hold until the port's next read). The read
        latency and the cycle counts are the same.

    Members
    -------
    i_cmd : In(stream.Signature(32))
        Command words (``protocol``).
    o_rsp : Out(stream.Signature(32))
        Response words.
    busy : Out(1)
        A program is running.
    collided : Out(1)
        Since reset, some memory read reached a block RAM in the cycle a write landed in the same
        row (:attr:`~spiketrack.hw.banked_memory.BankedMemory.collision`: undefined data on the
        board). The simulations refuse a run in which it rose; a board build leaves it unconnected,
        so synthesis drops it.
    """

    def __init__(self, lanes: int = 8, depths: dict | None = None, addr_bits: int = 16, timeout: int = TIMEOUT,
                 init: dict | None = None, units: tuple = UNITS,
                 counters: tuple = COUNTERS, ext: str | None = None, ext_init=(), ext_depth: int | None = None,
                 second_port_rows: dict | None = None, cst_bits: int = STREAM_BITS, bank_rows: int = BANK_ROWS,
                 read_registers: str = "data"):
        try:
            self.read_registers = check_read_registers(read_registers)
        except ValueError:
            self._MustUse__silence = True   # refused: never elaborated
            raise
        if not 2 <= cst_bits <= STREAM_BITS:
            raise ValueError(f"cst_bits must be 2..{STREAM_BITS}, got {cst_bits}")
        self.cst_bits = cst_bits
        if ext not in EXT_KINDS:
            raise ValueError(f"ext must be one of {EXT_KINDS}, got {ext!r}")
        self.ext_kind, self.ext_init = ext, list(ext_init)
        if self.ext_init and ext != "model":
            raise ValueError("ext_init needs ext='model' (the external memory's contents live in the model)")
        if ext_depth is None:
            ext_depth = (len(self.ext_init) if ext == "model" else 1 << EXT_ADDR_BITS) if ext else 0
        if ext and not (2 <= ext_depth <= 1 << EXT_ADDR_BITS) or ext_depth < len(self.ext_init):
            raise ValueError(f"ext_depth {ext_depth} outside 2..{1 << EXT_ADDR_BITS} or below the {len(self.ext_init)} "
                             f"initial words")
        self.ext_depth = ext_depth
        self.bank_rows = bank_rows
        self.units = tuple(u for u in UNITS if u in units)
        if not self.units or set(units) - set(UNITS):
            raise ValueError(f"units must be a non-empty subset of {UNITS}, got {tuple(units)}")
        if lanes < (8 if "conv" in self.units else 1):
            raise ValueError(f"the accelerator needs at least 8 lanes (the stem's 24-bit pixel word), got {lanes}")
        self.lanes, self.addr_bits, self.timeout = lanes, addr_bits, timeout
        if ext and "conv" not in self.units:
            raise ValueError("an external memory feeds the conv engine's weights: it needs the conv engine")
        self.widths = mem_widths(lanes, addr_bits, self.units, ext)
        if set(counters) - set(COUNTERS):
            raise ValueError(f"unknown counters {sorted(set(counters) - set(COUNTERS))}; known: {', '.join(COUNTERS)}")
        self.counters = tuple(counters)
        self.depths = {k: 16 for k in self.widths}
        self.depths.update(depths or {})
        for k, v in self.depths.items():
            if not 1 <= v <= 1 << addr_bits:
                raise ValueError(f"memory {k!r}: depth {v} outside 1..{1 << addr_bits}")
        self.built = tuple(k for k in self.widths if is_built(k, self.units))
        self.depths.update({k: 0 for k in self.widths if k not in self.built})
        second_port_rows = dict(second_port_rows or {})
        if set(second_port_rows) - {"lv", "st"}:
            raise ValueError(f"second_port_rows: only lv and st have a second read port, got {sorted(second_port_rows)}")
        self.second_port_rows = {k: second_port_rows.get(k, self.depths[k]) for k in ("lv", "st")}
        for k, v in self.second_port_rows.items():
            if k in self.built and not 0 <= v <= self.depths[k]:
                raise ValueError(f"second_port_rows[{k!r}] = {v} outside 0..{self.depths[k]} (its depth)")
        self.init = {k: [int(r) for r in v] for k, v in (init or {}).items()}
        for k, rows in self.init.items():
            if k not in self.widths:
                raise ValueError(f"init: unknown memory {k!r}")
            if len(rows) > self.depths[k]:
                raise ValueError(f"init: {len(rows)} rows for memory {k!r} of depth {self.depths[k]}")
        self.mems: dict[str, BankedMemory] = {}
        members = {
            "i_cmd": In(stream.Signature(32)),
            "o_rsp": Out(stream.Signature(32)),
            "busy": Out(1),
            "collided": Out(1),
        }
        if ext == "port":
            members["ext"] = Out(ExtBusSignature())
        super().__init__(members)

    def stored_width(self, name: str) -> int:
        """Bits per row that memory ``name`` stores (its protocol row width, but ``cst``: ``cst_bits·P``)."""
        return self.cst_bits * self.lanes if name == "cst" else self.widths[name]

    def stored_row(self, name: str, row: int) -> int:
        """A row as memory ``name`` stores it (a backdoor preload writes this; see ``cst_bits``)."""
        return cst_stored_row(row, self.lanes, self.cst_bits) if name == "cst" else row

    @property
    def row_words(self) -> dict[int, int]:
        """32-bit words per row of each memory id the host can write (``protocol``; a link's
        WRITE length check)."""
        out = {MEM_IDS[n]: words_per_row(w) for n, w in self.widths.items()}
        if self.ext_kind:
            out[Mem.EXT] = words_per_row(EXT_ROW_BITS)
        return out

    def elaborate(self, platform):
        m = Module()
        P, A = self.lanes, self.addr_bits
        W = self.widths
        conv, vec, mb = ConvEngine(P, A), VectorUnit(P, A), MemoryBuilder(P, A)
        for name, unit in zip(UNITS, (conv, vec, mb)):
            if name in self.units:
                m.submodules[name] = unit
            else:   # left out: never elaborated, its outputs (busy, enables, data) stay 0
                unit._MustUse__silence = True
        fetch = FetchUnit(W["w"], A)
        # the external bus: the fetch unit's while a program runs, the host's (memory EXT) otherwise
        xbus = ExtBusSignature().create(path=("xbus",))
        h_xcmd_valid, h_xaddr, h_xwrite = Signal(), Signal(EXT_ADDR_BITS), Signal()
        h_xw_valid, h_xw_data, h_xr_ready = Signal(), Signal(EXT_DATA_BITS), Signal()
        if self.ext_kind:
            m.submodules.fetch = fetch
            if self.ext_kind == "port":
                wiring.connect(m, xbus, wiring.flipped(self.ext))
            else:
                m.submodules.ext_model = model = ExtMemoryModel(self.ext_depth, self.ext_init, MODEL_LATENCY)
                wiring.connect(m, xbus, model.bus)
        else:
            fetch._MustUse__silence = True
        for name in self.built:
            self.mems[name] = m.submodules[f"mem_{name}"] = BankedMemory(
                self.stored_width(name), self.depths[name], A, read_ports=2 if name in ("lv", "st") else 1,
                init=[self.stored_row(name, r) for r in self.init.get(name, [])],
                bank_rows=self.bank_rows, second_port_rows=self.second_port_rows.get(name),
                read_registers=self.read_registers)
        mem = self.mems
        cb = self.cst_bits

        def port(n, kind):   # a port of memory n ("r0", "r1", "w"), or of a memory left out
            if n not in mem:
                return _Port(Signal(A), Signal(), Signal(W[n]))
            p = _Port(*(getattr(mem[n], f"{kind}_{s}") for s in ("addr", "en", "data")))
            if n == "cst" and cb != STREAM_BITS:   # 16-bit lanes outside, cst_bits-bit lanes inside
                wide = Signal(W[n], name=f"cst_{kind}_data")
                if kind == "w":
                    m.d.comb += p.data.eq(Cat(wide[STREAM_BITS * i:STREAM_BITS * i + cb] for i in range(P)))
                else:
                    lanes = [p.data[cb * i:cb * (i + 1)] for i in range(P)]
                    m.d.comb += wide.eq(Cat(Cat(v, v[-1].replicate(STREAM_BITS - cb)) for v in lanes))
                p = _Port(p.addr, p.en, wide)
            return p

        rd = {n: port(n, "r0") for n in W}
        rd2 = {n: port(n, "r1") for n in ("lv", "st")}
        wr = {n: port(n, "w") for n in W}

        # ---------------------------------------------------------------- controller state
        running = Signal()
        if self.ext_kind:   # the bus: the fetch unit's while a program runs (host commands are refused then)
            fx = fetch.ext
            m.d.comb += [xbus.cmd.valid.eq(fx.cmd.valid | h_xcmd_valid),
                         xbus.cmd.payload.eq(Mux(fx.cmd.valid, fx.cmd.payload, Cat(h_xaddr, Const(2, 16), h_xwrite))),
                         fx.cmd.ready.eq(xbus.cmd.ready & running),
                         xbus.wdata.valid.eq(h_xw_valid), xbus.wdata.payload.eq(h_xw_data), fx.wdata.ready.eq(0),
                         fx.rdata.valid.eq(xbus.rdata.valid & running), fx.rdata.payload.eq(xbus.rdata.payload),
                         xbus.rdata.ready.eq(Mux(running, fx.rdata.ready, h_xr_ready))]
        cur = Signal(Unit)
        dst_lv = Signal()          # the running op writes levels
        is_fusion = Signal()
        run_kind = Signal(2)
        guard = Signal(A + 1)      # template-memory rows below this are template slots
        tmpl_valid = Signal()      # a template run completed since the last load
        pc, left = Signal(A), Signal(24)
        word = Signal(W["prog"])
        # a FETCH descriptor does not hold the controller: it is issued once the fetch unit is idle
        # and runs beside the descriptors after it (the weight cache's two halves, below)
        unit_busy = Signal()
        act = {u: Signal(name=f"act_{u.name.lower()}") for u in Unit}
        host_rd_addr, host_rd_en, host_mem = Signal(A), Signal(), Signal(4)

        # ---------------------------------------------------------------- read ports
        # which unit owns the memory ports: one register per unit, equal to ``running & (cur ==
        # unit)`` from the op's DECODE to its end (set with ``cur``, cleared when the run ends), so
        # each port's multiplexers see a register instead of a decode of ``cur`` and ``running``
        # the host's row read is registered like its writes (address, one enable per memory)
        # (loaded every cycle from the command's address: no state decode reaches its flip-flops; only
        # the registered enables say when it is read)
        hr_addr = Signal(A, name="hr_addr", reset_less=True)
        m.d.sync += hr_addr.eq(host_rd_addr)

        def host_read(host_id):
            e = Signal(name=f"hr_en_{int(host_id)}")
            m.d.sync += e.eq(host_rd_en & (host_mem == host_id))
            return e

        def rsel(port, pairs, host_id):
            h_en = host_read(host_id)
            addr, en = hr_addr, h_en & ~running
            for unit, (a, e) in pairs:
                addr = Mux(act[unit], a, addr)
                en = Mux(act[unit], e, en)
            m.d.comb += [port.addr.eq(addr), port.en.eq(en)]
            return en

        ctrl_prog_addr, ctrl_prog_en = Signal(A), Signal()
        hr_prog = host_read(Mem.PROG)
        m.d.comb += [rd["prog"].addr.eq(Mux(running, ctrl_prog_addr, hr_addr)),
                     rd["prog"].en.eq(Mux(running, ctrl_prog_en, hr_prog))]
        en_w = rsel(rd["w"], [(Unit.CONV, (conv.w_addr, conv.w_en))], Mem.W)
        en_tab = rsel(rd["tab"], [(Unit.CONV, (conv.tab_addr, conv.tab_en))], Mem.TAB)
        en_cst = rsel(rd["cst"], [(Unit.VEC, (vec.c_addr, vec.c_en))], Mem.CST)
        en_tm = rsel(rd["tm"], [(Unit.CONV, (conv.tm_addr, conv.tm_en))], Mem.TM)
        en_lv = rsel(rd["lv"], [(Unit.CONV, (conv.in_addr, conv.in_en)), (Unit.VEC, (vec.a_addr, vec.a_en & is_fusion)),
                                (Unit.MB, (mb.k_addr, mb.k_en))], Mem.LV)
        en_st = rsel(rd["st"], [(Unit.CONV, (conv.res_addr, conv.res_en)), (Unit.VEC, (vec.a_addr, vec.a_en & ~is_fusion))],
                     Mem.ST)
        m.d.comb += [rd2["lv"].addr.eq(mb.v_addr), rd2["lv"].en.eq(act[Unit.MB] & mb.v_en),
                     rd2["st"].addr.eq(vec.b_addr), rd2["st"].en.eq(act[Unit.VEC] & vec.b_en)]
        en_lv2, en_st2 = rd2["lv"].en, rd2["st"].en
        m.d.comb += [conv.in_data.eq(rd["lv"].data), conv.w_data.eq(rd["w"].data), conv.tm_data.eq(rd["tm"].data),
                     conv.tab_data.eq(rd["tab"].data), conv.res_data.eq(rd["st"].data),
                     vec.a_data.eq(Mux(is_fusion, rd["lv"].data, rd["st"].data)), vec.b_data.eq(rd2["st"].data),
                     vec.c_data.eq(rd["cst"].data), mb.k_data.eq(rd["lv"].data), mb.v_data.eq(rd2["lv"].data)]

        # ---------------------------------------------------------------- write ports
        wmax = max(W[n] for n in self.built)      # the widest row the host can write or read
        host_wr_addr, host_wr_data, host_wr_en = Signal(A), Signal(wmax), Signal()
        # a unit's write is registered in the top (address, data, one enable per memory) before the
        # memory's own write registers: the units sit apart from the memories' banks, and the
        # multiplexers between the units get their own cycle (a write lands two cycles after the
        # unit presents it; the next op's first read comes DESC_OVERHEAD cycles later)
        uw_addr, uw_data = Signal(A, name="uw_addr", reset_less=True), Signal(STREAM_BITS * P, name="uw_data", reset_less=True)
        uw_en_lv, uw_en_st = Signal(name="uw_en_lv"), Signal(name="uw_en_st")
        u_en = Mux(act[Unit.CONV], conv.out_en, Mux(act[Unit.VEC], vec.out_en, 0))
        # the data select: copies of act[CONV], one per load group of the row, set with it in DECODE
        uw_groups = load_groups(len(uw_data))
        uw_sel = [Signal(name=f"uw_sel{COPY_TAG}{k}") for k in range(len(uw_groups))]
        m.d.sync += [uw_addr.eq(Mux(act[Unit.CONV], conv.out_addr, vec.out_addr)),
                     uw_en_lv.eq(u_en & dst_lv), uw_en_st.eq(u_en & ~dst_lv)]
        m.d.sync += [uw_data[lo:hi].eq(Mux(sel, conv.out_data[lo:hi], vec.out_data[lo:hi]))
                     for sel, (lo, hi) in zip(uw_sel, uw_groups)]
        # a search run never writes a template slot (rows below the guard); no run writes past the
        # end of the template memory (the memory decodes the low address bits only: row depth + r
        # would land on row r)
        tm_blocked = running & (((run_kind == RunKind.SEARCH) & ~at_least(mb.out_addr, guard))
                                | at_least(mb.out_addr, self.depths["tm"]))
        tw_addr, tw_data = Signal(A, name="tw_addr", reset_less=True), Signal(W["tm"], name="tw_data", reset_less=True)
        tw_en = Signal(name="tw_en")
        m.d.sync += [tw_addr.eq(mb.out_addr), tw_data.eq(mb.out_data), tw_en.eq(act[Unit.MB] & mb.out_en & ~tm_blocked)]
        unit_wr = {"lv": (uw_addr, uw_data, uw_en_lv), "st": (uw_addr, uw_data, uw_en_st),
                   "tm": (tw_addr, tw_data, tw_en)}
        if self.ext_kind:   # the fetch unit fills the weight memory (registered like the other units' writes)
            fw_addr, fw_data = Signal(A, name="fw_addr", reset_less=True), Signal(W["w"], name="fw_data", reset_less=True)
            fw_en = Signal(name="fw_en")
            m.d.sync += [fw_addr.eq(fetch.out_addr), fw_data.eq(fetch.out_data), fw_en.eq(act[Unit.FETCH] & fetch.out_en)]
            unit_wr["w"] = (fw_addr, fw_data, fw_en)
        # the host's row write is registered (address, data, one enable per memory) before it
        # reaches the memories: the host state machine then drives these registers only, and each
        # memory's write port sees registers and ``running`` (the row lands a cycle later; the
        # host FSM needs several cycles before its next command can read or run)
        hw_addr, hw_data = Signal(A, name="hw_addr", reset_less=True), Signal(wmax, name="hw_data", reset_less=True)
        m.d.sync += [hw_addr.eq(host_wr_addr), hw_data.eq(host_wr_data)]
        wr_en = {}
        for name, port in wr.items():
            h_en = Signal(name=f"hw_en_{name}")
            m.d.sync += h_en.eq(host_wr_en & (host_mem == MEM_IDS[name]))
            if name in unit_wr:
                a, dat, e = unit_wr[name]
                # the address and data select: register copies of ``running`` a cycle late, one per
                # load group of the row (``running`` itself fanned out to every write-data bit of
                # lv, st and tm: 13.3 ns on ULX3S). A cycle late is exact where the enable is set: a
                # unit's write register is loaded from ``act`` (so running) a cycle before, and the
                # host writes only in WROW, reached from a WRITE accepted while no run was going on
                # (no run starts before its ACK)
                groups = load_groups(len(port.data))
                sel = copies(m, running, len(groups), f"wsel_{name}")
                # the unit's data and the host's row, cut to the port's width (Cat pads a narrower one)
                dat_w = Cat(dat, Const(0, len(port.data)))
                m.d.comb += [port.addr.eq(Mux(sel[0], a, hw_addr)),
                             port.data.eq(Cat(*(Mux(sel[g], dat_w[lo:hi], hw_data[lo:hi])
                                                for g, (lo, hi) in enumerate(groups)))),
                             port.en.eq(Mux(running, e, h_en))]
            else:   # written by the host only (never while a program runs: its commands are refused then)
                m.d.comb += [port.addr.eq(hw_addr), port.data.eq(hw_data), port.en.eq(h_en & ~running)]
            wr_en[name] = port.en

        # ---------------------------------------------------------------- program controller
        start_req, start, start_kind, start_pc, start_n = Signal(), Signal(), Signal(2), Signal(A), Signal(24)
        op, cnt, addr = Signal(4), Signal(24), Signal(32)
        fetch_wait, read_wait = Signal(range(READ_LATENCY)), Signal(range(READ_LATENCY))
        # the accepted RUN reaches the controller one cycle later (host checks and the controller in
        # separate cycles); host_mem / addr / cnt hold until the ACK
        m.d.sync += start.eq(start_req)
        m.d.comb += host_rd_addr.eq(addr)
        m.d.comb += [start_kind.eq(host_mem), start_pc.eq(addr), start_n.eq(cnt)]
        ctr = {n: Signal(32, name=f"ctr_{n}") for n in COUNTERS}
        m.d.sync += ctr["runs"].eq(ctr["runs"] + start)   # counted as the run starts (a cycle after CHECK)
        conv_view = Signal(desc_layout(A))
        vec_view = Signal(vec_desc_layout(A))
        mb_view = Signal(mb_desc_layout(A))
        m.d.comb += [conv_view.eq(word[2:2 + desc_layout(A).size]), vec_view.eq(word[2:2 + vec_desc_layout(A).size]),
                     mb_view.eq(word[2:2 + mb_desc_layout(A).size]),
                     conv.i_desc.payload.eq(conv_view), vec.i_desc.payload.eq(vec_view), mb.i_desc.payload.eq(mb_view)]
        if self.ext_kind:
            m.d.comb += fetch.i_desc.payload.eq(word[2:2 + fetch_desc_layout(A).size])
        issue = Signal()
        # Weight fills overlap computation (external weights): the compiler alternates the
        # cache's two halves between fills and places fill j+1's FETCH before the conv descriptor
        # of fill j. ``ahead`` counts this run's fills issued and not yet used by a weight conv
        # descriptor (one that reads ``w``, not the template memory): a weight conv with exactly
        # one fill ahead needs the fill in flight and waits for the fetch unit; with two, its fill
        # completed before the later one was issued; with none, no fill of this run is pending
        # (a run ends only with the fetch unit idle). A FETCH waits for the fetch unit alone.
        ahead = Signal(2)
        if self.ext_kind:
            fetch_idle = fetch.i_desc.ready
            w_conv = (cur == Unit.CONV) & ~conv_view.tmem
            issue_ok = Mux(cur == Unit.FETCH, fetch_idle, ~(w_conv & (ahead == 1) & ~fetch_idle))
        else:
            fetch_idle, w_conv, issue_ok = Const(1), Const(0), Const(1)
        m.d.comb += [conv.i_desc.valid.eq(issue & (cur == Unit.CONV)), vec.i_desc.valid.eq(issue & (cur == Unit.VEC)),
                     mb.i_desc.valid.eq(issue & (cur == Unit.MB))]
        if self.ext_kind:
            m.d.comb += fetch.i_desc.valid.eq(issue & (cur == Unit.FETCH))
        desc_done, desc_inc = Signal(), Signal()
        # the busy flag of the op's unit: act[u] is 1 for cur's unit from DECODE to the run's end
        # (0 for a FETCH descriptor, which does not hold the controller), so while a run goes on
        # this equals the busy flag of unit cur, without a decode of cur
        m.d.comb += unit_busy.eq((act[Unit.CONV] & conv.busy) | (act[Unit.VEC] & vec.busy) | (act[Unit.MB] & mb.busy))
        with m.FSM(name="ctrl"):
            with m.State("IDLE"):
                with m.If(start):
                    m.d.sync += [running.eq(1), run_kind.eq(start_kind), pc.eq(start_pc), left.eq(start_n), ahead.eq(0)]
                    with m.If(start_kind == RunKind.TEMPLATE):
                        m.d.sync += tmpl_valid.eq(0)
                    m.next = "FETCH"
            with m.State("FETCH"):
                # the run ends with its last descriptor and the fetch unit idle (a fill issued
                # before the last conv descriptor may still run)
                m.d.comb += [ctrl_prog_addr.eq(pc), ctrl_prog_en.eq((left != 0) | fetch_idle)]
                m.d.sync += fetch_wait.eq(READ_LATENCY - 2)
                with m.If(left == 0):
                    with m.If(fetch_idle):
                        m.d.sync += [running.eq(0), *(a.eq(0) for a in act.values())]
                        with m.If(run_kind == RunKind.TEMPLATE):
                            m.d.sync += tmpl_valid.eq(1)
                        m.next = "IDLE"
                with m.Else():
                    m.next = "FWAIT"
            with m.State("FWAIT"):      # the program word's read latency
                m.d.sync += fetch_wait.eq(fetch_wait - 1)
                with m.If(fetch_wait == 0):
                    m.next = "DECODE"
            with m.State("DECODE"):
                pw = rd["prog"].data
                u = pw[:2]
                neuron_bit = pw[2 + desc_layout(A)["neuron"].offset] if "conv" in self.units else 0
                mode = pw[2 + vec_desc_layout(A)["mode"].offset:][:2] if "vec" in self.units else 0
                m.d.sync += [act[un].eq(u == un.value) for un in Unit if un != Unit.FETCH]
                m.d.sync += [sel.eq(u == Unit.CONV.value) for sel in uw_sel]
                # the fetch unit keeps the weight memory's write port until the run ends
                m.d.sync += act[Unit.FETCH].eq(act[Unit.FETCH] | (u == Unit.FETCH.value))
                m.d.sync += [word.eq(pw), cur.eq(u),
                             dst_lv.eq(Mux(u == Unit.CONV.value, neuron_bit,
                                           (u == Unit.VEC.value) & ((mode == VecMode.NEURON.value)
                                                                    | (mode == VecMode.FUSION.value)))),
                             is_fusion.eq((u == Unit.VEC.value) & (mode == VecMode.FUSION.value))]
                m.next = "ISSUE"
            with m.State("ISSUE"):
                m.d.comb += issue.eq(issue_ok)
                with m.If(issue_ok):
                    with m.If(cur == Unit.FETCH):
                        m.d.sync += ahead.eq(Mux(ahead == 3, 3, ahead + 1))
                    with m.Elif(w_conv & (ahead != 0)):
                        m.d.sync += ahead.eq(ahead - 1)
                    m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(~unit_busy):
                    m.d.sync += [pc.eq(pc + 1), left.eq(left - 1)]
                    m.d.comb += desc_done.eq(1)
                    m.next = "FETCH"
        m.d.comb += self.busy.eq(running)
        m.d.sync += self.collided.eq(self.collided | or_all([mm.collision for mm in mem.values()] or [Const(0)]))
        # the descriptor count's increment is registered (the count lags a cycle; it is read after
        # the run): the counter's enables see a register, not the units' busy multiplexer
        m.d.sync += [desc_inc.eq(desc_done), ctr["descriptors"].eq(ctr["descriptors"] + desc_inc)]

        # ---------------------------------------------------------------- host command interface
        widx, nwords = Signal(6), Signal(6)
        row = Signal(32 * words_per_row(wmax))
        # a payload word reaches ``row`` through registers (the word, and one write flag per word of
        # the row, decoded from the word index before it is registered): each word's 32 clock
        # enables come from a register, not from a decode of the host state and the command stream
        pay_we = Signal()
        pay = Signal(32, name="pay", reset_less=True)
        pay_sel = [Signal(name=f"pay_w{k}") for k in range(words_per_row(wmax))]
        m.d.sync += [pay.eq(self.i_cmd.payload), *[f.eq(pay_we & (widx == k)) for k, f in enumerate(pay_sel)]]
        for k, f in enumerate(pay_sel):
            with m.If(f):
                m.d.sync += row.word_select(k, 32).eq(pay)
        err = Signal(4)
        idle = Signal(range(self.timeout + 1))
        rsp_word, rsp_valid = Signal(32), Signal()
        stat_i = Signal(range(len(COUNTERS) + 2))
        stat_word, stat_wait = Signal(32), Signal(2)
        values = [Cat(running, tmpl_valid, Const(0, 2), cur, Const(0, 2), guard[:A]), *ctr.values()]
        # the status word values[stat_i - 1] through two registered levels, loaded in every cycle
        # (no state decode in their enables): a group register per four values chosen by stat_i's
        # low bits, then stat_word from the groups by its high bits (one level over all the
        # counters: 14.6 ns on ULX3S, build r1a)
        slots = [Const(0, 32), *(Value.cast(v) for v in values)]   # slot i: values[i - 1]
        n_groups = 1 << (-(-len(slots) // 4) - 1).bit_length()
        slots += [Const(0, 32)] * (4 * n_groups - len(slots))
        stat_grp = [Signal(32, name=f"stat_g{g}") for g in range(n_groups)]
        for g in range(n_groups):
            with m.Switch(stat_i[:2]):
                for k in range(4):
                    with m.Case(k):
                        m.d.sync += stat_grp[g].eq(slots[4 * g + k])
        with m.Switch(stat_i[2:]):
            for g in range(min(n_groups, 1 << len(stat_i[2:]))):
                with m.Case(g):
                    m.d.sync += stat_word.eq(stat_grp[g])
        m.d.comb += [self.o_rsp.payload.eq(rsp_word), self.o_rsp.valid.eq(rsp_valid)]
        with m.If(self.o_rsp.valid & self.o_rsp.ready):
            m.d.sync += rsp_valid.eq(0)
        DB = max(A + 1, EXT_ADDR_BITS)           # depth bits (memory EXT: up to 2^23 rows)
        depth_of = Signal(DB)
        wpr = Signal(6)
        host_rd_data, host_rd_q = Signal(wmax), Signal(32 * words_per_row(wmax))
        # word widx of the latched row, registered in every cycle: RSEND sends it a cycle after
        # widx changes (RSEL), so the word select and the reply's multiplexer are apart (13.4 ns
        # on ULX3S, build r2s1)
        rd_word = Signal(32, name="rd_word", reset_less=True)
        m.d.sync += rd_word.eq(host_rd_q.word_select(widx, 32))
        with m.Switch(host_mem):
            for name in W:
                with m.Case(MEM_IDS[name]):
                    m.d.comb += [depth_of.eq(self.depths[name]), wpr.eq(words_per_row(W[name]))]
            if self.ext_kind:
                with m.Case(Mem.EXT):
                    m.d.comb += [depth_of.eq(self.ext_depth // 2), wpr.eq(words_per_row(EXT_ROW_BITS))]
        # the host's row read: every memory's read data registered, masked by a select register of
        # that memory (host_mem holds from the header on), then ORed into host_rd_q a cycle later
        # (RLATCH2): no decode of host_mem and no state decode in front of the memories' data
        # With read_registers="address" the masks are not registered: a memory's read data hold
        # until its port's next read (hw/banked_memory.py), so host_rd_q takes the same row a cycle
        # later, and the row's worth of flip-flops per memory is saved (the iCEBreaker)
        masked = []
        hold = self.read_registers == "address"
        for name in W:
            sel = Signal(name=f"hrd_sel_{name}")
            q = Signal(W[name], name=f"hrd_{name}", reset_less=True)
            m.d.sync += sel.eq(host_mem == MEM_IDS[name])
            if hold:
                m.d.comb += q.eq(Mux(sel, rd[name].data, 0))
            else:
                m.d.sync += q.eq(Mux(sel, rd[name].data, 0))
            masked.append(q)
        m.d.comb += host_rd_data.eq(or_all(masked))

        def reply(op_v, err_v, count_v):
            return [rsp_word.eq(Cat(count_v[:16], err_v, op_v, Const(STATUS_MAGIC, 8))), rsp_valid.eq(1)]

        can_reply = ~rsp_valid | self.o_rsp.ready
        in_range, run_range_bad = Signal(), Signal()
        e_pre, chk_run, chk_mem, ord_bad = Signal(4), Signal(), Signal(), Signal()   # CHECK's inputs (RANGE2)
        range_end, range_depth = Signal(33), Signal(DB)
        m.d.comb += self.i_cmd.ready.eq(0)
        with m.FSM(name="host"):
            with m.State("HDR0"):
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(self.i_cmd.valid):
                    p = self.i_cmd.payload
                    m.d.sync += [op.eq(p[:4]), host_mem.eq(p[4:8]), cnt.eq(p[8:]), idle.eq(0)]
                    m.next = "HDR1"
            with m.State("HDR1"):
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(self.i_cmd.valid):
                    m.d.sync += addr.eq(self.i_cmd.payload)
                    m.next = "RANGE"
            with m.State("RANGE"):      # the range checks over two cycles: sum, then compares
                m.d.sync += [range_end.eq(addr + cnt), range_depth.eq(depth_of)]
                m.next = "RANGE2"
            with m.State("RANGE2"):
                m.d.sync += [in_range.eq(~at_least(addr, range_depth) & at_least(range_depth, range_end)),
                             run_range_bad.eq(~at_least(self.depths["prog"], range_end))]
                # the checks that need no range result are decided here and registered (e_pre), so
                # CHECK only completes them with the range results: the whole priority chain in
                # CHECK decided the counters' and the guard's enables in one cycle (15.6 ns on
                # u100l). ``running`` can only fall between here and CHECK (a run starts from CHECK
                # alone), and ``tmpl_valid`` changes only with a run or a WRITE
                known_mem = (host_mem <= Mem.TM) | ((host_mem == Mem.EXT) if self.ext_kind else 0)
                m.d.sync += [e_pre.eq(Err.OK), chk_run.eq(0), chk_mem.eq(0),
                             ord_bad.eq((host_mem == RunKind.SEARCH) & ~tmpl_valid)]
                with m.If((op == Op.NOP) | (op == Op.STATUS)):
                    pass
                with m.Elif(op > Op.GUARD):
                    m.d.sync += e_pre.eq(Err.BAD_OP)
                with m.Elif(running):
                    m.d.sync += e_pre.eq(Err.BUSY)
                with m.Elif(op == Op.GUARD):
                    pass
                with m.Elif(op == Op.RUN):
                    with m.If(host_mem > RunKind.SEARCH):
                        m.d.sync += e_pre.eq(Err.BAD_MEM)
                    with m.Else():
                        m.d.sync += chk_run.eq(1)
                with m.Elif(~known_mem):
                    m.d.sync += e_pre.eq(Err.BAD_MEM)
                with m.Else():
                    m.d.sync += chk_mem.eq(1)
                m.next = "CHECK"
            with m.State("CHECK"):
                e = Signal(4)
                m.d.comb += e.eq(Mux(chk_run, Mux(run_range_bad, Err.RANGE, Mux(ord_bad, Err.ORDER, Err.OK)),
                                     Mux(chk_mem & ~in_range, Err.RANGE, e_pre)))
                m.d.sync += [err.eq(e), widx.eq(0), nwords.eq(wpr)]
                with m.If((op == Op.WRITE) & (cnt == 0)):   # no payload, refused or not
                    m.next = "ACK"
                with m.Elif((op == Op.WRITE) & (e != Err.OK)):
                    m.next = "SKIP"
                with m.Elif(op == Op.WRITE):
                    m.next = "WDATA"
                with m.Elif(e != Err.OK):
                    m.next = "ACK"
                with m.Elif(op == Op.READ):
                    m.next = "RACK"
                with m.Elif(op == Op.RUN):
                    m.d.comb += start_req.eq(1)
                    m.next = "ACK"
                with m.Elif(op == Op.GUARD):
                    m.d.sync += guard.eq(addr)
                    m.next = "ACK"
                with m.Elif(op == Op.STATUS):
                    m.d.sync += [stat_i.eq(0), stat_wait.eq(2)]
                    m.next = "STATUS"
                with m.Else():
                    m.next = "ACK"
            with m.State("WDATA"):
                m.d.comb += [self.i_cmd.ready.eq(1), pay_we.eq(self.i_cmd.valid)]
                with m.If(self.i_cmd.valid):
                    m.d.sync += idle.eq(0)
                    with m.If(widx == nwords - 1):
                        m.d.sync += widx.eq(0)
                        m.next = "WLAST"
                    with m.Else():
                        m.d.sync += widx.eq(widx + 1)
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)
                    with m.If(idle == self.timeout - 1):
                        m.d.sync += err.eq(Err.TRUNCATED)
                        m.next = "ACK"
            with m.State("WLAST"):   # the row's last word reaches ``row`` (its write is registered)
                m.next = "XWCMD" if self.ext_kind else "WROW"
                if self.ext_kind:
                    with m.If(host_mem != Mem.EXT):
                        m.next = "WROW"
            with m.State("WROW"):
                m.d.comb += [host_wr_addr.eq(addr), host_wr_data.eq(row), host_wr_en.eq(1)]
                m.d.sync += [addr.eq(addr + 1), cnt.eq(cnt - 1)]
                with m.If(host_mem == Mem.W):
                    m.d.sync += tmpl_valid.eq(0)   # new weights: the template memories are stale
                with m.If(cnt == 1):
                    m.next = "ACK"
                with m.Else():
                    m.next = "WDATA"
            if self.ext_kind:
                # a row of memory EXT: one bus command of two words, then the row's two words
                # (written from ``row``, or read into ``host_rd_q`` for RSEND)
                for state, write, first in (("XWCMD", 1, "XW0"), ("XRCMD", 0, "XR0")):
                    with m.State(state):   # the row's bus command: word address 2·row, two words
                        m.d.comb += [h_xcmd_valid.eq(1), h_xaddr.eq(Cat(Const(0, 1), addr)), h_xwrite.eq(write)]
                        with m.If(xbus.cmd.ready):
                            m.next = first
                for i in range(2):
                    with m.State(f"XW{i}"):
                        m.d.comb += [h_xw_valid.eq(1), h_xw_data.eq(row[16 * i:16 * (i + 1)])]
                        with m.If(xbus.wdata.ready):
                            if i == 0:
                                m.next = "XW1"
                            else:
                                m.d.sync += [addr.eq(addr + 1), cnt.eq(cnt - 1),
                                             tmpl_valid.eq(0)]   # new weights: the template memories are stale
                                with m.If(cnt == 1):
                                    m.next = "ACK"
                                with m.Else():
                                    m.next = "WDATA"
                for i in range(2):
                    with m.State(f"XR{i}"):
                        m.d.comb += h_xr_ready.eq(1)
                        with m.If(xbus.rdata.valid):
                            m.d.sync += host_rd_q[16 * i:16 * (i + 1)].eq(xbus.rdata.payload)
                            if i == 0:
                                m.next = "XR1"
                            else:
                                m.d.sync += widx.eq(0)
                                m.next = "RSEL"
            with m.State("SKIP"):   # drop a refused WRITE's payload
                m.d.comb += self.i_cmd.ready.eq(1)
                with m.If(self.i_cmd.valid):
                    m.d.sync += idle.eq(0)
                    with m.If(widx == nwords - 1):
                        m.d.sync += [widx.eq(0), cnt.eq(cnt - 1)]
                        with m.If(cnt <= 1):
                            m.next = "ACK"
                    with m.Else():
                        m.d.sync += widx.eq(widx + 1)
                with m.Else():
                    m.d.sync += idle.eq(idle + 1)
                    with m.If(idle == self.timeout - 1):
                        m.next = "ACK"
                with m.If(cnt == 0):
                    m.next = "ACK"
            with m.State("ACK"):
                with m.If(can_reply):
                    m.d.sync += reply(op, err, cnt)
                    m.next = "HDR0"
            with m.State("RACK"):
                with m.If(can_reply):
                    m.d.sync += reply(op, err, cnt)
                    m.next = "RREAD"
            with m.State("RREAD"):
                with m.If(cnt == 0):
                    m.next = "HDR0"
                if self.ext_kind:
                    with m.Elif(host_mem == Mem.EXT):
                        m.next = "XRCMD"
                with m.Else():
                    m.d.comb += host_rd_en.eq(1)
                    m.d.sync += read_wait.eq(READ_LATENCY - 1)   # the registered request, then the latency
                    m.next = "RWAIT"
            with m.State("RWAIT"):      # the memory's read latency
                m.d.sync += read_wait.eq(read_wait - 1)
                with m.If(read_wait == 0):
                    m.next = "RLATCH"
            with m.State("RLATCH"):     # the selected memory's row registered (hrd_*; the address form: held), then latched
                m.next = "RLATCH2"
            with m.State("RLATCH2"):
                m.d.sync += [host_rd_q.eq(host_rd_data), widx.eq(0)]
                m.next = "RSEL"
            with m.State("RSEL"):       # rd_word takes word widx of the latched row
                m.next = "RSEND"
            with m.State("RSEND"):
                with m.If(can_reply):
                    m.d.sync += [rsp_word.eq(rd_word), rsp_valid.eq(1)]
                    with m.If(widx == nwords - 1):
                        m.d.sync += [addr.eq(addr + 1), cnt.eq(cnt - 1)]
                        m.next = "RREAD"
                    with m.Else():
                        m.d.sync += widx.eq(widx + 1)
                        m.next = "RSEL"
            with m.State("STATUS"):
                # each word waits two cycles in the two-level multiplexer below (stat_word)
                with m.If(stat_wait != 0):
                    m.d.sync += stat_wait.eq(stat_wait - 1)
                with m.Elif(can_reply):
                    with m.If(stat_i == 0):
                        m.d.sync += reply(op, Const(Err.OK, 4), Const(len(values), 16))
                    with m.Else():
                        m.d.sync += [rsp_word.eq(stat_word), rsp_valid.eq(1)]
                    m.d.sync += [stat_i.eq(stat_i + 1), stat_wait.eq(2)]
                    with m.If(stat_i == len(values)):
                        m.next = "HDR0"

        # ---------------------------------------------------------------- counters
        def bump(name, inc):   # the increment is registered first: counts lag by one cycle
            if name not in self.counters:
                return
            inc_v = Value.cast(inc)
            inc_r = Signal(inc_v.shape(), name=f"inc_{name}")
            m.d.sync += [inc_r.eq(inc), ctr[name].eq(ctr[name] + inc_r)]

        bump("cycles", 1)
        bump("run_cycles", running)
        bump("ctrl_cycles", running & ~unit_busy)
        bump("conv_busy", conv.busy)
        bump("vec_busy", vec.busy)
        bump("mb_busy", mb.busy)
        if self.ext_kind:
            bump("fetch_busy", fetch.busy)
            bump("ext_words", fetch.ext.rdata.valid & fetch.ext.rdata.ready)
            bump("w_writes", wr_en["w"] & running)
        bump("events", act[Unit.CONV] & (conv.w_en | conv.tm_en))
        bump("lv_reads", en_lv.as_unsigned() + en_lv2)
        bump("st_reads", en_st.as_unsigned() + en_st2)
        bump("tm_reads", en_tm)
        bump("w_reads", en_w)
        bump("tab_reads", en_tab)
        bump("cst_reads", en_cst)
        bump("prog_reads", rd["prog"].en)
        bump("lv_writes", wr_en["lv"])
        bump("st_writes", wr_en["st"])
        bump("tm_writes", wr_en["tm"])
        bump("guard_blocked", act[Unit.MB] & mb.out_en & tm_blocked)
        bump("rsp_stall", rsp_valid & ~self.o_rsp.ready)
        prev_sat = Signal(32)
        sat_now = conv.counters.saturated + vec.counters.saturated
        m.d.sync += prev_sat.eq(sat_now)
        bump("saturated", (sat_now - prev_sat)[:32])
        return m
