"""Tracking data: synthetic generator, dataset loaders, training sampler and crops."""
