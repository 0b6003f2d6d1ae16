"""TensorFlow's oneDNN CPU kernels, asked for by the kit's processes on x86-64.

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on other x86-64
CPUs (AVX2 machines, many AMD EPYCs) it trains with its Eigen kernels, which are slower on the
kit's convolutions (`make bench`'s training part times both). The switch is an environment
variable read when TensorFlow is imported, so it is set before that, in the process and the ones
it starts. A value the user set (`TF_ENABLE_ONEDNN_OPTS=0`) is kept. Runs stay deterministic with
either kernels, but the two round differently: the same run on another setting is not bit-equal.
"""

from __future__ import annotations

import os
import platform
import sys

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# Where oneDNN is TensorFlow's tested CPU path (on aarch64 it is another library, unmeasured here).
X86_64 = ("x86_64", "amd64")


def prefer_onednn(environ=os.environ, machine: str | None = None) -> bool:
    """Ask for oneDNN unless the user chose or TensorFlow is already imported; True when the setting
    in `environ` is on."""
    machine = (machine or platform.machine()).lower()
    if machine in X86_64 and "tensorflow" not in sys.modules:
        environ.setdefault(VARIABLE, "1")
    return environ.get(VARIABLE, "").strip().lower() in ("1", "true")
