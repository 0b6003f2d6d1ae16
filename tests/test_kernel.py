"""Kaggle kernels: what `make kernel` builds, pushes (to the stand-in server) and fetches, and the
built scripts run offline on a demo competition laid out as Kaggle mounts it.

The scripts run in fresh processes, outside the repository and without PYTHONPATH, so they can only
use the package embedded in them; /kaggle/input and /kaggle/working are mapped to folders under
tmp_path with KAGGLE_INPUT_DIR and KAGGLE_WORKING_DIR.
"""

import ast
import base64
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from kaggle_server import COMPETITION, FAKE_USERNAME
from make_targets import run_make

from competition.__main__ import main
from competition.datasets.registry import get_dataset
from competition.kaggle import kernel_build as kernel
from competition.kaggle import kernel_push
from competition.submit.submission import validate_submission
from competition.workspace import Workspace

pytestmark = pytest.mark.usefixtures("no_credential_leaks")
TITLE = "audio tagging kit"
SLUG = "audio-tagging-kit"
REF = f"{FAKE_USERNAME}/{SLUG}"
FOLD_SLUGS = [f"{SLUG}-tiny-fold-0", f"{SLUG}-tiny-fold-1"]
BLEND_SLUG = f"{SLUG}-blend"
TINY_EXPERIMENT = """
name = "tiny"
[features]
kind = "logmel"
n_mels = 32
[model]
width = 4
[train]
epochs = 1
batch_size = 8
crop_seconds = 1.0
tta_crops = 2
[folds]
k = 2
"""


@pytest.fixture
def kit(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))
    experiment = tmp_path / "kit" / "experiments" / "tiny.toml"
    experiment.parent.mkdir(parents=True)
    experiment.write_text(TINY_EXPERIMENT)
    return Workspace(tmp_path / "kit")


def kernel_command(kit: Workspace, *options: str) -> list[str]:
    """`make kernel` for the demo dataset (read where Kaggle mounts the competition) and the tiny experiment."""
    return ["kernel", "--dataset", "demo", "--experiment", str(kit.root / "experiments" / "tiny.toml"),
            "--title", TITLE, *options]


def build(kit: Workspace, *options: str) -> None:
    assert main(kernel_command(kit, "--build-only", "--username", FAKE_USERNAME, *options)) == 0


def metadata_of(folder: Path) -> dict:
    return json.loads((folder / "kernel-metadata.json").read_text())


def settings_and_package(script: str) -> tuple[dict, zipfile.ZipFile]:
    """The SETTINGS and the embedded package zip of a built script, read without running it."""
    module = ast.parse(script)
    values = {node.targets[0].id: ast.literal_eval(node.value) for node in module.body
              if isinstance(node, ast.Assign) and node.targets[0].id in ("SETTINGS", "PACKAGE_ZIP")}
    return values["SETTINGS"], zipfile.ZipFile(io.BytesIO(base64.b64decode(values["PACKAGE_ZIP"])))


# -- building


def test_kernel_folder_holds_the_metadata_and_a_self_contained_script(kit):
    build(kit)

    folder = kit.kernel_builds / SLUG
    assert metadata_of(folder) == {
        "id": REF, "title": TITLE, "code_file": f"{SLUG}.py", "language": "python", "kernel_type": "script",
        "is_private": True, "enable_gpu": True, "enable_tpu": False, "enable_internet": False,
        "competition_sources": [COMPETITION], "dataset_sources": [], "kernel_sources": [], "model_sources": [],
    }
    assert kernel.slug_of(TITLE) == SLUG  # the id matches the slug Kaggle makes of the title
    script = (folder / f"{SLUG}.py").read_text()
    settings, package = settings_and_package(script)
    assert settings == {"kind": "train", "competition": COMPETITION, "dataset": "demo",
                        "experiments": [{"file": "tiny.toml", "toml": TINY_EXPERIMENT}]}
    modules = set(package.namelist())
    assert {"competition/__init__.py", "competition/kaggle/kernel_run.py", "competition/modeling/train.py",
            "competition/datasets/freesound.py"} <= modules
    embedded = package.read("competition/kaggle/kernel_run.py")
    assert embedded == (kernel.PACKAGE_DIR / "kaggle" / "kernel_run.py").read_bytes()

    build(kit)  # an unchanged kit builds the same bytes, so it is not pushed again
    assert (folder / f"{SLUG}.py").read_text() == script


