"""The kit's one error base: every problem the kit explains itself raises a `KitError`.

The command line prints a KitError as one line, `error: <message>`, and exits with code 2, no
traceback: the message already names the file, line or setting and the problem. Anything else that
escapes is a bug and keeps its traceback. Each step's own error (DatasetError, FeatureError, ...)
subclasses KitError, and also ValueError or RuntimeError where callers catch those.
"""


class KitError(Exception):
    """A problem the kit explains: the message names what is wrong and, where it can, the fix."""
