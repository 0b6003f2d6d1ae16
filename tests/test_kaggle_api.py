"""competition.kaggle_api with the official client against the stand-in server (tests/kaggle_server.py).

Every test runs with fake credentials; an autouse check fails any test after which a credential
shows up in the captured output or in a file under tmp_path.
"""

import base64
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from kaggle_server import (
    COMPETITION,
    DROP,
    FAKE_KEY,
    FAKE_TOKEN,
    FAKE_USERNAME,
    HOST,
    KAGGLE_PORT_GROUP,
    PORT,
    TRUNCATE,
    bind_client_port,
    credential_leaks,
    pytest_collection_modifyitems,
)

from competition import kaggle_client

REPO = Path(__file__).resolve().parents[1]
KERNEL_ID = f"{FAKE_USERNAME}/fat-fold-0"


pytestmark = pytest.mark.usefixtures("no_credential_leaks")


def error_texts(excinfo) -> list[str]:
    """What a user could see of an exception: its message, repr and chained causes."""
    texts, error = [], excinfo.value
    while error is not None:
        texts += [str(error), repr(error)]
        error = error.__cause__ or error.__context__
    return texts


def write_kernel(folder: Path, kernel_id: str = KERNEL_ID, **metadata) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    slug = kernel_id.split("/")[1]
    (folder / "kernel-metadata.json").write_text(json.dumps({
        "id": kernel_id, "title": slug, "code_file": "fat.py", "language": "python",
        "kernel_type": "script", "is_private": True, "enable_gpu": True, "enable_internet": False,
        "competition_sources": [COMPETITION], **metadata,
    }))
    (folder / "fat.py").write_text("print('training fold 0')\n")
    return folder


@pytest.fixture
def no_retry_pause(monkeypatch):
    """The client's download retries back off with random sleeps; skip them."""
    monkeypatch.setattr("time.sleep", lambda seconds: None)


# -- competition download


def test_download_fetches_the_archive_with_the_users_credentials(kaggle_server, competition_archive, tmp_path):
    archive = kaggle_client.download_competition(COMPETITION, tmp_path / "raw")

    assert archive == tmp_path / "raw" / f"{COMPETITION}.zip"
    assert archive.read_bytes() == competition_archive.read_bytes()
    assert {"train.csv", "sample_submission.csv", "audio_train.zip", "audio_test.zip"} <= set(
        zipfile.ZipFile(archive).namelist()
    )
    assert sorted(p.name for p in archive.parent.iterdir()) == [archive.name]  # no partial left
    [call] = kaggle_server.received("DownloadDataFiles")
    assert call.path == "/api/v1/competitions.CompetitionApiService/DownloadDataFiles"
    assert call.json() == {"competitionName": COMPETITION}
    basic = base64.b64encode(f"{FAKE_USERNAME}:{FAKE_KEY}".encode()).decode()
    assert call.headers["Authorization"] == f"Basic {basic}"
    assert len(kaggle_server.received("FileDownload")) == 1


def test_download_rerun_with_the_archive_present_does_nothing(kaggle_server, tmp_path, monkeypatch):
    first = kaggle_client.download_competition(COMPETITION, tmp_path)
    kaggle_server.requests.clear()
    monkeypatch.delenv("KAGGLE_KEY")  # not even credentials are needed

    assert kaggle_client.download_competition(COMPETITION, tmp_path) == first
    assert kaggle_server.requests == []


def range_start(request) -> int:
    return int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))


def test_download_resumes_a_transfer_dropped_midway(kaggle_server, competition_archive, tmp_path, no_retry_pause):
    kaggle_server.fail("FileDownload", TRUNCATE, times=1)

    archive = kaggle_client.download_competition(COMPETITION, tmp_path)

    assert archive.read_bytes() == competition_archive.read_bytes()
    first, retry = kaggle_server.received("FileDownload")
    assert "Range" not in first.headers and range_start(retry) > 0


