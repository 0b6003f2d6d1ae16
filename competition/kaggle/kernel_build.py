"""Building Kaggle kernels (`make kernel`): `kernels/build/<slug>/`, ready to push (kernel_push.py).

`make kernel` builds `kernels/build/<slug>/` from the templates in `kernels/`: `<slug>.py`, which
embeds the kit's runtime package as a zip (the kernel needs no internet and no pip) and the
settings of what `competition.kaggle.kernel_run` does there, and `kernel-metadata.json`. The
runtime package is every module of `competition/`, subpackages included, but the demo's renderer
and walkthrough and the local app (`KERNEL_LEAVES_OUT`), which a kernel never runs; the benchmarks live outside the
package. Kinds of kernel:

    train     one kernel trains every fold of the experiments, blends the runs, writes submission.csv
    features  `FOLDS=all`: on the CPU (no GPU quota), the feature caches and folds of all the
              experiments, computed once and written as its output
    fold      `FOLDS=all`: one kernel per experiment and fold, reading the features kernel's output
              (its `kernel_sources`), so it starts training at once on its GPU
    blend     `FOLDS=all`: reads the fold kernels' outputs, assembles the runs, blends them and
              writes submission.csv

Kaggle runs a kernel as soon as it is pushed, on the output its sources have then, so each kernel
is pushed once its sources completed (kernel_schedule.py). `KERNEL_GPU` picks the GPU of the
training kernels (`GPU_SHAPES`: Kaggle's `machine_shape`; with `enable_gpu` alone Kaggle assigns
a P100); the features and blend kernels never hold one.
"""

from __future__ import annotations

import base64
import io
import json
import pprint
import string
import zipfile
from dataclasses import dataclass
from pathlib import Path

from competition.errors import KitError
from competition.workspace import KIT_ROOT, atomic_write_text

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # competition/
# What of the package a kernel never runs (modules, or folders ending in /): the demo competition's
# renderer, the demo walkthrough, the local app.
KERNEL_LEAVES_OUT = ("datasets/demo_synth.py", "demo_run.py", "app/")


def left_out_of_kernels(module: str) -> bool:
    """Whether a module path relative to competition/ (posix) stays out of built kernels."""
    return any(module == item or (item.endswith("/") and module.startswith(item)) for item in KERNEL_LEAVES_OUT)
SCRIPT_TEMPLATE = KIT_ROOT / "kernels" / "kernel_script.py.template"
METADATA_TEMPLATE = KIT_ROOT / "kernels" / "kernel-metadata.json"
METADATA_FILE = "kernel-metadata.json"
TITLE_LENGTHS = range(5, 51)  # what Kaggle accepts for a kernel title
# KERNEL_GPU -> the metadata's `machine_shape` (kagglesdk's ApiSaveKernelRequest; "GPU T4 x2" in
# Kaggle's editor is NvidiaTeslaT4). "none" trains on the CPU, without GPU quota.
GPU_SHAPES = {"T4x2": "NvidiaTeslaT4", "P100": "NvidiaTeslaP100", "none": None}
DEFAULT_GPU = "T4x2"
# A training kernel's time budget (KERNEL_HOURS): under Kaggle's session limit, keeping time for the
# session's start and for saving the output. Near it the kernel saves its checkpoints and stops; the
# scheduler pushes it again to continue from that output (kernel_run.py, kernel_schedule.py).
SESSION_LIMIT_HOURS = 12.0
DEFAULT_HOURS = 11.0
TRAINING_KINDS = ("train", "fold")
UNFINISHED = "unfinished.json"  # in a training kernel's output when its time budget ran out first
# A fixed time stamp for the embedded package's files, so an unchanged kit builds a byte-identical
# script and an unchanged kernel is not pushed again.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class KernelError(KitError, RuntimeError):
    """A kernel cannot be built, pushed or run as asked; the message says which and why."""


@dataclass(frozen=True)
class Kernel:
    title: str
    settings: dict  # what competition.kaggle.kernel_run does on Kaggle (settings["gpu"]: the KERNEL_GPU it checks)
    enable_gpu: bool
    kernel_sources: tuple[str, ...] = ()  # owner/slug refs of the kernels whose output it reads
    machine_shape: str | None = None  # the metadata's; None: Kaggle's default for enable_gpu

    @property
    def slug(self) -> str:
        return slug_of(self.title)

    @property
    def kind(self) -> str:
        return self.settings["kind"]


