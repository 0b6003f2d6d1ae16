"""The clip sets the speed bench runs every method on, each in ESC-50's layout (meta/esc50.csv +
audio/) so that the kit's own command can index it as `esc10`.

From ../shared/data beside the kit, when there: ESC-10, the 400 rows marked esc10 of the shared
ESC-50 copy (ESC-50 at 16 kHz, Vorbis: OGG, mono, 5 s), read in place; and every UrbanSound8K clip
of the shared folds (1,761 in folds 1-2; 16-bit WAV, 22,050 Hz, up to 4 s), converted from the
shared FLAC copy as its bin/urbansound8k-wav does. Otherwise, or when asked, 400 generated 5 s
16-bit WAV clips at 44.1 kHz.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks import SHARED_DATA
from competition.workspace import KIT_ROOT

# Where the shared ESC-10 clips are read: the esc10 rows of the shared ESC-50 copy.
SHARED_ESC10 = SHARED_DATA / "esc50"
SHARED_URBANSOUND8K = SHARED_DATA / "urbansound8k"
GENERATED_CLIPS = 400


def clip_sets(work_dir: Path, limit: int | None, generated: bool, *, shared: Path = SHARED_DATA,
              esc10: Path = SHARED_ESC10, urbansound8k: Path = SHARED_URBANSOUND8K,
              n_generated: int = GENERATED_CLIPS) -> list[tuple[Path, list[str], str]]:
    """[(an ESC-50-layout folder, its audio paths, what they are)]: the shared ESC-10 and UrbanSound8K
    copies present (unless `generated`), else generated clips. With `limit`, the first `limit` clips
    of each, and the folder's CSV lists exactly those."""
    import pandas as pd

    sources = []
    if not generated and (esc10 / "meta" / "esc50.csv").is_file():
        what = (f"ESC-10 clips (ESC-50 at 16 kHz, Vorbis: OGG, mono, 5 s; its esc10 rows) from "
                f"{os.path.relpath(esc10, KIT_ROOT)}")
        sources.append((esc10, what))
    if not generated and (urbansound8k / "audio-flac" / "fold1").is_dir():
        root = work_dir / "urbansound8k-wav"
        folds = _urbansound8k_as_esc50_layout(urbansound8k, root)
        what = (f"UrbanSound8K clips (folds {folds}, 16-bit WAV, 22.05 kHz, <= 4 s) from "
                f"{os.path.relpath(urbansound8k, KIT_ROOT)}")
        sources.append((root, what))
    if not sources:
        root = work_dir / "generated-esc10"
        _generate_esc50_layout(root, n_generated)
        why = "as asked" if generated else f"{shared} holds neither ESC-10 nor UrbanSound8K"
        sources.append((root, f"generated clips (16-bit WAV, 44.1 kHz, 5 s; {why})"))
    result = []
    for root, what in sources:
        table = pd.read_csv(root / "meta" / "esc50.csv", dtype=str)
        table = table[table["esc10"].str.lower() == "true"]
        if limit:
            table = table.head(limit)
            # The whole-command run (d') indexes the folder: give it exactly these rows.
            if root == esc10:
                root = work_dir / "esc10-subset"
                (root / "meta").mkdir(parents=True)
                (root / "audio").symlink_to(esc10 / "audio")
            table.to_csv(root / "meta" / "esc50.csv", index=False)
        result.append((root, [str(root / "audio" / f) for f in table["filename"]], f"{len(table)} {what}"))
    return result


def _urbansound8k_as_esc50_layout(shared: Path, root: Path) -> str:
    """Every UrbanSound8K clip of the shared folds as WAV (16-bit, as the official release and
    bin/urbansound8k-wav write them) in ESC-50's layout, so (d') can index them as `esc10`; the
    labels are ESC-10's, assigned in turn, as speed does not depend on them. Returns the folds, e.g. "1, 2"."""
    import pandas as pd
    import soundfile

    from competition.datasets.esc50 import ESC10_LABELS
    from competition.datasets.esc50 import LABELS as ESC50_LABELS

    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir(parents=True)
    fold_dirs = sorted((shared / "audio-flac").glob("fold*"), key=lambda d: int(d.name[4:]))
    rows = []
    for fold_dir in fold_dirs:
        for flac in sorted(fold_dir.glob("*.flac")):
            data, rate = soundfile.read(flac, dtype="int16")
            soundfile.write(root / "audio" / f"{flac.stem}.wav", data, rate, format="WAV", subtype="PCM_16")
            label = ESC10_LABELS[len(rows) % len(ESC10_LABELS)]
            rows.append({"filename": f"{flac.stem}.wav", "fold": 1, "target": ESC50_LABELS.index(label),
                         "category": label, "esc10": True, "src_file": flac.stem, "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
    return ", ".join(d.name[4:] for d in fold_dirs)


def _generate_esc50_layout(root: Path, n_clips: int) -> None:
    """ESC-10-like clips: tones, chirps and noise bursts, 5 s at 44.1 kHz, in ESC-50's layout."""
    import pandas as pd
    import soundfile

    from competition.datasets.esc50 import ESC10_LABELS
    from competition.datasets.esc50 import LABELS as ESC50_LABELS

    rate, rng = 44100, np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir(parents=True)
    time_axis = np.arange(5 * rate) / rate
    rows = []
    for i in range(n_clips):
        label = ESC10_LABELS[i % len(ESC10_LABELS)]
        pitch = 100 + 60 * (i % 10) + rng.uniform(0, 40)
        clip = 0.3 * np.sin(2 * np.pi * pitch * time_axis * (1 + 0.1 * rng.standard_normal() * time_axis))
        clip += 0.05 * rng.standard_normal(len(time_axis)) * (rng.uniform(size=len(time_axis) // 4410 + 1) > 0.5
                                                             ).repeat(4410)[: len(time_axis)]
        name = f"{i % 5 + 1}-{100000 + i}-A-{ESC50_LABELS.index(label)}.wav"
        soundfile.write(root / "audio" / name, clip.astype(np.float32), rate, subtype="PCM_16")
        rows.append({"filename": name, "fold": i % 5 + 1, "target": ESC50_LABELS.index(label),
                     "category": label, "esc10": True, "src_file": 100000 + i, "take": "A"})
    pd.DataFrame(rows).to_csv(root / "meta" / "esc50.csv", index=False)
