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
