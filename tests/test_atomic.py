"""Atomic writes: the old file survives a failed write, and no temporary file is left behind."""

import pytest

from spiketrack.atomic import write_bytes_atomic, write_text_atomic




def test_replace_and_no_leftovers(tmp_path):
    p = tmp_path / "sub" / "a.json"
    write_text_atomic(p, "old")
    write_text_atomic(p, "new")
    assert p.read_text() == "new"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    p = tmp_path / "ck.pt"
    write_bytes_atomic(p, b"good")

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("spiketrack.atomic.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_bytes_atomic(p, b"partial")
    assert p.read_bytes() == b"good"
    assert [x.name for x in tmp_path.iterdir()] == ["ck.pt"]
