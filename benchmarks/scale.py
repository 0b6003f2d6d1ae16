"""`python -m benchmarks scale` (`make bench-scale`): the kernels of `make kernel FOLDS=all`, built as
that command builds them and run on this machine, on a competition of the real size.

The competition is `demo_synth.generate_full_size`'s (FSDKaggle2018's own fnames, labels, flags and
usage, on General MIDI audio), rendered once into `<dir>/competition/` and reused after. The
experiments are the default ones with `epochs = 1` (copies in `<dir>/experiments/`), so one epoch
of the default recipe is what a fold kernel trains. `python -m competition kernel --build-only
--folds all` builds the kernels; each built script then runs in a fresh process, as the tests run
them, with Kaggle's folders mapped: KAGGLE_INPUT_DIR holds the competition and the outputs of the
kernels run before it, KAGGLE_WORKING_DIR is its own output, KIT_KERNEL_ON_CPU=1 lets a kernel
built for a GPU train on the CPU. The steps:

    features kernel   the feature caches and folds of all the default experiments (the plan's own)
    fold kernels      the k fold kernels of the first default experiment; its fold 0 is the figure
                      of one fold kernel
    blend kernel      the blend kernel of a plan of that one experiment, reading those k outputs

A blend kernel reads the output of every fold kernel of its plan, each of which must really have
run; the default plan's blend would need all its experiments' fold kernels, hours on two cores,
so by default the blend is that of the first experiment's plan, whose fold kernels are the default
plan's own (the bench checks the scripts are byte-identical). `--all-folds` runs every fold kernel
of the default plan and its own blend kernel instead.

Per step: wall seconds, peak resident memory (of the largest process, from the child's rusage; and
of its process tree, the sum sampled every `SAMPLE_SECONDS`), and the disk its output takes; then
a projection of the whole FOLDS=all run on Kaggle (`projection`), its assumptions stated.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from competition.errors import KitError

SCALE_DIR = "bench-scale"  # under the workspace root, unless --dir says otherwise
TITLE = "kit scale bench"
USERNAME = "bench"
RENDER_RECORD = "render.json"  # <dir>/: how long the bench's render of the competition took
SAMPLE_SECONDS = 0.1
LOG_TAIL_CHARACTERS = 3000
# Assumptions of the projection, beside gpu_hours.py's (GPU throughput, start-up per GPU kernel):
# Kaggle's CPU sessions (the features and blend kernels) have 4 cores, each as fast as one here, and
# a kernel's output (/kaggle/working) may hold up to 20 GB, and a session has about 29 GB of RAM.
KAGGLE_CPU_CORES = 4
KAGGLE_OUTPUT_LIMIT_BYTES = 20e9
KAGGLE_SESSION_RAM_BYTES = 29e9


class ScaleBenchError(KitError, RuntimeError):
    """A step of the scale bench failed; the message names it and shows the end of its log."""


@dataclass
class Step:
    """One kernel run and what it took."""

    name: str
    slug: str
    seconds: float
    peak_process_bytes: int  # the largest process of its tree (ru_maxrss)
    peak_tree_bytes: int  # the sum over its process tree, sampled
    output_bytes: int  # what its /kaggle/working holds
    cache_bytes: int = 0  # the feature caches in it (features kernel)
    fit_seconds: float = 0.0  # of `seconds`, the epochs' training (fold kernels: their history.csv)


# -- the steps


def run_scale_bench(workspace, *, scale_dir: Path | None = None, all_folds: bool = False,
                    workers: int | None = None) -> list[Step]:
    """Render (or reuse) the full-size competition, build the kernels, run them; print the table and
    the projection. Returns the steps."""
    from competition.config import DEFAULT_EXPERIMENTS

    root = Path(scale_dir or workspace.root / SCALE_DIR).resolve()
    competition = render_competition(root, workers)
    experiments = one_epoch_copies(DEFAULT_EXPERIMENTS, root / "experiments")
    plan = build_plan(root / "kit", experiments)
    first = experiments[0].stem
    if all_folds:  # the experiments in their order, each one's folds in theirs: the first experiment's fold 0 first
        order = {path.stem: i for i, path in enumerate(experiments)}
        fold_scripts = sorted((s for name, s in plan.items() if "-fold-" in name), key=lambda script: (
            order[script.parent.name.removeprefix(plan_prefix() + "-").rsplit("-fold-", 1)[0]],
            int(script.parent.name.rsplit("-fold-", 1)[1])))
        blend_script = plan["blend"]
    else:
        one = build_plan(root / "kit-one-experiment", experiments[:1])
        fold_scripts, blend_script = [s for name, s in one.items() if "-fold-" in name], one["blend"]
        for script in fold_scripts:
            if script.read_bytes() != plan[script.parent.name].read_bytes():
                raise ScaleBenchError(f"{script} differs from the default plan's {script.parent.name}; "
                                      "the blend would not read the plan's own fold kernels")

    input_dir, outputs = root / "input", root / "output"
    shutil.rmtree(input_dir, ignore_errors=True)
    input_dir.mkdir(parents=True)
    (input_dir / kernel_competition()).symlink_to(competition, target_is_directory=True)
    steps = []
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the start; each kernel's log "
          f"in {root / 'logs'}", flush=True)
    steps.append(run_step("features kernel", plan["features"], root, input_dir, outputs))
    for script in fold_scripts:
        slug = script.parent.name
        name = "fold kernel" if slug.endswith(f"{first}-fold-0") else "  further fold kernel"
        steps.append(run_step(f"{name} {slug.removeprefix(plan_prefix() + '-')}", script, root, input_dir, outputs,
                              trains=True))
    steps.append(run_step("blend kernel" + ("" if all_folds else f" ({first} only)"), blend_script, root,
                          input_dir, outputs))

    print()
    print(format_table(steps, competition_bytes=disk_bytes(competition), render=render_record(root)))
    print()
    for line in projection(steps, DEFAULT_EXPERIMENTS, local_cores=os.cpu_count() or 1):
        print(line)
    return steps


def render_competition(root: Path, workers: int | None) -> Path:
    """The full-size competition in `root/competition`, rendered now (timed, recorded) or reused."""
    from competition.datasets.demo_synth import DEMO_RECORD, generate_full_size

    dest, record_path = root / "competition", root / RENDER_RECORD
    before = _mtime(dest / DEMO_RECORD)
    started = time.perf_counter()
    generate_full_size(dest, workers=workers)
    seconds = time.perf_counter() - started
    if before is not None and _mtime(dest / DEMO_RECORD) == before:  # held it already: nothing rendered
        earlier = render_record(root)
        when = f"rendered earlier in {format_seconds(earlier['seconds'])}" if earlier else "its render time unknown"
        print(f"{dest}: reused ({when})")
    else:
        record = {"seconds": round(seconds, 1), "workers": workers or len(os.sched_getaffinity(0)),
                  "bytes": disk_bytes(dest)}
        record_path.write_text(json.dumps(record) + "\n")
        print(f"{dest}: rendered in {format_seconds(seconds)} ({format_bytes(record['bytes'])})")
    return dest


def _mtime(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.is_file() else None


def render_record(root: Path) -> dict | None:
    path = root / RENDER_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def one_epoch_copies(paths, folder: Path) -> list[Path]:
    """Each experiment file copied into `folder` with its [train] `epochs` set to 1."""
    copies = []
    for path in paths:
        text = Path(path).read_text()
        changed, count = re.subn(r"(?m)^epochs\s*=\s*\d+\s*$", "epochs = 1", text)
        if count != 1:
            raise ScaleBenchError(f"{path}: expected one `epochs = N` line, found {count}")
        copy = folder / Path(path).name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_text(changed)
        copies.append(copy)
    return copies


def kernel_competition() -> str:
    from competition.datasets.freesound import COMPETITION

    return COMPETITION


def plan_prefix() -> str:
    from competition.kaggle.kernel_build import slug_of

    return slug_of(TITLE)


def build_plan(kit_home: Path, experiments: list[Path]) -> dict[str, Path]:
    """`make kernel FOLDS=all --build-only` for `experiments` in the workspace `kit_home`: the built
    scripts by slug ("features" and "blend" for those two)."""
    from benchmarks.measure import kit_env

    shutil.rmtree(kit_home / "kernels" / "build", ignore_errors=True)
    command = [sys.executable, "-m", "competition", "kernel", "--build-only", "--username", USERNAME,
               "--folds", "all", "--dataset", kernel_competition(), "--title", TITLE]
    for path in experiments:
        command += ["--experiment", str(path)]
    done = subprocess.run(command, env=kit_env(KIT_HOME=str(kit_home)), capture_output=True, text=True)
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip()[-LOG_TAIL_CHARACTERS:]
        raise ScaleBenchError(f"building the kernels failed: {said}")
    scripts = {}
    prefix = plan_prefix()
    for folder in sorted((kit_home / "kernels" / "build").iterdir()):
        key = {f"{prefix}-features": "features", f"{prefix}-blend": "blend"}.get(folder.name, folder.name)
        scripts[key] = folder / f"{folder.name}.py"
    return scripts


def run_step(name: str, script: Path, root: Path, input_dir: Path, outputs: Path, *, trains: bool = False) -> Step:
    """Run one built kernel script with Kaggle's folders mapped, measured; its output is then
    mounted in `input_dir` for the kernels after it. `trains`: a fold kernel, whose training
    seconds its history.csv gives."""
    slug = script.parent.name
    output, scratch, log = outputs / slug, root / "scratch" / slug, root / "logs" / f"{slug}.log"
    for folder in (output, scratch):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"{name}: running {slug} ...", flush=True)
    seconds, peak_process, peak_tree, code = measured_run([sys.executable, str(script)], kernel_env(
        input_dir, output, scratch), cwd=scratch, log=log)
    shutil.rmtree(scratch, ignore_errors=True)  # the kernel's own workspace (a copy of the caches, for one)
    if code != 0:
        tail = log.read_text(errors="replace")[-LOG_TAIL_CHARACTERS:]
        raise ScaleBenchError(f"{name} ({slug}) failed with exit code {code}; the end of {log}:\n{tail}")
    link = input_dir / slug
    if link.is_symlink():
        link.unlink()
    link.symlink_to(output, target_is_directory=True)
    step = Step(name, slug, seconds, peak_process, peak_tree, disk_bytes(output),
                disk_bytes(output / "features") if (output / "features").is_dir() else 0,
                fit_seconds(output) if trains else 0.0)
    print(f"{name}: {format_seconds(step.seconds)}, peak {format_bytes(step.peak_process_bytes)} (largest process), "
          f"output {format_bytes(step.output_bytes)}", flush=True)
    (root / "logs" / f"{slug}.json").write_text(json.dumps(asdict(step)) + "\n")
    return step


def kernel_env(input_dir: Path, working_dir: Path, scratch: Path) -> dict[str, str]:
    """A kernel's environment: no PYTHONPATH or KIT_ variable (only the package embedded in the script
    serves), Kaggle's folders mapped, a GPU kernel allowed on the CPU."""
    from competition.kaggle.kernel_run import INPUT_DIR_VARIABLE, ON_CPU_VARIABLE, WORKING_DIR_VARIABLE

    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "KIT_"))}
    env.update({INPUT_DIR_VARIABLE: str(input_dir), WORKING_DIR_VARIABLE: str(working_dir), "TMPDIR": str(scratch),
                "TF_CPP_MIN_LOG_LEVEL": "2", ON_CPU_VARIABLE: "1"})
    return env