def test_folds_all_builds_a_kernel_per_fold_and_a_blend_reading_them(kit):
    build(kit, "--folds", "all", "--public")

    for fold, slug in enumerate(FOLD_SLUGS):
        metadata = metadata_of(kit.kernel_builds / slug)
        assert metadata["id"] == f"{FAKE_USERNAME}/{slug}" and metadata["title"] == f"{TITLE} tiny fold {fold}"
        assert metadata["enable_gpu"] is True and metadata["is_private"] is False
        settings, _ = settings_and_package((kit.kernel_builds / slug / f"{slug}.py").read_text())
        assert settings["kind"] == "fold" and settings["fold"] == fold
    blend = metadata_of(kit.kernel_builds / BLEND_SLUG)
    assert blend["kernel_sources"] == [f"{FAKE_USERNAME}/{slug}" for slug in FOLD_SLUGS]
    assert blend["competition_sources"] == [COMPETITION] and blend["enable_gpu"] is False
    settings, _ = settings_and_package((kit.kernel_builds / BLEND_SLUG / f"{BLEND_SLUG}.py").read_text())
    assert settings["kind"] == "blend" and settings["fold_kernels"] == {"tiny": FOLD_SLUGS}


def test_a_title_kaggle_would_refuse_is_an_error(kit, capfd):
    assert main(kernel_command(kit, "--build-only", "--username", FAKE_USERNAME, "--title", "x" * 51)) == 2
    assert "has 51 characters; Kaggle takes 5 to 50" in capfd.readouterr().err


# -- pushing, status, output (stand-in server)


def test_make_kernel_pushes_once_and_again_only_after_a_failure(kaggle_server, kit, capfd):
    assert main(kernel_command(kit)) == 0  # the username comes from the credentials

    pushed = kaggle_server.kernels[REF]
    folder = kit.kernel_builds / SLUG
    assert pushed.text == (folder / f"{SLUG}.py").read_text()
    assert pushed.metadata["slug"] == REF and pushed.metadata["newTitle"] == TITLE
    assert pushed.metadata["language"] == "python" and pushed.metadata["kernelType"] == "script"
    assert pushed.metadata["isPrivate"] is True and pushed.metadata["enableGpu"] is True
    assert pushed.metadata["enableInternet"] is False
    assert pushed.metadata["competitionDataSources"] == [COMPETITION]
    assert f"{REF}: pushed version 1" in capfd.readouterr().out

    assert main(kernel_command(kit)) == 0
    assert len(kaggle_server.received("SaveKernel")) == 1
    assert "unchanged since version 1 (queued); not pushed again" in capfd.readouterr().out

    kaggle_server.kernels[REF].status = "ERROR"
    assert main(kernel_command(kit)) == 0
    assert kaggle_server.kernels[REF].version == 2


def test_folds_all_pushes_the_blend_once_every_fold_kernel_completed(kaggle_server, kit, monkeypatch, capfd):
    fold_refs = [f"{FAKE_USERNAME}/{slug}" for slug in FOLD_SLUGS]
    blend_ref = f"{FAKE_USERNAME}/{BLEND_SLUG}"

    def pushed() -> list[str]:
        return [request.json()["slug"] for request in kaggle_server.received("SaveKernel")]

    def fold_kernels_finish(seconds):  # what happens on Kaggle while the kit waits
        assert blend_ref not in pushed()
        for ref in fold_refs:
            kaggle_server.finish_kernel(ref, {})

    monkeypatch.setattr(kernel_push.time, "sleep", fold_kernels_finish)
    make_kernel_folds_all = kernel_command(kit, "--folds", "all", "--poll-seconds", "0")

    assert main(make_kernel_folds_all) == 0

    assert pushed() == fold_refs + [blend_ref]
    blend_push = kaggle_server.received("SaveKernel")[-1].json()
    assert blend_push["kernelDataSources"] == fold_refs and blend_push["enableGpu"] is False
    out = capfd.readouterr().out
    assert f"{fold_refs[0]}: queued" in out and f"{fold_refs[1]}: complete" in out

    kaggle_server.requests.clear()
    assert main(make_kernel_folds_all) == 0  # nothing changed, nothing failed: nothing to push
    assert pushed() == []

    kaggle_server.kernels[fold_refs[1]].status = "ERROR"
    assert main(make_kernel_folds_all) == 0  # the failed fold again, then the blend reading its new output
    assert pushed() == [fold_refs[1], blend_ref]


