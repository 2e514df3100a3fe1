"""SpikeTrack: a spike-driven visual object tracker, from PyTorch to open FPGA hardware.

The co-design layers are importable as ``spiketrack.model``, ``spiketrack.quant``,
``spiketrack.hw``, ``spiketrack.sim`` and ``spiketrack.bitstreams``.
"""

__version__ = "0.1.0"
