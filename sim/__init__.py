"""spiketrack.sim"""
