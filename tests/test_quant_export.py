"""QONNX and ONNX-QCDQ exports reproduce the Brevitas model (slow: 1-6 minutes each; `make bench`)."""

import pytest

from spiketrack.quant.export import export_in_fresh_process


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["qcdq", "qonnx"])
def test_export_matches_brevitas(fmt, tmp_path):
    rep = export_in_fresh_process(fmt, str(tmp_path), config="edge-t1")
    assert rep["equal"], rep["max_abs_diff"]
    assert ("Quant" in rep["ops"]) if fmt == "qonnx" else ("QuantizeLinear" in rep["ops"])
