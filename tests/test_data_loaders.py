"""Dataset loaders on tiny fixtures in the exact LaSOT / GOT-10k / OTB layouts."""

import numpy as np
import pytest
from PIL import Image

from spiketrack.model.data import datasets
from spiketrack.model.data.sequence import Sequence


def _imgs(folder, n, fmt="{:08d}.jpg", size=(40, 30)):
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        Image.new("RGB", size, (i * 10, 0, 0)).save(folder / fmt.format(i))


def test_read_boxes_separators(tmp_path):
    f = tmp_path / "gt.txt"
    f.write_text("1,2,3,4\n5 6 7 8\n9\t10\t11\t12\n\nNaN,NaN,NaN,NaN\n")
    b = datasets.read_boxes(f)
    assert b.shape == (4, 4)
    np.testing.assert_array_equal(b[:3], [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]])
    assert np.isnan(b[3]).all()
    f.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="gt.txt:1: expected 4 numbers"):
        datasets.read_boxes(f)
    f.write_text("1,2,3,4\n1,2,x,4\n")
    with pytest.raises(ValueError, match="gt.txt:2: cannot parse box"):
        datasets.read_boxes(f)
    assert datasets.parse_box_line(" 1;2 3,\t4 ") == [1, 2, 3, 4]


def test_lasot_layout(tmp_path):
    seq = tmp_path / "airplane" / "airplane-1"
    _imgs(seq / "img", 4)
    (seq / "groundtruth.txt").write_text("1,2,10,12\n2,3,10,12\n0,0,0,0\n4,5,10,12\n")
    (seq / "full_occlusion.txt").write_text("0,0,1,0")
    (seq / "out_of_view.txt").write_text("0,1,0,0")
    seqs = datasets.load_lasot(tmp_path)
    assert [s.name for s in seqs] == ["airplane-1"]
    s = seqs[0]
    assert len(s) == 4 and s.boxes.shape == (4, 4)
    np.testing.assert_array_equal(s.visible, [True, False, False, True])
    assert s.frame(0).shape == (30, 40, 3) and s.frame(0).dtype == np.uint8
    # a single category folder works too
    assert len(datasets.load_lasot(tmp_path / "airplane")) == 1


def test_got10k_layout_and_test_split(tmp_path):
    for split, names in (("train", ["GOT-10k_Train_000001"]), ("test", ["GOT-10k_Test_000001"])):
        (tmp_path / split).mkdir(parents=True)
        (tmp_path / split / "list.txt").write_text("\n".join(names) + "\n")
        for n in names:
            _imgs(tmp_path / split / n, 3)
    tr = tmp_path / "train" / "GOT-10k_Train_000001"
    (tr / "groundtruth.txt").write_text("1,1,5,5\n2,2,5,5\n3,3,5,5\n")
    (tr / "absence.label").write_text("0\n1\n0\n")
    (tr / "cover.label").write_text("8\n0\n3\n")
    s = datasets.load_got10k(tmp_path, "train")[0]
    np.testing.assert_array_equal(s.visible, [True, False, True])
    assert list(s.meta["cover"]) == [8, 0, 3]
    te = tmp_path / "test" / "GOT-10k_Test_000001"
    (te / "groundtruth.txt").write_text("1,1,5,5\n")
    s = datasets.load_got10k(tmp_path / "test")[0]
    assert len(s) == 3 and s.boxes.shape == (3, 4)
    assert np.isnan(s.boxes[1:]).all() and s.visible.tolist() == [True, False, False]


@pytest.mark.parametrize("sep", [",", " ", "\t"])
def test_otb_layout(tmp_path, sep):
    d = tmp_path / "Basketball"
    _imgs(d / "img", 3, fmt="{:04d}.jpg")
    (d / "groundtruth_rect.txt").write_text("\n".join(sep.join(["1", "2", "3", "4"]) for _ in range(3)))
    s = datasets.load_otb(tmp_path)[0]
    assert s.name == "Basketball" and len(s) == 3
    np.testing.assert_array_equal(s.boxes[0], [1, 2, 3, 4])


def test_missing_and_bad_specs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        datasets.load_lasot(tmp_path / "nope")
    with pytest.raises(FileNotFoundError):
        datasets.load_otb(tmp_path)  # empty folder
    with pytest.raises(ValueError, match="unknown dataset"):
        datasets.load_eval_dataset("vot:x")
    kind, seqs = datasets.load_eval_dataset("synthetic", max_seqs=2)
    assert kind == "synthetic" and len(seqs) == 2


def test_max_frames_cuts_each_sequence_to_its_first_frames(tmp_path, capsys):
    """load_eval_dataset(max_frames=): each sequence's first N frames, boxes and visibility, the
    frames unchanged (rendered or read from files); eval refuses --max-frames below 2 by name."""
    from spiketrack.cli import main

    _, full = datasets.load_eval_dataset("synthetic", max_seqs=2)
    _, cut = datasets.load_eval_dataset("synthetic", max_seqs=2, max_frames=5)
    for a, b in zip(full, cut):
        assert len(b) == 5 < len(a) and b.name == a.name
        assert np.array_equal(b.boxes, a.boxes[:5]) and np.array_equal(b.visible, a.visible[:5])
        assert np.array_equal(b.frame(4), a.frame(4))
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i}.png")
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(paths[-1])
    s = Sequence("files", paths, [[1, 1, 2, 2]] * 4)
    h = s.head(3)
    assert len(h) == 3 and h.frames == paths[:3] and int(h.frame(2)[0, 0, 0]) == 80
    assert len(s.head(10)) == 4
    assert main(["eval", "--max-frames", "1", "--json"]) == 2
    assert "--max-frames must be at least 2" in capsys.readouterr().err


def test_unreadable_image(tmp_path):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"not an image")
    s = Sequence("s", [bad], [[0, 0, 1, 1]])
    with pytest.raises(ValueError, match="cannot read image"):
        s.frame(0)
