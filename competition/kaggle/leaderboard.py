"""Kaggle's leaderboard from the command line (`make submit`, `make submissions`).

`make submit` validates the CSV against the dataset's test clips and vocabulary before anything
else, so an invalid file is never uploaded. The submission's description carries the user's note
(MSG), then the CV score and each blended run's experiment and feature hashes from the CSV's
`.json` record (written by `make ensemble` and by kernels), so a leaderboard score can be traced
back to the exact configurations. Kaggle's reply to the submission is shown as it comes (it carries
notes such as the daily limit). Nothing here loads TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

from competition.submit.submission import SubmissionError, read_record, record_path


def submission_message(csv_path: Path, note: str | None) -> str:
    """`note | CV <metric> <score> | <run> exp <hash> features <key>; ...` from the CSV's .json record."""
    path = record_path(csv_path)
    parts = [note] if note else []
    if not path.is_file():
        return " | ".join(parts + [f"no CV record ({path.name} not found)"])
    record = read_record(csv_path)
    try:
        parts.append(f"CV {record['metric']} {record['cv_score']:.5f}")
        parts.append("; ".join(f"{member['run']} exp {member['experiment_hash']} features {member['feature_key']}"
                               for member in record["members"]))
    except (ValueError, KeyError, TypeError) as error:
        raise SubmissionError(f"{path}: not a blend record from `make ensemble` ({error!r}); fix or "
                              "delete it") from None
    return " | ".join(parts)


def submit(workspace, csv_path: Path, *, dataset_name: str, competition: str, note: str | None) -> str:
    """Validate `csv_path` against the dataset's test clips, then upload it and show Kaggle's reply;
    returns the description."""
    from competition import kaggle_client
    from competition.datasets.registry import get_dataset
    from competition.submit.submission import validate_submission

    dataset = get_dataset(dataset_name)
    index = dataset.index(workspace.dataset_dir(dataset.name))
    validate_submission(Path(csv_path), index.test["fname"].tolist(), dataset.labels)
    message = submission_message(Path(csv_path), note)
    reply = kaggle_client.submit(competition, Path(csv_path), message)
    if reply:
        print(f"Kaggle: {reply}")
    return message


def format_submissions(submissions: list[dict]) -> str:
    """Kaggle's submissions as a table, newest first; a failed one shows its error as description."""
    if not submissions:
        return "no submissions yet"
    header = ("date", "status", "public", "private", "file", "description")
    rows = [(s["date"], s["status"], s["public_score"] or "-", s["private_score"] or "-", s["file_name"] or "",
             s["error"] or s["description"] or "") for s in submissions]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    return "\n".join("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)) + "  " + str(row[-1])
                     for row in [header, *rows])
