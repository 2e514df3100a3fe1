"""Spike event stream format shared by every spiking unit (encoder, synaptic core, memory unit).

A spike map of levels 0..D (docs/integer_semantics.md §IS-1) travels between units as a stream of
non-zero events. One packet is one spike map (one timestep of one layer input); the last event of
the packet has ``last`` set. An all-zero map is a packet with a single ``empty`` event (level 0)
so consumers still see the packet boundary.
"""

from amaranth.lib import data, stream

from spiketrack.quant.golden.neuron import D

__all__ = ["LEVEL_SHAPE", "event_layout", "event_stream", "packet_from_levels"]

LEVEL_SHAPE = range(D + 1)  #: unsigned 3 bits for D = 4


def event_layout(pos_bits: int, chan_bits: int) -> data.StructLayout:
    """Payload of one spike event.

    Members
    -------
    pos : unsigned(pos_bits)
        Flattened spatial position ``y * W + x`` (or token index ``n``).
    chan : unsigned(chan_bits)
        Input channel.
    level : unsigned(3)
        Spike level 1..D (0 only in an ``empty`` event).
    empty : 1
        The packet carries no spikes; ``pos``/``chan``/``level`` are don't-care.
    last : 1
        Last event of the packet (spike map).
    """
    return data.StructLayout({
        "pos": max(1, pos_bits),
        "chan": max(1, chan_bits),
        "level": LEVEL_SHAPE,
        "empty": 1,
        "last": 1,
    })


def event_stream(pos_bits: int, chan_bits: int) -> stream.Signature:
    """``stream.Signature`` of spike events (see :func:`event_layout`)."""
    return stream.Signature(event_layout(pos_bits, chan_bits))


def packet_from_levels(levels) -> list[dict]:
    """Reference event packet of a spike map ``levels[C, N]`` (``N`` = flattened positions).

    Non-zero entries in the order :class:`spiketrack.hw.spike_encoder.SpikeEncoder` emits them
    (position-major, channel ascending), each a dict with the fields of :func:`event_layout`;
    an all-zero map gives the single ``empty`` event. (A test/driver helper; accumulation order
    does not matter to any consumer, §IS-4.)
    """
    import torch

    lv = torch.as_tensor(levels)
    nz = torch.nonzero(lv.t())  # (pos, chan) pairs, position-major
    evs = [{"pos": int(n), "chan": int(c), "level": int(lv[c, n]), "empty": 0, "last": 0}
           for n, c in nz.tolist()]
    if not evs:
        evs = [{"pos": 0, "chan": 0, "level": 0, "empty": 1, "last": 0}]
    evs[-1]["last"] = 1
    return evs
