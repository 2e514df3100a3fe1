"""Foldable ConvBN, count-domain mean fusion, attention matmuls, pooling/upsampling."""

import itertools
import math

import pytest
import torch

from spiketrack.model.layers import AvgPool, ConvBN, MemoryBuild, PosEmbed, Retrieve, Upsample
from spiketrack.model.mrm import GateFusion, MeanFusion
from spiketrack.model.neuron import NILIF


@pytest.mark.parametrize("cin,cout,k,stride,groups,bias", [(3, 8, 7, 2, 1, True), (8, 16, 3, 1, 1, False),
                                                           (12, 12, 3, 1, 12, False), (6, 4, 1, 1, 1, True)])
def test_convbn_fold_is_exact(cin, cout, k, stride, groups, bias):
    torch.manual_seed(0)
    m = ConvBN(cin, cout, k, stride, groups, bias)
    with torch.no_grad():
        m.bn.running_mean.normal_()
        m.bn.running_var.uniform_(0.2, 3.0)
        m.bn.weight.normal_()
        m.bn.bias.normal_()
    m.eval()
    x = torch.randn(2, 3, cin, 16, 16)
    y = m(x)
    f = m.fold()
    assert isinstance(f, torch.nn.Conv2d) and f.bias is not None
    y2 = f(x.flatten(0, 1)).unflatten(0, (2, 3))
    assert torch.allclose(y, y2, atol=1e-5, rtol=1e-5)
    assert (y - y2).abs().max() < 1e-4 * y.abs().max()


@pytest.mark.parametrize("T", [2, 3])
def test_mean_fusion_integer_count_domain(T):
    D = 4
    combos = torch.tensor(list(itertools.product(range(D + 1), repeat=T)), dtype=torch.float32)  # [M, T]
    s = (combos.t() / D).view(T, 1, -1, 1, 1)
    out = MeanFusion(D)(s)
    assert out.shape == (1, 1, combos.shape[0], 1, 1)
    k = (out.view(-1) * D)
    expect = [min(max(math.floor(sum(c) / T + 0.5), 0), D) for c in combos.tolist()]
    assert k.tolist() == expect
    # ties round up: T=2, k=(1,2) -> mean 1.5 -> 2
    if T == 2:
        assert float(MeanFusion(D)(torch.tensor([0.25, 0.5]).view(2, 1, 1, 1, 1))) == 0.5


def test_mean_fusion_gradient_is_mean():
    s = torch.rand(3, 1, 2, 2, 2).requires_grad_()
    MeanFusion(4)(s).sum().backward()
    assert torch.allclose(s.grad, torch.full_like(s, 1 / 3))


def test_gate_fusion_shapes():
    g = GateFusion(16, NILIF)
    s = torch.randint(0, 5, (3, 2, 6, 4, 4)).float() / 4
    out = g(s)
    assert out.shape == (1, 2, 6, 4, 4)
    assert torch.all((out * 4) == (out * 4).round())


def test_memory_and_retrieval_match_einsum():
    torch.manual_seed(0)
    T, B, h, dh, dv, H, W = 2, 3, 4, 4, 8, 5, 5
    k = torch.randint(0, 5, (T, B, h * dh, H, W)).float() / 4
    v = torch.randint(0, 5, (T, B, h * dv, H, W)).float() / 4
    q = torch.randint(0, 5, (T, B, h * dh, H, W)).float() / 4
    m = MemoryBuild(h)(k, v)
    assert m.shape == (T, B, h, dh, dv)
    ref = torch.einsum("tbhcn,tbhjn->tbhcj", k.reshape(T, B, h, dh, -1), v.reshape(T, B, h, dv, -1))
    assert torch.equal(m, ref)
    r = Retrieve(h, 0.5)(q, m)
    ref_r = 0.5 * torch.einsum("tbhcn,tbhcj->tbhjn", q.reshape(T, B, h, dh, -1), m).reshape(T, B, h * dv, H, W)
    assert torch.allclose(r, ref_r)


def test_pool_upsample_posembed():
    x = torch.arange(16.0).view(1, 1, 1, 4, 4)
    p = AvgPool(2)(x)
    assert p.view(-1).tolist() == [2.5, 4.5, 10.5, 12.5]
    u = Upsample(2, "nearest")(p)
    assert u.shape == x.shape and u[0, 0, 0, 1, 1] == 2.5 and u[0, 0, 0, 3, 3] == 12.5
    with pytest.raises(ValueError, match="upsample mode"):
        Upsample(2, "bicubic")
    pe = PosEmbed(1, 4, 4, 2)
    with torch.no_grad():
        pe.pos_embed_template[0].fill_(1)
        pe.pos_embed_template[1].fill_(2)
        pe.pos_embed_search.fill_(5)
    z = pe(torch.zeros(3, 1, 1, 4, 4), "template")
    assert z[:, 0, 0, 0, 0].tolist() == [1, 2, 2]  # slot min(t, slots-1)
    assert float(pe(torch.zeros(1, 1, 1, 4, 4), "search").detach().mean()) == 5
