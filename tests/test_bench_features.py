"""`make bench`, features part: the table on generated clips (the shared copies hidden)."""

import pytest

from benchmarks import features as bench_features


@pytest.mark.slow
def test_bench_prints_every_method_on_the_same_generated_clips(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_features, "SHARED_DATA", tmp_path / "absent")
    monkeypatch.setattr(bench_features, "SHARED_ESC10", tmp_path / "absent" / "esc10")
    monkeypatch.setattr(bench_features, "SHARED_URBANSOUND8K", tmp_path / "absent" / "urbansound8k")
    monkeypatch.setattr(bench_features, "GENERATED_CLIPS", 6)
    (result,) = bench_features.run_bench(workers=2)
    out = capsys.readouterr().out
    assert "features bench: 6 generated clips (16-bit WAV, 44.1 kHz, 5 s;" in out
    for key in ("a", "b", "c", "c1", "d", "d'", "0"):
        assert f"({key}) " in out and result["rows"][key]["clips_per_second"] > 0
        assert result["rows"][key]["peak_bytes"] > 10 * 2**20
    assert "warm rerun, nothing to compute" in out and "targets: (d) >= 4x (a):" in out
    assert "cores, decoding and nothing else:" in out
