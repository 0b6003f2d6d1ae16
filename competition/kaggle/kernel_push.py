"""Pushing kernels, following them and fetching their output (`make kernel`, `make kernel-status`,
`make kernel-output`): Kaggle is reached through competition.kaggle_client only, and every call
that may wait on it goes through `waiting.patiently` (429, 5xx and dropped connections retried).

A push is recorded in `<slug>/.pushed.json`: the ref and version Kaggle gave, a hash of the files
pushed, the kernel's kind, and the version of every kernel it reads as it was when pushed (its
inputs). A kernel whose files, and whose inputs, are those of its record and whose version has not
failed is not pushed again, so an interrupted `make kernel` picks up where it was
(kernel_schedule.py follows the `FOLDS=all` plan).

`make kernel-output` downloads a kernel's output (what it wrote to /kaggle/working, and its log)
into `runs/<slug>/`: `submission.csv` (+ `.json`) and each run's folder with its OOF and test
predictions, ready for `make submit SUB=runs/<slug>/submission.csv` or `make ensemble`. The
features kernel's output (the feature cache) is downloaded only when named.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from competition.kaggle.kernel_build import METADATA_FILE, KernelError
from competition.kaggle.waiting import Clock, duration, patiently, say_on_stderr
from competition.workspace import Workspace, atomic_write_text

PUSH_RECORD = ".pushed.json"
FAILED_STATES = ("error", "cancel_requested", "cancel_acknowledged")
# Kinds whose output is an input of other kernels rather than a result to download.
INPUT_KINDS = ("features",)


def content_hash(folder: Path) -> str:
    metadata_bytes = (folder / METADATA_FILE).read_bytes()
    script_bytes = (folder / json.loads(metadata_bytes)["code_file"]).read_bytes()
    return hashlib.sha256(metadata_bytes + b"\0" + script_bytes).hexdigest()


def push_record(folder: Path) -> dict | None:
    path = Path(folder) / PUSH_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def push(folder: Path, *, kind: str, inputs: dict[str, int] | None = None, clock: Clock,
         say: Callable[[str], None] = say_on_stderr) -> dict:
    """Push `folder` as a new version and record it; a refusal for the GPU session limit is
    kaggle_client.SessionLimitReached, nothing recorded."""
    from competition import kaggle_client

    pushed = patiently(lambda: kaggle_client.push_kernel(folder), what=f"pushing {folder.name}", clock=clock,
                       say=say)
    record = {**pushed, "content": content_hash(folder), "kind": kind, "inputs": dict(inputs or {})}
    atomic_write_text(Path(folder) / PUSH_RECORD, json.dumps(record, indent=1))
    return record


def is_current(folder: Path, record: dict | None, inputs: dict[str, int] | None = None) -> bool:
    """Whether `record` is a push of the folder's files as they are, reading `inputs` (ref: version)."""
    return (record is not None and record["content"] == content_hash(folder)
            and record.get("inputs", {}) == dict(inputs or {}))


def push_kernel(folder: Path, *, kind: str, poll_seconds: float, clock: Clock | None = None) -> dict:
    """`make kernel`: push `folder` unless the same files were pushed before and that version has
    not failed. While Kaggle refuses it for the GPU session limit, wait and push again."""
    from competition import kaggle_client

    clock = clock or Clock()
    record = push_record(folder)
    if is_current(folder, record):
        state = state_unless_deleted(record["ref"], clock)
        if state is not None and state not in FAILED_STATES:
            print(f"{record['ref']}: unchanged since version {record['version']} ({state}); not pushed again")
            return record
    while True:
        try:
            record = push(folder, kind=kind, clock=clock)
            break
        except kaggle_client.SessionLimitReached as refusal:
            print(f"{refusal}; pushing again in {duration(poll_seconds)}, once a GPU session ended", flush=True)
            clock.sleep(poll_seconds)
    print(f"{record['ref']}: pushed version {record['version']}, {record['url']}")
    return record


def kernel_session(ref: str, clock: Clock, say: Callable[[str], None] = say_on_stderr) -> tuple[str, str]:
    """(state, failure message) of the kernel's latest version."""
    from competition import kaggle_client

    return patiently(lambda: kaggle_client.kernel_session(ref), what=f"asking for the state of {ref}", clock=clock,
                     say=say)


def state_unless_deleted(ref: str, clock: Clock, say: Callable[[str], None] = say_on_stderr) -> str | None:
    from competition import kaggle_client

    try:
        return kernel_session(ref, clock, say)[0]
    except kaggle_client.NotFound:
        return None


def pushed_kernels(workspace: Workspace, selected: list[str] | None = None, *,
                   with_inputs: bool = True) -> list[str]:
    """Refs of the kernels pushed from kernels/build/ (without the features kernels unless
    `with_inputs`), or of `selected` (slugs or owner/slug refs)."""
    records = {path.parent.name: json.loads(path.read_text())
               for path in sorted(workspace.kernel_builds.glob(f"*/{PUSH_RECORD}"))}
    if not selected:
        if not records:
            raise KernelError(f"no kernel pushed from {workspace.kernel_builds} yet; run `make kernel` "
                              "first, or name one: KERNEL=owner/slug")
        return [record["ref"] for record in records.values()
                if with_inputs or record.get("kind") not in INPUT_KINDS]
    refs = []
    for name in selected:
        if "/" not in name and name not in records:
            raise KernelError(f"no kernel {name!r} pushed from {workspace.kernel_builds}; name it as "
                              "owner/slug, or one of: " + (", ".join(records) or "(none)"))
        refs.append(name if "/" in name else records[name]["ref"])
    return refs


def kernel_states(refs: list[str], clock: Clock | None = None) -> dict[str, str]:
    clock = clock or Clock()
    return {ref: kernel_session(ref, clock)[0] for ref in refs}


def output_dir(workspace: Workspace, ref: str) -> Path:
    return workspace.runs / ref.split("/")[-1]


def fetch_output(workspace: Workspace, ref: str, clock: Clock | None = None,
                 say: Callable[[str], None] = say_on_stderr) -> list[Path]:
    """Download the output of kernel `ref` into runs/<slug>/; returns the files written."""
    from competition import kaggle_client

    return patiently(lambda: kaggle_client.kernel_output(ref, output_dir(workspace, ref)),
                     what=f"downloading the output of {ref}", clock=clock or Clock(), say=say)
