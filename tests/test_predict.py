"""Tagging any file (`make predict`, and the app through the same Tagger): the run's TTA answer, the
timeline crops, submission blends, and a bad file among good ones named while the good ones are tagged."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from tiny_run import tiny_workspace, trained_run, write_blend, write_tone

from competition.__main__ import main
from competition.modeling.runs import Run
from competition.submit.predict import (
    MAX_TIMELINE_CROPS,
    PredictError,
    Tagger,
    blend_members,
    resolve_model,
    timeline_starts,
)
from competition.workspace import Workspace


def test_timeline_crops_lie_side_by_side_and_are_bounded():
    assert timeline_starts(100, 20).tolist() == [0, 20, 40, 60, 80]  # the clip covered end to end
    starts = timeline_starts(110, 20)  # not a whole number of crops: a little overlap, no gap
    assert starts[0] == 0 and starts[-1] == 90 and np.diff(starts).max() <= 20
    assert timeline_starts(15, 20).tolist() == [0]  # a clip shorter than a crop: one (tiled) crop
    assert timeline_starts(20, 20).tolist() == [0]
    assert len(timeline_starts(100_000, 20)) == MAX_TIMELINE_CROPS


def test_a_model_is_found_as_a_folder_a_run_name_or_a_submission(tmp_path):
    workspace = Workspace(tmp_path)
    Run(workspace.runs / "r1").claim({"hash": "x"})
    csv_path = write_blend(workspace, "blend", {"r1": 1.0})
    assert resolve_model(workspace, "r1") == workspace.runs / "r1"
    assert resolve_model(workspace, str(workspace.runs / "r1")) == workspace.runs / "r1"
    assert resolve_model(workspace, "blend") == csv_path
    assert resolve_model(workspace, str(csv_path)) == csv_path
    assert resolve_model(workspace, "submissions/blend.csv") == csv_path  # from the workspace's root
    with pytest.raises(PredictError, match="nothing: neither a run .* nor a submission blend"):
        resolve_model(workspace, "nothing")


def test_a_blend_names_the_member_it_cannot_find(tmp_path):
    workspace = Workspace(tmp_path)
    Run(workspace.runs / "here").claim({"hash": "x"})
    csv_path = write_blend(workspace, "blend", {"here": 0.25, "gone": 0.75})
    with pytest.raises(PredictError, match=r"blend.json: member run 'gone' not found"):
        blend_members(csv_path, workspace.runs)
    assert blend_members(write_blend(workspace, "one", {"here": 0.25}), workspace.runs) == \
        [(workspace.runs / "here", 0.25)]
    write_blend(workspace, "empty", {})
    with pytest.raises(PredictError, match="empty.json: no members listed"):
        blend_members(workspace.submissions / "empty.csv", workspace.runs)


@pytest.fixture(scope="module")
def tagging_workspace(tmp_path_factory, tiny_competition) -> Workspace:
    workspace = tiny_workspace(tmp_path_factory.getbasetemp() / "tagging-workspace", tiny_competition)
    for name in ("tiny-logmel", "tiny-mfcc"):
        trained_run(workspace, name)
    return workspace


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    half_silent = np.zeros(6 * 22050, np.float32)
    half_silent[3 * 22050:] = 0.5 * np.sin(2 * np.pi * 660 * np.arange(3 * 22050) / 22050)
    soundfile.write(folder / "half-silent.wav", half_silent, 22050)
    (folder / "notes.txt").write_text("not audio\n")
    return {"tone": write_tone(folder / "tone.wav", 3.0), "low": write_tone(folder / "low.flac", 2.0, frequency=110),
            "half-silent": folder / "half-silent.wav", "text": folder / "notes.txt", "missing": folder / "gone.wav"}


def test_the_answer_is_the_runs_fold_models_over_its_tta_crops(tagging_workspace, clips):
    import keras

    from competition.config import FeatureConfig
    from competition.features.dsp import features_of_file
    from competition.modeling.inference import geometric_mean, predict_clips

    run = Run(tagging_workspace.runs / "tiny-logmel")
    config = run.config()
    clip = features_of_file(clips["tone"], FeatureConfig(**config["feature_config"]))
    expected = geometric_mean([predict_clips(keras.models.load_model(path), [clip], config["crop_frames"],
                                             config["tta_crops"]) for path in run.fold_models()])[0]
    tags = Tagger.load(run.dir).tag(clips["tone"])
    np.testing.assert_allclose(tags.probs, expected, atol=1e-6)
    assert [label for label, _ in tags.top] == [config["labels"][i] for i in np.argsort(-expected)[:3]]
    assert tags.logmel.shape == clip.shape and tags.seconds == pytest.approx(3.0)


def test_the_timeline_shows_which_part_of_the_clip_each_crop_heard(tagging_workspace, clips):
    tags = Tagger.load(tagging_workspace.runs / "tiny-logmel").tag(clips["half-silent"])
    ends = tags.crop_starts + tags.crop_seconds
    silent, sounding = tags.crop_probs[ends <= 3.0], tags.crop_probs[tags.crop_starts >= 3.0]
    assert len(silent) >= 2 and len(sounding) >= 2
    np.testing.assert_allclose(silent, silent[0][None].repeat(len(silent), 0), atol=1e-6)  # the same silence
    assert np.abs(sounding[0] - silent[0]).max() > 1e-4
    np.testing.assert_allclose(tags.crop_probs.sum(axis=1), 1.0, atol=1e-5)


def test_a_blend_is_the_weighted_geometric_mean_of_its_runs_each_on_its_own_features(tagging_workspace, clips):
    from competition.modeling.inference import geometric_mean

    csv_path = write_blend(tagging_workspace, "tiny-blend", {"tiny-logmel": 0.7, "tiny-mfcc": 0.3})
    blend = Tagger.load(csv_path, tagging_workspace.runs)
    assert blend.name == "tiny-blend" and len(blend.members) == 2
    logmel, mfcc = (Tagger.load(tagging_workspace.runs / name).tag(clips["low"]) for name in ("tiny-logmel",
                                                                                             "tiny-mfcc"))
    tags = blend.tag(clips["low"])
    np.testing.assert_allclose(tags.probs, geometric_mean([logmel.probs[None], mfcc.probs[None]], [0.7, 0.3])[0],
                               atol=1e-6)
    assert not np.allclose(logmel.probs, mfcc.probs)
    assert tags.crop_probs.shape == logmel.crop_probs.shape  # the timeline laid out by the first member


def test_predict_tags_every_good_file_and_names_each_bad_one(tagging_workspace, clips, capsys, monkeypatch):
    monkeypatch.setenv("KIT_HOME", str(tagging_workspace.root))
    files = [clips["tone"], clips["text"], clips["low"], clips["missing"]]
    assert main(["predict", "--run", "tiny-logmel", *map(str, files)]) == 2
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert [line.split(": ")[0] for line in lines] == [str(clips["tone"]), str(clips["low"])]
    assert all(len(line.split(": ")[1].split("  ")) == 3 for line in lines)
    assert captured.err.splitlines() == [
        f"error: {clips['text']}: not a readable audio file (Format not recognised.)",
        f"error: {clips['missing']}: file not found",
        "error: 2 of 4 file(s) could not be tagged"]

    csv_path = write_blend(tagging_workspace, "tiny-blend", {"tiny-logmel": 0.7, "tiny-mfcc": 0.3})
    assert main(["predict", "--run", str(csv_path), str(clips["tone"])]) == 0
    assert capsys.readouterr().out.startswith(f"{clips['tone']}: ")
