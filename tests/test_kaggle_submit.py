"""Local leaderboard scores (`make score`), `make submit` and `make submissions` against the stand-in
server, through the command line and through make itself."""

import json
from pathlib import Path

import pytest
from kaggle_server import COMPETITION, credential_leaks
from make_targets import run_make

from competition.__main__ import main

pytestmark = pytest.mark.usefixtures("no_credential_leaks")
BLEND_RECORD = {
    "name": "night", "dataset": "demo", "metric": "map@3", "cv_score": 0.612341, "blend": "geometric_mean",
    "members": [
        {"run": "demo-logmel-cnn", "experiment_hash": "1a2b3c4d5e", "feature_key": "logmel-0a1b2c3d4e",
         "cv_score": 0.58},
        {"run": "demo-mfcc-cnn", "experiment_hash": "6f7a8b9c0d", "feature_key": "mfcc-5e6f7a8b9c",
         "cv_score": 0.55},
    ],
}
DESCRIPTION = ("CV map@3 0.61234 | demo-logmel-cnn exp 1a2b3c4d5e features logmel-0a1b2c3d4e; "
               "demo-mfcc-cnn exp 6f7a8b9c0d features mfcc-5e6f7a8b9c")


@pytest.fixture
def submission(workspace) -> Path:
    """A valid submission for data/demo (Kaggle's sample submission) with its blend record."""
    csv_path = workspace.submissions / "night.csv"
    csv_path.parent.mkdir(parents=True)
    csv_path.write_bytes((workspace.root / "data" / "demo" / "sample_submission.csv").read_bytes())
    csv_path.with_suffix(".json").write_text(json.dumps(BLEND_RECORD))
    return csv_path


def submit(csv_path: Path, *options: str) -> int:
    return main(["submit", "--dataset", "demo", "--competition", COMPETITION, str(csv_path), *options])


def error_line(err: str) -> str:
    assert "Traceback" not in err and err.startswith("error: ") and err.count("\n") == 1, err
    return err


# -- make score


def test_score_is_kaggles_map3_per_usage_without_the_ignored_rows(workspace, capfd):
    truth = workspace.root / "data" / "demo" / "test_post_competition.csv"
    truth.write_text(
        "fname,label,usage\n"
        "a.wav,Flute,Public\n"       # 1st guess: 1
        "b.wav,Cello,Public\n"       # 2nd guess: 1/2
        "c.wav,Oboe,Public\n"        # not in the top 3: 0
        "d.wav,Cowbell,Private\n"    # 3rd guess: 1/3
        "e.wav,Trumpet,Private\n"    # 1st guess: 1
        "f.wav,Chime,Ignored\n"      # wrong, and would lower both scores if counted
        "g.wav,Gong,Ignored\n")
    sub = workspace.root / "sub.csv"
    sub.write_text(
        "fname,label\n"
        "a.wav,Flute Cello Oboe\n"
        "b.wav,Flute Cello Oboe\n"
        "c.wav,Flute Cello Trumpet\n"
        "d.wav,Flute Oboe Cowbell\n"
        "e.wav,Trumpet Flute Oboe\n"
        "f.wav,Flute Cello Oboe\n"
        "g.wav,Flute Cello Oboe\n")

    assert main(["score", "--dataset", "demo", str(sub)]) == 0

    assert capfd.readouterr().out == "public   MAP@3 0.50000\nprivate  MAP@3 0.66667\n"


# -- make submit


def test_submit_uploads_the_csv_with_its_cv_score_and_hashes(kaggle_server, submission, capfd):
    assert submit(submission, "--message", "night run") == 0

    [uploaded] = kaggle_server.submissions
    assert uploaded.content == submission.read_bytes() and uploaded.file_name == "night.csv"
    assert uploaded.description == f"night run | {DESCRIPTION}"
    out = capfd.readouterr().out
    assert f"Kaggle: Successfully submitted to {COMPETITION}\n" in out  # the server's own reply
    assert "make submissions" in out


def test_the_servers_notes_on_a_submission_are_shown(kaggle_server, submission, capfd):
    kaggle_server.submission_reply = "Your submission scored; 4 submissions remaining today"
    assert submit(submission) == 0
    assert "Kaggle: Your submission scored; 4 submissions remaining today" in capfd.readouterr().out


def test_a_404_on_submit_says_the_competition_may_no_longer_accept_submissions(kaggle_server, submission, capfd):
    kaggle_server.fail("CreateSubmission", 404)
    assert submit(submission) == 2
    err = error_line(capfd.readouterr().err)
    assert "may no longer accept submissions" in err
    assert f"https://www.kaggle.com/competitions/{COMPETITION}" in err


