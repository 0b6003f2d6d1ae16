"""Pushing kernels, following them and fetching their output (`make kernel`, `make kernel-status`,
`make kernel-output`): Kaggle is reached through competition.kaggle_client only.

A push is recorded in `<slug>/.pushed.json` with a hash of the files pushed. Pushing an unchanged
kernel that has not failed is skipped, so an interrupted `make kernel FOLDS=all` picks up where
it was (waiting on the fold kernels) instead of training them again.

`make kernel-output` downloads a kernel's output (what it wrote to /kaggle/working, and its log)
into `runs/<slug>/`: `submission.csv` (+ `.json`) and each run's folder with its OOF and test
predictions, ready for `make submit SUB=runs/<slug>/submission.csv` or `make ensemble`.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from competition.kaggle.kernel_build import METADATA_FILE, KernelError
from competition.workspace import Workspace, atomic_write_text

PUSH_RECORD = ".pushed.json"
FAILED_STATES = ("error", "cancel_requested", "cancel_acknowledged")


def push_kernels(folders: list[Path], *, poll_seconds: float) -> list[dict]:
    """Push the kernels in `folders`; when several, the last (the blend) only once all others completed.

    The blend is pushed again whenever a kernel it reads was: its files are the same, its inputs not.
    """
    *sources, last = folders
    pushed = [push_kernel(folder) for folder in sources]
    if sources:
        wait_until_complete([record["ref"] for record, _ in pushed], poll_seconds=poll_seconds)
    blend = push_kernel(last, force=any(new_version for _, new_version in pushed))
    return [record for record, _ in pushed + [blend]]


def push_kernel(folder: Path, *, force: bool = False) -> tuple[dict, bool]:
    """Push `folder` unless forced or the same files were pushed before and that version has not failed.

    Returns the push record and whether a new version was pushed now.
    """
    from competition import kaggle_client

    content = _content_hash(folder)
    record_path = folder / PUSH_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if record and record["content"] == content and not force:
        state = _state_unless_deleted(record["ref"])
        if state is not None and state not in FAILED_STATES:
            print(f"{record['ref']}: unchanged since version {record['version']} ({state}); not pushed again")
            return record, False
    record = {**kaggle_client.push_kernel(folder), "content": content}
    atomic_write_text(record_path, json.dumps(record, indent=1))
    print(f"{record['ref']}: pushed version {record['version']}, {record['url']}")
    return record, True


def _state_unless_deleted(ref: str) -> str | None:
    from competition import kaggle_client

    try:
        return kaggle_client.kernel_status(ref)
    except kaggle_client.NotFound:
        return None


def _content_hash(folder: Path) -> str:
    metadata_bytes = (folder / METADATA_FILE).read_bytes()
    script_bytes = (folder / json.loads(metadata_bytes)["code_file"]).read_bytes()
    return hashlib.sha256(metadata_bytes + b"\0" + script_bytes).hexdigest()


def wait_until_complete(refs: list[str], *, poll_seconds: float) -> None:
    """Poll the kernels' states, printing each change, until all completed; raise if one failed."""
    from competition import kaggle_client

    last_seen: dict[str, str] = {}
    pending = list(refs)
    while pending:
        for ref in pending:
            state = kaggle_client.kernel_status(ref)
            if state != last_seen.get(ref):
                print(f"{ref}: {state}", flush=True)
                last_seen[ref] = state
            if state in FAILED_STATES:
                raise KernelError(
                    f"kernel {ref} ended in state '{state}'; its log comes with `make kernel-output "
                    f"KERNEL={ref}`. Fix the cause and rerun `make kernel FOLDS=all`: kernels that "
                    "completed are not pushed again.")
        pending = [ref for ref in pending if last_seen[ref] != "complete"]
        if pending:
            time.sleep(poll_seconds)


def pushed_kernels(workspace: Workspace, selected: list[str] | None = None) -> list[str]:
    """Refs of the kernels pushed from kernels/build/, or of `selected` (slugs or owner/slug refs)."""
    records = {path.parent.name: json.loads(path.read_text())["ref"]
               for path in sorted(workspace.kernel_builds.glob(f"*/{PUSH_RECORD}"))}
    if not selected:
        if not records:
            raise KernelError(f"no kernel pushed from {workspace.kernel_builds} yet; run `make kernel` "
                              "first, or name one: KERNEL=owner/slug")
        return list(records.values())
    refs = []
    for name in selected:
        if "/" not in name and name not in records:
            raise KernelError(f"no kernel {name!r} pushed from {workspace.kernel_builds}; name it as "
                              "owner/slug, or one of: " + (", ".join(records) or "(none)"))
        refs.append(name if "/" in name else records[name])
    return refs


def kernel_states(refs: list[str]) -> dict[str, str]:
    from competition import kaggle_client

    return {ref: kaggle_client.kernel_status(ref) for ref in refs}


def fetch_output(workspace: Workspace, ref: str) -> list[Path]:
    """Download the output of kernel `ref` into runs/<slug>/; returns the files written."""
    from competition import kaggle_client

    return kaggle_client.kernel_output(ref, workspace.runs / ref.split("/")[-1])
