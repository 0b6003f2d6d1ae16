"""Waiting on Kaggle for hours: the clock the waits read, and retries of the failures that pass.

A `make kernel FOLDS=all` waits most of a day on kernels it polls every minute; one HTTP 503, one
rate limit (429) or one dropped connection in that time must not end it. `patiently` retries a call
that failed so (`kaggle_client.TRANSIENT_ERRORS`) after a pause that doubles up to a ceiling, says
so on screen, and gives up once the failures have lasted `give_up_after` seconds in a row: a
Kaggle that is down for that long is worth a human's look. Any other failure is raised at once.

Every wait reads `Clock`, so tests drive time (and the stand-in server's kernels) instead of
sleeping.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

FIRST_PAUSE_SECONDS = 5.0
LONGEST_PAUSE_SECONDS = 300.0
# Kaggle has had outages of some minutes; longer, and the user should know rather than wait blind.
GIVE_UP_AFTER_SECONDS = 30 * 60.0


class Clock:
    """Wall time, in seconds, and sleeping; tests pass one whose sleep advances a fake time."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


def say_on_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def patiently(call: Callable[[], T], *, what: str, clock: Clock, say: Callable[[str], None] = say_on_stderr,
              give_up_after: float = GIVE_UP_AFTER_SECONDS) -> T:
    """`call()`, retried after a growing pause while it fails in a way that passes by itself."""
    from competition import kaggle_client

    first_failure = None
    pause = FIRST_PAUSE_SECONDS
    tries = 0
    while True:
        tries += 1
        try:
            return call()
        except kaggle_client.TRANSIENT_ERRORS as error:
            now = clock.now()
            first_failure = now if first_failure is None else first_failure
            failing_for = now - first_failure
            reason = kaggle_client.transient_reason(error)
            if failing_for + pause > give_up_after:
                error.args = (f"{error} (gave up {what} after {tries} tries over {duration(failing_for)})",)
                raise error from None
            say(f"{what}: {reason}; retrying in {duration(pause)} (try {tries + 1}, giving up after "
                f"{duration(give_up_after)} of failures)")
            clock.sleep(pause)
            pause = min(2 * pause, LONGEST_PAUSE_SECONDS)


def duration(seconds: float) -> str:
    """`42 s`, `17 min`, `3 h 05 min`."""
    seconds = round(seconds)
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"