def test_folds_all_stops_when_a_fold_kernel_fails(kaggle_server, kit, monkeypatch, capfd):
    def fold_0_fails(seconds):
        kaggle_server.kernels[f"{FAKE_USERNAME}/{FOLD_SLUGS[0]}"].status = "ERROR"

    monkeypatch.setattr(kernel_push.time, "sleep", fold_0_fails)

    assert main(kernel_command(kit, "--folds", "all", "--poll-seconds", "0")) == 2

    err = capfd.readouterr().err
    assert f"kernel {FAKE_USERNAME}/{FOLD_SLUGS[0]} ended in state 'error'" in err and "make kernel-output" in err
    assert f"{FAKE_USERNAME}/{BLEND_SLUG}" not in kaggle_server.kernels


def test_kernel_status_and_output(kaggle_server, kit, capfd):
    assert main(kernel_command(kit)) == 0
    capfd.readouterr()
    assert main(["kernel-output"]) == 0
    assert f"{REF}: queued; its output comes once it completes" in capfd.readouterr().out

    outputs = {"submission.csv": b"fname,label\n", "demo-tiny/fold-0/oof.npz": b"npz", "demo-tiny/scores.json": b"{}"}
    kaggle_server.finish_kernel(REF, outputs, log="trained\n")
    assert main(["kernel-status"]) == 0
    assert capfd.readouterr().out == f"{REF}: complete\n"

    assert main(["kernel-output", SLUG]) == 0

    folder = kit.runs / SLUG
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == {
        **outputs, f"{SLUG}.log": b"trained\n"}
    assert f"make submit SUB={folder / 'submission.csv'}" in capfd.readouterr().out


@pytest.mark.slow  # three fresh `make` processes
def test_make_kernel_targets(kaggle_server, kit, no_tensorflow):
    variables = ["DATASET=demo", f"EXPERIMENTS={kit.root / 'experiments' / 'tiny.toml'}", f"KERNEL_TITLE={TITLE}"]
    result = run_make("kernel", *variables, kit_home=kit.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert kaggle_server.kernels[REF].text == (kit.kernel_builds / SLUG / f"{SLUG}.py").read_text()

    kaggle_server.finish_kernel(REF, {"submission.csv": b"fname,label\n"})
    result = run_make("kernel-status", kit_home=kit.root, python_path=no_tensorflow)
    assert f"{REF}: complete" in result.stdout.splitlines(), result.stderr
    result = run_make("kernel-output", f"KERNEL={SLUG}", kit_home=kit.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert (kit.runs / SLUG / "submission.csv").read_bytes() == b"fname,label\n"


def test_status_of_an_unknown_kernel_names_the_pushed_ones(kaggle_server, kit, capfd):
    assert main(["kernel-status"]) == 2
    assert "no kernel pushed from" in capfd.readouterr().err
    assert main(kernel_command(kit)) == 0
    assert main(["kernel-status", "no-such-kernel"]) == 2
    assert f"one of: {SLUG}" in capfd.readouterr().err


# -- running the built scripts offline, with Kaggle's folders mapped


@pytest.fixture
def kaggle_input(tmp_path, competition_archive) -> Path:
    """/kaggle/input holding the demo competition under the competition's name, as Kaggle mounts it."""
    unpacked = competition_archive.with_name(competition_archive.stem + "-unpacked")
    shutil.copytree(unpacked, tmp_path / "input" / COMPETITION, ignore=shutil.ignore_patterns("demo.json"))
    return tmp_path / "input"


def run_script(script: Path, input_dir: Path, working_dir: Path, tmp_path: Path) -> str:
    """`python <script>` from an empty folder, with no PYTHONPATH: only the embedded package can serve."""
    scratch = tmp_path / "scratch"  # the kernel's temporary folders, under tmp_path for the credential check
    scratch.mkdir(exist_ok=True)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "KIT_"))}
    env.update(KAGGLE_INPUT_DIR=str(input_dir), KAGGLE_WORKING_DIR=str(working_dir), TMPDIR=str(scratch),
               TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, str(script)], cwd=scratch, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def fnames_in(csv_path: Path) -> list[str]:
    with open(csv_path, newline="") as handle:
        return [row["fname"] for row in csv.DictReader(handle)]


