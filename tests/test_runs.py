"""competition.modeling.runs: prediction files written whole, by one process or several."""

import numpy as np
import pytest

from competition.modeling import runs


def test_predictions_are_written_through_a_temporary_file_of_this_process_only(tmp_path, monkeypatch):
    path = tmp_path / "oof.npz"
    probs = np.full((2, 3), 1 / 3, np.float32)
    monkeypatch.setattr(runs.os, "getpid", lambda: 1111)
    # Another process half-way through writing the same file: its temporary file is not ours.
    other = tmp_path / ".oof.npz.2222.tmp.npz"
    other.write_bytes(b"half of another process's file")

    runs.save_predictions(path, ["a.wav", "b.wav"], probs)

    assert list(runs.load_predictions(path).fnames) == ["a.wav", "b.wav"]
    assert other.read_bytes() == b"half of another process's file"
    assert not (tmp_path / ".oof.npz.1111.tmp.npz").exists()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs.np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        runs.save_predictions(path, ["c.wav"], probs[:1])
    assert list(runs.load_predictions(path).fnames) == ["a.wav", "b.wav"]  # the old file, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [".oof.npz.2222.tmp.npz", "oof.npz"]