def test_submit_without_a_record_says_so_in_the_description(kaggle_server, submission):
    submission.with_suffix(".json").unlink()
    assert submit(submission) == 0
    assert kaggle_server.submissions[0].description == "no CV record (night.json not found)"


def drop_last_row(text: str) -> tuple[str, str]:
    return "\n".join(text.splitlines()[:-1]) + "\n", "test fname(s) missing"


def unknown_label(text: str) -> tuple[str, str]:
    lines = text.splitlines()
    fname = lines[1].split(",")[0]
    lines[1] = f"{fname},Flute Kazoo Cello"
    return "\n".join(lines) + "\n", "line 2: label 'Kazoo' is not in the vocabulary"


def two_labels(text: str) -> tuple[str, str]:
    lines = text.splitlines()
    lines[3] = lines[3].rsplit(" ", 1)[0]
    return "\n".join(lines) + "\n", "line 4: expected 3 distinct labels"


@pytest.mark.parametrize("damage", [drop_last_row, unknown_label, two_labels], ids=lambda damage: damage.__name__)
def test_an_invalid_csv_is_never_uploaded(kaggle_server, submission, capfd, damage):
    broken, problem = damage(submission.read_text())
    submission.write_text(broken)

    assert submit(submission) == 2

    assert problem in error_line(capfd.readouterr().err)
    assert kaggle_server.requests == []  # not even the credentials were sent


def test_submit_needs_the_data_to_validate_against(kaggle_server, submission, capfd):
    assert main(["submit", str(submission)]) == 2  # data/freesound-audio-tagging/ was never obtained
    assert "make data" in error_line(capfd.readouterr().err)
    assert kaggle_server.requests == []


def test_rules_not_accepted_on_submit(kaggle_server, submission, capfd):
    kaggle_server.fail("StartSubmissionUpload", 403)
    assert submit(submission) == 2
    assert "accept the rules" in error_line(capfd.readouterr().err)
    assert kaggle_server.submissions == []


# -- make submissions


def test_submissions_lists_the_newest_first_with_both_scores(kaggle_server, submission, capfd):
    assert submit(submission, "--message", "first") == 0
    assert submit(submission, "--message", "second") == 0
    kaggle_server.submissions[1].public_score, kaggle_server.submissions[1].private_score = "0.91234", "0.90011"
    capfd.readouterr()

    assert main(["submissions", "--competition", COMPETITION]) == 0

    header, newest, oldest = capfd.readouterr().out.splitlines()
    assert header.split()[:5] == ["date", "status", "public", "private", "file"]
    assert newest.split()[2:7] == ["complete", "0.91234", "0.90011", "night.csv", "second"]
    assert oldest.split()[2:7] == ["complete", "-", "-", "night.csv", "first"]


def test_submissions_before_any(kaggle_server, capfd):
    assert main(["submissions"]) == 0
    assert capfd.readouterr().out == "no submissions yet\n"


# -- through make, in fresh processes that must not load TensorFlow (make_targets.py)


def test_make_help_lists_the_kaggle_targets(tmp_path, no_tensorflow):
    result = run_make("help", kit_home=tmp_path, python_path=no_tensorflow)
    listed = [line.split()[1] for line in result.stdout.splitlines() if line.strip().startswith("make ")]
    assert {"data", "score", "submit", "submissions", "kernel", "kernel-status", "kernel-output"} <= set(listed)


@pytest.mark.slow  # two fresh `make` processes
def test_make_submit_and_submissions(kaggle_server, workspace, submission, no_tensorflow):
    result = run_make("submit", "DATASET=demo", f"SUB={submission}", "MSG=Tom's \"best\" run",
                  kit_home=workspace.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert kaggle_server.submissions[0].description == f"Tom's \"best\" run | {DESCRIPTION}"

    kaggle_server.submissions[0].public_score = "0.87654"
    result = run_make("submissions", kit_home=workspace.root, python_path=no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert "0.87654" in result.stdout and "Tom's" in result.stdout
    assert credential_leaks([result.stdout, result.stderr]) == []


def test_make_submit_refuses_an_invalid_csv_in_one_line(kaggle_server, workspace, submission, no_tensorflow):
    submission.write_text("fname,label\n")
    result = run_make("submit", "DATASET=demo", f"SUB={submission}", kit_home=workspace.root, python_path=no_tensorflow)
    assert result.returncode != 0
    assert "error: " in result.stderr and "test fname(s) missing" in result.stderr and "Traceback" not in result.stderr
    assert kaggle_server.requests == []
