"""spiketrack.model"""
