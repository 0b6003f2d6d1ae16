"""Building Kaggle kernels (`make kernel`): `kernels/build/<slug>/`, ready to push (kernel_push.py).

`make kernel` builds `kernels/build/<slug>/` from the templates in `kernels/`: `<slug>.py`, which
embeds the kit's runtime package as a zip (the kernel needs no internet and no pip) and the
settings of what `competition.kaggle.kernel_run` does there, and `kernel-metadata.json`. The
runtime package is every module of `competition/`, subpackages included, but the demo's renderer
and walkthrough (`KERNEL_LEAVES_OUT`), which a kernel never runs; the benchmarks live outside the
package. Kinds of kernel:

    train   one kernel trains every fold of the experiments, blends the runs, writes submission.csv
    fold    `FOLDS=all`: one kernel per experiment and fold, all pushed at once, so Kaggle runs
            them in parallel, each on its own GPU
    blend   `FOLDS=all`: reads the fold kernels' outputs (its `kernel_sources`), assembles the
            runs, blends them and writes submission.csv; pushed once every fold kernel completed,
            as Kaggle runs a kernel as soon as it is pushed
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
# Modules of the package a kernel never runs: the demo competition's renderer and the demo walkthrough.
KERNEL_LEAVES_OUT = ("datasets/demo_synth.py", "demo_run.py")
SCRIPT_TEMPLATE = KIT_ROOT / "kernels" / "kernel_script.py.template"
METADATA_TEMPLATE = KIT_ROOT / "kernels" / "kernel-metadata.json"
METADATA_FILE = "kernel-metadata.json"
TITLE_LENGTHS = range(5, 51)  # what Kaggle accepts for a kernel title
# A fixed time stamp for the embedded package's files, so an unchanged kit builds a byte-identical
# script and an unchanged kernel is not pushed again.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


class KernelError(KitError, RuntimeError):
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
    from competition.datasets.registry import get_dataset

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


def kernel_modules() -> list[Path]:
    """The runtime package's modules, relative to competition/, subpackages included."""
    modules = sorted(path.relative_to(PACKAGE_DIR) for path in PACKAGE_DIR.rglob("*.py")
                     if "__pycache__" not in path.parts)
    return [module for module in modules if module.as_posix() not in KERNEL_LEAVES_OUT]


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
