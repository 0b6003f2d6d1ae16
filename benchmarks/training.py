"""Training speed, the training part of `make bench`: is the input pipeline hidden behind the model?

In one process, on the default recipe's model and batch shape:

    pure train step  the compiled Keras train step on tensors already in memory: the model's own speed
    fit              Keras `fit` as training calls it (one call for all epochs, `steps_per_epoch`), from
                     the training input pipeline: tf.data over random crops of a memory-mapped feature
                     cache, SpecAugment masking and mixup in NumPy, prefetched
    fit, TF malloc   the same fit with glibc's thresholds as TensorFlow's generator dataset sets them,
                     not raised again by the kit (competition/modeling/allocator.py): what that saves
    input pipeline   the same tf.data pipeline iterated with no model: how far ahead it can run
    oneDNN / Eigen   on a CPU, the pure step in new processes with TensorFlow's oneDNN kernels and with its
                     Eigen kernels (TF_ENABLE_ONEDNN_OPTS=1 / 0; competition/onednn.py): what asking for
                     oneDNN gives where TensorFlow would not turn it on itself
    bfloat16         on a CPU with bfloat16 instructions (competition/onednn.py), the pure step in a new
                     process in mixed bfloat16 with oneDNN (what `train.cpu_bfloat16` trains with there),
                     against the oneDNN float32 row; and the same two on the larger recipe (logmel-cnn-gpu,
                     twice the width), which asks for it

The cache is made from generated clips of 1 to 8 s (content does not change the speed). Pure step
and fit are measured in alternating rounds and the median is kept, so a neighbour process loading
the machine weighs on both alike; samples per CPU-second of this process are shown beside samples
per second, since they do not depend on neighbours, and minor page faults per sample. Target: fit >= 0.9 x
pure train step.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from competition.config import DEFAULT_EXPERIMENTS, EXPERIMENTS_DIR
from competition.onednn import VARIABLE as ONEDNN_VARIABLE
from competition.onednn import X86_64, cpu_bfloat16_flags, onednn_is_on

DEFAULT_RECIPE = DEFAULT_EXPERIMENTS[0]
# The larger recipe (twice the width, the same input): bfloat16's gain grows with the width.
WIDER_RECIPE = EXPERIMENTS_DIR / "logmel-cnn-gpu.toml"
# The pure step's settings in new processes, by row: (TF_ENABLE_ONEDNN_OPTS, Keras dtype policy).
KERNEL_SETTINGS = {"onednn": ("1", "float32"), "eigen": ("0", "float32"), "bfloat16": ("1", "mixed_bfloat16")}
TARGET_RATIO = 0.9
EPOCHS_PER_ROUND = 2


def _generated_cache(root: Path, experiment, n_clips: int, seed: int):
    """A feature cache of `n_clips` generated clips, made by the kit's own feature step."""
    import soundfile

    from competition.features.cache import build_features
    from competition.workspace import Workspace

    rng = np.random.default_rng(seed)
    rate = experiment.features.sample_rate
    audio = root / "audio"
    audio.mkdir(parents=True)
    fnames = [f"clip{i:04d}.wav" for i in range(n_clips)]
    for fname in fnames:
        seconds = rng.uniform(1.0, 8.0)
        soundfile.write(audio / fname, (0.1 * rng.standard_normal(int(seconds * rate))).astype(np.float32), rate)
    table = pd.DataFrame({"fname": fnames, "path": [str(audio / f) for f in fnames]})
    return build_features(Workspace(root), "bench", {"train": table}, experiment.features)["train"]


def _median_rate(samples: int, seconds: list[float]) -> float:
    return samples / statistics.median(seconds)