def test_interrupted_download_leaves_no_archive_and_the_rerun_resumes(
    kaggle_server, competition_archive, tmp_path, no_retry_pause
):
    kaggle_server.fail("FileDownload", TRUNCATE)
    with pytest.raises(kaggle_client.NetworkUnreachable):
        kaggle_client.download_competition(COMPETITION, tmp_path)
    assert not (tmp_path / f"{COMPETITION}.zip").exists()

    kaggle_server.fail("FileDownload", TRUNCATE, times=0)
    kaggle_server.requests.clear()
    archive = kaggle_client.download_competition(COMPETITION, tmp_path)

    assert archive.read_bytes() == competition_archive.read_bytes()
    # The redirect's GET tells the client what the file is; it then asks for the missing rest.
    _, resumed = kaggle_server.received("FileDownload")
    assert range_start(resumed) > 0


# -- failures, for the download and the submission


def submit_sample(tmp_path: Path) -> None:
    csv_path = tmp_path / "submission.csv"
    csv_path.write_text("fname,label\n00063640.wav,Bark Flute Gong\n")
    kaggle_client.submit(COMPETITION, csv_path, "cv map@3 0.9")


STEPS = {
    "download": ("DownloadDataFiles",
                 lambda tmp_path: kaggle_client.download_competition(COMPETITION, tmp_path / "raw")),
    "submit": ("StartSubmissionUpload", submit_sample),
}
FAILURES = {
    401: (kaggle_client.CredentialsMissing, "rejected your credentials"),
    403: (kaggle_client.RulesNotAccepted, f"https://www.kaggle.com/competitions/{COMPETITION}/rules"),
    404: (kaggle_client.NotFound, f"Competition '{COMPETITION}' was not found"),
    429: (kaggle_client.RateLimited, "HTTP 429 (too many requests)"),
    500: (kaggle_client.ServerError, "HTTP 500"),
    DROP: (kaggle_client.NetworkUnreachable, "make data FROM=DIR"),
}
# A 404 on a submission: the official client's reading, the competition no longer taking submissions.
SUBMIT_404 = (kaggle_client.LateSubmission, f"may no longer accept submissions (late submissions closed), or its "
              f"name is wrong; see https://www.kaggle.com/competitions/{COMPETITION}")
SUBMIT_DROP = (kaggle_client.NetworkUnreachable, "looks offline. Retry once it is online")


@pytest.mark.parametrize("failure", FAILURES, ids=str)
@pytest.mark.parametrize("step", STEPS)
def test_failures_get_distinct_actionable_errors(kaggle_server, tmp_path, step, failure):
    rpc, run_step = STEPS[step]
    error_class, advice = {("submit", 404): SUBMIT_404, ("submit", DROP): SUBMIT_DROP}.get((step, failure),
                                                                                         FAILURES[failure])
    kaggle_server.fail(rpc, failure)

    with pytest.raises(error_class) as excinfo:
        run_step(tmp_path)

    assert advice in str(excinfo.value)
    assert credential_leaks(error_texts(excinfo)) == []
    assert len(kaggle_server.received(rpc)) == 1  # no blind retries (the waits retry: kernel_push.py)
    assert (kaggle_client.transient_reason(excinfo.value) is not None) == (failure in (429, 500, DROP))
    assert not (tmp_path / "raw" / f"{COMPETITION}.zip").exists()
    assert kaggle_server.submissions == []


def test_error_messages_are_distinct():
    classes = [error_class for error_class, _ in [*FAILURES.values(), SUBMIT_404]]
    assert len(set(classes)) == len(classes) and all(issubclass(c, kaggle_client.KaggleError) for c in classes)


