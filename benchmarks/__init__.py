"""The project's benchmarks: ``spiketrack bench`` (:mod:`.suite`, docs/bench.md) and the older
stand-alone scripts ``bench_*.py`` (run as ``python benchmarks/bench_<name>.py``)."""
