"""Small copies of the datasets' official layouts, written on disk for tests (tiny 8 kHz sine clips).

Plain helpers, not fixtures: test modules import them (`from layouts import make_esc50`); tests/ is on
sys.path because pytest loads tests/conftest.py from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile

from competition.datasets.esc50 import ESC10_LABELS
from competition.datasets.esc50 import LABELS as ESC50_LABELS
from competition.datasets.urbansound8k import LABELS as URBANSOUND8K_LABELS

RATE = 8000


def write_clip(path: Path, seconds: float = 0.1, pitch: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * RATE)) / RATE
    soundfile.write(path, (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32), RATE, subtype="PCM_16")


def make_urbansound8k(root: Path, *, folds_with_audio=range(1, 11), per_fold: int = 2) -> Path:
    """UrbanSound8K's layout under root/UrbanSound8K: all 10 folds in the CSV, audio for some."""
    base = root / "UrbanSound8K"
    rows = []
    for fold in range(1, 11):
        for i in range(per_fold):
            class_id = (fold + i) % 10
            name = f"{1000 * fold + i}-{class_id}-0-{i}.wav"
            rows.append({"slice_file_name": name, "fsID": 1000 * fold + i, "start": 0.0, "end": 0.1,
                         "salience": 1, "fold": fold, "classID": class_id, "class": URBANSOUND8K_LABELS[class_id]})
            if fold in folds_with_audio:
                write_clip(base / "audio" / f"fold{fold}" / name, pitch=200 + 50 * class_id)
    (base / "metadata").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(base / "metadata" / "UrbanSound8K.csv", index=False)
    return root


def make_esc50(root: Path, *, per_fold: int = 3) -> Path:
    """ESC-50's layout (meta/esc50.csv + audio/): per fold, some ESC-10 rows and some others."""
    rows = []
    for fold in range(1, 6):
        for i in range(per_fold):
            target = (7 * fold + 3 * i) % 50
            name = f"{fold}-{100 + i}-A-{target}.wav"
            rows.append({"filename": name, "fold": fold, "target": target, "category": ESC50_LABELS[target],
                         "esc10": ESC50_LABELS[target] in ESC10_LABELS, "src_file": 100 + i, "take": "A"})
            write_clip(root / "audio" / name, pitch=100 + 20 * target)
        label = ESC10_LABELS[fold]  # at least one ESC-10 row per fold
        name = f"{fold}-200-A-{ESC50_LABELS.index(label)}.wav"
        rows.append({"filename": name, "fold": fold, "target": ESC50_LABELS.index(label), "category": label,
                     "esc10": True, "src_file": 200, "take": "A"})
        write_clip(root / "audio" / name)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return root


def make_kaggle_layout(root: Path, labels: tuple[str, ...]) -> Path:
    """Kaggle's freesound-audio-tagging layout: train.csv + audio_train/, sample_submission.csv + audio_test/."""
    rows = [{"fname": f"{i:08x}.wav", "label": labels[i % len(labels)], "manually_verified": i % 2}
            for i in range(6)]
    for row in rows:
        write_clip(root / "audio_train" / row["fname"])
    pd.DataFrame(rows).to_csv(root / "train.csv", index=False)
    test = [{"fname": f"{100 + i:08x}.wav", "label": " ".join(labels[:3])} for i in range(3)]
    for row in test:
        write_clip(root / "audio_test" / row["fname"])
    pd.DataFrame(test).to_csv(root / "sample_submission.csv", index=False)
    return root