def test_a_wrong_key_is_rejected_by_the_server(kaggle_server, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", "not-the-right-key-123")

    with pytest.raises(kaggle_client.CredentialsMissing) as excinfo:
        kaggle_client.download_competition(COMPETITION, tmp_path)

    assert "HTTP 401" in str(excinfo.value) and "KAGGLE_KEY" in str(excinfo.value)
    assert "not-the-right-key-123" not in " ".join(error_texts(excinfo))


def test_no_credentials_says_how_to_create_a_token(kaggle_server, tmp_path, monkeypatch, capfd):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")

    with pytest.raises(kaggle_client.CredentialsMissing) as excinfo:
        kaggle_client.download_competition(COMPETITION, tmp_path)

    message = str(excinfo.value)
    assert message.startswith("No Kaggle credentials found")
    assert "Settings > API" in message and "~/.kaggle/kaggle.json" in message
    assert kaggle_server.requests == []
    assert "Authentication required" not in capfd.readouterr().out  # the client's help block


@pytest.fixture
def refused_connections(kaggle_env):
    """The client's port bound but not listening: connections to it are refused."""
    def bind():
        holder = socket.socket()
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((HOST, PORT))
        return holder

    holder = bind_client_port(bind)
    yield
    holder.close()


@pytest.mark.parametrize("env, named", [
    ({"KAGGLE_USERNAME": FAKE_USERNAME}, "KAGGLE_USERNAME"),  # a username without its key
    ({"KAGGLE_API_TOKEN": "KGAT_expired0123456789"}, "KAGGLE_API_TOKEN"),  # refused with HTTP 401
], ids=["username-only", "unknown-token"])
def test_unusable_credentials_are_named_not_shown(kaggle_server, tmp_path, monkeypatch, env, named):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(kaggle_client.CredentialsMissing) as excinfo:
        kaggle_client.list_submissions(COMPETITION)

    assert named in str(excinfo.value) and "Settings > API" in str(excinfo.value)
    assert "KGAT_expired0123456789" not in " ".join(error_texts(excinfo))


def test_refused_connection_is_reported_as_offline(refused_connections, tmp_path):
    with pytest.raises(kaggle_client.NetworkUnreachable) as excinfo:
        kaggle_client.download_competition(COMPETITION, tmp_path)
    assert "offline" in str(excinfo.value) and "http://localhost:7777" in str(excinfo.value)


@pytest.mark.parametrize("name", kaggle_client.TOKEN_FILES)
def test_a_token_file_is_named_and_masked_never_shown(kaggle_server, kaggle_env, monkeypatch, name):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    token_file = kaggle_env / ".kaggle" / name
    token_file.parent.mkdir()
    token_file.write_text("KGAT_revoked0123456789abcdef\n")

    with pytest.raises(kaggle_client.CredentialsMissing) as excinfo:
        kaggle_client.list_submissions(COMPETITION)

    assert str(token_file) in str(excinfo.value)  # where the client found it
    assert kaggle_client._redacted("a KGAT_revoked0123456789abcdef b") == "a *** b"
    assert "KGAT_revoked0123456789abcdef" not in " ".join(error_texts(excinfo))
    token_file.unlink()  # the leak check reads every file under tmp_path


def test_access_token_is_checked_and_sent_as_bearer(kaggle_server, monkeypatch):
    monkeypatch.delenv("KAGGLE_USERNAME")
    monkeypatch.delenv("KAGGLE_KEY")
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)

    assert kaggle_client.list_submissions(COMPETITION) == []

    [introspect] = kaggle_server.received("IntrospectToken")
    assert introspect.json() == {"token": FAKE_TOKEN}
    [listing] = kaggle_server.received("ListSubmissions")
    assert listing.headers["Authorization"] == f"Bearer {FAKE_TOKEN}"


# -- submissions


