"""The accelerator as a tracking backend (sim/accel_tracking.py): the tracker runs its template pass
and search frames on the simulated accelerator and gets the golden model's boxes."""

import numpy as np
import pytest

from spiketrack.compiler.accel import lower_to_accel
from spiketrack.model.tracker import SpikeTrackTracker
from spiketrack.quant.tracking import ArtifactTracking
from spiketrack.sim.accel_sim import run_session
from spiketrack.sim.accel_tracking import AcceleratorTracking
from spiketrack.sim.reduced import MOVING_TEXTURE_BOX, moving_texture, reduced_network

INIT = ",".join(str(int(v)) for v in MOVING_TEXTURE_BOX)   # the --init box of the CLI runs


@pytest.mark.slow   # amaranth.sim, about 510 s (`make bench`); the default suite tracks on the RTL
# through test_track_backend_rtl_gives_the_golden_boxes (Verilator, the same AcceleratorTracking)
def test_the_tracker_on_the_accelerator_gets_the_golden_boxes():
    """The tracking backend on the RTL, the template crop written band by band (3 bands) and the
    template pass's positional tables streamed (5 tables)."""
    net, _ = reduced_network()
    ap = lower_to_accel(net, 8, stem_band_rows=3)
    writes = [w[0] for r in ap.runs("template_update") for w in r.writes]
    assert writes == ["band"] * 3 + ["table"] * 5
    frames, box = moving_texture(2), np.array(MOVING_TEXTURE_BOX)
    golden = SpikeTrackTracker(ArtifactTracking(net))
    golden.init(frames[0], box)
    want = [golden.update(f) for f in frames[1:]]

    def session(drv, state):
        model = AcceleratorTracking(net, ap, drv, load=False, check=True)
        t = SpikeTrackTracker(model)
        t.init(frames[0], box)
        return [t.update(f) for f in frames[1:]], model.reports

    got, reports = run_session(ap, session, preload={m: ap.images[m] for m in ("prog", "w", "tab", "cst")})
    assert [r["pass"] for r in reports] == ["template_update", "search_frame"]
    assert reports[1]["mismatches"] == 0
    assert all(r["cycles"] == r["predicted"] > 0 for r in reports)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_the_accelerator_backend_refuses_host_side_memories():
    net, _ = reduced_network()
    ap = lower_to_accel(net, 8)

    class NoDevice:
        def write(self, *a):
            pass

        def guard(self, *a):
            pass

    model = AcceleratorTracking(net, ap, NoDevice(), load=False)
    import torch
    with pytest.raises(ValueError, match="memories on the device"):
        model.encode_search(torch.zeros(1, 3, 16, 16), [torch.zeros(1)])


def _frames_and_artifact(tmp_path, n: int):
    """The reduced network's artifact and ``n`` frames of the moving texture as PNG files."""
    from PIL import Image

    from spiketrack.quant.ir import save_artifact

    net, _ = reduced_network()
    art = save_artifact(net, tmp_path / "artifact")
    frames = tmp_path / "frames"
    frames.mkdir()
    for i, f in enumerate(moving_texture(n)):
        Image.fromarray(f).save(frames / f"{i:04d}.png")
    return art, frames


def _track(backend: str, art, frames, out, *extra) -> int:
    from spiketrack.cli import main

    return main(["track", "--backend", backend, "--artifact", str(art), "--frames", str(frames),
                 "--init", INIT, "--out", str(out)] + list(extra))


