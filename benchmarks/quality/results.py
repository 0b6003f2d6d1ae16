"""runs/bench-quality.json/.txt: the tables each protocol wrote last, and what the ESC-10 protocol reads
back of the FSD subset's rows (the candidates ahead there)."""

from __future__ import annotations

import json

from benchmarks.quality.settings import PROTOCOLS
from competition.workspace import Workspace, atomic_write_text


def previous_rows(workspace: Workspace, protocol_key: str) -> dict[str, dict]:
    """A protocol's rows as the last call that ran it wrote them to runs/bench-quality.json ({} if none)."""
    path = workspace.runs / "bench-quality.json"
    return json.loads(path.read_text()).get(protocol_key, {}) if path.is_file() else {}


def candidates_ahead(fsd_rows: dict[str, dict], default_row: str, candidates: dict) -> list[str]:
    """The FSD subset's candidates whose mean MAP@3 over every repeat is above the default recipe's:
    the only ones worth confirming where the default was shaped (a row of some repeats only, its
    name saying so, does not count)."""
    prefix = default_row.replace("kit: ", "candidate: ", 1)
    ahead = rows_ahead(fsd_rows, default_row, [f"{prefix}, {label}" for label in candidates])
    return [label for label in candidates if f"{prefix}, {label}" in ahead]


def rows_ahead(rows: dict[str, dict], reference: str, names: list[str]) -> list[str]:
    """Those of `names` that are rows with a mean MAP@3 above the `reference` row's (none without it)."""
    if reference not in rows:
        return []
    return [name for name in names if name in rows and rows[name]["mean"]["map@3"] > rows[reference]["mean"]["map@3"]]


def write_results(workspace: Workspace, results: dict, tables: dict[str, str], seconds: dict[str, float]) -> None:
    """runs/bench-quality.json/.txt: this run's protocols over the ones written before."""
    path = workspace.runs / "bench-quality.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**{k: v for k, v in previous.items() if k not in ("tables", "seconds")}, **results}
    merged["tables"] = {**previous.get("tables", {}), **tables}
    merged["seconds"] = {**previous.get("seconds", {}), **seconds}
    order = [name for name in PROTOCOLS if name in merged["tables"]]
    atomic_write_text(path, json.dumps(merged, indent=1))
    atomic_write_text(workspace.runs / "bench-quality.txt", "\n".join(merged["tables"][name] for name in order) + "\n")
