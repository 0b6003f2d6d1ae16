"""`make kernel FOLDS=all` through the stand-in server's limits: the features kernel, then the fold
kernels at most KERNEL_SLOTS at a time, then the blend; the session-limit refusal, a 429 storm and a
dropped connection mid-wait, an interruption and the rerun, a failed kernel retried once and then
reported with its log.

Time is the test's (the `kaggle_time` fixture): each of the kit's sleeps advances the server, whose
kernels go queued -> running -> complete; no script runs here (test_kernel.py runs a plan's scripts).
"""

import pytest
from kaggle_server import DROP, FAKE_USERNAME

from competition.__main__ import main
from competition.kaggle import waiting
from competition.workspace import Workspace

pytestmark = pytest.mark.usefixtures("no_credential_leaks")
TITLE = "audio tagging kit"
SLUG = "audio-tagging-kit"
FOLDS = 5
EXPERIMENT = f"""
name = "tiny"
[features]
kind = "logmel"
n_mels = 32
[train]
epochs = 1
[folds]
k = {FOLDS}
"""
FEATURES = f"{FAKE_USERNAME}/{SLUG}-features"
FOLD_REFS = [f"{FAKE_USERNAME}/{SLUG}-tiny-fold-{fold}" for fold in range(FOLDS)]
BLEND = f"{FAKE_USERNAME}/{SLUG}-blend"
PLAN = [FEATURES, *FOLD_REFS, BLEND]


@pytest.fixture
def kit(tmp_path, monkeypatch) -> Workspace:
    monkeypatch.setenv("KIT_HOME", str(tmp_path / "kit"))
    (tmp_path / "kit" / "experiments").mkdir(parents=True)
    (tmp_path / "kit" / "experiments" / "tiny.toml").write_text(EXPERIMENT)
    return Workspace(tmp_path / "kit")


def make_kernel_folds_all(kit: Workspace, *options: str) -> int:
    return main(["kernel", "--dataset", "demo", "--experiment", str(kit.root / "experiments" / "tiny.toml"),
                 "--title", TITLE, "--folds", "all", *options])


def pushes(server) -> list[str]:
    return [request.json()["slug"] for request in server.received("SaveKernel")]


