"""Local leaderboard scoring (`make score`): a submission against the post-competition test labels.

FSDKaggle2018's `test_post_competition.csv` (`fname,label,usage`) marks each test clip Public,
Private or Ignored; Kaggle scored MAP@3 on the Public rows for the public leaderboard and on the
Private rows for the private one. Ignored rows are excluded, as Kaggle excluded them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from competition.metrics import map_at_k_labels
from competition.submit.submission import SubmissionError, read_submission


def score_submission(csv_path: Path, ground_truth_csv: Path) -> dict[str, float]:
    truth = pd.read_csv(ground_truth_csv, dtype=str, keep_default_na=False)
    missing = {"fname", "label", "usage"} - set(truth.columns)
    if missing:
        raise SubmissionError(f"{ground_truth_csv}: missing column(s) {', '.join(sorted(missing))}")
    predicted = {row[0]: row[1].split() for row in read_submission(csv_path)[1:] if len(row) == 2}
    scores = {}
    for usage in ("Public", "Private"):
        rows = truth[truth["usage"] == usage]
        absent = [f for f in rows["fname"] if f not in predicted]
        if absent:
            raise SubmissionError(f"{csv_path}: no prediction for scored clip {absent[0]!r}")
        if len(rows):
            scores[usage.lower()] = map_at_k_labels(rows["label"].tolist(), [predicted[f] for f in rows["fname"]])
    return scores
