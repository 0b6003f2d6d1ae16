"""Pushing kernels, following them and fetching their output (`make kernel`, `make kernel-status`,
`make kernel-output`): Kaggle is reached through competition.kaggle_client only, and every call
that may wait on it goes through `waiting.patiently` (429, 5xx and dropped connections retried).

A push is recorded in `<slug>/.pushed.json`: the ref and version Kaggle gave, a hash of the files
pushed, the kernel's kind, and the version of every kernel it reads as it was when pushed (its
inputs). A kernel whose files, and whose inputs, are those of its record and whose version has not
failed is not pushed again, so an interrupted `make kernel` picks up where it was
(kernel_schedule.py follows the `FOLDS=all` plan).

A training kernel that completed with its time budget spent (`unfinished.json` in its output) is
pushed again reading its own output, to continue from it (`continue_unfinished`); the record says
whether a completed version finished (`finished`). Reading its own output does not make it another
kernel: the hash leaves the kernel's own id out of its sources.

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

from competition.kaggle.kernel_build import METADATA_FILE, TRAINING_KINDS, UNFINISHED, KernelError
from competition.kaggle.waiting import Clock, duration, patiently, say_on_stderr
from competition.workspace import Workspace, atomic_write_text

PUSH_RECORD = ".pushed.json"
FAILED_STATES = ("error", "cancel_requested", "cancel_acknowledged")
# Kinds whose output is an input of other kernels rather than a result to download.
INPUT_KINDS = ("features",)


def content_hash(folder: Path) -> str:
    metadata = json.loads((folder / METADATA_FILE).read_text())
    script_bytes = (folder / metadata["code_file"]).read_bytes()
    metadata["kernel_sources"] = [ref for ref in metadata.get("kernel_sources", []) if ref != metadata["id"]]
    return hashlib.sha256(json.dumps(metadata, sort_keys=True).encode() + b"\0" + script_bytes).hexdigest()


def reading_own_output(folder: Path) -> None:
    """Add the kernel's own id to its sources: the next version mounts this one's output."""
    path = Path(folder) / METADATA_FILE
    metadata = json.loads(path.read_text())
    if metadata["id"] not in metadata["kernel_sources"]:
        metadata["kernel_sources"].append(metadata["id"])
        atomic_write_text(path, json.dumps(metadata, indent=2) + "\n")


def unfinished_output(workspace: Workspace, ref: str, clock: Clock,
                      say: Callable[[str], None] = say_on_stderr) -> dict | None:
    """What a completed training kernel left unfinished (its output's unfinished.json), or None."""
    from competition import kaggle_client

    stale = output_dir(workspace, ref) / UNFINISHED
    stale.unlink(missing_ok=True)
    files = patiently(lambda: kaggle_client.kernel_output(ref, output_dir(workspace, ref), names=(UNFINISHED,)),
                      what=f"checking whether {ref} finished", clock=clock, say=say)
    marker = [path for path in files if path.name == UNFINISHED]
    return json.loads(marker[0].read_text()) if marker else None


def check_finished(folder: Path, record: dict, workspace: Workspace, clock: Clock,
                   say: Callable[[str], None] = say_on_stderr) -> dict | None:
    """For a completed version: None if it finished (recorded), else what it left (and the folder now
    reads its own output, ready to be pushed again)."""
    if record.get("kind") not in TRAINING_KINDS or record.get("finished"):
        return None
    unfinished = unfinished_output(workspace, record["ref"], clock, say)
    record["finished"] = unfinished is None
    atomic_write_text(Path(folder) / PUSH_RECORD, json.dumps(record, indent=1))
    if unfinished is not None:
        reading_own_output(folder)
    return unfinished


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


def push_kernel(folder: Path, *, kind: str, workspace: Workspace, poll_seconds: float,
                clock: Clock | None = None) -> dict:
    """`make kernel`: push `folder` unless the same files were pushed before and that version has
    not failed or stopped unfinished. While Kaggle refuses it for the GPU session limit, wait and
    push again."""
    from competition import kaggle_client

    clock = clock or Clock()
    record = push_record(folder)
    if is_current(folder, record):
        state = state_unless_deleted(record["ref"], clock)
        unfinished = check_finished(folder, record, workspace, clock) if state == "complete" else None
        if unfinished is not None:
            print(f"{record['ref']}: version {record['version']} stopped at its time budget: {unfinished['message']}; "
                  "pushing it again to continue from its output")
        elif state is not None and state not in FAILED_STATES:
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
