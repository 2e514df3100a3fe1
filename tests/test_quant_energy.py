"""Operation counts against hand-computed cases, and the energy conventions' arithmetic."""

import numpy as np
import pytest
import torch

from spiketrack.quant.energy import E_AC_PJ, E_MAC_PJ, count_ops, energy_report
from spiketrack.quant.executor import run_network
from spiketrack.quant.ir import IntegerNetwork, Layer


def _net(w):
    return IntegerNetwork([Layer("c", "conv", ["x"], {"stride": 1, "padding": 1, "groups": 1}, {"weight": w})], ["x"], ["c"])


def test_sops_count_spikes_times_fanout_with_borders():
    w = np.ones((2, 1, 3, 3), dtype=np.int8)
    net = _net(w)
    x = torch.zeros(1, 1, 1, 3, 3, dtype=torch.int64)
    x[0, 0, 0, 0, 0] = 3   # corner: reaches 4 output positions x 2 channels, level 3
    x[0, 0, 0, 1, 1] = 1   # centre: reaches 9 positions x 2 channels
    res = run_network(net, {"x": x}, dump=True)
    rows = count_ops(net, res.tensors, {"x": x})
    assert rows[0]["sops"] == 3 * 4 * 2 + 1 * 9 * 2
    assert rows[0]["macs"] == 2 * 9 * 1 * 9


def test_retrieve_and_memory_build_counts():
    net = IntegerNetwork([Layer("m", "memory_build", ["k", "v"], {"heads": 1}), Layer("r", "retrieve", ["q", "m"], {"heads": 1})],
                         ["k", "v", "q"], ["r"])
    k = torch.tensor([2, 0, 1, 1]).view(1, 1, 2, 1, 2)      # d_h=2, N=2
    v = torch.tensor([1, 3, 0, 4, 2, 2]).view(1, 1, 3, 1, 2)  # d_v=3
    q = torch.tensor([4, 0, 0, 1]).view(1, 1, 2, 1, 2)
    res = run_network(net, {"k": k, "v": v, "q": q}, dump=True)
    rows = {r["layer"]: r for r in count_ops(net, res.tensors, {"k": k, "v": v, "q": q})}
    assert rows["m"]["sops"] == int(res.tensors["m"].sum())
    assert rows["r"]["sops"] == (4 + 1) * 3
    assert rows["r"]["macs"] == 4 * 3


def test_energy_conventions():
    rows = [{"layer": "s", "op": "stem_conv", "sops": 10, "macs": 100, "dense": True},
            {"layer": "c", "op": "conv", "sops": 1000, "macs": 5000, "dense": False}]
    rep = energy_report(rows)
    assert rep["snn_mj"] == pytest.approx((1000 * E_AC_PJ + 100 * E_MAC_PJ) * 1e-9)
    assert rep["ann_mj"] == pytest.approx(5100 * E_MAC_PJ * 1e-9)
    assert rep["ratio"] == pytest.approx(5100 * 4.6 / (1000 * 0.9 + 100 * 4.6))
    assert rep["with_memory"]["snn_mj"] > rep["integer"]["snn_mj"]
