"""Write and validate submission CSVs (`fname,label`, top 3 labels space-separated).

No TensorFlow here: validating a CSV is instant. Nothing is lost: every test fname gets a row,
including clips that are empty or could not be decoded (they are predicted from a blank input).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from competition.errors import KitError
from competition.metrics import top_k_indices
from competition.workspace import atomic_write_text

HEADER = ["fname", "label"]


class SubmissionError(KitError, ValueError):
    """The CSV would be rejected or mis-scored; the message names the file, the row and the problem."""


def format_rows(fnames: Sequence[str], scores: np.ndarray, labels: Sequence[str], k: int = 3) -> list[list[str]]:
    top = top_k_indices(scores, k)
    return [[fname, " ".join(labels[i] for i in row)] for fname, row in zip(fnames, top)]


def write_submission(path: Path, fnames: Sequence[str], scores: np.ndarray, labels: Sequence[str]) -> Path:
    if len(fnames) != len(scores):
        raise SubmissionError(f"{path}: {len(fnames)} fnames but {len(scores)} score rows")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes an fname holding a comma or a quote
    writer.writerow(HEADER)
    writer.writerows(format_rows(fnames, scores, labels))
    atomic_write_text(Path(path), buffer.getvalue())
    return Path(path)


def record_path(csv_path: Path) -> Path:
    """The blend record beside a submission CSV (`make ensemble` writes it): its CV score, weights and
    each member run's experiment and feature hashes."""
    return Path(csv_path).with_suffix(".json")


def write_record(csv_path: Path, record: dict) -> None:
    atomic_write_text(record_path(csv_path), json.dumps(record, indent=1))


def read_record(csv_path: Path) -> dict:
    path = record_path(csv_path)
    if not path.is_file():
        raise SubmissionError(f"{path}: blend record not found (make ensemble writes it beside the CSV)")
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise SubmissionError(f"{path}: not a blend record from `make ensemble` ({error})") from None


def validate_record(csv_path: Path, runs_dir: Path) -> list[str]:
    """Check the blend record beside a CSV, when there is one: each member run found under `runs_dir`
    has finite test probabilities for exactly the CSV's fnames. Returns notes on what could not be
    checked; raises SubmissionError for what is wrong."""
    from competition.modeling.runs import Run, RunError

    if not record_path(csv_path).is_file():
        return [f"{record_path(csv_path).name} not found beside the CSV: its members were not checked"]
    record = read_record(csv_path)
    fnames = {row[0] for row in read_submission(csv_path)[1:] if row}
    notes = []
    for member in record.get("members", []):
        run = Run(Path(runs_dir) / member["run"])
        if not run.exists():
            notes.append(f"member run {member['run']} not under {runs_dir}: not checked")
            continue
        try:
            test = run.predictions("test")
        except RunError as error:
            raise SubmissionError(f"{record_path(csv_path)}: member {member['run']}: {error}") from None
        if not np.isfinite(test.probs).all():
            raise SubmissionError(f"{run.dir}/test.npz: predictions are not finite (NaN or inf); the blend "
                                  f"{csv_path} is not to be trusted: retrain the run")
        if set(test.fnames) != fnames:
            raise SubmissionError(f"{run.dir}/test.npz: its {len(test.fnames)} test fnames are not the CSV's "
                                  f"{len(fnames)}; {csv_path} was not blended from this run")
    return notes


def read_submission(path: Path) -> list[list[str]]:
    path = Path(path)
    if not path.is_file():
        raise SubmissionError(f"{path}: file not found")
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def validate_submission(path: Path, test_fnames: Sequence[str], labels: Sequence[str], k: int = 3) -> int:
    """Raise SubmissionError at the first problem; return the number of rows when all is well."""
    rows = read_submission(path)
    if not rows or [c.strip() for c in rows[0]] != HEADER:
        found = ",".join(rows[0]) if rows else "an empty file"
        raise SubmissionError(f"{path}: header must be {','.join(HEADER)!r}, found {found!r}")
    vocabulary = set(labels)
    expected = set(test_fnames)
    seen: set[str] = set()
    for line, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise SubmissionError(f"{path}: line {line}: expected 2 columns, found {len(row)}")
        fname, tags = row
        if fname not in expected:
            raise SubmissionError(f"{path}: line {line}: fname {fname!r} is not a test clip")
        if fname in seen:
            raise SubmissionError(f"{path}: line {line}: fname {fname!r} appears twice")
        seen.add(fname)
        predicted = tags.split()
        if len(predicted) != k or len(set(predicted)) != k:
            raise SubmissionError(f"{path}: line {line}: expected {k} distinct labels, found {tags!r}")
        unknown = [label for label in predicted if label not in vocabulary]
        if unknown:
            raise SubmissionError(f"{path}: line {line}: label {unknown[0]!r} is not in the vocabulary")
    missing = [f for f in test_fnames if f not in seen]
    if missing:
        raise SubmissionError(f"{path}: {len(missing)} test fname(s) missing, first: {missing[0]!r}")
    return len(seen)