def test_submit_uploads_the_file_and_message(kaggle_server, tmp_path):
    csv_path = tmp_path / "fat.csv"
    csv_path.write_text("fname,label\n00063640.wav,Bark Flute Gong\n")

    kaggle_client.submit(COMPETITION, csv_path, "cv map@3 0.912 | features 1a2b experiment 3c4d")

    [start] = kaggle_server.received("StartSubmissionUpload")
    assert start.path == "/api/v1/competitions.CompetitionApiService/StartSubmissionUpload"
    assert start.json()["fileName"] == "fat.csv"
    assert start.json()["contentLength"] == csv_path.stat().st_size
    [upload] = kaggle_server.received("BlobUpload")
    assert upload.method == "PUT" and upload.body == csv_path.read_bytes()
    [create] = kaggle_server.received("CreateSubmission")
    assert create.json()["submissionDescription"] == "cv map@3 0.912 | features 1a2b experiment 3c4d"
    [submission] = kaggle_server.submissions
    assert (submission.competition, submission.file_name) == (COMPETITION, "fat.csv")
    assert submission.content == csv_path.read_bytes()


def test_failed_upload_submits_nothing(kaggle_server, tmp_path):
    kaggle_server.fail("BlobUpload", 403)
    with pytest.raises(kaggle_client.KaggleError, match="nothing was submitted"):
        submit_sample(tmp_path)
    assert kaggle_server.received("CreateSubmission") == [] and kaggle_server.submissions == []


def test_list_submissions_newest_first_with_scores(kaggle_server, tmp_path):
    submit_sample(tmp_path)
    submit_sample(tmp_path)
    kaggle_server.submissions[1].public_score, kaggle_server.submissions[1].private_score = "0.91234", "0.90011"

    newest, oldest = kaggle_client.list_submissions(COMPETITION)

    assert newest["public_score"] == "0.91234" and newest["private_score"] == "0.90011"
    assert oldest["public_score"] is None
    assert newest["file_name"] == "submission.csv" and newest["description"] == "cv map@3 0.9"
    assert newest["status"] == "complete" and newest["date"]


# -- kernels


def test_push_kernel_sends_metadata_and_script(kaggle_server, tmp_path):
    folder = write_kernel(tmp_path / "kernel")

    pushed = kaggle_client.push_kernel(folder)

    assert pushed == {"ref": KERNEL_ID, "url": f"http://localhost:7777/code/{KERNEL_ID}", "version": 1}
    [save] = kaggle_server.received("SaveKernel")
    assert save.path == "/api/v1/kernels.KernelsApiService/SaveKernel"
    kernel = kaggle_server.kernels[KERNEL_ID]
    assert kernel.text == "print('training fold 0')\n"
    assert kernel.metadata["slug"] == KERNEL_ID and kernel.metadata["competitionDataSources"] == [COMPETITION]
    assert kernel.metadata["enableGpu"] is True and kernel.metadata["enableInternet"] is False
    assert kaggle_client.push_kernel(folder)["version"] == 2


def test_push_kernel_refuses_unknown_sources(kaggle_server, tmp_path):
    folder = write_kernel(tmp_path / "blend", f"{FAKE_USERNAME}/fat-blend", kernel_sources=[KERNEL_ID])
    with pytest.raises(kaggle_client.KaggleError, match=f"does not know these sources.*{KERNEL_ID}"):
        kaggle_client.push_kernel(folder)


def test_push_kernel_with_broken_metadata_sends_nothing(kaggle_server, tmp_path):
    folder = write_kernel(tmp_path / "kernel")
    (folder / "fat.py").unlink()
    with pytest.raises(kaggle_client.KaggleError, match="Source file not found"):
        kaggle_client.push_kernel(folder)
    assert kaggle_server.received("SaveKernel") == []


def test_push_kernel_of_another_owner_is_forbidden(kaggle_server, tmp_path):
    folder = write_kernel(tmp_path / "kernel", "someone-else/fat-fold-0")
    with pytest.raises(kaggle_client.Forbidden) as excinfo:
        kaggle_client.push_kernel(folder)
    assert not isinstance(excinfo.value, kaggle_client.RulesNotAccepted)
    assert "your own Kaggle username" in str(excinfo.value)


