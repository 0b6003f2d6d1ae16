"""Only the kit's own lines and progress bars on the terminal: TensorFlow's start-up notices kept off.

TensorFlow 2.21 writes two notices, twice, while it is imported ("All log messages before
absl::InitializeLog() is called are written to STDERR" and "oneDNN custom operations are on"),
from C++ before its logging is set up, so TF_CPP_MIN_LOG_LEVEL does not reach them. `install()`
puts a finder first on the import path that, the one time `tensorflow` is imported, points the
process's stderr at a temporary file for that import and then passes on every line but those
notices. Numerics are untouched (oneDNN stays as it was asked for: competition/onednn.py). VERBOSE=1
leaves everything as it is.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import tempfile

NOTICES = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")
VERBOSE_VARIABLE = "VERBOSE"


@contextlib.contextmanager
def _without_notices():
    """Capture file descriptor 2 (C++ writes there directly), then replay all but the notices."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in NOTICES):
                    sys.stderr.write(line)
            sys.stderr.flush()


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, inner):
        self.inner = inner

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        with _without_notices():
            self.inner.exec_module(module)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def install() -> None:
    """Keep TensorFlow's start-up notices off stderr in this process (unless VERBOSE is set)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # its later C++ INFO and WARNING lines
    if os.environ.get(VERBOSE_VARIABLE) or "tensorflow" in sys.modules:
        return
    if not any(isinstance(finder, _QuietTensorFlowFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowFinder())
