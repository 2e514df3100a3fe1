"""The accelerator on a board: UART link, framed protocol, PLL, reset and LEDs.

:class:`LinkedAccelerator` is everything behind the pins: a UART (``hw/link/uart.py``), the framed
link (``hw/link/frames.py``) and the :class:`~spiketrack.hw.accel.top.Accelerator`. It is what the
cocotb test runs, serial line in the loop. :class:`BoardTop` adds what only a board has: the PLL
that makes the core clock from the board's oscillator (:func:`ecp5_pll` / :func:`ice40_pll`
compute the divider settings), a reset held until the PLL locks, the UART pins and status LEDs.

LEDs (as many as the board has): 0 busy, 1 a frame was rejected since reset, 2 toggles on every
executed frame, 3 heartbeat (about 1 Hz).
"""

from __future__ import annotations

from amaranth import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.build import ResourceError
from amaranth.lib import fifo, io, wiring
from amaranth.lib.wiring import In, Out

from spiketrack.hw.accel.protocol import COUNTERS
from spiketrack.hw.accel.top import UNITS, Accelerator
from spiketrack.hw.conv_engine import STREAM_BITS
from spiketrack.hw.extmem import EXT_DATA_BITS, ExtBusSignature, ext_cmd_layout
from spiketrack.hw.link.frames import FrameLink
from spiketrack.hw.link.uart import UartRx, UartTx
from spiketrack.hw.streams import StreamRegister

__all__ = ["LinkedAccelerator", "BoardTop", "connect_sdram_bus", "ecp5_pll", "ice40_pll"]


class LinkedAccelerator(wiring.Component):
    """UART + framed link + accelerator.

    Parameters
    ----------
    lanes, depths, addr_bits :
        As :class:`~spiketrack.hw.accel.top.Accelerator`.
    divisor : int
        Clock cycles per UART bit.
    gap_cycles : int
        Quiet cycles that end a truncated frame (see :class:`~spiketrack.hw.link.frames.FrameLink`).
    init : dict, optional
        Memory images baked into the design (``Accelerator(init=...)``).
    units, counters :
        The accelerator's units and counters (``Accelerator(units=..., counters=...)``).
    ext, ext_init, ext_depth :
        The external memory (``Accelerator(ext=...)``): with ``"port"`` the bus is the member ``ext``.
    second_port_rows, cst_bits, read_registers :
        As :class:`~spiketrack.hw.accel.top.Accelerator`.

    Members
    -------
    rx : In(1); tx : Out(1)
        The serial line (idle high).
    busy : Out(1)
    frames_ok, frames_bad : Out(16)
    ext : Out(ExtBusSignature()), with ``ext="port"``
    """

    def __init__(self, lanes: int = 8, depths: dict | None = None, addr_bits: int = 16, *, divisor: int = 4,
                 gap_cycles: int = 1 << 16, init: dict | None = None, units: tuple = UNITS,
                 counters: tuple = COUNTERS, ext: str | None = None, ext_init=(), ext_depth: int | None = None,
                 second_port_rows: dict | None = None, cst_bits: int = STREAM_BITS, read_registers: str = "data"):
        self.accel = Accelerator(lanes, depths, addr_bits, init=init, units=units, counters=counters, ext=ext,
                                 ext_init=ext_init, ext_depth=ext_depth, second_port_rows=second_port_rows,
                                 cst_bits=cst_bits, read_registers=read_registers)
        self.divisor, self.gap_cycles = divisor, gap_cycles
        members = {"rx": In(1, init=1), "tx": Out(1, init=1), "busy": Out(1), "frames_ok": Out(16), "frames_bad": Out(16)}
        if ext == "port":
            members["ext"] = Out(ExtBusSignature())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        m.submodules.accel = accel = self.accel
        m.submodules.urx = urx = UartRx(self.divisor)
        m.submodules.utx = utx = UartTx(self.divisor)
        m.submodules.link = link = FrameLink(accel.row_words, gap_cycles=self.gap_cycles)
        if accel.ext_kind == "port":
            wiring.connect(m, accel.ext, wiring.flipped(self.ext))
        wiring.connect(m, urx.o_byte, link.i_byte)
        wiring.connect(m, link.o_byte, utx.i_byte)
        # the link's command word comes straight from its frame buffer's read port: registered
        # here before the accelerator decodes it (that path was the ULX3S critical path at 66 MHz)
        m.submodules.cmd_reg = cmd_reg = StreamRegister(32)
        wiring.connect(m, link.o_cmd, cmd_reg.i)
        wiring.connect(m, cmd_reg.o, accel.i_cmd)
        wiring.connect(m, accel.o_rsp, link.i_rsp)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.busy.eq(accel.busy),
                     self.frames_ok.eq(link.frames_ok), self.frames_bad.eq(link.frames_bad)]
        return m


