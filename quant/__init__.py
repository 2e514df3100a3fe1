"""spiketrack.quant"""
