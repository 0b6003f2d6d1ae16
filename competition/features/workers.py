"""Worker processes of a feature build: one BLAS/OpenMP thread each, freed memory kept for reuse."""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_worker_threads() -> None:
    """One BLAS/OpenMP thread in a pool worker, as the pool already uses every core and extra
    threads per worker only fight over them. The variables cover libraries loaded later,
    threadpoolctl the ones already loaded (numpy's and scipy's OpenBLAS)."""
    from threadpoolctl import threadpool_limits

    for variable in THREAD_VARIABLES:
        os.environ[variable] = "1"
    threadpool_limits(1)


def keep_freed_memory() -> None:
    """Let a pool worker's allocator reuse the memory of the clip before. glibc hands every freed
    block over 128 KiB (a clip's signal, frames, spectrum) back to the system and the next clip
    faults in fresh zeroed pages, hundreds of page faults a clip; higher thresholds keep
    up to 64 MiB for reuse. Other C libraries are left as they are."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's mallopt parameter numbers
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


def prepare_worker() -> None:
    limit_worker_threads()
    keep_freed_memory()


def available_cores() -> int:
    """Cores this process may run on (fewer than the machine's under taskset or a container limit)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1
