"""The speed bench's harness: run a command in a fresh process and measure it from the outside (wall
seconds, CPU seconds, peak resident memory of its process tree), and CPU seconds from the inside.

Peak memory is the largest sum of resident memory over the process and its children (psutil,
sampled every 20 ms; pages that forked workers share are counted once per process, so this
overstates).
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from competition.workspace import KIT_ROOT

SAMPLE_SECONDS = 0.02


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers are joined before this)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def kit_env(**changes: str) -> dict[str, str]:
    """This process's environment, with this checkout first on PYTHONPATH so a child imports the same kit."""
    path = os.pathsep.join(filter(None, [str(KIT_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **changes}


def measured(command: list[str], env: dict, cwd: Path = KIT_ROOT) -> tuple[float, float, int, str]:
    """Run a command; return (wall seconds, its CPU seconds, peak resident bytes of its process
    tree, stdout)."""
    import psutil

    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        root = psutil.Process(process.pid)
        while not stop.wait(SAMPLE_SECONDS):
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                continue

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = process.communicate()
    seconds = time.perf_counter() - started
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({process.returncode}):\n{err[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return seconds, cpu, peak, out


def file_creation_ms(folder: Path, n_files: int = 100, rounds: int = 5) -> float:
    """Milliseconds to create one small file in `folder`: the median over `rounds` of the mean over
    `n_files` written in a scratch subfolder, removed after. Every method writes a file or more per
    clip, so what that costs where the bench writes weighs on every row."""
    per_round = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix=".bench-files-", dir=folder) as tmp:
            started = time.perf_counter()
            for i in range(n_files):
                (Path(tmp) / f"{i}.bin").write_bytes(b"bench")
            per_round.append(1000 * (time.perf_counter() - started) / n_files)
    return statistics.median(per_round)
