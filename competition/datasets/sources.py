"""Source recordings shared between datasets: the leakage guard of transfer experiments.

FSDKaggle2018, UrbanSound8K and ESC-50 were all cut from Freesound recordings, and some recordings
sit in more than one of them. A base model trained on clips of a recording that the target dataset
also holds has heard its test clips. Every index carries each clip's `source_id` (its Freesound id,
"" where the dataset does not say); `make train EXCLUDE_SOURCES_OF=<dataset>` trains a base without
the recordings of another dataset, and `make transfer` refuses a base that holds any of its target's.
"""

from __future__ import annotations

import pandas as pd


def source_ids(train: pd.DataFrame) -> set[str]:
    """The known recording ids of an index table."""
    return {source for source in train["source_id"].astype(str) if source}


def shared_sources(train: pd.DataFrame, other: pd.DataFrame) -> set[str]:
    return source_ids(train) & source_ids(other)


def without_sources(train: pd.DataFrame, sources: set[str]) -> pd.DataFrame:
    """The rows whose recording is not one of `sources`."""
    return train[~train["source_id"].astype(str).isin(sources)].reset_index(drop=True)


def describe(sources: set[str], shown: int = 5) -> str:
    ids = sorted(sources, key=lambda source: (len(source), source))
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")
