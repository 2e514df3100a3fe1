"""Exact cycle model of :class:`spiketrack.hw.spike_encoder.SpikeEncoder`.

``counters.busy`` for maps offered back to back (no input gaps, output always ready):

    2 + Σ_words max(1, non-zero lanes of the word)

(one cycle to take the first word, one cycle per event or per all-zero word, one cycle for the
held final event). Maps that follow each other without a gap overlap by 2 cycles (the next map's
first word is taken while the previous map's last word and final event leave), which the sum over
all words already gives. Input gaps inside a map and output backpressure add one cycle each,
counted by the encoder itself, so for one map ``busy == encoder_cycles(words) + stall_in +
stall_out`` under any timing (a gap *between* maps ends the overlap: then each map costs its own
``2 + Σ``).
"""

from __future__ import annotations

__all__ = ["word_events", "encoder_cycles"]


def word_events(word: dict) -> int:
    """Non-zero existing lanes of one level word."""
    return sum(1 for j, v in enumerate(word["levels"]) if v and word["mask"] >> j & 1)


def encoder_cycles(words) -> int:
    """Busy cycles for a sequence of level words (one or more maps, back to back)."""
    return 2 + sum(max(1, word_events(w)) for w in words)