def test_the_plan_runs_features_then_folds_within_the_slots_then_the_blend(kaggle_server, kaggle_time, kit, capfd):
    assert make_kernel_folds_all(kit) == 0

    assert pushes(kaggle_server) == PLAN
    kernels = kaggle_server.kernels
    assert {kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    assert kaggle_server.max_gpu_sessions == 2  # never more than KERNEL_SLOTS, and both used
    assert all(kernels[ref].pushed_at >= kernels[FEATURES].finished_at for ref in FOLD_REFS)
    assert kernels[BLEND].pushed_at >= max(kernels[ref].finished_at for ref in FOLD_REFS)
    # A slot freed is taken at the next poll: the third fold kernel starts once the first two ended.
    assert kernels[FOLD_REFS[2]].pushed_at == kernels[FOLD_REFS[0]].finished_at
    assert [kernels[ref].metadata["enableGpu"] for ref in PLAN] == [False, *[True] * FOLDS, False]
    assert {kernels[ref].metadata.get("machineShape") for ref in FOLD_REFS} == {"NvidiaTeslaT4"}
    out, err = capfd.readouterr()
    assert f"{FOLD_REFS[0]}: running" in out and f"{FOLD_REFS[0]}: complete" in out
    assert f"all {len(PLAN)} kernels complete after " in out and f"make kernel-output KERNEL={BLEND}" in out
    # The progress bar: kernels waiting to be pushed, queued, running, complete, failed, and the time.
    assert "kernels " in err and f"{len(PLAN)}/{len(PLAN)}, waiting 0, queued 0, running 0, complete 7, failed 0" in err
    assert f"0/{len(PLAN)}, waiting {FOLDS + 1}, queued 0, running 1, complete 0, failed 0 | 60 s elapsed" in err


def test_slots_set_how_many_gpu_kernels_run_at_once(kaggle_server, kaggle_time, kit):
    assert make_kernel_folds_all(kit, "--slots", "3") == 0
    assert kaggle_server.max_gpu_sessions == 3


def test_the_session_limit_refusal_means_wait_and_push_again(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.gpu_session_limit = 1  # fewer than KERNEL_SLOTS: the account's own limit is lower

    assert make_kernel_folds_all(kit) == 0

    assert kaggle_server.max_gpu_sessions == 1
    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    assert {kaggle_server.kernels[ref].version for ref in PLAN} == {1}  # a refused push is no version
    out = capfd.readouterr().out
    assert "Maximum batch GPU session count of 1 reached; waiting for a GPU session to end" in out
    assert out.count("Maximum batch GPU session count") < FOLDS  # said once per wait, not at every retry
    assert len(pushes(kaggle_server)) > len(PLAN)


def test_a_429_storm_and_a_dropped_connection_mid_wait_are_waited_out(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.fail("GetKernelSessionStatus", 429, times=6, after=4)
    storm_over_at = []

    def drop_later(seconds):  # two polls after the storm, two dropped connections
        kaggle_server.advance()
        if not storm_over_at and not kaggle_server.fail_pending("GetKernelSessionStatus"):
            storm_over_at.append(kaggle_server.tick)
            kaggle_server.fail("GetKernelSessionStatus", DROP, times=2, after=2)

    kaggle_time.on_sleep = drop_later

    assert make_kernel_folds_all(kit) == 0

    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    err = capfd.readouterr().err
    assert ": HTTP 429, too many requests; retrying in 5 s (try 2, giving up after 30 min of failures)\n" in err
    assert "retrying in 10 s" in err and "retrying in 20 s" in err  # the pause doubles
    assert ": connection refused or dropped; retrying in 5 s" in err


def test_kaggle_down_for_long_is_given_up_with_a_clear_message(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.fail("GetKernelSessionStatus", 503, after=2)

    assert make_kernel_folds_all(kit) == 2

    err = capfd.readouterr().err
    error = err.splitlines()[-1]
    assert error.startswith("error: Kaggle's server failed (HTTP 503)") and "gave up asking for the state of" in error
    assert "over 2" in error and "min)" in error
    assert sum(pause for pause in kaggle_time.sleeps if pause != 60) <= waiting.GIVE_UP_AFTER_SECONDS


def test_an_interrupted_run_resumes_without_pushing_again(kaggle_server, kaggle_time, kit, capfd):
    def killed_midway(seconds):
        kaggle_server.advance()
        if kaggle_server.tick == 3:  # the features kernel complete, two fold kernels running
            raise KeyboardInterrupt

    kaggle_time.on_sleep = killed_midway
    with pytest.raises(KeyboardInterrupt):
        make_kernel_folds_all(kit)
    assert pushes(kaggle_server) == [FEATURES, *FOLD_REFS[:2]]
    capfd.readouterr()
    kaggle_time.on_sleep = lambda seconds: kaggle_server.advance()

    assert make_kernel_folds_all(kit) == 0

    assert pushes(kaggle_server) == PLAN  # each kernel pushed once over both runs
    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    out = capfd.readouterr().out
    assert f"{FEATURES}: version 1 pushed before (complete); not pushed again" in out
    assert f"{FOLD_REFS[0]}: version 1 pushed before (running); not pushed again" in out
    assert kaggle_server.max_gpu_sessions == 2


def test_a_rerun_pushes_only_what_failed_and_what_reads_it(kaggle_server, kaggle_time, kit):
    assert make_kernel_folds_all(kit) == 0
    kaggle_server.requests.clear()

    assert make_kernel_folds_all(kit) == 0  # nothing changed, nothing failed: nothing to push
    assert pushes(kaggle_server) == []

    kaggle_server.kernels[FOLD_REFS[1]].status = "ERROR"
    assert make_kernel_folds_all(kit) == 0  # the failed fold again, then the blend reading its new output
    assert pushes(kaggle_server) == [FOLD_REFS[1], BLEND]
    assert kaggle_server.kernels[BLEND].version == 2


def test_a_failed_kernel_is_pushed_once_more(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.fail_kernel(FOLD_REFS[1], times=1)

    assert make_kernel_folds_all(kit) == 0

    assert kaggle_server.kernels[FOLD_REFS[1]].version == 2
    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    assert f"{FOLD_REFS[1]}: failed; pushing it once more" in capfd.readouterr().out


def test_a_kernel_failing_twice_is_reported_with_the_end_of_its_log(kaggle_server, kaggle_time, kit, capfd):
    log = "".join(f"epoch {epoch}\n" for epoch in range(40)) + "Traceback (most recent call last):\nValueError: boom\n"
    kaggle_server.fail_kernel(FOLD_REFS[1], times=2, log=log)

    assert make_kernel_folds_all(kit) == 2

    assert kaggle_server.kernels[FOLD_REFS[1]].version == 2
    assert all(kaggle_server.kernels[ref].status == "COMPLETE" for ref in PLAN if ref not in (FOLD_REFS[1], BLEND))
    assert BLEND not in kaggle_server.kernels  # it would read the failed fold's output
    out, err = capfd.readouterr()
    assert f"{FOLD_REFS[1]} failed again: stand-in failure" in err
    assert "    ValueError: boom" in err and "    epoch 39" in err and "epoch 10\n" not in err  # the end only
    log_file = kit.runs / f"{SLUG}-tiny-fold-1" / f"{SLUG}-tiny-fold-1.log"
    assert f"the end of its log ({log_file})" in err and log_file.is_file()
    error = err.splitlines()[-1]
    assert error.startswith(f"error: 1 kernel(s) failed twice ({FOLD_REFS[1]};") and "1 that read them" in error
    assert "rerun `make kernel FOLDS=all`" in error


def test_quota_and_the_plan_are_shown_before_pushing(kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.gpu_quota = (4.5, 30.0)

    assert make_kernel_folds_all(kit) == 0

    out = capfd.readouterr().out
    assert "GPU quota: 25.5 of 30.0 h left this week (renews 2026-01-05 00:00 UTC)" in out
    assert out.index("GPU quota") < out.index(f"{FEATURES}: pushed")


def test_kernel_output_retries_a_failing_listing_and_a_failing_file(kaggle_server, kaggle_time, kit, capfd):
    assert make_kernel_folds_all(kit) == 0
    kaggle_server.finish_kernel(BLEND, {"submission.csv": b"fname,label\n"})
    kaggle_server.fail("ListKernelSessionOutput", 502, times=2)
    kaggle_server.fail("KernelOutputFile", 500, times=1)
    capfd.readouterr()

    assert main(["kernel-output", f"{SLUG}-blend"]) == 0

    assert (kit.runs / f"{SLUG}-blend" / "submission.csv").read_bytes() == b"fname,label\n"
    err = capfd.readouterr().err
    assert f"downloading the output of {BLEND}: HTTP 502; retrying in 5 s" in err
    assert f"downloading the output of {BLEND}: HTTP 500; retrying in " in err


def test_kernel_slots_below_one_is_an_error(kaggle_server, kit, capfd):
    assert make_kernel_folds_all(kit, "--slots", "0") == 2
    assert "KERNEL_SLOTS=0" in capfd.readouterr().err
    assert pushes(kaggle_server) == []


def test_a_kernel_stopped_at_its_time_budget_is_pushed_again_reading_its_own_output(
        kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.stop_at_time_budget(FOLD_REFS[1], times=2)

    assert make_kernel_folds_all(kit) == 0

    kernels = kaggle_server.kernels
    assert kernels[FOLD_REFS[1]].version == 3 and {kernels[ref].version for ref in PLAN if ref != FOLD_REFS[1]} == {1}
    assert {kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    sources = [request.json()["kernelDataSources"] for request in kaggle_server.received("SaveKernel")
               if request.json()["slug"] == FOLD_REFS[1]]
    assert sources == [[FEATURES], [FEATURES, FOLD_REFS[1]], [FEATURES, FOLD_REFS[1]]]  # the next reads its output
    assert kernels[BLEND].pushed_at >= kernels[FOLD_REFS[1]].finished_at  # on the finished version's output
    assert kaggle_server.max_gpu_sessions == 2
    out = capfd.readouterr().out
    assert (f"{FOLD_REFS[1]}: version 1 stopped at its time budget: run: the time budget ran out with fold 0 (v1) "
            "left; pushing it again to continue from its output") in out
    assert f"{FOLD_REFS[1]}: version 2 stopped at its time budget" in out
    assert f"{FOLD_REFS[1]}: version 3 stopped" not in out


def test_a_kernel_stopped_at_its_time_budget_is_continued_after_an_interruption(
        kaggle_server, kaggle_time, kit, capfd):
    kaggle_server.stop_at_time_budget(FOLD_REFS[0])

    def killed_once_it_stopped(seconds):
        kaggle_server.advance()
        if kaggle_server.kernels.get(FOLD_REFS[0]) and kaggle_server.kernels[FOLD_REFS[0]].status == "COMPLETE":
            raise KeyboardInterrupt  # seen complete at the next poll, before the kit looked at its output

    kaggle_time.on_sleep = killed_once_it_stopped
    with pytest.raises(KeyboardInterrupt):
        make_kernel_folds_all(kit)
    kaggle_time.on_sleep = lambda seconds: kaggle_server.advance()
    capfd.readouterr()

    assert make_kernel_folds_all(kit) == 0  # the rerun looks at the output of what completed

    assert kaggle_server.kernels[FOLD_REFS[0]].version == 2
    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    assert pushes(kaggle_server).count(FOLD_REFS[0]) == 2 and pushes(kaggle_server).count(FOLD_REFS[1]) == 1
    out = capfd.readouterr().out
    assert f"{FOLD_REFS[0]}: version 1 stopped at its time budget" in out
    assert f"{FOLD_REFS[1]}: version 1 pushed before" in out
    # Once seen finished, a completed version is not asked about again.
    kaggle_server.requests.clear()
    assert make_kernel_folds_all(kit) == 0
    assert pushes(kaggle_server) == [] and not kaggle_server.received("ListKernelSessionOutput")


def test_a_time_budget_over_the_session_limit_is_refused(kaggle_server, kit, capfd):
    assert make_kernel_folds_all(kit, "--hours", "13") == 2
    assert "KERNEL_HOURS=13: a kernel's time budget must be over 0 and at most Kaggle's session limit of 12" in \
        capfd.readouterr().err
    assert pushes(kaggle_server) == []


@pytest.mark.slow  # two `make` processes, one of them killed
def test_make_kernel_killed_with_sigkill_resumes_without_pushing_again(kaggle_server, kit, no_tensorflow):
    """`make kernel FOLDS=all` and its Python process killed with SIGKILL (the terminal closed, the
    machine rebooted) while two fold kernels run; the rerun follows them instead of pushing them again."""
    import os
    import signal
    import subprocess
    import threading
    import time

    from make_targets import REPO

    ticking = threading.Event()
    stopped = threading.Event()

    def kaggle_runs():  # time passes on Kaggle by itself while ticking
        while not stopped.wait(0.2):
            if ticking.is_set():
                kaggle_server.advance()

    clock = threading.Thread(target=kaggle_runs, daemon=True)
    clock.start()
    variables = ["DATASET=demo", f"EXPERIMENTS={kit.root / 'experiments' / 'tiny.toml'}", f"KERNEL_TITLE={TITLE}",
                 "FOLDS=all", "KERNEL_POLL=0.05"]
    env = dict(os.environ, KIT_HOME=str(kit.root), PYTHONPATH=str(no_tensorflow))
    command = ["make", "--no-print-directory", "-o", ".venv/.installed", "kernel", *variables]
    try:
        ticking.set()
        make = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            ticking.clear()  # look at a still Kaggle: nothing completes, so nothing is pushed
            kernels = kaggle_server.kernels
            in_flight = [ref for ref in FOLD_REFS if ref in kernels and kernels[ref].status in ("QUEUED", "RUNNING")]
            if FEATURES in kernels and kernels[FEATURES].status == "COMPLETE" and len(in_flight) == 2:
                break
            ticking.set()
            time.sleep(0.05)
        else:
            pytest.fail("the plan never had two fold kernels in flight")
        pushed_so_far = pushes(kaggle_server)
        time.sleep(1.0)  # Kaggle still: the kit only polls
        assert pushes(kaggle_server) == pushed_so_far and make.poll() is None
        os.killpg(make.pid, signal.SIGKILL)
        make.wait(timeout=30)
        assert make.returncode == -signal.SIGKILL
        ticking.set()

        rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    finally:
        stopped.set()
        clock.join()

    assert rerun.returncode == 0, rerun.stderr
    assert sorted(pushes(kaggle_server)) == sorted(PLAN)  # each kernel pushed once over both runs
    assert {kaggle_server.kernels[ref].status for ref in PLAN} == {"COMPLETE"}
    assert kaggle_server.max_gpu_sessions <= 2
    assert f"{FEATURES}: version 1 pushed before (complete); not pushed again" in rerun.stdout
    assert f"{in_flight[0]}: version 1 pushed before" in rerun.stdout
