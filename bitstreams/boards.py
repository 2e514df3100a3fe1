"""Board and device table for the open toolchain (amaranth-boards + YoWASP).

``BOARDS`` maps a board name to its amaranth-boards platform class and the device figures
``synthesize`` needs for an out-of-board run of the same chip. ``DEVICES`` maps a
``(family, device)`` pair to the nextpnr options and the package used when none is given.

===============  ===================================  ======  =======  ========  =====  =====
board            platform class                       family  device   package   speed  clock
===============  ===================================  ======  =======  ========  =====  =====
ulx3s-85f        ulx3s.ULX3S_85F_Platform             ecp5    85k      CABGA381  6      25 MHz
orangecrab-85f   orangecrab_r0_2.OrangeCrabR0_2_85F…  ecp5    85k      CSFBGA285 8      48 MHz
icebreaker       icebreaker.ICEBreakerPlatform        ice40   up5k     sg48      -      12 MHz
===============  ===================================  ======  =======  ========  =====  =====
"""

from __future__ import annotations

import dataclasses
import importlib

__all__ = ["BOARDS", "DEVICES", "Board", "DeviceInfo", "get_board", "get_device"]


@dataclasses.dataclass(frozen=True)
class DeviceInfo:
    family: str               # "ecp5" | "ice40"
    device: str               # nextpnr device flag without dashes: "85k", "25k", "up5k", "hx8k"
    package: str              # nextpnr --package value
    speed: str | None         # ECP5 speed grade ("6", "7", "8"); None for iCE40
    io_available: int         # user I/O pins of that package (for the wrap_io "auto" decision)
    has_dsp: bool


DEVICES: dict[tuple[str, str], DeviceInfo] = {
    ("ecp5", "25k"): DeviceInfo("ecp5", "25k", "CABGA381", "6", 197, True),
    ("ecp5", "45k"): DeviceInfo("ecp5", "45k", "CABGA381", "6", 203, True),
    ("ecp5", "85k"): DeviceInfo("ecp5", "85k", "CABGA381", "6", 205, True),
    ("ice40", "up5k"): DeviceInfo("ice40", "up5k", "sg48", None, 39, True),
    ("ice40", "hx8k"): DeviceInfo("ice40", "hx8k", "ct256", None, 206, False),
    ("ice40", "hx1k"): DeviceInfo("ice40", "hx1k", "tq144", None, 95, False),
}


def get_device(family: str, device: str | None = None) -> DeviceInfo:
    family = family.lower()
    if device is None:
        device = {"ecp5": "85k", "ice40": "up5k"}.get(family, "")
    key = (family, device.lower().removeprefix("lfe5u-").removesuffix("f"))
    if key not in DEVICES and (family, device.lower()) in DEVICES:
        key = (family, device.lower())
    if key not in DEVICES:
        raise ValueError(f"unknown device {family}/{device}; known: "
                         f"{', '.join(f'{f}/{d}' for f, d in DEVICES)}")
    return DEVICES[key]


@dataclasses.dataclass(frozen=True)
class Board:
    name: str
    module: str               # amaranth_boards submodule
    platform: str             # platform class name in that module
    device: DeviceInfo
    package: str              # package as nextpnr spells it for this board
    speed: str | None
    clock_mhz: float          # default_clk frequency

    def platform_class(self):
        return getattr(importlib.import_module(f"amaranth_boards.{self.module}"), self.platform)


BOARDS: dict[str, Board] = {
    "ulx3s-85f": Board("ulx3s-85f", "ulx3s", "ULX3S_85F_Platform",
                       DEVICES[("ecp5", "85k")], "CABGA381", "6", 25.0),
    "orangecrab-85f": Board("orangecrab-85f", "orangecrab_r0_2", "OrangeCrabR0_2_85FPlatform",
                            DEVICES[("ecp5", "85k")], "CSFBGA285", "8", 48.0),
    "icebreaker": Board("icebreaker", "icebreaker", "ICEBreakerPlatform",
                        DEVICES[("ice40", "up5k")], "sg48", None, 12.0),
}


def get_board(name: str) -> Board:
    try:
        return BOARDS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown board {name!r}; known: {', '.join(BOARDS)}") from None
