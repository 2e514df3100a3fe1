"""The SpikeTrack accelerator top: units, memories, program controller and host interface."""

from spiketrack.hw.accel.top import Accelerator

__all__ = ["Accelerator"]
