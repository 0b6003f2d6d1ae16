"""The kit's one error base: every problem the kit explains itself raises a `KitError`; and the
faults of the machine (no permission, a full disk) said as plainly.

The command line prints a KitError as one line, `error: <message>`, and exits with code 2, no
traceback: the message already names the file, line or setting and the problem. Anything else that
escapes is a bug and keeps its traceback. Each step's own error (DatasetError, FeatureError, ...)
subclasses KitError, and also ValueError or RuntimeError where callers catch those.
"""

import errno


class KitError(Exception):
    """A problem the kit explains: the message names what is wrong and, where it can, the fix."""


# Faults of the environment, not of the kit: said in one line with what to do, not as a traceback.
_ENVIRONMENT_FAULTS = {
    errno.EACCES: "no permission to write or read there: fix the folder's permissions or set KIT_HOME elsewhere",
    errno.EPERM: "the operation is not permitted there: fix the folder's permissions or set KIT_HOME elsewhere",
    errno.EROFS: "the file system is read-only: set KIT_HOME to a writable folder",
    errno.ENOSPC: "the disk is full: free some space (`make clean` removes features, runs and submissions) and "
                  "rerun; what was being written was not kept",
    errno.EDQUOT: "the disk quota is exhausted: free some space and rerun; what was being written was not kept",
}


def environment_fault(error: OSError) -> str | None:
    """A one-line message for an OSError the machine caused (permissions, a full disk), else None."""
    advice = _ENVIRONMENT_FAULTS.get(error.errno)
    if advice is None:
        return None
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or 'failed'} ({advice})"