def ecp5_pll(f_in_mhz: float, f_out_mhz: float) -> dict:
    """EHXPLLL dividers for ``f_out`` from ``f_in`` (feedback from CLKOP), nearest first:
    ``{"clki_div", "clkfb_div", "clkop_div", "f_out_mhz", "f_vco_mhz"}``.

    Limits (ECP5 family data sheet): PFD 3.125–400 MHz, VCO 400–800 MHz, output 3.125–400 MHz.
    """
    best = None
    for clki in range(1, 129):
        f_pfd = f_in_mhz / clki
        if not 3.125 <= f_pfd <= 400:
            continue
        for fb in range(1, 81):
            f_out = f_pfd * fb
            if not 3.125 <= f_out <= 400:
                continue
            for op in range(1, 129):
                f_vco = f_out * op
                if 400 <= f_vco <= 800:
                    key = (abs(f_out - f_out_mhz), abs(f_vco - 600))
                    if best is None or key < best[0]:
                        best = (key, {"clki_div": clki, "clkfb_div": fb, "clkop_div": op, "f_out_mhz": f_out,
                                      "f_vco_mhz": f_vco})
    if best is None or abs(best[1]["f_out_mhz"] - f_out_mhz) > 0.01 * f_out_mhz:
        near = f" (nearest {best[1]['f_out_mhz']:.3f} MHz)" if best else ""
        raise ValueError(f"no ECP5 PLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz within 1 %{near}")
    return best[1]


def ice40_pll(f_in_mhz: float, f_out_mhz: float) -> dict:
    """SB_PLL40 dividers (``icepll``'s search): ``{"divr", "divf", "divq", "filter_range", "f_out_mhz"}``.

    ``f_out = f_in·(DIVF+1) / ((DIVR+1)·2^DIVQ)``; PFD 10–133 MHz, VCO 533–1066 MHz.
    """
    best = None
    for divr in range(16):
        f_pfd = f_in_mhz / (divr + 1)
        if not 10 <= f_pfd <= 133:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533 <= f_vco <= 1066:
                continue
            for divq in range(1, 7):
                f_out = f_vco / (1 << divq)
                if best is None or abs(f_out - f_out_mhz) < abs(best["f_out_mhz"] - f_out_mhz):
                    rng = [17, 26, 44, 66, 101, 133].index(next(x for x in [17, 26, 44, 66, 101, 133] if f_pfd < x)) + 1
                    best = {"divr": divr, "divf": divf, "divq": divq, "filter_range": rng, "f_out_mhz": f_out}
    if best is None or abs(best["f_out_mhz"] - f_out_mhz) > 0.01 * f_out_mhz:
        near = f" (nearest {best['f_out_mhz']:.3f} MHz)" if best else ""
        raise ValueError(f"no iCE40 PLL setting makes {f_out_mhz} MHz from {f_in_mhz} MHz within 1 %{near}")
    return best