def assert_valid_submission(working_dir: Path, kaggle_input: Path) -> None:
    dataset = get_dataset("demo")
    test_fnames = fnames_in(kaggle_input / COMPETITION / "sample_submission.csv")
    assert validate_submission(working_dir / "submission.csv", test_fnames, dataset.labels) == len(test_fnames)
    record = json.loads((working_dir / "submission.json").read_text())
    assert [member["run"] for member in record["members"]] == ["demo-tiny"]


def assert_complete_run(run_dir: Path, kaggle_input: Path) -> None:
    train_fnames = fnames_in(kaggle_input / COMPETITION / "train.csv")
    oof = np.load(run_dir / "oof.npz")
    assert sorted(oof["fnames"].tolist()) == sorted(train_fnames)  # every train clip predicted once, out of fold
    assert json.loads((run_dir / "scores.json").read_text())["folds"].keys() == {"0", "1"}
    for fold in (0, 1):
        assert {p.name for p in (run_dir / f"fold-{fold}").iterdir()} >= {"model.keras", "oof.npz", "test.npz",
                                                                          "done.json"}


@pytest.mark.slow
def test_train_kernel_runs_offline_and_its_output_goes_to_the_leaderboard(
        kaggle_server, kit, kaggle_input, tmp_path, capfd):
    build(kit)
    working = tmp_path / "working"

    log = run_script(kit.kernel_builds / SLUG / f"{SLUG}.py", kaggle_input, working, tmp_path)

    assert "libraries: numpy" in log and "demo: 12 train clips, 6 test clips" in log
    assert_valid_submission(working, kaggle_input)
    assert_complete_run(working / "demo-tiny", kaggle_input)
    assert not list(working.rglob("checkpoint.keras")) and not (working / "features").exists()

    # What Kaggle would serve as the kernel's output, fetched and submitted from the kit.
    assert main(kernel_command(kit)) == 0
    kaggle_server.finish_kernel(REF, {str(p.relative_to(working)): p.read_bytes()
                                      for p in working.rglob("*") if p.is_file()})
    assert main(["kernel-output"]) == 0
    shutil.copytree(kaggle_input / COMPETITION, kit.dataset_dir("demo"))
    assert main(["submit", "--dataset", "demo", str(kit.runs / SLUG / "submission.csv")]) == 0
    [submission] = kaggle_server.submissions
    assert submission.content == (working / "submission.csv").read_bytes()
    assert submission.description.startswith("CV map@3 ") and " demo-tiny exp " in submission.description


@pytest.mark.slow
def test_fold_kernels_then_the_blend_kernel_run_offline(kit, kaggle_input, tmp_path):
    build(kit, "--folds", "all")

    for fold, slug in enumerate(FOLD_SLUGS):
        # Kaggle mounts a source kernel's output at /kaggle/input/<slug>/.
        log = run_script(kit.kernel_builds / slug / f"{slug}.py", kaggle_input, kaggle_input / slug, tmp_path)
        assert f"outputs in {kaggle_input / slug}: demo-tiny" in log
        assert {p.name for p in (kaggle_input / slug / "demo-tiny").iterdir()} == {"config.json", f"fold-{fold}"}
    working = tmp_path / "working"

    log = run_script(kit.kernel_builds / BLEND_SLUG / f"{BLEND_SLUG}.py", kaggle_input, working, tmp_path)

    assert "demo-tiny: OOF map@3" in log and "from 2 fold kernels" in log
    assert_valid_submission(working, kaggle_input)
    assert_complete_run(working / "demo-tiny", kaggle_input)
