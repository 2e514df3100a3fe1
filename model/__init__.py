"""spiketrack.model"""

from spiketrack.model.configs import SpikeTrackConfig, get_config, list_configs
from spiketrack.model.spiketrack import SpikeTrack, build_model

__all__ = ["SpikeTrack", "SpikeTrackConfig", "build_model", "get_config", "list_configs"]
