"""SDR SDRAM for the external-memory bus (:mod:`spiketrack.hw.extmem`): the controller
(:mod:`.controller`), a timing-checking chip model for ``amaranth.sim`` (:mod:`.model`), the
timing sets (:mod:`.timing`) and a bus bench (:mod:`.bench`). See docs/sdram.md."""

from .controller import COUNTER_NAMES, SDRAMController, SDRAMPinsSignature
from .model import SDRAMChipModel, SDRAMTimingError
from .timing import ULX3S_GEOMETRY, ULX3S_TIMINGS, CycleTimings, SDRAMGeometry, SDRAMTimings, cycles

__all__ = ["SDRAMController", "SDRAMPinsSignature", "COUNTER_NAMES", "SDRAMChipModel", "SDRAMTimingError",
           "SDRAMTimings", "SDRAMGeometry", "CycleTimings", "ULX3S_TIMINGS", "ULX3S_GEOMETRY", "cycles"]