def test_track_backend_rtl_gives_the_golden_boxes(tmp_path, capsys):
    """`spiketrack track --backend rtl`: the tracker inside the cocotb process on the accelerator's
    Verilog (Verilator) writes exactly the boxes of `--backend golden`, and the annotated video. The
    same run with the weights in external memory is
    :func:`test_track_backend_rtl_with_external_weights` (`make bench`: its own Verilator build)."""
    art, frames = _frames_and_artifact(tmp_path, 4)
    outs = {b: tmp_path / f"{b}.txt" for b in ("golden", "rtl")}
    assert _track("golden", art, frames, outs["golden"]) == 0
    assert _track("rtl", art, frames, outs["rtl"], "--video", str(tmp_path / "rtl.mp4")) == 0
    assert "on the RTL ->" in capsys.readouterr().out
    golden, rtl = outs["golden"].read_text(), outs["rtl"].read_text()
    assert len(golden.splitlines()) == 4 and rtl == golden
    # the flag places the accelerator's weights: refused by name on the golden executor
    assert _track("golden", art, frames, tmp_path / "no.txt", "--external-weights") == 2
    assert "--external-weights" in capsys.readouterr().err and not (tmp_path / "no.txt").exists()
    from spiketrack.model.cli_track import iter_frames
    rendered = list(iter_frames(str(tmp_path / "rtl.mp4")))   # the annotated video: one frame per box
    assert len(rendered) == 4 and rendered[0].shape == moving_texture(1)[0].shape


@pytest.mark.slow   # its own Verilator build of the accelerator with external weights (~70 s in the
# default suite); the default suite runs that accelerator in test_reduced_network_with_weights_in_external_memory
def test_track_backend_rtl_with_external_weights(tmp_path, capsys):
    """`spiketrack track --backend rtl --external-weights`: the weights in external memory, the
    fetches overlapping the convolutions; exactly the boxes of `--backend golden`."""
    art, frames = _frames_and_artifact(tmp_path, 4)
    outs = {b: tmp_path / f"{b}.txt" for b in ("golden", "ext")}
    assert _track("golden", art, frames, outs["golden"]) == 0
    assert _track("rtl", art, frames, outs["ext"], "--external-weights") == 0
    assert "on the RTL (weights in external memory)" in capsys.readouterr().out
    golden = outs["golden"].read_text()
    assert len(golden.splitlines()) == 4 and outs["ext"].read_text() == golden


def test_verify_network_on_the_accelerator_checks_every_layer():
    """`verify --network --sim verilator`: every node of a template pass and a search frame runs
    alone on the accelerator top's Verilog, its output read back equal to the golden run and its
    cycles equal to the model."""
    import torch

    from spiketrack.sim.verify import _network_on_accelerator

    net, cfg = reduced_network()
    g = torch.Generator().manual_seed(3)
    inputs = [(torch.randint(0, 256, (cfg.timesteps, 1, 3, cfg.template_size, cfg.template_size), generator=g),
               torch.randint(0, 256, (1, 1, 3, cfg.search_size, cfg.search_size), generator=g))]
    out = _network_on_accelerator(net, inputs)
    ap = lower_to_accel(net, 8)
    assert out["nodes_checked"] == len(ap.nodes)
    assert out["layers_checked"] == out["layers_total"] == sum(len(n.layers) for n in ap.nodes)
    assert out["mismatches"] == 0 and out["first_mismatch"] is None and out["cycle_model_exact"]
    assert out["cycles"]["template_update"] > out["cycles"]["search_frame"][0] > 0


def test_eval_backend_rtl_gives_the_golden_results(tmp_path, capsys):
    """`spiketrack eval --backend rtl`: the one-pass evaluation with the tracker on the accelerator's
    Verilog writes the same per-frame boxes and the same AUC as `--backend golden`."""
    import json

    from spiketrack.cli import main
    from spiketrack.quant.ir import save_artifact

    net, _ = reduced_network()
    art = save_artifact(net, tmp_path / "artifact")
    res = {}
    for backend in ("golden", "rtl"):
        assert main(["eval", "--backend", backend, "--artifact", str(art), "--dataset", "synthetic", "--max-seqs", "1",
                     "--max-frames", "30", "--out-dir", str(tmp_path / backend), "--json"]) == 0
        res[backend] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["rtl"]["frames"] == res["golden"]["frames"] == 30
    assert res["rtl"]["auc"] == res["golden"]["auc"] and res["rtl"]["search_cycles"] > 0
    boxes = {b: sorted((tmp_path / b / "lasot").glob("*.txt")) for b in res}
    assert [p.name for p in boxes["rtl"]] == [p.name for p in boxes["golden"]] and boxes["rtl"]
    for g, r in zip(boxes["golden"], boxes["rtl"]):
        assert r.read_text() == g.read_text(), r.name
