"""glibc's malloc thresholds: set as the kit means, effective on page faults, and set by the training input."""

from __future__ import annotations

import ctypes
import platform
import resource

import numpy as np
import pytest

from competition.modeling import allocator

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="glibc's malloc only (this C library is another)")
BUFFER = 8 << 20  # over TensorFlow's 128 KiB threshold, under the kit's
PAGES = BUFFER // 4096


class FakeMallopt:
    def __init__(self, answer: int = 1):
        self.calls, self.answer = [], answer

    def __call__(self, parameter: int, value: int) -> int:
        self.calls.append((parameter, value))
        return self.answer


def test_the_kit_raises_both_thresholds(monkeypatch):
    fake = FakeMallopt()
    monkeypatch.setattr(allocator, "_glibc", lambda: fake)
    assert allocator.keep_freed_memory() is True
    assert fake.calls == [(allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD),
                          (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD)]
    assert allocator.MMAP_THRESHOLD > BUFFER > allocator.TENSORFLOW_THRESHOLD


def test_no_glibc_or_a_refusal_says_false(monkeypatch):
    monkeypatch.setattr(allocator, "_glibc", lambda: None)
    assert allocator.keep_freed_memory() is False
    refusing = FakeMallopt(answer=0)
    monkeypatch.setattr(allocator, "_glibc", lambda: refusing)
    assert allocator.keep_freed_memory() is False
    assert len(refusing.calls) == 2  # the trim threshold is still tried


def _faults_of_buffers(count: int = 20) -> int:
    """Minor page faults of malloc, fill and free of `count` BUFFERs, one after another."""
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        pointer = libc.malloc(BUFFER)
        ctypes.memset(pointer, 1, BUFFER)
        libc.free(pointer)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@glibc_only
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    try:
        assert allocator.tensorflow_thresholds()
        with_tensorflows = _faults_of_buffers()
        assert allocator.keep_freed_memory()
        with_the_kits = _faults_of_buffers()
    finally:
        allocator.keep_freed_memory()
    assert with_tensorflows > 10 * PAGES  # each buffer mapped and zero-filled afresh
    assert with_the_kits < 2 * PAGES  # the first buffer's pages, then reused


@pytest.mark.parametrize("keep_memory", [True, False])
def test_the_training_input_sets_them_once_it_runs(monkeypatch, keep_memory):
    from competition.modeling import train

    calls = []
    monkeypatch.setattr(train, "keep_freed_memory", lambda: calls.append("set"))
    monkeypatch.setattr(train, "tensorflow_thresholds", lambda: calls.append("restored"))

    def batches():
        yield (np.zeros((2, 5, 3), np.float32), np.zeros((2, 4), np.float32), np.ones(2, np.float32))

    dataset = train.input_pipeline(batches, 1, 5, 3, 4, keep_memory=keep_memory)
    assert calls == []  # not when the pipeline is built: TensorFlow sets its own when it first runs
    assert len(list(dataset)) == 1
    assert calls == (["set", "restored"] if keep_memory else [])  # restored once the input is spent
