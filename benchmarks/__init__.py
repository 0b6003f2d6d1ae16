"""The kit's benchmarks (`make bench`, `make bench-quality`), outside the runtime package so that no
Kaggle kernel carries them. They read the real recordings in ../shared/data beside the checkout
(`SHARED_DATA`) and say so, or fall back, when it is absent."""

from competition.workspace import KIT_ROOT

SHARED_DATA = KIT_ROOT.parent / "shared" / "data"
