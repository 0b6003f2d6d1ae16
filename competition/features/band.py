"""Clips recorded at a lower rate than the features are computed at: resampled up, they hold nothing above
half their own rate, so the features' top bins are empty for them. Said once, when a cache is built, so a
dataset copy at a lower rate (ESC-50's shared 16 kHz copy under 22.05 kHz features) is not learnt silently
from empty bins."""

from __future__ import annotations

from collections import Counter

import pandas as pd

from competition.audio import AudioError, audio_info
from competition.config import FeatureConfig


def recorded_rates(paths) -> Counter:
    """How many clips each sample rate has, from their headers; clips that cannot be opened are left out
    (the build reports them)."""
    rates: Counter = Counter()
    for path in paths:
        try:
            rates[audio_info(path)[0]] += 1
        except (AudioError, OSError):
            continue
    return rates


def below_rate_notes(table: pd.DataFrame, dataset: str, split: str, configs: list[FeatureConfig]) -> list[str]:
    """One line for each features rate that some of the split's clips are recorded below."""
    rates = recorded_rates(table["path"])
    notes = []
    for rate in sorted({config.sample_rate for config in configs}):
        below = {recorded: count for recorded, count in sorted(rates.items()) if recorded < rate}
        if not below:
            continue
        counts = ", ".join(f"{recorded} Hz: {count}" for recorded, count in below.items())
        notes.append(f"note: {sum(below.values())} of {len(table)} {dataset} {split} clip(s) are recorded below the "
                     f"features' {rate} Hz ({counts}): resampled up, they hold nothing above {min(below) // 2} Hz, "
                     f"so the features' top bins are empty for them (features.sample_rate sets the rate)")
    return notes
