import numpy as np
import pytest

from competition.submit.submission import SubmissionError, validate_submission, write_submission

LABELS = ("Bark", "Cello", "Flute", "Gong")
FNAMES = ["a.wav", "b.wav", "empty.wav"]


def write(tmp_path, text):
    path = tmp_path / "sub.csv"
    path.write_text(text)
    return path


def test_written_submission_validates_with_top_3_in_order(tmp_path):
    scores = np.array([[0.1, 0.5, 0.3, 0.1], [0.7, 0.1, 0.1, 0.1], [0.25, 0.25, 0.25, 0.25]])
    path = write_submission(tmp_path / "s.csv", FNAMES, scores, LABELS)
    assert validate_submission(path, FNAMES, LABELS) == 3
    lines = path.read_text().splitlines()
    assert lines[0] == "fname,label"
    assert lines[1] == "a.wav,Cello Flute Bark"
    assert lines[3] == "empty.wav,Bark Cello Flute"  # a blank input still gets a row


@pytest.mark.parametrize("text, problem", [
    ("fname,labels\na.wav,Bark Cello Flute\n", "header"),
    ("", "header"),
    ("fname,label\na.wav,Bark Cello Flute\nb.wav,Bark Cello Flute\n", "missing, first: 'empty.wav'"),
    ("fname,label\na.wav,Bark Cello Flute\na.wav,Bark Cello Flute\n", "line 3: fname 'a.wav' appears twice"),
    ("fname,label\nzzz.wav,Bark Cello Flute\n", "line 2: fname 'zzz.wav' is not a test clip"),
    ("fname,label\na.wav,Bark Cello\n", "line 2: expected 3 distinct labels"),
    ("fname,label\na.wav,Bark Bark Cello\n", "line 2: expected 3 distinct labels"),
    ("fname,label\na.wav,Bark Cello Flute Gong\n", "line 2: expected 3 distinct labels"),
    ("fname,label\na.wav,Bark Cello Laughter\n", "line 2: label 'Laughter' is not in the vocabulary"),
    ("fname,label\na.wav,Bark Cello Flute,extra\n", "line 2: expected 2 columns"),
])
def test_validator_names_the_first_bad_row(tmp_path, text, problem):
    path = write(tmp_path, text)
    with pytest.raises(SubmissionError) as error:
        validate_submission(path, FNAMES, LABELS)
    assert str(path) in str(error.value)
    assert problem in str(error.value)


def test_validator_reports_a_missing_file(tmp_path):
    with pytest.raises(SubmissionError, match="file not found"):
        validate_submission(tmp_path / "nope.csv", FNAMES, LABELS)


def test_the_competitions_submission_is_validated_and_scored_without_its_data(tmp_path, monkeypatch, capfd):
    """The competition's own CSVs ship with the kit: its 9,400 test fnames and their labels."""
    import pandas as pd

    from competition.__main__ import main
    from competition.datasets.freesound import COMPETITION, EMPTY_TEST_CLIPS, SHIPPED_META_DIR

    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))  # no data/ there
    truth = pd.read_csv(SHIPPED_META_DIR / "test_post_competition.csv")
    assert len(truth) == 9400 and set(EMPTY_TEST_CLIPS) <= set(truth["fname"])
    # Right first for the scored clips; the Ignored ones (label None) get any three labels.
    first = truth["label"].where(truth["usage"] != "Ignored", "Bark")
    guesses = first.map(lambda label: " ".join([label, *[x for x in ("Cello", "Flute", "Gong") if x != label][:2]]))
    path = tmp_path / "sub.csv"
    pd.DataFrame({"fname": truth["fname"], "label": guesses}).to_csv(path, index=False)

    assert main(["validate", "--dataset", COMPETITION, str(path)]) == 0
    out = capfd.readouterr().out
    assert "not here: checking against the 9400 test fnames of" in out and f"{path}: valid (9400 rows)" in out
    assert main(["score", "--dataset", COMPETITION, str(path)]) == 0
    out = capfd.readouterr().out
    assert "shipped with the kit" in out
    assert "public   MAP@3 1.00000" in out and "private  MAP@3 1.00000" in out

    pd.DataFrame({"fname": truth["fname"][1:], "label": guesses[1:]}).to_csv(path, index=False)
    assert main(["validate", "--dataset", COMPETITION, str(path)]) == 2
    assert f"missing, first: '{truth['fname'][0]}'" in capfd.readouterr().err
