"""The dataset registry: one line per dataset. A new dataset is one module (its `DATASET` spec:
labels, indexer, fetcher, metric, fold rule) plus one line here."""

from __future__ import annotations

from competition.datasets import demo, esc50, freesound, urbansound8k
from competition.datasets.spec import Dataset, DatasetError

REGISTRY: dict[str, Dataset] = {dataset.name: dataset for dataset in (
    freesound.DATASET,
    demo.DATASET,
    urbansound8k.DATASET,
    esc50.DATASET,
    esc50.ESC10,
)}
# What every step works on unless told otherwise: the competition; `make transfer`'s target.
DEFAULT_DATASET = freesound.DATASET.name
DEFAULT_TRANSFER_DATASET = urbansound8k.DATASET.name


def dataset_names() -> list[str]:
    return list(REGISTRY)


def get_dataset(name: str) -> Dataset:
    try:
        return REGISTRY[name]
    except KeyError:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}") from None