def _faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _timed(work) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, minor page faults of this process) of `work()`. CPU time per sample
    does not depend on what else the machine runs; wall time is what the target is about."""
    wall, cpu, faults = time.perf_counter(), time.process_time(), _faults()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu, _faults() - faults


def run_training_bench(*, clips: int = 384, rounds: int = 3, n_classes: int = 41, recipe: Path = DEFAULT_RECIPE,
                       seed: int = 0) -> pd.DataFrame:
    """Measure and print the table; returns it (samples/s and the ratio to the pure step)."""
    import tensorflow as tf

    from competition.config import load_experiment
    from competition.modeling.allocator import keep_freed_memory, tensorflow_thresholds
    from competition.modeling.batches import soft_targets, training_batches
    from competition.modeling.train import compiled_model, crop_frames, input_pipeline

    tf.config.experimental.enable_op_determinism()  # as in training: the same kernels, no XLA
    experiment = load_experiment(recipe)
    settings = experiment.train
    length = crop_frames(experiment)
    clips -= clips % settings.batch_size  # whole batches only, so fit and the pure step see one shape
    n_batches = clips // settings.batch_size
    with tempfile.TemporaryDirectory(prefix="bench-training-") as tmp:
        store = _generated_cache(Path(tmp), experiment, clips, seed)
        n_bins = store.frames.shape[1]
        rng = np.random.default_rng(seed)
        targets = soft_targets(rng.integers(0, n_classes, clips), n_classes, np.zeros(clips))
        weights = np.ones(clips, np.float32)
        rows = np.arange(clips)

        def epochs(first: int, count: int, keep_memory: bool = True):
            """`count` epochs end to end, as FoldTrainer.training_dataset feeds one fit call."""
            def batches():
                for number in range(first, first + count):
                    yield from training_batches(store, rows, targets, weights, settings, length,
                                                np.random.default_rng([seed, number]))

            return input_pipeline(batches, n_batches * count, length, n_bins, n_classes, keep_memory=keep_memory)

        model = compiled_model(experiment, n_bins, n_classes, mean=store.mean, std=store.std)
        pure_steps = _pure_steps(model, experiment, length, n_bins, n_classes, n_batches, seed)

        def fit(round_number: int, keep_memory: bool = True) -> None:
            model.fit(epochs(round_number * EPOCHS_PER_ROUND, EPOCHS_PER_ROUND, keep_memory),
                      epochs=EPOCHS_PER_ROUND, steps_per_epoch=n_batches, verbose=0, shuffle=False)

        def fit_tensorflow_malloc(round_number: int) -> None:
            tensorflow_thresholds()
            fit(round_number, keep_memory=False)

        def pure_steps_kept_memory() -> None:
            keep_freed_memory()  # as during fit (the kit's fit restores TensorFlow's when it ends)
            pure_steps()

        def pipeline(round_number: int) -> None:
            for _ in epochs(round_number * EPOCHS_PER_ROUND, EPOCHS_PER_ROUND):
                pass

        pure_steps(), fit(0)  # trace both functions before timing
        load = os.getloadavg()[0]
        times = {"pure": [], "fit": [], "fit-tf": [], "pipeline": []}
        for round_number in range(1, rounds + 1):
            times["pure"].append(_timed(pure_steps_kept_memory))
            times["fit"].append(_timed(lambda number=round_number: fit(number)))
            times["fit-tf"].append(_timed(lambda number=round_number: fit_tensorflow_malloc(number)))
        times["pipeline"] = [_timed(lambda number=number: pipeline(number)) for number in range(1, rounds + 1)]
        on_x86_cpu = platform.machine().lower() in X86_64 and not tf.config.list_physical_devices("GPU")
        cpu_kernels = _cpu_kernel_rounds(recipe, length, n_bins, n_classes, n_batches, rounds, seed) \
            if on_x86_cpu else {}
        wider = _cpu_kernel_rounds(WIDER_RECIPE, length, n_bins, n_classes, n_batches, rounds, seed,
                                   kernels=("onednn", "bfloat16")) if "bfloat16" in cpu_kernels else {}
    samples = clips * EPOCHS_PER_ROUND
    rates = {name: (_median_rate(samples, [wall for wall, _, _ in triples]),
                    _median_rate(samples, [cpu for _, cpu, _ in triples]),
                    statistics.median(faults for _, _, faults in triples) / samples)
             for name, triples in {**times, **cpu_kernels}.items()}
    (pure_wall, pure_cpu, _), (fit_wall, fit_cpu, _) = rates["pure"], rates["fit"]
    names = {"pure": "pure train step (in-memory tensors)", "fit": "fit from tf.data over the cache",
             "fit-tf": "fit, glibc thresholds as TF sets them", "pipeline": "input pipeline alone (no model)",
             "onednn": "pure step, oneDNN kernels (new process)", "eigen": "pure step, Eigen kernels (new process)",
             "bfloat16": "pure step, oneDNN, mixed bfloat16 (new process)"}
    table = pd.DataFrame([
        {"measure": names[name], "samples/s": wall,
         "vs pure": wall / pure_wall if name != "pipeline" else float("nan"), "samples/CPU-s": cpu,
         "vs pure (CPU)": cpu / pure_cpu if name != "pipeline" else float("nan"), "faults/sample": faults}
        for name, (wall, cpu, faults) in rates.items()])
    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    print(f"\ntraining speed on {device}: {experiment.model.arch} ({recipe.stem}), batch {settings.batch_size} x "
          f"{length} frames x {n_bins} bins, {clips} cached clips ({n_batches} batches an epoch, "
          f"{EPOCHS_PER_ROUND} epochs a round), "
          f"mixup {settings.mixup_alpha}, masks {settings.time_masks}+{settings.freq_masks}; "
          f"median of {rounds} alternating rounds")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-"))
    ratio = fit_wall / pure_wall
    verdict = "met" if ratio >= TARGET_RATIO else "NOT met"
    print(f"fit runs at {ratio:.2f} x the pure step in wall time ({fit_cpu / pure_cpu:.2f} x per CPU-second; "
          f"load average {load:.1f} on {os.cpu_count()} cores when it began); target >= {TARGET_RATIO}: {verdict}")
    tf_wall = rates["fit-tf"][0]
    print(f"glibc's thresholds raised again (allocator): fit at {fit_wall / tf_wall:.2f} x the speed it runs at with "
          f"TensorFlow's, {rates['fit-tf'][2]:.0f} -> {rates['fit'][2]:.0f} page faults a sample")
    if cpu_kernels:
        this = "oneDNN" if onednn_is_on() else "Eigen"
        ratio = rates["onednn"][0] / rates["eigen"][0]
        print(f"TensorFlow's oneDNN CPU kernels ({ONEDNN_VARIABLE}=1, which the kit's commands ask for): the pure "
              f"step at {ratio:.2f} x the speed of its Eigen kernels ({ONEDNN_VARIABLE}=0), each in a new process, "
              f"alternating; the rows above ran with {this}")
    if "bfloat16" in rates:
        ratio = rates["bfloat16"][0] / rates["onednn"][0]
        print(f"mixed bfloat16 on this CPU's {'/'.join(cpu_bfloat16_flags())} (train.cpu_bfloat16): the pure step at "
              f"{ratio:.2f} x the speed of float32, both with oneDNN in new processes, alternating", end="")
        if wider:
            wide = {name: _median_rate(samples, [wall for wall, _, _ in triples]) for name, triples in wider.items()}
            width = load_experiment(WIDER_RECIPE).model.width
            print(f"; at width {width} ({WIDER_RECIPE.stem}) {wide['bfloat16'] / wide['onednn']:.2f} x "
                  f"({wide['onednn']:.0f} -> {wide['bfloat16']:.0f} samples/s)", end="")
        print()
    return table


def _pure_steps(model, experiment, length: int, n_bins: int, n_classes: int, n_batches: int, seed: int):
    """A round of the pure train step: what Keras' own train function runs per batch, minus the iterator
    and the callbacks, on one batch of tensors already in memory."""
    import tensorflow as tf

    from competition.modeling.batches import soft_targets

    size = experiment.train.batch_size
    rng = np.random.default_rng(seed)
    batch = (tf.constant(rng.standard_normal((size, length, n_bins)).astype(np.float32)),
             tf.constant(soft_targets(rng.integers(0, n_classes, size), n_classes, np.zeros(size))),
             tf.constant(np.ones(size, np.float32)))
    pure_step = tf.function(model.train_step, reduce_retracing=True, jit_compile=model.jit_compile)

    def pure_steps() -> None:
        for _ in range(n_batches * EPOCHS_PER_ROUND):
            logs = pure_step(batch)
        float(logs["loss"])  # wait for the last step

    return pure_steps


def pure_step_round(recipe: str, length: int, n_bins: int, n_classes: int, n_batches: int, seed: int,
                    policy: str = "float32") -> None:
    """A new process's part of the CPU-kernel rows: one traced, then one timed round of the pure step
    of a model built under Keras' dtype `policy`; prints (wall seconds, CPU seconds, page faults) and
    whether oneDNN was on as JSON."""
    import tensorflow as tf

    from competition.config import load_experiment
    from competition.modeling.allocator import keep_freed_memory
    from competition.modeling.models import backbone_layers
    from competition.modeling.train import compiled_model, dtype_policy

    tf.config.experimental.enable_op_determinism()
    experiment = load_experiment(Path(recipe))
    with dtype_policy(policy):
        model = compiled_model(experiment, n_bins, n_classes, mean=np.zeros(n_bins), std=np.ones(n_bins))
    pure_steps = _pure_steps(model, experiment, length, n_bins, n_classes, n_batches, seed)
    keep_freed_memory()
    pure_steps()
    backbone_dtypes = sorted({layer.compute_dtype for layer in backbone_layers(model)})
    print(json.dumps({"timed": _timed(pure_steps), "onednn": onednn_is_on(), "dtypes": backbone_dtypes}))


def _cpu_kernel_rounds(recipe: Path, length: int, n_bins: int, n_classes: int, n_batches: int, rounds: int,
                       seed: int, kernels: tuple[str, ...] | None = None) -> dict[str, list]:
    """The pure step's rounds with each of `kernels` (KERNEL_SETTINGS' names; by default TensorFlow's oneDNN
    and its Eigen CPU kernels, and on a CPU with bfloat16 instructions mixed bfloat16 with oneDNN): the kernel
    setting is read when TensorFlow is imported, so each round is a new process, the settings alternating."""
    if kernels is None:
        kernels = ("onednn", "eigen", *(("bfloat16",) if cpu_bfloat16_flags() else ()))
    settings = [(name, *KERNEL_SETTINGS[name]) for name in kernels]
    times: dict[str, list] = {name: [] for name, _, _ in settings}
    root = str(Path(__file__).resolve().parents[1])
    for _ in range(rounds):
        for name, setting, policy in settings:
            code = (f"from benchmarks.training import pure_step_round; pure_step_round({str(recipe)!r}, {length}, "
                    f"{n_bins}, {n_classes}, {n_batches}, {seed}, {policy!r})")
            env = {**os.environ, ONEDNN_VARIABLE: setting, "TF_CPP_MIN_LOG_LEVEL": "3",
                   "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
            result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
            if result.returncode != 0:
                raise RuntimeError(f"the pure step with {ONEDNN_VARIABLE}={setting} failed in its own process:\n"
                                   f"{result.stderr[-2000:]}")
            measured = json.loads(result.stdout.strip().splitlines()[-1])
            if measured["onednn"] != (setting == "1"):
                raise RuntimeError(f"TensorFlow ran with oneDNN {'on' if measured['onednn'] else 'off'} although "
                                   f"{ONEDNN_VARIABLE}={setting} asked otherwise: the rows would compare nothing")
            computed = "bfloat16" if policy == "mixed_bfloat16" else "float32"
            if measured["dtypes"] != [computed]:
                raise RuntimeError(f"the pure step under {policy} computed in {measured['dtypes']}, not {computed}")
            times[name].append(tuple(measured["timed"]))
    return times
