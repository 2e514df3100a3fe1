"""A got10k-toolkit ``Tracker`` around :class:`~spiketrack.model.tracker.SpikeTrackTracker`.

The toolkit (``pip install got10k``) calls ``init(image, box)`` and ``update(image) -> box`` with
PIL images and x, y, w, h boxes, and runs its own experiments (``ExperimentGOT10k``,
``ExperimentLaSOT``, ``ExperimentOTB`` ...)::

    from got10k.experiments import ExperimentGOT10k
    from spiketrack.model.checkpoint import model_from_checkpoint
    from spiketrack.model.got10k_tracker import GOT10kTracker

    model, _ = model_from_checkpoint("runs/s256-t3.pt")
    ExperimentGOT10k("data/GOT-10k", subset="val").run(GOT10kTracker(model, dataset="got10k"))

The boxes are the ones ``spiketrack eval`` writes for the same frames and settings.
"""

from __future__ import annotations

import numpy as np

from spiketrack.model.tracker import SpikeTrackTracker

try:
    from got10k.trackers import Tracker as _ToolkitTracker
except ImportError:  # the toolkit is optional: the adapter then has the same API without the base class
    _ToolkitTracker = object


def _rgb(image) -> np.ndarray:
    """A PIL image or an H x W x 3 array as an H x W x 3 uint8 RGB array."""
    if hasattr(image, "convert"):
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image))


class GOT10kTracker(_ToolkitTracker):
    """got10k ``Tracker`` running a SpikeTrack model.

    Parameters
    ----------
    model : SpikeTrack model (e.g. from ``model_from_checkpoint``).
    name : str
        Name under which the toolkit stores results.
    **kwargs
        :class:`SpikeTrackTracker` options: ``dataset`` (template-update gate), ``update_interval``,
        ``update_threshold``, ``size_lr``, ``device``.
    """

    def __init__(self, model, name: str = "SpikeTrack", **kwargs):
        if _ToolkitTracker is not object:
            super().__init__(name=name, is_deterministic=True)
        else:
            self.name, self.is_deterministic = name, True
        self.tracker = SpikeTrackTracker(model, **kwargs)

    def init(self, image, box) -> None:
        self.tracker.init(_rgb(image), box)

    def update(self, image) -> np.ndarray:
        return self.tracker.update(_rgb(image))
