"""SpikeTrack top model: cached vs joint graph, unidirectional flow, validation, head, loss."""

import pytest
import torch

from spiketrack.model import SpikeTrack, build_model, get_config
from spiketrack.model.loss import gaussian_heatmap, tracking_loss
from spiketrack.model.neuron import FiringRateMonitor

B = 2


def _inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(cfg.timesteps, B, 3, cfg.template_size, cfg.template_size, generator=g)
    x = torch.randn(B, 3, cfg.search_size, cfg.search_size, generator=g)
    return z, x


def _model(name, **kw):
    torch.manual_seed(0)
    m = build_model(get_config(name, **kw))
    # non-trivial BN statistics so that the eval-mode network is not near-identity
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_var.uniform_(0.3, 1.0)
                mod.weight.uniform_(1.0, 3.0)
                mod.bias.uniform_(0.0, 1.0)
            if hasattr(mod, "pos_embed_search"):
                mod.pos_embed_search.normal_(0, 0.5)
                mod.pos_embed_template.normal_(0, 0.5)
    return m.eval()


@pytest.fixture(scope="module")
def edge_t1():
    return _model("edge-t1")


@pytest.fixture(scope="module")
def edge_t3():
    return _model("edge-t3")


@pytest.mark.parametrize("name", ["edge-t1", "edge-t3"])
def test_cached_equals_joint(name, edge_t1, edge_t3):
    m = edge_t1 if name == "edge-t1" else edge_t3
    z, x = _inputs(m.cfg)
    with torch.no_grad():
        joint = m(z, x)
        mem = m.encode_template(z)
        cached = m.encode_search(x, mem)
    cfg = m.cfg
    assert len(mem) == 3
    for mm, dim in zip(mem, (cfg.dims[1], cfg.dims[2], cfg.dims[3])):
        assert mm.shape == (cfg.timesteps, B, dim // 16, 16, 32)  # [T,B,heads,d_h,d_v]
    h = cfg.feat_size
    assert joint["score_map"].shape == (B, 1, h, h)
    assert joint["size_map"].shape == (B, 2, h, h) and joint["offset_map"].shape == (B, 2, h, h)
    for k in joint:
        assert torch.equal(joint[k], cached[k]), k
    # the output really depends on the memories (else the test above would be vacuous)
    other = m.encode_template(_inputs(m.cfg, seed=5)[0])
    assert not torch.equal(m.encode_search(x, other)["score_map"], cached["score_map"])


def test_search_never_changes_template_side(edge_t3):
    m = edge_t3
    z, x1 = _inputs(m.cfg)
    x2 = torch.randn_like(x1) * 2
    records = []

    def hook(mod, inp, out):
        if m.backbone.current_branch == "template" and isinstance(out, torch.Tensor):
            records[-1].append(out.detach().clone())

    handles = [mod.register_forward_hook(hook) for mod in m.modules() if mod is not m]
    try:
        outs = []
        for x in (x1, x2):
            records.append([])
            with torch.no_grad():
                outs.append(m(z, x))
    finally:
        for h in handles:
            h.remove()
    a, b = records
    assert len(a) == len(b) and len(a) > 100
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(outs[0]["score_map"], outs[1]["score_map"])
    with torch.no_grad():
        assert all(torch.equal(u, v) for u, v in zip(m.encode_template(z), m.encode_template(z.clone())))


def test_template_timesteps_are_coupled(edge_t3):
    """Membrane state couples the T templates: the memory at t=2 depends on template 0."""
    z, _ = _inputs(edge_t3.cfg)
    z2 = z.clone()
    z2[0] = torch.randn_like(z2[0])
    with torch.no_grad():
        a, b = edge_t3.encode_template(z)[-1], edge_t3.encode_template(z2)[-1]
    assert not torch.equal(a[2], b[2])


def test_bad_inputs(edge_t3):
    m, cfg = edge_t3, edge_t3.cfg
    z, x = _inputs(cfg)
    with pytest.raises(ValueError, match=r"search image must be 3x128x128 for edge-t3, got 3x120x128"):
        m.encode_search(x[:, :, :120], m.encode_template(z))
    with pytest.raises(ValueError, match=r"3 channels.*got 4"):
        m(z, torch.zeros(B, 4, 128, 128))
    with pytest.raises(ValueError, match=r"template image must be 3x128x128 for edge-t3, got 3x64x64"):
        m.encode_template(z[..., :64, :64])
    with pytest.raises(ValueError, match=r"rank 4"):
        m.encode_template(z[0])
    with pytest.raises(ValueError, match=r"search image must be a 4-D tensor.*rank 3"):
        m.encode_search(x[0], [])
    with pytest.raises(ValueError, match=r"T=4 timesteps; at most 3"):
        m.encode_template(torch.cat([z, z[:1]]))
    with pytest.raises(ValueError, match=r"T=2 timesteps but edge-t3 expects T=3"):
        m(z[:2], x)
    mem = m.encode_template(z)
    with pytest.raises(ValueError, match=r"memory 0 has batch 2 but the search batch is 1"):
        m.encode_search(x[:1], mem)
    with pytest.raises(ValueError, match=r"list of 3 tensors"):
        m.encode_search(x, mem[:2])
    with pytest.raises(ValueError, match=r"float tensor"):
        m.encode_search(x.to(torch.uint8), mem)


def test_decode_box():
    h = 8
    score = torch.full((2, 1, h, h), -5.0)
    score[0, 0, 2, 5] = 5.0  # y=2, x=5
    score[1, 0, 0, 0] = 5.0
    score[1, 0, 4, 4] = 3.0
    size = torch.full((2, 2, h, h), 0.25)
    size[0, :, 2, 5] = torch.tensor([0.5, 0.3])
    offset = torch.zeros(2, 2, h, h)
    offset[0, :, 2, 5] = torch.tensor([0.5, 0.25])
    out = {"score_map": score, "size_map": size, "offset_map": offset}
    boxes, conf = SpikeTrack.decode_box(out)
    assert torch.allclose(boxes[0], torch.tensor([5.5 / 8, 2.25 / 8, 0.5, 0.3]))
    assert torch.allclose(boxes[1], torch.tensor([0.0, 0.0, 0.25, 0.25]))
    assert torch.allclose(conf[0], torch.sigmoid(torch.tensor(5.0)))
    window = torch.zeros(1, 1, h, h)
    window[..., 4, 4] = 1.0
    window[..., 2, 5] = 1.0
    boxes_w, conf_w = SpikeTrack.decode_box(out, window=window)
    assert torch.allclose(boxes_w[1], torch.tensor([0.5, 0.5, 0.25, 0.25]))  # windowed peak moved
    assert torch.allclose(conf_w[1], torch.sigmoid(torch.tensor(3.0)))


def test_loss_target_and_parts():
    gt = torch.tensor([[0.5, 0.5, 0.8, 0.8], [0.1, 0.8, 0.2, 0.3]])
    hm = gaussian_heatmap(gt, 8)
    assert hm[0, 0, 4, 4] == 1 and hm[1, 0, 6, 1] == 1  # round-half-up of c * 8
    assert float(hm.max()) == 1 and hm[0].sum() > 1
    # a perfect box at the peak -> GIoU and L1 vanish; focal is the only part left
    score = torch.log(hm / (1 - hm + 1e-6) + 1e-6).clamp(-9, 9) + 0.0
    size = torch.zeros(2, 2, 8, 8)
    offset = torch.zeros(2, 2, 8, 8)
    size[0, :, 4, 4] = torch.tensor([0.8, 0.8])
    size[1, :, 6, 1] = torch.tensor([0.2, 0.3])
    offset[1, :, 6, 1] = torch.tensor([-0.2, 0.4])
    total, parts = tracking_loss({"score_map": score, "size_map": size, "offset_map": offset}, gt)
    assert parts["giou"] < 1e-5 and parts["l1"] < 1e-6 and float(parts["iou"]) > 0.999
    assert torch.isclose(total, parts["focal"] + 2 * parts["giou"] + 5 * parts["l1"])
    with pytest.raises(ValueError, match=r"gt boxes must be \[B, 4\]"):
        tracking_loss({"score_map": score, "size_map": size, "offset_map": offset}, gt[:, :3])


def test_training_step_gradients():
    torch.manual_seed(0)
    m = build_model("edge-t3").train()
    z, x = _inputs(m.cfg)
    loss, parts = tracking_loss(m(z, x), torch.tensor([[0.5, 0.5, 0.3, 0.3], [0.4, 0.6, 0.2, 0.5]]))
    assert torch.isfinite(loss) and set(parts) >= {"focal", "giou", "l1"}
    loss.backward()
    named = dict(m.named_parameters())
    assert named["backbone.stem.conv.conv.weight"].grad.abs().sum() > 0
    assert named["backbone.mrm.0.k.conv.weight"].grad.abs().sum() > 0  # template side trains
    decay_grads = [p.grad for n, p in named.items() if "decay_logit" in n and p.grad is not None]
    assert any(g.abs().sum() > 0 for g in decay_grads)


@pytest.mark.parametrize("kw", [{"fusion": "gate", "upsample": "bilinear"}, {"ann": True}])
def test_variants_run(kw, edge_t3):
    m = _model("edge-t3", **kw)
    z, x = _inputs(m.cfg)
    with torch.no_grad():
        out = m(z, x)
        assert torch.equal(out["score_map"], m.encode_search(x, m.encode_template(z))["score_map"])
    assert sum(p.numel() for p in m.parameters()) >= sum(p.numel() for p in edge_t3.parameters())
    if kw.get("ann"):
        assert m.cfg.name == "edge-t3-ann"
        assert set(m.state_dict()) == set(edge_t3.state_dict())
        with FiringRateMonitor(m) as mon:
            with torch.no_grad():
                m(z, x)
        levels = {round(v * 4, 6) for vs in mon.rates().values() for v in vs}
        assert any(v != int(v) for v in levels)  # continuous activations


def test_firing_rates_per_branch(edge_t3):
    z, x = _inputs(edge_t3.cfg)
    with torch.no_grad():
        with FiringRateMonitor(edge_t3) as tmon:
            mem = edge_t3.encode_template(z)
        with FiringRateMonitor(edge_t3) as smon:
            edge_t3.encode_search(x, mem)
    t, s = tmon.rates(), smon.rates()
    assert len(s) > 50 and "head.sn_in" in s and "head.sn_in" not in t
    assert all(len(v) == 3 for v in t.values())  # T=3 template pass
    assert len(s["backbone.mrm.0.sn_q"]) == 3 and len(s["head.sn_in"]) == 1  # query expanded to T
    assert all(0 <= r <= 4 for d in (t, s) for v in d.values() for r in v)
    assert any(r > 0 for v in s.values() for r in v)
