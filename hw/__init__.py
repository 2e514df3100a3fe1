"""spiketrack.hw"""
