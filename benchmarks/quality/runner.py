"""`make bench-quality`'s entry: --only's protocols, each run on its shared copy, printed and written."""

from __future__ import annotations

import time
from pathlib import Path

from benchmarks import SHARED_DATA
from benchmarks.quality.bench import Bench
from benchmarks.quality.data import protocol_dataset, protocol_index, shared_copy, shared_source
from benchmarks.quality.fsd_transfer import fsd_transfer_protocol
from benchmarks.quality.predefined import predefined_protocol
from benchmarks.quality.repeated import repeated_protocol
from benchmarks.quality.results import write_results
from benchmarks.quality.settings import BASES_WITHOUT, ESC50, PROTOCOLS, QualityPlan
from benchmarks.quality.transfer import transfer_protocol
from competition.workspace import Workspace

# The protocols fine-tuned from ESC-50 bases (BASES_WITHOUT's), by name: each reads the shared ESC-50
# copy for its bases. The others are scratch CV, repeated (fold seeds) or on predefined folds.
TRANSFER_PROTOCOLS = {"transfer": transfer_protocol, "esc10-transfer": transfer_protocol,
                      "fsd-transfer": fsd_transfer_protocol}


def parse_only(text: str | None) -> list[str]:
    """--only's comma-separated protocol names, in the order they run; every protocol when empty."""
    if not text:
        return list(PROTOCOLS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in PROTOCOLS]
    if unknown:
        from competition.errors import KitError

        raise KitError(f"--only: unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
    return [name for name in PROTOCOLS if name in names]


def run_quality_bench(workspace: Workspace, *, quick: bool = False, shared: Path = SHARED_DATA,
                      only: list[str] | None = None, finished_only: bool = False,
                      train_only: set[str] | None = None, plan: QualityPlan | None = None) -> dict:
    """Train, score and print every protocol (or `only` those) present under `shared`; returns the
    numbers. With `train_only` (--recipes), only runs of those experiment names are trained (two
    processes can then share one protocol's recipes); the others are read where they finished.
    `plan`: what is trained on which protocols (QualityPlan's defaults when None)."""
    if not shared.is_dir():
        print(f"bench-quality skipped: {shared} not found (the shared ESC-50 copy, whose esc10 rows are ESC-10, "
              f"and the UrbanSound8K and FSDKaggle2018-subset copies live in ../shared/data beside the kit's checkout)")
        return {}
    plan = plan or QualityPlan()
    bench = Bench(workspace, quick=quick, finished_only=finished_only, plan=plan, train_only=train_only)
    started = time.perf_counter()
    results: dict = {}
    for name in only or list(PROTOCOLS):
        protocol = plan.protocols[name]
        protocol_started = time.perf_counter()
        root = shared_copy(shared, protocol, workspace)
        # The ESC-50 bases leave another dataset's recordings out: they need both copies.
        bases_need = (ESC50, BASES_WITHOUT[name]) if name in BASES_WITHOUT else ()
        needs = [root] + [shared_copy(shared, other, workspace) for other in bases_need]
        if any(path is None for path in needs):
            sources = dict.fromkeys(str(shared_source(shared, p)) for p in (protocol, *bases_need))
            print(f"{protocol.title}: skipped, {' or '.join(sources)} not found")
            continue
        dataset = protocol_dataset(protocol, root)
        index = protocol_index(dataset, root, protocol)
        if name in TRANSFER_PROTOCOLS:
            rows, text = TRANSFER_PROTOCOLS[name](bench, protocol, dataset, index, shared)
        elif protocol.seeds:
            rows, text = repeated_protocol(bench, protocol, dataset, index)
        else:
            rows, text = predefined_protocol(bench, protocol, dataset, index, root)
        seconds = time.perf_counter() - protocol_started
        text += f"\n({name}: {seconds:.0f}s wall, this call)"
        print(text, flush=True)
        results[name] = rows
        write_results(workspace, {name: rows}, {name: text}, {name: seconds})
    if bench.missing:
        print(f"\nnot finished, left out (--finished-only or --recipes): {', '.join(bench.missing)}")
    if results:
        print(f"\nbench-quality: {time.perf_counter() - started:.0f}s wall")
    return results