def connect_sdram_bus(m: Module, ext, bus) -> None:
    """Connect the accelerator's external-memory port ``ext`` to the SDRAM controller's ``bus``
    (the board top and the SDRAM simulation, ``sim.accel_sim``, both use this). The command and
    write words pass two-word FIFOs (valid and ready from their level registers): the fetch unit's
    command flag reached the controller's address and count enables through its row and refresh
    decode (34 endpoints at 12.6 ns on build fp6), the controller's write acceptance the host's row
    address (13.1 ns on build r1a). The read words leave a register: the controller's read FIFO
    level decode reached the fetch unit's row assembly (132 endpoints at 12.9 ns on build u62z)."""
    for name, width in (("cmd", ext_cmd_layout.size), ("wdata", EXT_DATA_BITS)):
        q = m.submodules[f"sdram_{name}_q"] = fifo.SyncFIFO(width=width, depth=2)
        src, dst = getattr(ext, name), getattr(bus, name)
        m.d.comb += [q.w_en.eq(src.valid), q.w_data.eq(src.payload), src.ready.eq(q.w_rdy),
                     dst.valid.eq(q.r_rdy), dst.payload.eq(q.r_data), q.r_en.eq(dst.ready)]
    m.submodules.sdram_rdata = rreg = StreamRegister(EXT_DATA_BITS)
    wiring.connect(m, bus.rdata, rreg.i)
    wiring.connect(m, rreg.o, ext.rdata)