def test_kernel_status_and_output(kaggle_server, tmp_path):
    kaggle_client.push_kernel(write_kernel(tmp_path / "kernel"))
    assert kaggle_client.kernel_status(KERNEL_ID) == "queued"
    [status] = kaggle_server.received("GetKernelSessionStatus")
    assert status.json() == {"userName": FAKE_USERNAME, "kernelSlug": "fat-fold-0"}

    # More files than fit in one page of the listing, to follow its paging.
    outputs = {f"fold-0/oof-{index:02d}.npy": bytes([index]) * 10 for index in range(24)}
    outputs["submission.csv"] = b"fname,label\n"
    kaggle_server.finish_kernel(KERNEL_ID, outputs, log="fold 0 done\n")
    assert kaggle_client.kernel_status(KERNEL_ID) == "complete"

    paths = kaggle_client.kernel_output(KERNEL_ID, tmp_path / "runs")

    assert {p.relative_to(tmp_path / "runs").as_posix(): p.read_bytes() for p in paths} == {
        **outputs, "fat-fold-0.log": b"fold 0 done\n"
    }
    assert len(kaggle_server.received("ListKernelSessionOutput")) == 2
    assert not (tmp_path / "runs" / ".kernel-output.partial").exists()


def test_a_failed_output_file_is_an_error_not_its_content(kaggle_server, tmp_path):
    kaggle_client.push_kernel(write_kernel(tmp_path / "kernel"))
    kaggle_server.finish_kernel(KERNEL_ID, {"submission.csv": b"fname,label\n"})
    kaggle_server.fail("KernelOutputFile", 503, times=1)

    with pytest.raises(kaggle_client.ServerError):
        kaggle_client.kernel_output(KERNEL_ID, tmp_path / "runs")
    assert not (tmp_path / "runs" / "submission.csv").exists()

    paths = kaggle_client.kernel_output(KERNEL_ID, tmp_path / "runs")
    assert [p.read_bytes() for p in paths] == [b"fname,label\n"]


def test_a_push_beyond_the_gpu_sessions_is_told_apart(kaggle_server, tmp_path):
    kaggle_server.gpu_session_limit = 1
    kaggle_client.push_kernel(write_kernel(tmp_path / "first", f"{FAKE_USERNAME}/fat-fold-1"))

    with pytest.raises(kaggle_client.SessionLimitReached) as excinfo:
        kaggle_client.push_kernel(write_kernel(tmp_path / "kernel"))

    assert excinfo.value.limit == 1
    assert "Maximum batch GPU session count of 1 reached" in str(excinfo.value)
    assert KERNEL_ID not in kaggle_server.kernels
    kaggle_client.push_kernel(write_kernel(tmp_path / "cpu", f"{FAKE_USERNAME}/fat-blend", enable_gpu=False))


def test_gpu_quota(kaggle_server):
    assert kaggle_client.gpu_quota() is None  # where Kaggle gives none
    kaggle_server.gpu_quota = (12.25, 30.0)
    assert kaggle_client.gpu_quota() == {"total_hours": 30.0, "used_hours": 12.25, "remaining_hours": 17.75,
                                         "refresh": "2026-01-05 00:00 UTC"}


