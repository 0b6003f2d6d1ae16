"""TensorFlow's oneDNN CPU kernels, asked for by the kit's processes on x86-64.

TensorFlow turns oneDNN on by itself only on CPUs with AVX-512 VNNI, BF16 or AMX; on other x86-64
CPUs (AVX2 machines, many AMD EPYCs) it trains with its Eigen kernels, which are slower on the
kit's convolutions (`make bench`'s training part times both). The switch is an environment
variable read when TensorFlow is imported, so it is set before that, in the process and the ones
it starts. A value the user set (`TF_ENABLE_ONEDNN_OPTS=0`) is kept. Runs stay deterministic with
either kernels, but the two round differently: the same run on another setting is not bit-equal.

On CPUs with bfloat16 matrix instructions (AMX-BF16, AVX-512 BF16), oneDNN runs bfloat16
convolutions and matrix products on them; an experiment may train there in mixed bfloat16
(`train.cpu_bfloat16`), which `make bench` times against float32.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# Where oneDNN is TensorFlow's tested CPU path (on aarch64 it is another library, unmeasured here).
X86_64 = ("x86_64", "amd64")
# The CPU flags (Linux's names) of the bfloat16 instructions oneDNN computes bfloat16 layers with; on a
# CPU with neither, the kit keeps float32 (bfloat16 there would be converted, not computed, in hardware).
BFLOAT16_FLAGS = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")


def prefer_onednn(environ=os.environ, machine: str | None = None) -> bool:
    """Ask for oneDNN unless the user chose or TensorFlow is already imported; True when the setting
    in `environ` is on."""
    machine = (machine or platform.machine()).lower()
    if machine in X86_64 and "tensorflow" not in sys.modules:
        environ.setdefault(VARIABLE, "1")
    return environ.get(VARIABLE, "").strip().lower() in ("1", "true")


def onednn_is_on() -> bool:
    """What this process's TensorFlow runs (it has no public API for it); imports TensorFlow."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


def cpu_bfloat16_flags(cpuinfo: Path = CPUINFO) -> tuple[str, ...]:
    """Which of BFLOAT16_FLAGS this CPU lists (none where /proc/cpuinfo is not there to say)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return ()
    listed = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            listed.update(value.split())
    return tuple(flag for flag in BFLOAT16_FLAGS if flag in listed)


def cpu_computes_bfloat16(cpuinfo: Path = CPUINFO) -> bool:
    """True where training in mixed bfloat16 runs on the CPU's own bfloat16 instructions: an x86-64 CPU
    listing one of BFLOAT16_FLAGS, with TensorFlow's oneDNN kernels on (Eigen's do not use those instructions)."""
    return (platform.machine().lower() in X86_64 and bool(cpu_bfloat16_flags(cpuinfo))
            and onednn_is_on())
