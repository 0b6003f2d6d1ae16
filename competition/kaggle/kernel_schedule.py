"""Following a `make kernel FOLDS=all` plan through Kaggle's limits: the features kernel, the fold
kernels at most `slots` GPU sessions at a time, then the blend kernel.

Kaggle runs a pushed kernel at once, on the outputs its sources have then, and runs only so many
GPU sessions per account at a time: a push beyond that is refused with "Maximum batch GPU session
count of N reached" (N has changed over the years, so it is read from the refusal, never assumed).
So a kernel is pushed once every kernel it reads completed, and a GPU kernel only while fewer than
`slots` of the plan's GPU kernels are queued or running; a refusal all the same (the account's
other sessions count too) means waiting for one to end and pushing again. Every `poll_seconds` the
scheduler asks for the state of each kernel in flight, pushes what became ready, and redraws one
progress bar: kernels waiting (not pushed yet), queued, running, complete and failed, and the time
elapsed.

A kernel that fails is pushed once more; failing again, the end of its log is shown and the kernels
that read it are left unpushed, while the others go on. A training kernel that completed with its
time budget spent (its output says so) is pushed again reading its own output, and continues from
its checkpoints; each version trains at least one epoch, so this ends. The plan is rebuilt from the same
experiments on every `make kernel FOLDS=all`, and each kernel's push record (kernel_push.py) says
what was pushed: a rerun after an interruption (even kill -9) follows the kernels still queued or
running and the completed ones instead of pushing them again. Only a kill between Kaggle's answer
to a push and the record's write (a moment) would push that kernel again.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from competition.kaggle.kernel_build import Kernel, KernelError
from competition.kaggle.kernel_push import (
    FAILED_STATES,
    check_finished,
    fetch_output,
    is_current,
    kernel_session,
    output_dir,
    push,
    push_record,
    state_unless_deleted,
)
from competition.kaggle.waiting import Clock, duration
from competition.workspace import Workspace

DEFAULT_SLOTS = 2  # Kaggle's GPU session limit per account since 2022
RETRIES = 1  # pushes again of a kernel seen failing, per `make kernel`
LOG_TAIL_LINES = 20
IN_FLIGHT = ("queued", "running")
# The scheduler's own states, beside Kaggle's: not pushed yet; failed for good; not pushed because a
# kernel it reads failed for good.
WAITING, FAILED, BLOCKED = "waiting", "failed", "blocked"


@dataclass
class Entry:
    kernel: Kernel
    folder: Path
    ref: str
    state: str = WAITING
    record: dict | None = None
    failures: int = 0  # seen by this run

    @property
    def sources(self) -> tuple[str, ...]:
        return self.kernel.kernel_sources


def run_schedule(kernels: list[tuple[Kernel, Path]], *, username: str, workspace: Workspace,
                 slots: int = DEFAULT_SLOTS, poll_seconds: float, clock: Clock | None = None) -> list[dict]:
    """Push and follow the plan's kernels (in plan order, each after its sources) until every one
    completed; returns their push records. Raises KernelError naming the kernels that failed twice."""
    if slots < 1:
        raise KernelError(f"KERNEL_SLOTS={slots}: at least one GPU session is needed")
    clock = clock or Clock()
    entries = [Entry(kernel, Path(folder), f"{username}/{kernel.slug}") for kernel, folder in kernels]
    by_ref = {entry.ref: entry for entry in entries}
    for entry in entries:
        outside = [ref for ref in entry.sources if ref not in by_ref]
        if outside:
            raise KernelError(f"{entry.ref} reads {', '.join(outside)}, which is not part of the plan")
    schedule = _Schedule(entries, by_ref, slots, poll_seconds, clock, workspace)
    try:
        schedule.resume()
        while True:
            schedule.poll()
            schedule.push_ready()
            schedule.show()
            if all(entry.state in ("complete", FAILED, BLOCKED) for entry in entries):
                break
            clock.sleep(poll_seconds)
    finally:
        schedule.progress.close()
    schedule.finish()
    return [entry.record for entry in entries]


class _Schedule:
    def __init__(self, entries: list[Entry], by_ref: dict[str, Entry], slots: int, poll_seconds: float,
                 clock: Clock, workspace: Workspace):
        from tqdm import tqdm

        self.entries, self.by_ref, self.slots, self.poll_seconds = entries, by_ref, slots, poll_seconds
        self.clock, self.workspace = clock, workspace
        self.started = clock.now()
        self.refused = False  # the last GPU push was refused for the session limit
        self.progress = tqdm(total=len(entries), desc="kernels", unit="kernel", file=sys.stderr,
                             dynamic_ncols=True, bar_format="{desc} {bar:10} {n_fmt}/{total_fmt}{postfix}")

    def say(self, text: str) -> None:
        self.progress.write(text, file=sys.stdout)

    def warn(self, text: str) -> None:
        self.progress.write(text, file=sys.stderr)

    def inputs(self, entry: Entry) -> dict[str, int]:
        return {ref: self.by_ref[ref].record["version"] for ref in entry.sources if self.by_ref[ref].record}

    def resume(self) -> None:
        """Take up the kernels pushed before with the same files and inputs, unless their version failed."""
        for entry in self.entries:
            record = push_record(entry.folder)
            sources_taken_up = all(self.by_ref[ref].state != WAITING for ref in entry.sources)
            if not (sources_taken_up and is_current(entry.folder, record, self.inputs(entry))):
                continue
            state = state_unless_deleted(record["ref"], self.clock, self.warn)
            if state is None or state in FAILED_STATES:
                continue
            entry.record, entry.state = record, _followed(state)
            if entry.state == "complete" and not self.finished(entry):
                continue
            self.say(f"{entry.ref}: version {record['version']} pushed before ({state}); not pushed again")

    def poll(self) -> None:
        for entry in self.entries:
            if entry.state not in IN_FLIGHT:
                continue
            state, message = kernel_session(entry.ref, self.clock, self.warn)
            state = _followed(state)
            if state == entry.state:
                continue
            entry.state = state
            self.say(f"{entry.ref}: {state}" + (f" ({message})" if message else ""))
            if state == "complete":
                self.finished(entry)
            if state in FAILED_STATES:
                entry.failures += 1
                if entry.failures <= RETRIES:
                    entry.state = WAITING
                    self.say(f"{entry.ref}: failed; pushing it once more")
                else:
                    entry.state = FAILED
                    self.report_failure(entry, message)
        for entry in self.entries:
            if entry.state == WAITING and any(self.by_ref[ref].state in (FAILED, BLOCKED) for ref in entry.sources):
                entry.state = BLOCKED

    def finished(self, entry: Entry) -> bool:
        """Whether a completed kernel finished; one that stopped at its time budget waits to be pushed
        again, reading its own output."""
        unfinished = check_finished(entry.folder, entry.record, self.workspace, self.clock, self.warn)
        if unfinished is None:
            return True
        entry.state = WAITING
        self.say(f"{entry.ref}: version {entry.record['version']} stopped at its time budget: "
                 f"{unfinished['message']}; pushing it again to continue from its output")
        return False

    def push_ready(self) -> None:
        from competition import kaggle_client

        gpu_in_flight = sum(entry.kernel.enable_gpu and entry.state in IN_FLIGHT for entry in self.entries)
        refused_now = False
        for entry in self.entries:
            if entry.state != WAITING or any(self.by_ref[ref].state != "complete" for ref in entry.sources):
                continue
            if entry.kernel.enable_gpu and (refused_now or gpu_in_flight >= self.slots):
                continue
            try:
                entry.record = push(entry.folder, kind=entry.kernel.kind, inputs=self.inputs(entry), clock=self.clock,
                                    say=self.warn)
            except kaggle_client.SessionLimitReached as refusal:
                refused_now = True
                if not self.refused:
                    self.say(f"{refusal}; waiting for a GPU session to end, pushing again every "
                             f"{duration(self.poll_seconds)}")
                self.refused = True
                continue
            entry.state = "queued"
            if entry.kernel.enable_gpu:
                gpu_in_flight += 1
                self.refused = False
            self.say(f"{entry.ref}: pushed version {entry.record['version']}, {entry.record['url']}")
            for dependent in self.entries:  # what read its earlier output must read the new one
                if entry.ref in dependent.sources and dependent.state not in (WAITING, BLOCKED):
                    dependent.state = WAITING

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((WAITING, "queued", "running", "complete", FAILED), 0)
        for entry in self.entries:
            counts[entry.state if entry.state in counts else WAITING if entry.state == BLOCKED else FAILED] += 1
        return counts

    def show(self) -> None:
        counts = self.counts()
        self.progress.n = counts["complete"]
        self.progress.set_postfix_str(", ".join(f"{state} {count}" for state, count in counts.items())
                                      + f" | {duration(self.clock.now() - self.started)} elapsed")

    def report_failure(self, entry: Entry, message: str) -> None:
        """The end of the failed kernel's log, downloaded with its output into runs/<slug>/."""
        from competition import kaggle_client

        lines = [f"{entry.ref} failed again" + (f": {message}" if message else "")]
        try:
            files = fetch_output(self.workspace, entry.ref, self.clock, self.warn)
        except kaggle_client.KaggleError as error:
            lines.append(f"  its log could not be downloaded: {error}")
        else:
            logs = [path for path in files if path.name == f"{entry.kernel.slug}.log"]
            if logs:
                tail = log_text(logs[0].read_text()).rstrip("\n").splitlines()[-LOG_TAIL_LINES:]
                lines.append(f"  the end of its log ({logs[0]}):")
                lines += [f"    {line}" for line in tail]
            else:
                lines.append(f"  Kaggle gave no log; its output is in {output_dir(self.workspace, entry.ref)}")
        self.warn("\n".join(lines))

    def finish(self) -> None:
        counts = self.counts()
        elapsed = duration(self.clock.now() - self.started)
        failed = [entry.ref for entry in self.entries if entry.state == FAILED]
        blocked = [entry.ref for entry in self.entries if entry.state == BLOCKED]
        if not failed:
            print(f"all {counts['complete']} kernels complete after {elapsed}")
            return
        raise KernelError(
            f"{len(failed)} kernel(s) failed twice ({', '.join(failed)}; the end of each log is above, the "
            f"whole log in runs/<slug>/)" + (f" and {len(blocked)} that read them were not pushed" if blocked else "")
            + "; fix the cause and rerun `make kernel FOLDS=all`: completed kernels are not pushed again")


def _followed(state: str) -> str:
    """Kaggle's state as the scheduler follows it: one not yet running (new_script: saved, no
    session yet) or unknown to the kit counts as queued."""
    return state if state in (*IN_FLIGHT, "complete", *FAILED_STATES) else "queued"


def log_text(log: str) -> str:
    """A kernel's log as text: Kaggle gives a script's log as a JSON list of {stream_name, time, data}."""
    try:
        lines = json.loads(log)
    except ValueError:
        return log
    if not isinstance(lines, list):
        return log
    return "".join(str(line.get("data", "")) for line in lines if isinstance(line, dict))
