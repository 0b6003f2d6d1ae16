"""Kaggle kernels (`make kernel`, `make kernel-status`, `make kernel-output`): build, push, fetch.

`make kernel` builds `kernels/build/<slug>/` from the templates in `kernels/`: `<slug>.py`, which
embeds the kit's `competition` package as a zip (the kernel needs no internet and no pip) and the
settings of what `competition.kernel_run` does there, and `kernel-metadata.json`. Kinds of kernel:

    train   one kernel trains every fold of the experiments, blends the runs, writes submission.csv
    fold    `FOLDS=all`: one kernel per experiment and fold, all pushed at once, so Kaggle runs
            them in parallel, each on its own GPU
    blend   `FOLDS=all`: reads the fold kernels' outputs (its `kernel_sources`), assembles the
            runs, blends them and writes submission.csv; pushed once every fold kernel completed,
            as Kaggle runs a kernel as soon as it is pushed

A push is recorded in `<slug>/.pushed.json` with a hash of the files pushed. Pushing an unchanged
kernel that has not failed is skipped, so an interrupted `make kernel FOLDS=all` picks up where
it was (waiting on the fold kernels) instead of training them again.

`make kernel-output` downloads a kernel's output (what it wrote to /kaggle/working, and its log)
into `runs/<slug>/`: `submission.csv` (+ `.json`) and each run's folder with its OOF and test
predictions, ready for `make submit SUB=runs/<slug>/submission.csv` or `make ensemble`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import pprint
import string
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from competition.workspace import Workspace, atomic_write_text

KIT_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = Path(__file__).resolve().parent
SCRIPT_TEMPLATE = KIT_ROOT / "kernels" / "kernel_script.py.template"
METADATA_TEMPLATE = KIT_ROOT / "kernels" / "kernel-metadata.json"
METADATA_FILE = "kernel-metadata.json"
PUSH_RECORD = ".pushed.json"
FAILED_STATES = ("error", "cancel_requested", "cancel_acknowledged")
TITLE_LENGTHS = range(5, 51)  # what Kaggle accepts for a kernel title
# A fixed time stamp for the embedded package's files, so an unchanged kit builds a byte-identical
# script and an unchanged kernel is not pushed again.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class KernelError(RuntimeError):
    """A kernel cannot be built, pushed or run as asked; the message says which and why."""


@dataclass(frozen=True)
class Kernel:
    title: str
    settings: dict  # what competition.kernel_run does on Kaggle
    enable_gpu: bool
    kernel_sources: tuple[str, ...] = ()

    @property
    def slug(self) -> str:
        return slug_of(self.title)


def slug_of(title: str) -> str:
    """The slug Kaggle derives from a title (the client warns when a kernel's id differs from it)."""
    from slugify import slugify

    return slugify(title)


def plan_kernels(experiment_paths: list[Path], *, title: str, dataset: str, competition: str,
                 per_fold: bool, username: str) -> list[Kernel]:
    """The kernels to build, in push order: one train kernel, or fold kernels then the blend kernel."""
    from competition.config import load_experiment
    from competition.datasets import get_dataset

    experiments = [load_experiment(Path(path), dataset) for path in experiment_paths]
    names = [experiment.name for experiment in experiments]
    if len(set(names)) != len(names):
        raise KernelError(f"two experiments share a name ({', '.join(names)}); their runs would collide")
    sources = [{"file": Path(path).name, "toml": Path(path).read_text()} for path in experiment_paths]
    common = {"competition": competition, "dataset": dataset}
    if not per_fold:
        return [_checked(Kernel(title, {**common, "kind": "train", "experiments": sources}, enable_gpu=True))]
    if get_dataset(dataset).fold_rule != "stratified":
        raise KernelError(f"{dataset} has predefined folds; kernels per fold are made for the competition's "
                          "stratified folds")
    fold_kernels, slugs_by_experiment = [], {}
    for experiment, source in zip(experiments, sources):
        for fold in range(experiment.folds.k):
            settings = {**common, "kind": "fold", "experiments": [source], "fold": fold}
            fold_kernels.append(_checked(Kernel(f"{title} {experiment.name} fold {fold}", settings, enable_gpu=True)))
            slugs_by_experiment.setdefault(experiment.name, []).append(fold_kernels[-1].slug)
    blend_settings = {**common, "kind": "blend", "experiments": sources, "fold_kernels": slugs_by_experiment}
    blend = Kernel(f"{title} blend", blend_settings, enable_gpu=False,
                   kernel_sources=tuple(f"{username}/{kernel.slug}" for kernel in fold_kernels))
    return fold_kernels + [_checked(blend)]


def _checked(kernel: Kernel) -> Kernel:
    if len(kernel.title) not in TITLE_LENGTHS:
        raise KernelError(f"kernel title {kernel.title!r} has {len(kernel.title)} characters; Kaggle takes "
                          f"{TITLE_LENGTHS.start} to {TITLE_LENGTHS.stop - 1} (choose a shorter KERNEL_TITLE)")
    return kernel


def write_kernel(kernel: Kernel, *, username: str, build_dir: Path, private: bool = True) -> Path:
    """Write `build_dir/<slug>/`: the script and its kernel-metadata.json. Returns the folder."""
    folder = Path(build_dir) / kernel.slug
    script_name = f"{kernel.slug}.py"
    metadata = json.loads(METADATA_TEMPLATE.read_text())
    filled = {
        "id": f"{username}/{kernel.slug}", "title": kernel.title, "code_file": script_name,
        "is_private": private, "enable_gpu": kernel.enable_gpu,
        "competition_sources": [kernel.settings["competition"]], "kernel_sources": list(kernel.kernel_sources),
    }
    unknown = set(filled) - set(metadata)
    if unknown:
        raise KernelError(f"{METADATA_TEMPLATE}: lacks the key(s) {', '.join(sorted(unknown))}")
    metadata.update(filled)
    atomic_write_text(folder / script_name, render_script(kernel))
    atomic_write_text(folder / METADATA_FILE, json.dumps(metadata, indent=2) + "\n")
    return folder


def render_script(kernel: Kernel) -> str:
    template = string.Template(SCRIPT_TEMPLATE.read_text())
    return template.substitute(title=kernel.title, settings=pprint.pformat(kernel.settings, width=100),
                               package_zip=_package_zip_base64())


def _package_zip_base64() -> str:
    """The `competition` package's modules, zipped and base64-encoded in lines of 100 characters."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for module in sorted(PACKAGE_DIR.glob("*.py")):
            entry = zipfile.ZipInfo(f"competition/{module.name}", date_time=ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, module.read_bytes())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return "\n".join(encoded[start:start + 100] for start in range(0, len(encoded), 100))


# ---------------------------------------------------------------------------------------------
# Pushing, waiting, fetching: Kaggle is reached through competition.kaggle_api only


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
    from competition import kaggle_api

    content = _content_hash(folder)
    record_path = folder / PUSH_RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else None
    if record and record["content"] == content and not force:
        state = _state_unless_deleted(record["ref"])
        if state is not None and state not in FAILED_STATES:
            print(f"{record['ref']}: unchanged since version {record['version']} ({state}); not pushed again")
            return record, False
    record = {**kaggle_api.push_kernel(folder), "content": content}
    atomic_write_text(record_path, json.dumps(record, indent=1))
    print(f"{record['ref']}: pushed version {record['version']}, {record['url']}")
    return record, True


def _state_unless_deleted(ref: str) -> str | None:
    from competition import kaggle_api

    try:
        return kaggle_api.kernel_status(ref)
    except kaggle_api.NotFound:
        return None


def _content_hash(folder: Path) -> str:
    metadata_bytes = (folder / METADATA_FILE).read_bytes()
    script_bytes = (folder / json.loads(metadata_bytes)["code_file"]).read_bytes()
    return hashlib.sha256(metadata_bytes + b"\0" + script_bytes).hexdigest()


def wait_until_complete(refs: list[str], *, poll_seconds: float) -> None:
    """Poll the kernels' states, printing each change, until all completed; raise if one failed."""
    from competition import kaggle_api

    last_seen: dict[str, str] = {}
    pending = list(refs)
    while pending:
        for ref in pending:
            state = kaggle_api.kernel_status(ref)
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
    from competition import kaggle_api

    return {ref: kaggle_api.kernel_status(ref) for ref in refs}


def fetch_output(workspace: Workspace, ref: str) -> list[Path]:
    """Download the output of kernel `ref` into runs/<slug>/; returns the files written."""
    from competition import kaggle_api

    return kaggle_api.kernel_output(ref, workspace.runs / ref.split("/")[-1])
