"""SDR SDRAM timing sets, geometry and their conversion to clock cycles.

Every figure is a Python-time constant: the controller (:mod:`.controller`) turns the
nanosecond values into cycles with :func:`cycles` (ceiling division, exact rational arithmetic)
when it is built, so the gateware holds only small counters loaded with constants (no
multiplier). The chip model (:mod:`.model`) checks the same nanosecond values independently:
it measures the time between two commands as ``cycles * tCK`` and compares it with the figure
in nanoseconds.

:data:`ULX3S_TIMINGS` is the slowest of the 32 MB x16 parts fitted to ULX3S boards (ISSI
IS42S16160G-7, Micron MT48LC16M16A2-6A/-7E/-75, Alliance AS4C16M16SA-6/-7), one value per
rule, so one set serves every board (docs/sdram.md, "Timing").
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

__all__ = ["SDRAMTimings", "SDRAMGeometry", "ULX3S_TIMINGS", "ULX3S_GEOMETRY", "tck_ns", "cycles",
           "CycleTimings", "mode_register"]


@dataclass(frozen=True)
class SDRAMTimings:
    """A part's timing rules (nanoseconds unless named ``_ck``: clock cycles).

    Attributes
    ----------
    t_rp : float
        PRECHARGE to ACTIVE / AUTO REFRESH / LOAD MODE of the same bank.
    t_rcd : float
        ACTIVE to READ / WRITE of the same bank.
    t_rc : float
        ACTIVE to ACTIVE of the same bank (and ACTIVE to AUTO REFRESH).
    t_ras : float
        ACTIVE to PRECHARGE of the same bank (minimum).
    t_ras_max : float
        ACTIVE to PRECHARGE of the same bank (maximum: a row may not stay open longer).
    t_rfc : float
        AUTO REFRESH to any command but NOP.
    t_rrd : float
        ACTIVE to ACTIVE of another bank.
    t_wr, t_wr_ck : float, int
        Write recovery: the last WRITE (its data) to PRECHARGE, at least ``t_wr`` ns and
        ``t_wr_ck`` cycles.
    t_mrd, t_mrd_ck : float, int
        LOAD MODE REGISTER to any command but NOP, at least ``t_mrd`` ns and ``t_mrd_ck`` cycles.
    t_refi : float
        The longest time between two AUTO REFRESH commands (64 ms / 8192 rows = 7812.5 ns,
        rounded down to the 7.8 µs that some datasheets print).
    t_power_up : float
        Power-up wait with NOP / COMMAND INHIBIT and CKE high before the first command.
    init_refreshes : int
        AUTO REFRESH commands after the power-up PRECHARGE ALL and before LOAD MODE REGISTER.
    tck_min_cl2, tck_min_cl3 : float
        The shortest clock period at CAS latency 2 and 3.
    """

    t_rp: float = 21
    t_rcd: float = 21
    t_rc: float = 66
    t_ras: float = 44
    t_ras_max: float = 100_000
    t_rfc: float = 66
    t_rrd: float = 15
    t_wr: float = 15
    t_wr_ck: int = 2
    t_mrd: float = 15
    t_mrd_ck: int = 2
    t_refi: float = 7800
    t_power_up: float = 200_000
    init_refreshes: int = 8
    tck_min_cl2: float = 10
    tck_min_cl3: float = 7.5

    def tck_min(self, cas_latency: int) -> Fraction:
        """The shortest clock period (ns) at ``cas_latency`` (2 or 3)."""
        if cas_latency not in (2, 3):
            raise ValueError(f"CAS latency {cas_latency}: 2 or 3")
        return Fraction(str(self.tck_min_cl2 if cas_latency == 2 else self.tck_min_cl3))


ULX3S_TIMINGS = SDRAMTimings()
"""The ULX3S's 32 MB SDRAM (the slowest of the fitted parts per rule; docs/sdram.md)."""


@dataclass(frozen=True)
class SDRAMGeometry:
    """Banks, rows and columns of an x16 part.

    The bus's word address is split as ``{row, bank, column}`` (column in the low bits, the bank
    next): a sequential transfer that runs off the end of a row continues in the next bank, so
    four consecutive rows each keep their own open row.
    """

    bank_bits: int = 2
    row_bits: int = 13
    col_bits: int = 9

    @property
    def addr_pins(self) -> int:
        """Width of the address pins (rows, and at least A10 for the precharge-all flag)."""
        return max(self.row_bits, self.col_bits + 1, 11)

    @property
    def words(self) -> int:
        return 1 << (self.bank_bits + self.row_bits + self.col_bits)

    def split(self, addr: int) -> tuple[int, int, int]:
        """(bank, row, column) of bus word address ``addr``."""
        col = addr & ((1 << self.col_bits) - 1)
        bank = (addr >> self.col_bits) & ((1 << self.bank_bits) - 1)
        row = (addr >> (self.col_bits + self.bank_bits)) & ((1 << self.row_bits) - 1)
        return bank, row, col

    def join(self, bank: int, row: int, col: int) -> int:
        """Bus word address of (bank, row, column)."""
        return (row << (self.col_bits + self.bank_bits)) | (bank << self.col_bits) | col


ULX3S_GEOMETRY = SDRAMGeometry()
"""4 banks x 8192 rows x 512 columns of 16 bits: 16 M words (32 MB)."""


def tck_ns(clock_mhz) -> Fraction:
    """The clock period in ns, exactly (``clock_mhz`` may be 62.5 or "62.5")."""
    f = Fraction(str(clock_mhz))
    if f <= 0:
        raise ValueError(f"clock {clock_mhz} MHz")
    return 1000 / f


def cycles(t_ns, clock_mhz) -> int:
    """The fewest whole clock cycles that last at least ``t_ns`` (ceiling division)."""
    q = Fraction(str(t_ns)) / tck_ns(clock_mhz)
    return -(-q.numerator // q.denominator)


@dataclass(frozen=True)
class CycleTimings:
    """A timing set in whole cycles at one clock frequency (what the controller builds from).

    ``rtw`` is the controller's own READ-to-WRITE spacing: the chip drives DQ in the cycle that
    ends CAS latency edges after the READ and, until it lets go, in the next one
    (:mod:`.model`'s contention rule), so a WRITE may drive DQ only after that.
    """

    rp: int
    rcd: int
    rc: int
    ras: int
    rfc: int
    rrd: int
    wr: int
    mrd: int
    rtw: int
    refi: int          #: whole cycles in t_refi (floor)
    power_up: int

    @classmethod
    def of(cls, timings: SDRAMTimings, clock_mhz, cas_latency: int) -> "CycleTimings":
        c = lambda t: cycles(t, clock_mhz)
        refi = Fraction(str(timings.t_refi)) / tck_ns(clock_mhz)
        return cls(rp=c(timings.t_rp), rcd=c(timings.t_rcd), rc=c(timings.t_rc), ras=c(timings.t_ras),
                   rfc=c(timings.t_rfc), rrd=c(timings.t_rrd), wr=max(c(timings.t_wr), timings.t_wr_ck),
                   mrd=max(c(timings.t_mrd), timings.t_mrd_ck), rtw=cas_latency + 2,
                   refi=refi.numerator // refi.denominator, power_up=c(timings.t_power_up))


def mode_register(cas_latency: int) -> int:
    """The LOAD MODE REGISTER value: burst length 1 (A2:0 = 0), sequential (A3 = 0), CAS latency
    in A6:4, standard operation (A8:7 = 0), programmed burst length for writes (A9 = 0)."""
    if cas_latency not in (2, 3):
        raise ValueError(f"CAS latency {cas_latency}: 2 or 3")
    return cas_latency << 4
