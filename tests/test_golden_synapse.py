"""§IS-4 / §IS-8 / §IS-9 / §IS-11: golden accumulation against independent float64 reference ops."""

import torch
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from spiketrack.quant.golden.expansion import binary_collapse, binary_expand
from spiketrack.quant.golden.memory import attention_acc, memory_build, retrieve, spike_product
from spiketrack.quant.golden.resample import avg_pool_pow2, upsample_nearest
from spiketrack.quant.golden.synapse import acc_bound, conv2d_acc, level_times_weight, linear_acc, stem_bitplane_acc


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.sampled_from([1, 3, 5]), st.integers(1, 2), st.integers(0, 2), st.integers(0, 10**6))
def test_conv2d_acc_equals_float64_conv(groups, ksize, stride, padding, seed):
    g = torch.Generator().manual_seed(seed)
    cin, cout = 2 * groups, 3 * groups
    k = torch.randint(0, 5, (2, cin, 7, 6), generator=g)
    w = torch.randint(-127, 128, (cout, cin // groups, ksize, ksize), generator=g)
    b = torch.randint(-1000, 1000, (cout,), generator=g)
    ref = F.conv2d(k.double(), w.double(), b.double(), stride=stride, padding=padding, groups=groups)
    assert torch.equal(conv2d_acc(k, w, b, stride, padding, groups), ref.long())


def test_level_times_weight_is_product():
    k = torch.arange(0, 5).view(-1, 1)
    w = torch.arange(-127, 128).view(1, -1)
    assert torch.equal(level_times_weight(k, w), k * w)


def test_linear_and_stem():
    g = torch.Generator().manual_seed(3)
    k = torch.randint(0, 5, (1, 8, 10), generator=g)
    w = torch.randint(-8, 8, (5, 8), generator=g)
    assert torch.equal(linear_acc(k, w), torch.einsum("oc,ncl->nol", w.double(), k.double()).long())
    p = torch.randint(0, 256, (1, 3, 12, 12), generator=g)
    ws = torch.randint(-127, 128, (4, 3, 7, 7), generator=g)
    assert torch.equal(stem_bitplane_acc(p, ws), F.conv2d(p.double(), ws.double(), stride=2, padding=3).long())


def test_acc_bound_covers_worst_case():
    w = torch.tensor([[[[3, -4]]], [[[1, 1]]]])
    assert acc_bound(w, torch.tensor([5, -2])).tolist() == [5 + 4 * 7, 2 + 4 * 2]


def test_memory_and_retrieval_against_float_matmul():
    g = torch.Generator().manual_seed(4)
    K = torch.randint(0, 5, (2, 4, 16), generator=g)
    V = torch.randint(0, 5, (2, 8, 16), generator=g)
    Q = torch.randint(0, 5, (2, 4, 16), generator=g)
    M = memory_build(K, V)
    assert torch.equal(M.double(), K.double() @ V.double().transpose(1, 2))
    assert torch.equal(retrieve(Q, M).double(), M.double().transpose(1, 2) @ Q.double())
    assert torch.equal(attention_acc(Q, K, V), retrieve(Q, M))
    a, b = torch.meshgrid(torch.arange(5), torch.arange(5), indexing="ij")
    assert torch.equal(spike_product(a, b), a * b)


def test_binary_expansion_is_exact_for_every_layer_type():
    g = torch.Generator().manual_seed(5)
    k = torch.randint(0, 5, (1, 4, 6, 6), generator=g)
    planes = binary_expand(k)
    assert planes.shape[0] == 4 and int(planes.max()) <= 1
    assert torch.equal(binary_collapse(planes), k)
    # k×k, strided, grouped, depthwise and 1×1 convolutions (linear layers are 1×1 over tokens)
    for shape, stride, pad, groups in (((3, 4, 3, 3), 1, 1, 1), ((6, 4, 3, 3), 2, 1, 1), ((6, 2, 3, 3), 1, 1, 2),
                                       ((4, 1, 7, 7), 1, 3, 4), ((5, 4, 1, 1), 1, 0, 1)):
        w = torch.randint(-127, 128, shape, generator=g)
        assert torch.equal(sum(conv2d_acc(p, w, None, stride, pad, groups) for p in planes),
                           conv2d_acc(k, w, None, stride, pad, groups)), shape
    wl = torch.randint(-127, 128, (5, 4), generator=g)
    kl = k.reshape(1, 4, 36)
    assert torch.equal(sum(linear_acc(p, wl) for p in binary_expand(kl)), linear_acc(kl, wl))
    # retrieval: binary query planes against an integer memory
    Q = torch.randint(0, 5, (2, 4, 9), generator=g)
    M = torch.randint(0, 400, (2, 4, 8), generator=g)
    assert torch.equal(sum(retrieve(p, M) for p in binary_expand(Q)), retrieve(Q, M))
    K = torch.randint(0, 5, (1, 4, 9), generator=g)
    V = torch.randint(0, 5, (1, 8, 9), generator=g)
    pk, pv = binary_expand(K), binary_expand(V)
    assert torch.equal(sum(memory_build(a, b) for a in pk for b in pv), memory_build(K, V))


def test_pool_and_upsample():
    x = torch.tensor([[[[1, 2], [3, 5]]]])  # sum 11 -> 11/4 = 2.75 -> 3
    y, n = avg_pool_pow2(x, 2, 8)
    assert y.tolist() == [[[[3]]]] and n == 0
    assert upsample_nearest(y, 2).tolist() == [[[[3, 3], [3, 3]]]]
