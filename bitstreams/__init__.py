"""spiketrack.bitstreams"""
