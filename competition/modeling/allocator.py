"""glibc's malloc kept from handing training's large buffers back to the kernel after every step.

TensorFlow's generator dataset (the training input) sets glibc's trim threshold to 128 KiB. Setting it
also switches off glibc's adaptive mmap threshold, so from then on every buffer over 128 KiB (a batch, a
layer's activations, their gradients) is a fresh mmap, zero-filled page by page on first touch, and
unmapped again when freed: training spends much of its CPU time in page faults. Raising both thresholds
again lets freed buffers be reused; while training, the process keeps up to TRIM_THRESHOLD of freed
memory per arena.
`make bench`'s training part measures fit with these thresholds and with TensorFlow's, side by side.
Elsewhere than glibc (macOS, musl) nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform

# mallopt's parameter numbers (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# Above the CPU recipes' largest buffers (a width-16 layer's activations of a batch are about 11 MiB);
# a larger one is still mapped fresh, as before.
MMAP_THRESHOLD = 64 << 20
TRIM_THRESHOLD = 256 << 20
# What TensorFlow's generator dataset sets (the bench's comparison restores it).
TENSORFLOW_THRESHOLD = 128 << 10


@functools.cache
def _glibc():
    """glibc's mallopt, or None where the C library is another."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt


def set_thresholds(mmap_threshold: int, trim_threshold: int) -> bool:
    """Set glibc's mmap and trim thresholds; False where there is no glibc or it refused either."""
    mallopt = _glibc()
    if mallopt is None:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold)) & bool(mallopt(M_TRIM_THRESHOLD, trim_threshold))


def keep_freed_memory() -> bool:
    """The kit's thresholds. Call it after TensorFlow's generator dataset has started (it sets its own
    when it first runs): the training input does, at the start of each `fit`, and puts TensorFlow's
    back when its batches are spent."""
    return set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD)


def tensorflow_thresholds() -> bool:
    """Back to what TensorFlow's generator dataset sets (the bench's comparison row)."""
    return set_thresholds(TENSORFLOW_THRESHOLD, TENSORFLOW_THRESHOLD)
