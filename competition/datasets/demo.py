"""The demo competition: FSDKaggle2018's layout and metric on clips the kit renders itself, offline.

`make data DATASET=demo` (and `make demo`) renders it with `demo_synth.generate_demo`: General MIDI
instrument samples, one label per clip out of the labels below, with FSDKaggle2018's unverified and
wrong labels and empty test clips. It is indexed exactly as the competition is.
"""

from __future__ import annotations

from pathlib import Path

from competition.datasets import freesound
from competition.datasets.demo_voices import LABELS
from competition.datasets.spec import Dataset

NAME = "demo"
def generate(dest: Path) -> None:
    """The registry's fetcher: render the demo competition with its default size into `dest`."""
    from competition.datasets.demo_synth import generate_demo

    generate_demo(dest)


DATASET = Dataset(
    name=NAME, labels=LABELS, metric="map@3", fold_rule="stratified", indexer=freesound.index_layout,
    fetcher=generate, ground_truth="test_post_competition.csv", kaggle_competition=freesound.COMPETITION,
    description="offline demo competition rendered from General MIDI samples, Kaggle's layout")