def measured_run(command: list[str], env: dict, *, cwd: Path, log: Path) -> tuple[float, int, int, int]:
    """Run `command` with its output to `log`; return (wall seconds, peak resident bytes of its largest
    process, peak of its process tree's sum, exit code)."""
    import psutil

    peak_tree = 0
    stop = threading.Event()
    with open(log, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)

        def sample():
            nonlocal peak_tree
            try:
                root = psutil.Process(process.pid)
            except psutil.Error:
                return
            while not stop.wait(SAMPLE_SECONDS):
                try:
                    peak_tree = max(peak_tree, sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]))
                except psutil.Error:
                    continue

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:
            process.kill()
            process.wait()
            raise
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    return seconds, usage.ru_maxrss * 1024, max(peak_tree, usage.ru_maxrss * 1024), process.returncode


def fit_seconds(output: Path) -> float:
    """The training seconds of every epoch a kernel's output records (its folds' history.csv)."""
    import csv

    total = 0.0
    for history in output.glob("*/fold-*/history.csv"):
        with open(history, newline="") as handle:
            total += sum(float(row["fit_seconds"]) for row in csv.DictReader(handle) if row.get("fit_seconds"))
    return total


def disk_bytes(folder: Path) -> int:
    """What the files under `folder` take on disk (allocated blocks; links not followed)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            info = os.lstat(os.path.join(parent, name))
            total += info.st_blocks * 512
    return total


# -- what is printed


def format_seconds(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_bytes(count: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def format_table(steps: list[Step], *, competition_bytes: int | None = None, render: dict | None = None) -> str:
    """The steps as a Markdown table, then the competition's and the cache's disk."""
    rows = ["| step | wall | of which training | peak RSS, largest process | peak RSS, process tree | output on disk |",
            "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for step in steps:
        training = format_seconds(step.fit_seconds) if step.fit_seconds else ""
        rows.append(f"| {step.name.strip()} | {format_seconds(step.seconds)} | {training} "
                    f"| {format_bytes(step.peak_process_bytes)} | {format_bytes(step.peak_tree_bytes)} "
                    f"| {format_bytes(step.output_bytes)} |")
    notes = []
    if competition_bytes is not None:
        rendered = (f", rendered in {format_seconds(render['seconds'])} on {render['workers']} processes"
                    if render else "")
        notes.append(f"the competition's WAVs: {format_bytes(competition_bytes)}{rendered}")
    cache = sum(step.cache_bytes for step in steps)
    if cache:
        notes.append(f"the feature cache (the features kernel's output/features/): {format_bytes(cache)}")
    return "\n".join(rows + notes)


def projection(steps: list[Step], experiment_paths, *, local_cores: int, slots: int | None = None,
               clips: int | None = None) -> list[str]:
    """The whole FOLDS=all run of `experiment_paths` (their own epochs) on Kaggle: GPU hours by
    gpu_hours.py's estimate, CPU kernels from the measured steps, wall time with `slots` GPU sessions
    at a time, and the assumptions."""
    from competition.config import load_experiment
    from competition.datasets.freesound import DATASET
    from competition.kaggle.gpu_hours import GPU_TRAINING_CLIPS_PER_SECOND, KERNEL_STARTUP_SECONDS, plan_hours
    from competition.kaggle.kernel_build import DEFAULT_GPU, plan_kernels
    from competition.kaggle.kernel_schedule import DEFAULT_SLOTS

    slots = slots or DEFAULT_SLOTS
    clips = clips or max(train for train, _ in DATASET.expected_counts.values())
    kernels = plan_kernels([Path(p) for p in experiment_paths], title=TITLE, dataset=DATASET.name,
                           competition=DATASET.name, per_fold=True, username=USERNAME, gpu=DEFAULT_GPU)
    experiments = {Path(p).name: load_experiment(Path(p), DATASET.name) for p in experiment_paths}
    gpu_hours = plan_hours(kernels, experiments, clips)
    epochs = sorted({experiment.train.epochs for experiment in experiments.values()})
    features = next((s for s in steps if s.name.startswith("features")), None)
    blend = next((s for s in steps if s.name.startswith("blend")), None)
    folds = [s for s in steps if "fold kernel" in s.name]
    features_hours = features.seconds * local_cores / KAGGLE_CPU_CORES / 3600 if features else 0.0
    blend_hours = blend.seconds / 3600 if blend else 0.0
    per_fold = max(gpu_hours.values()) if gpu_hours else 0.0
    rounds = math.ceil(len(gpu_hours) / slots)
    wall = features_hours + rounds * per_fold + blend_hours
    lines = [f"Projection of `make kernel FOLDS=all` on Kaggle ({len(experiments)} experiments, "
             f"{len(gpu_hours)} fold kernels on {DEFAULT_GPU}, {'/'.join(map(str, epochs))} epochs as in the "
             f"experiment files, {clips:,} train clips):",
             f"  GPU: about {sum(gpu_hours.values()):.1f} GPU h in all, {per_fold:.1f} h per fold kernel "
             f"(gpu_hours.py: {GPU_TRAINING_CLIPS_PER_SECOND:g} training clips/s, "
             f"{KERNEL_STARTUP_SECONDS / 60:g} min start-up per kernel; early stopping ends sooner)"]
    if features:
        lines.append(f"  features kernel (CPU, no quota): about {features_hours * 60:.0f} min, its "
                     f"{format_seconds(features.seconds)} here on {local_cores} cores over {KAGGLE_CPU_CORES} "
                     f"cores; its output {format_bytes(features.output_bytes)} of Kaggle's "
                     f"{format_bytes(KAGGLE_OUTPUT_LIMIT_BYTES)} output limit")
    if blend:
        lines.append(f"  blend kernel (CPU, no quota): about {format_seconds(blend.seconds)}, as here")
    lines.append(f"  wall time: about {wall:.1f} h (features, then {rounds} rounds of {slots} fold kernels at a "
                 "time, then the blend; queueing and pushing not counted)")
    trained = [s for s in folds if s.fit_seconds]
    if trained:
        k = next(iter(experiments.values())).folds.k
        fit_clips = clips * (k - 1) / k
        rate = len(trained) * fit_clips / sum(s.fit_seconds for s in trained)
        besides = sum(s.seconds - s.fit_seconds for s in trained) / len(trained)
        here = sum(besides + experiment.train.epochs * fit_clips / rate
                   for experiment in experiments.values()) * k / 3600
        lines.append(f"  measured here: a fold kernel trained {rate:.0f} clips/s on the CPU ({local_cores} cores, the "
                     f"estimate assumes {GPU_TRAINING_CLIPS_PER_SECOND:g} on the GPU) and spent {besides:.0f} s "
                     f"besides training (start, features taken up, held-out and test predictions with TTA); at "
                     f"that pace the {len(gpu_hours)} fold kernels would take {here:.1f} h on this CPU")
    if folds:
        peak = max(s.peak_tree_bytes for s in folds)
        lines.append(f"  memory: a fold kernel peaked at {format_bytes(peak)} here (process tree, 1 epoch on the CPU), "
                     f"of the about {format_bytes(KAGGLE_SESSION_RAM_BYTES)} of RAM of a Kaggle session")
    return lines