def _on(gpu: str) -> dict:
    """The Kernel fields that KERNEL_GPU=`gpu` makes."""
    return {"enable_gpu": GPU_SHAPES[gpu] is not None, "machine_shape": GPU_SHAPES[gpu]}


def slug_of(title: str) -> str:
    """The slug Kaggle derives from a title (the client warns when a kernel's id differs from it)."""
    from slugify import slugify

    return slugify(title)


def plan_kernels(experiment_paths: list[Path], *, title: str, dataset: str, competition: str,
                 per_fold: bool, username: str, gpu: str = DEFAULT_GPU,
                 hours: float = DEFAULT_HOURS) -> list[Kernel]:
    """The kernels to build, in push order: one train kernel, or the features kernel, the fold
    kernels and the blend kernel (each after the kernels it reads). A training kernel's settings
    carry its own slug (where a re-push finds its earlier output) and its time budget in hours."""
    from competition.config import load_experiment
    from competition.datasets.registry import get_dataset

    if gpu not in GPU_SHAPES:
        raise KernelError(f"KERNEL_GPU={gpu} is none of {', '.join(GPU_SHAPES)}")
    if not 0 < hours <= SESSION_LIMIT_HOURS:
        raise KernelError(f"KERNEL_HOURS={hours:g}: a kernel's time budget must be over 0 and at most Kaggle's "
                          f"session limit of {SESSION_LIMIT_HOURS:g} hours")
    experiments = [load_experiment(Path(path), dataset) for path in experiment_paths]
    names = [experiment.name for experiment in experiments]
    if len(set(names)) != len(names):
        raise KernelError(f"two experiments share a name ({', '.join(names)}); their runs would collide")
    sources = [{"file": Path(path).name, "toml": Path(path).read_text()} for path in experiment_paths]
    common = {"competition": competition, "dataset": dataset}
    if not per_fold:
        return [_checked(Kernel(title, {**common, "kind": "train", "gpu": gpu, "experiments": sources,
                                        "slug": slug_of(title), "hours": hours}, **_on(gpu)))]
    if get_dataset(dataset).fold_rule != "stratified":
        raise KernelError(f"{dataset} has predefined folds; kernels per fold are made for the competition's "
                          "stratified folds")
    features = _checked(Kernel(f"{title} features", {**common, "kind": "features", "gpu": "none",
                                                      "experiments": sources}, **_on("none")))
    fold_kernels, slugs_by_experiment = [], {}
    for experiment, source in zip(experiments, sources):
        for fold in range(experiment.folds.k):
            fold_title = f"{title} {experiment.name} fold {fold}"
            settings = {**common, "kind": "fold", "gpu": gpu, "experiments": [source], "fold": fold,
                        "features_kernel": features.slug, "slug": slug_of(fold_title), "hours": hours}
            fold_kernels.append(_checked(Kernel(fold_title, settings, **_on(gpu),
                                                kernel_sources=(f"{username}/{features.slug}",))))
            slugs_by_experiment.setdefault(experiment.name, []).append(fold_kernels[-1].slug)
    blend_settings = {**common, "kind": "blend", "gpu": "none", "experiments": sources,
                      "fold_kernels": slugs_by_experiment}
    blend = Kernel(f"{title} blend", blend_settings, **_on("none"),
                   kernel_sources=tuple(f"{username}/{kernel.slug}" for kernel in fold_kernels))
    return [features, *fold_kernels, _checked(blend)]


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
        "is_private": private, "enable_gpu": kernel.enable_gpu, "machine_shape": kernel.machine_shape,
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


def kernel_modules() -> list[Path]:
    """The runtime package's modules, relative to competition/, subpackages included."""
    modules = sorted(path.relative_to(PACKAGE_DIR) for path in PACKAGE_DIR.rglob("*.py")
                     if "__pycache__" not in path.parts)
    return [module for module in modules if not left_out_of_kernels(module.as_posix())]


def _package_zip_base64() -> str:
    """The runtime package's modules, zipped and base64-encoded in lines of 100 characters."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for relative in kernel_modules():
            module = PACKAGE_DIR / relative
            entry = zipfile.ZipInfo(f"competition/{relative.as_posix()}", date_time=ZIP_DATE_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, module.read_bytes())
    encoded = base64.b64encode(buffer.getvalue()).decode()
    return "\n".join(encoded[start:start + 100] for start in range(0, len(encoded), 100))