class BoardTop(Elaboratable):
    """A :class:`LinkedAccelerator` on a board (``platform`` from amaranth-boards).

    Parameters
    ----------
    clock_mhz : float
        Core clock wanted from the PLL (the nearest reachable frequency is used: ``f_core_mhz``).
    baud : int
        UART rate; the divisor is ``round(f_core / baud)``.
    lanes, depths, init, addr_bits, units, counters, second_port_rows, cst_bits, read_registers : as :class:`~spiketrack.hw.accel.top.Accelerator`
        (``init``: images baked into the bitstream's block RAM; ``units``: the iCEBreaker
        configuration has the memory builder only).
    uart : tuple
        The UART resource ``(name, number)``. A board without one (OrangeCrab: its USB port goes to
        the FPGA itself) gets ``uart_pins``: a UART on two header pins for a 3.3 V USB-serial adapter.
    uart_pins : dict, optional
        ``{"rx": pin, "tx": pin, "conn": (connector, number)}`` used when the board has no UART.
    sdram : bool
        The weights live in the board's SDRAM (amaranth-boards resource ``sdram 0``: the ULX3S):
        the accelerator gets its fetch unit and external-memory port (``Accelerator(ext="port")``),
        served by :class:`~spiketrack.hw.sdram.controller.SDRAMController` at the core clock. The
        chip's clock is the core clock inverted (a DDR output: the chip samples mid-cycle); every
        SDRAM pin leaves an I/O flip-flop and DQ is captured in one, so read data reach the
        controller two cycles later than at the pins (``extra_read_latency=2``). Not run on a board.
    """

    def __init__(self, *, family: str, f_in_mhz: float, clock_mhz: float = 100.0, baud: int = 1_000_000,
                 lanes: int = 8, depths: dict | None = None, init: dict | None = None, uart=("uart", 0),
                 uart_pins: dict | None = None, addr_bits: int = 16, units: tuple = UNITS,
                 counters: tuple = COUNTERS, constrain_mhz: float | None = None, sdram: bool = False,
                 second_port_rows: dict | None = None, cst_bits: int = STREAM_BITS, read_registers: str = "data"):
        self.sdram = sdram
        self.family, self.f_in_mhz, self.baud, self.uart, self.uart_pins = family, f_in_mhz, baud, uart, uart_pins
        self.pll = ecp5_pll(f_in_mhz, clock_mhz) if family == "ecp5" else ice40_pll(f_in_mhz, clock_mhz)
        self.f_core_mhz = self.pll["f_out_mhz"]
        if constrain_mhz is not None and family != "ecp5":
            self._MustUse__silence = True
            raise ValueError("constrain_mhz: only the ECP5 PLL carries the place-and-route clock constraint")
        if constrain_mhz is not None and constrain_mhz < self.f_core_mhz:
            self._MustUse__silence = True
            raise ValueError(f"constrain_mhz {constrain_mhz} is below the core clock {self.f_core_mhz:.3f} MHz")
        # the clock nextpnr times the core against: the core clock (nextpnr derives it from the PLL's
        # dividers), or a higher one to over-constrain place and route (a FREQUENCY NET constraint on
        # the PLL's output, which nextpnr keeps instead of the derived one; its warning "Overriding
        # derived constraint of 100.0 MHz ... with user-specified constraint of 70.0 MHz" prints the two
        # values swapped: the 100 MHz is the one applied, as the routed report's "FAIL at" line shows)
        self.constrain_mhz = constrain_mhz
        self.constraint_mhz = constrain_mhz if constrain_mhz is not None else self.f_core_mhz
        divisor = round(self.f_core_mhz * 1e6 / baud)
        # a truncated frame ends after ~20 ms of silence (USB-serial adapters pause for milliseconds)
        self.core = LinkedAccelerator(lanes, depths, addr_bits, divisor=divisor,
                                      gap_cycles=int(self.f_core_mhz * 1e3 * 20), init=init, units=units,
                                      counters=counters, ext="port" if sdram else None,
                                      second_port_rows=second_port_rows, cst_bits=cst_bits,
                                      read_registers=read_registers)
        if sdram:
            from spiketrack.hw.sdram.controller import SDRAMController

            self.sdram_ctrl = SDRAMController(self.f_core_mhz, cas_latency=2, extra_read_latency=2)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        # ECP5: the oscillator through an input buffer; iCE40: the PLL pad takes the pin itself
        clk_in = platform.request(platform.default_clk, dir="-")
        if self.family == "ecp5":
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_in)
        locked = Signal()
        p = self.pll
        if self.family == "ecp5":
            core_clk = Signal(name="core_clk")
            m.d.comb += ClockSignal("sync").eq(core_clk)
            if self.constrain_mhz is not None:
                platform.add_clock_constraint(core_clk, self.constrain_mhz * 1e6)
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=str(self.f_in_mhz), a_FREQUENCY_PIN_CLKOP=f"{self.f_core_mhz:.4f}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
                p_CLKI_DIV=p["clki_div"], p_CLKFB_DIV=p["clkfb_div"], p_CLKOP_DIV=p["clkop_div"],
                p_CLKOP_CPHASE=p["clkop_div"] // 2, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
                i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, i_CLKFB=core_clk, o_CLKOP=core_clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
                i_ENCLKOP=0, o_LOCK=locked)
        else:
            m.submodules.pll = Instance(
                "SB_PLL40_PAD", p_FEEDBACK_PATH="SIMPLE", p_DIVR=p["divr"], p_DIVF=p["divf"], p_DIVQ=p["divq"],
                p_FILTER_RANGE=p["filter_range"], i_PACKAGEPIN=clk_in.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=ClockSignal("sync"), o_LOCK=locked)
        # reset: held until the PLL locks, then released synchronously (a reset-less domain on the
        # same clock holds the generator, so the reset it drives cannot reset it)
        m.domains.por = ClockDomain("por", reset_less=True)
        m.d.comb += ClockSignal("por").eq(ClockSignal("sync"))
        rst_sr = Signal(4, init=0xF)
        m.d.por += rst_sr.eq(rst_sr << 1)
        with m.If(~locked):
            m.d.por += rst_sr.eq(0xF)
        if self.family == "ecp5":
            # the synchronous reset reaches ~20,000 flip-flops: through a DCCA it rides a global
            # network (nextpnr promotes only clocks by itself; on fabric it arrived at 10.6 ns)
            rst_glb = Signal()
            m.submodules.rst_dcc = Instance("DCCA", i_CLKI=rst_sr[-1], i_CE=1, o_CLKO=rst_glb)
            m.d.comb += ResetSignal("sync").eq(rst_glb)
        else:                          # nextpnr-ice40 promotes high-fanout resets itself
            m.d.comb += ResetSignal("sync").eq(rst_sr[-1])
        m.submodules.core = core = self.core
        if self.sdram:
            self._connect_sdram(m, platform)
        if self.uart_pins and not any(r.name == self.uart[0] for r in platform.resources.values()):
            from amaranth.build import Attrs
            from amaranth_boards.resources import UARTResource

            platform.add_resources([UARTResource(self.uart[1], rx=self.uart_pins["rx"], tx=self.uart_pins["tx"],
                                                 conn=self.uart_pins["conn"], attrs=Attrs(IO_TYPE="LVCMOS33"))])
        uart = platform.request(*self.uart, dir="-")
        m.submodules.rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(rx_buf.i), tx_buf.o.eq(core.tx)]
        leds = []
        for i in range(4):
            try:
                led = platform.request("led", i, dir="-")
            except ResourceError:
                break
            m.submodules[f"led{i}"] = buf = io.Buffer("o", led)
            leds.append(buf.o)
        if not leds:                   # OrangeCrab: one RGB LED (red busy, green rejected, blue frames)
            try:
                rgb = platform.request("rgb_led", 0, dir="-")
                for c in "rgb":
                    m.submodules[f"led_{c}"] = buf = io.Buffer("o", getattr(rgb, c))
                    leds.append(buf.o)
            except ResourceError:
                pass
        seen_bad, toggle = Signal(), Signal()
        last_ok = Signal(16)
        m.d.sync += last_ok.eq(core.frames_ok)
        with m.If(core.frames_bad != 0):
            m.d.sync += seen_bad.eq(1)
        with m.If(core.frames_ok != last_ok):
            m.d.sync += toggle.eq(~toggle)
        beat = Signal(range(int(self.f_core_mhz * 1e6 / 2) + 1))
        tick = Signal()
        m.d.sync += beat.eq(beat + 1)
        with m.If(beat == int(self.f_core_mhz * 1e6 / 2)):
            m.d.sync += [beat.eq(0), tick.eq(~tick)]
        for led, val in zip(leds, [core.busy, seen_bad, toggle, tick]):
            m.d.comb += led.eq(val)
        return m

    def _connect_sdram(self, m, platform):
        """The SDRAM controller between the accelerator's port and the pins (see ``sdram``)."""
        try:
            res = platform.request("sdram", 0, dir="-")
        except ResourceError:
            raise ValueError(f"the board ({type(platform).__name__}) has no SDRAM resource 'sdram 0' for the "
                             f"external weights") from None
        ctrl = m.submodules.sdram_ctrl = self.sdram_ctrl
        connect_sdram_bus(m, self.core.ext, ctrl.bus)
        pins = ctrl.sdram
        m.submodules.sdram_clk = clk = io.DDRBuffer("o", res.clk)
        m.d.comb += [clk.o[0].eq(0), clk.o[1].eq(1)]          # the core clock, inverted
        outs = {"clk_en": pins.cke, "cs": ~pins.cs_n, "ras": ~pins.ras_n, "cas": ~pins.cas_n, "we": ~pins.we_n,
                "ba": pins.ba, "a": pins.a, "dqm": pins.dqm}  # the resource inverts cs/ras/cas/we itself
        for name, value in outs.items():
            m.submodules[f"sdram_{name}"] = buf = io.FFBuffer("o", getattr(res, name))
            m.d.comb += buf.o.eq(value)
        m.submodules.sdram_dq = dq = io.FFBuffer("io", res.dq)
        m.d.comb += [dq.o.eq(pins.dq_o), dq.oe.eq(pins.dq_oe), pins.dq_i.eq(dq.i)]