@pytest.mark.parametrize(
    "rpc, failure, error_class",
    [
        ("GetKernelSessionStatus", 401, kaggle_client.CredentialsMissing),
        ("GetKernelSessionStatus", 403, kaggle_client.Forbidden),
        ("GetKernelSessionStatus", 404, kaggle_client.NotFound),
        ("ListKernelSessionOutput", 403, kaggle_client.Forbidden),
        ("ListKernelSessionOutput", 500, kaggle_client.ServerError),
        ("ListKernelSessionOutput", 429, kaggle_client.RateLimited),
        ("GetKernelSessionStatus", DROP, kaggle_client.NetworkUnreachable),
        ("SaveKernel", 503, kaggle_client.ServerError),
        ("SaveKernel", DROP, kaggle_client.NetworkUnreachable),
    ],
)
def test_kernel_failures(kaggle_server, tmp_path, rpc, failure, error_class):
    folder = write_kernel(tmp_path / "kernel")
    if rpc != "SaveKernel":
        kaggle_client.push_kernel(folder)
    kaggle_server.fail(rpc, failure)
    call = {
        "GetKernelSessionStatus": lambda: kaggle_client.kernel_status(KERNEL_ID),
        "ListKernelSessionOutput": lambda: kaggle_client.kernel_output(KERNEL_ID, tmp_path / "out"),
        "SaveKernel": lambda: kaggle_client.push_kernel(folder),
    }[rpc]

    with pytest.raises(error_class) as excinfo:
        call()

    assert KERNEL_ID in str(excinfo.value)
    # Exactly that class: a kernel's 403 is Forbidden, not its subclass RulesNotAccepted (competition rules).
    assert type(excinfo.value) is error_class


# -- a fresh process, as the command line runs it


def run_fresh(code: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("KAGGLE_")}
    env.update(HOME=str(home), KAGGLE_API_ENVIRONMENT="TEST", PYTHONPATH=str(REPO), NO_PROXY="localhost")
    env.pop("XDG_CONFIG_HOME", None)
    return subprocess.run([sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def test_fresh_process_without_credentials_writes_nothing_in_home(kaggle_server, tmp_path):
    home = tmp_path / "fresh-home"
    home.mkdir()

    result = run_fresh(
        "from competition import kaggle_client\n"
        "try:\n    kaggle_client.list_submissions('freesound-audio-tagging')\n"
        "except kaggle_client.CredentialsMissing as error:\n    print('ERROR', error)\n",
        home,
        tmp_path,
    )

    assert result.stdout.startswith("ERROR No Kaggle credentials found"), result.stdout + result.stderr
    assert list(home.iterdir()) == []  # no ~/.kaggle, no ~/.config/kaggle


def test_fresh_process_reads_kaggle_json(kaggle_server, competition_archive, tmp_path, tmp_path_factory):
    home = tmp_path_factory.mktemp("home-with-kaggle-json")  # outside tmp_path, which is checked for leaks
    credentials = home / ".kaggle" / "kaggle.json"
    credentials.parent.mkdir(parents=True)
    credentials.write_text(json.dumps({"username": FAKE_USERNAME, "key": FAKE_KEY}))
    credentials.chmod(0o600)

    result = run_fresh(
        "from pathlib import Path\nfrom competition import kaggle_client\n"
        "print(kaggle_client.download_competition('freesound-audio-tagging', Path('data')))\n",
        home,
        tmp_path,
    )

    assert result.returncode == 0, result.stderr
    archive = tmp_path / "data" / f"{COMPETITION}.zip"
    assert archive.read_bytes() == competition_archive.read_bytes()
    assert credential_leaks([result.stdout, result.stderr]) == []
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == [".kaggle", ".kaggle/kaggle.json"]


def test_every_test_on_the_client_s_port_runs_in_one_xdist_group(request):
    """`make test`'s workers would otherwise run two stand-in servers on one port, or a server where a
    test expects the port closed."""
    class Item:
        def __init__(self, *fixturenames):
            self.fixturenames, self.marks = fixturenames, []

        def add_marker(self, mark):
            self.marks.append(mark)

    on_port, elsewhere = Item("tmp_path", "kaggle_env"), Item("tmp_path")
    pytest_collection_modifyitems([on_port, elsewhere])
    assert [(mark.name, mark.args) for mark in on_port.marks] == [("xdist_group", (KAGGLE_PORT_GROUP,))]
    assert elsewhere.marks == []
    # And this session's tests as collected (all of them under `make test`).
    for item in request.session.items:
        marks = [mark.args for mark in item.iter_markers("xdist_group")]
        assert marks == ([(KAGGLE_PORT_GROUP,)] if "kaggle_env" in item.fixturenames else []), item.nodeid
