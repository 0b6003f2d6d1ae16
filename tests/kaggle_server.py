"""A stand-in for kaggle.com that the official client talks to when KAGGLE_API_ENVIRONMENT=TEST.

kagglesdk then POSTs JSON to http://localhost:7777/api/v1/<service>/<Method> (see
`_get_request_url` in kagglesdk/kaggle_http_client.py). This server answers the methods the kit
uses, records every request it receives, and can be told to fail a method with an HTTP status
or by dropping the connection:

  competitions.CompetitionApiService/DownloadDataFiles  302 to GET /files/<competition>.zip
  competitions.CompetitionApiService/StartSubmissionUpload  -> token + createUrl (PUT /uploads/<token>)
  competitions.CompetitionApiService/CreateSubmission, ListSubmissions
  kernels.KernelsApiService/SaveKernel, GetKernelSessionStatus, ListKernelSessionOutput
                                                        (outputs: GET /kernel-output/<owner>/<slug>/<file>)
  kernels.KernelsApiService/GetAcceleratorQuotaStatistics  (the weekly GPU quota, once set)
  security.OAuthService/IntrospectToken                 (checks a KAGGLE_API_TOKEN)

API calls without the configured username/key (HTTP Basic) or token (Bearer) get HTTP 401, as on
kaggle.com; SaveKernel answers 403 for another user's kernel and reports sources it does not know.
Failures are named by the API method, or for the plain HTTP transfers by "FileDownload",
"BlobUpload" and "KernelOutputFile"; `fail(..., after=n)` lets n requests through first, so a
failure can land in the middle of a long wait.

Kernels model Kaggle's limits: with `gpu_session_limit` set, a GPU kernel pushed while that many
GPU kernels are queued or running is refused with Kaggle's words in the answer's `error`, and
`max_gpu_sessions` keeps the most there ever were at once. Time on this server is the test's: each
`advance()` moves every queued kernel to running and finishes every running one, which runs its
script when the test gave a runner (`run_kernels_with`: the script gets /kaggle/input as Kaggle
mounts it, its sources' outputs included, and what it writes becomes its output; its log comes
back as Kaggle's JSON lines); `fail_kernel` makes a kernel's next runs end in error.

The fixtures at the end give tests a user with fake credentials (`kaggle_env`) and a running server
holding a demo competition (`kaggle_server`).
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import socket
import threading
import time
import uuid
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TypeVar

import pytest

from competition.kaggle.kernel_build import UNFINISHED

T = TypeVar("T")

COMPETITION = "freesound-audio-tagging"
# Distinctive fakes, so that a grep for them finds any leak.
FAKE_USERNAME = "kit-tester"
FAKE_KEY = "kitFAKEkey0a91c4e27d5b3f86"
FAKE_TOKEN = "KGAT_kitFAKEtoken7e2d94b1c0a6"
CREDENTIAL_STRINGS = (
    FAKE_KEY,
    FAKE_TOKEN,
    base64.b64encode(f"{FAKE_USERNAME}:{FAKE_KEY}".encode()).decode(),  # as in a Basic auth header
)

# Kaggle's answer to a push beyond the account's GPU sessions, word for word but the number.
SESSION_LIMIT_ERROR = "Maximum batch GPU session count of {limit} reached"
IN_FLIGHT = ("QUEUED", "RUNNING")

HOST, PORT = "127.0.0.1", 7777
KAGGLE_PORT_GROUP = "kaggle-port"  # the xdist group of the tests that use it
BASE_URL = f"http://localhost:{PORT}"
DROP = "drop"  # fail a method by closing the connection without an answer
TRUNCATE = "truncate"  # fail a file transfer by closing the connection halfway through the body
# One instant for every served file, so the client's Last-Modified/ETag checks are stable.
FILES_LAST_MODIFIED = formatdate(1_700_000_000, usegmt=True)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def rpc(self) -> str:
        """The API method ('DownloadDataFiles', ...) or the transfer's name."""
        return _rpc_name(self.method, self.path)

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class Upload:
    file_name: str
    content: bytes | None = None  # None until the client has PUT the bytes


@dataclass
class Submission:
    competition: str
    file_name: str
    content: bytes
    description: str
    date: datetime
    public_score: str = ""
    private_score: str = ""


@dataclass
class Kernel:
    metadata: dict  # the SaveKernel request, script text excluded
    text: str
    version: int = 1
    status: str = "QUEUED"  # a kagglesdk KernelWorkerStatus name
    failure_message: str = ""
    outputs: dict[str, bytes] = field(default_factory=dict)
    log: str = ""
    pushed_at: int = 0  # the server's tick (advance() count) when this version was pushed
    finished_at: int | None = None

    @property
    def uses_gpu(self) -> bool:
        return bool(self.metadata.get("enableGpu"))


class KaggleStandIn:
    """The server's state; `start()`/`stop()` run it on 127.0.0.1:7777 in a thread."""

    def __init__(self, username: str, key: str, token: str | None = None):
        self.username = username
        self._accepted_authorizations = {
            "Basic " + base64.b64encode(f"{username}:{key}".encode()).decode(),
        }
        self.token = token
        if token:
            self._accepted_authorizations.add(f"Bearer {token}")
        self.requests: list[RecordedRequest] = []
        self.competition_archives: dict[str, bytes] = {}
        self.submissions: list[Submission] = []
        self.uploads: dict[str, Upload] = {}  # by blob token
        self.submission_reply: str | None = None  # CreateSubmission's message; None: Kaggle's usual one
        self.kernels: dict[str, Kernel] = {}  # "owner/slug" -> kernel
        # What a kernel source mounts: the output of its latest completed version (a kernel reading its
        # own output, pushed again, sees its previous version's).
        self.completed_outputs: dict[str, dict[str, bytes]] = {}
        self._failures: dict[str, list] = {}  # rpc -> [status or DROP/TRUNCATE, remaining times, let through]
        self.gpu_session_limit: int | None = None
        self.max_gpu_sessions = 0  # the most GPU kernels queued or running at once
        self.tick = 0  # how many times time advanced
        self.gpu_quota: tuple[float, float] | None = None  # (hours used, hours allowed) this week
        self.competition_dirs: dict[str, Path] = {}  # the competitions' files unpacked, for kernels' inputs
        self._kernel_failures: dict[str, list] = {}  # ref -> [remaining runs that fail, log]
        self._unfinished_runs: dict[str, int] = {}  # ref -> runs left that stop at their time budget
        self._runner: Callable | None = None
        self._sessions_dir: Path | None = None
        self._layout = "nested"
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # -- what tests set up and look at

    def add_competition(self, name: str, archive: bytes) -> None:
        self.competition_archives[name] = archive

    def fail(self, rpc: str, how: int | str, times: int = 10**9, after: int = 0) -> None:
        """Answer `rpc` with HTTP status `how`, or DROP/TRUNCATE the connection, `times` times,
        once `after` requests for it have been answered as usual."""
        self._failures[rpc] = [how, times, after]

    def fail_pending(self, rpc: str) -> bool:
        """Whether failures set with `fail` for `rpc` are still to come."""
        failure = self._failures.get(rpc)
        return bool(failure and failure[1] > 0)

    def received(self, rpc: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.rpc == rpc]

    def finish_kernel(self, ref: str, outputs: dict[str, bytes], log: str = "") -> None:
        kernel = self.kernels[ref]
        kernel.status, kernel.outputs, kernel.log = "COMPLETE", outputs, log
        self.completed_outputs[ref] = outputs
        self._count_gpu_sessions()

    def fail_kernel(self, ref: str, times: int = 1, log: str = "Traceback: the stand-in failed it\n") -> None:
        """The next `times` runs of kernel `ref` end in error, with `log`."""
        self._kernel_failures[ref] = [times, log]

    def stop_at_time_budget(self, ref: str, times: int = 1) -> None:
        """The next `times` runs of kernel `ref` complete with their time budget spent, saying so in
        their output as the kit's kernels do (without running a script)."""
        self._unfinished_runs[ref] = times

    def run_kernels_with(self, runner: Callable[[Path, Path, Path], tuple[int, str]], sessions_dir: Path,
                         layout: str = "nested") -> None:
        """Run each kernel's script as it finishes: `runner(script, input_dir, working_dir)` returns
        (exit code, log). layout "nested": /kaggle/input/competitions/<slug>/ and
        /kaggle/input/notebooks/<owner>/<slug>/, as Kaggle mounts them today; "flat": /kaggle/input/<slug>/."""
        self._runner, self._sessions_dir, self._layout = runner, sessions_dir, layout

    def advance(self) -> None:
        """Time passes on Kaggle: queued kernels start, running ones finish."""
        self.tick += 1
        with self._lock:
            starting = [kernel for kernel in self.kernels.values() if kernel.status == "QUEUED"]
            finishing = [(ref, kernel) for ref, kernel in sorted(self.kernels.items()) if kernel.status == "RUNNING"]
        for ref, kernel in finishing:
            self._finish(ref, kernel)
            kernel.finished_at = self.tick
        for kernel in starting:
            kernel.status = "RUNNING"
        self._count_gpu_sessions()

    def gpu_sessions(self) -> list[str]:
        return [ref for ref, kernel in self.kernels.items() if kernel.uses_gpu and kernel.status in IN_FLIGHT]

    def _count_gpu_sessions(self) -> None:
        self.max_gpu_sessions = max(self.max_gpu_sessions, len(self.gpu_sessions()))

    def _finish(self, ref: str, kernel: Kernel) -> None:
        failure = self._kernel_failures.get(ref)
        if failure and failure[0] > 0:
            failure[0] -= 1
            kernel.status, kernel.failure_message, kernel.log = "ERROR", "stand-in failure", _kaggle_log(failure[1])
            return
        if self._runner is None:
            kernel.status = "COMPLETE"
            if self._unfinished_runs.get(ref, 0) > 0:
                self._unfinished_runs[ref] -= 1
                message = f"run: the time budget ran out with fold 0 (v{kernel.version}) left"
                kernel.outputs = {UNFINISHED: json.dumps({"message": message}).encode(),
                                  "run/fold-0/checkpoint.keras": f"v{kernel.version}".encode()}
            self.completed_outputs[ref] = kernel.outputs
            return
        session = self._sessions_dir / f"{ref.replace('/', '--')}-v{kernel.version}"
        input_dir, working_dir = session / "input", session / "working"
        self.mount_inputs(kernel, input_dir)
        working_dir.mkdir(parents=True)
        script = session / kernel.metadata.get("codeFile", f"{ref.split('/')[1]}.py")
        script.write_text(kernel.text)
        returncode, log = self._runner(script, input_dir, working_dir)
        kernel.outputs = {path.relative_to(working_dir).as_posix(): path.read_bytes()
                          for path in sorted(working_dir.rglob("*")) if path.is_file()}
        kernel.log = _kaggle_log(log)
        kernel.status = "COMPLETE" if returncode == 0 else "ERROR"
        if returncode == 0:
            self.completed_outputs[ref] = kernel.outputs
        kernel.failure_message = "" if returncode == 0 else f"the script exited with code {returncode}"

    def mount_inputs(self, kernel: Kernel, input_dir: Path) -> None:
        """/kaggle/input of a session of `kernel`: its competitions' files and its source kernels' outputs."""
        nested = self._layout == "nested"
        for name in kernel.metadata.get("competitionDataSources", []):
            target = input_dir / "competitions" / name if nested else input_dir / name
            shutil.copytree(self.competition_dirs[name], target)
        for ref in kernel.metadata.get("kernelDataSources", []):
            owner, slug = ref.split("/")
            folder = input_dir / "notebooks" / owner / slug if nested else input_dir / slug
            for name, content in self.completed_outputs.get(ref, {}).items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_bytes(content)
        input_dir.mkdir(parents=True, exist_ok=True)

    # -- running

    def start(self) -> KaggleStandIn:
        self._httpd = bind_client_port(lambda: ThreadingHTTPServer((HOST, PORT), _handler_for(self)))
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()  # quick to stop
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- answering

    def _take_failure(self, rpc: str) -> int | str | None:
        with self._lock:
            failure = self._failures.get(rpc)
            if not failure or failure[1] <= 0:
                return None
            if failure[2] > 0:
                failure[2] -= 1
                return None
            failure[1] -= 1
            return failure[0]

    def _authorized(self, headers: dict[str, str]) -> bool:
        return headers.get("Authorization") in self._accepted_authorizations

    def _answer_api(self, rpc: str, body: dict):
        """(status, JSON answer or None, extra headers) for an API call."""
        answer = getattr(self, f"_rpc_{rpc}", None)
        if answer is None:
            return _error(501, f"the stand-in server does not implement {rpc}")
        return answer(body)

    def _rpc_DownloadDataFiles(self, body):
        name = body.get("competitionName", "")
        if name not in self.competition_archives:
            return _error(404, f"competition {name} not found")
        # Like kaggle.com: a redirect to a signed storage URL (its query is not part of the name).
        location = f"{BASE_URL}/files/{name}.zip?Expires=1700000000&Signature=stand-in"
        return 302, None, {"Location": location}

    def _rpc_StartSubmissionUpload(self, body):
        if body.get("competitionName") not in self.competition_archives:
            return _error(404, "competition not found")
        token = uuid.uuid4().hex
        self.uploads[token] = Upload(file_name=body.get("fileName", ""))
        return 200, {"token": token, "createUrl": f"{BASE_URL}/uploads/{token}"}, {}

    def _rpc_CreateSubmission(self, body):
        name = body.get("competitionName", "")
        upload = self.uploads.get(body.get("blobFileTokens", ""))
        if name not in self.competition_archives:
            return _error(404, "competition not found")
        if upload is None or upload.content is None:
            return _error(400, "unknown or unfinished upload")
        self.submissions.append(
            Submission(
                competition=name,
                file_name=upload.file_name,
                content=upload.content,
                description=body.get("submissionDescription", ""),
                date=datetime.now(UTC).replace(tzinfo=None, microsecond=0),
            )
        )
        message = self.submission_reply or f"Successfully submitted to {name}"
        return 200, {"message": message, "ref": len(self.submissions)}, {}

    def _rpc_ListSubmissions(self, body):
        name = body.get("competitionName", "")
        if name not in self.competition_archives:
            return _error(404, "competition not found")
        mine = [(ref, s) for ref, s in enumerate(self.submissions, 1) if s.competition == name]
        listed = [
            {
                "ref": ref,
                "date": submission.date.isoformat(timespec="milliseconds") + "Z",
                "description": submission.description,
                "fileName": submission.file_name,
                "status": "COMPLETE",
                "publicScore": submission.public_score,
                "privateScore": submission.private_score,
                "submittedBy": self.username,
            }
            for ref, submission in reversed(mine)
        ]
        return 200, {"submissions": listed, "nextPageToken": ""}, {}

    def _rpc_SaveKernel(self, body):
        ref = body.get("slug", "")
        owner = ref.split("/")[0]
        if owner != self.username:
            return _error(403, f"kernels of {owner} cannot be written by {self.username}")
        metadata = {key: value for key, value in body.items() if key != "text"}
        unknown = {
            "invalidCompetitionSources": [
                s for s in body.get("competitionDataSources", []) if s not in self.competition_archives
            ],
            "invalidKernelSources": [s for s in body.get("kernelDataSources", []) if s not in self.kernels],
        }
        if self.gpu_session_limit is not None and body.get("enableGpu"):
            others = [other for other in self.gpu_sessions() if other != ref]
            if len(others) >= self.gpu_session_limit:
                return 200, {"error": SESSION_LIMIT_ERROR.format(limit=self.gpu_session_limit)}, {}
        version = self.kernels[ref].version + 1 if ref in self.kernels else 1
        self.kernels[ref] = Kernel(metadata=metadata, text=body.get("text", ""), version=version, pushed_at=self.tick)
        self._count_gpu_sessions()
        answer = {"ref": f"/code/{ref}", "url": f"{BASE_URL}/code/{ref}", "versionNumber": version}
        return 200, answer | {key: value for key, value in unknown.items() if value}, {}

    def _rpc_GetKernelSessionStatus(self, body):
        kernel = self.kernels.get(f"{body.get('userName')}/{body.get('kernelSlug')}")
        if kernel is None:
            return _error(404, "kernel not found")
        return 200, {"status": kernel.status, "failureMessage": kernel.failure_message}, {}

    def _rpc_ListKernelSessionOutput(self, body):
        ref = f"{body.get('userName')}/{body.get('kernelSlug')}"
        kernel = self.kernels.get(ref)
        if kernel is None:
            return _error(404, "kernel not found")
        start = int(body.get("pageToken") or 0)
        names = sorted(kernel.outputs)[start : start + int(body.get("pageSize") or 20)]
        files = [{"fileName": name, "url": f"{BASE_URL}/kernel-output/{ref}/{name}"} for name in names]
        more = start + len(names) < len(kernel.outputs)
        page = {"files": files, "nextPageToken": str(start + len(names)) if more else ""}
        return 200, page | ({"log": kernel.log} if kernel.log and start == 0 else {}), {}

    def _rpc_GetAcceleratorQuotaStatistics(self, body):
        if self.gpu_quota is None:
            return _error(404, "no quota for this account")
        used, allowed = self.gpu_quota
        quota = {"timeUsed": f"{round(used * 3600)}s", "totalTimeAllowed": f"{round(allowed * 3600)}s"}
        return 200, {"gpuQuota": quota, "quotaRefreshTime": "2026-01-05T00:00:00Z"}, {}

    def _rpc_IntrospectToken(self, body):
        if self.token and body.get("token") == self.token:
            return 200, {"active": True, "username": self.username}, {}
        return 200, {"active": False}, {}

    def _file(self, path: str) -> bytes | None:
        """The bytes a plain GET of `path` serves, or None."""
        if path.startswith("/files/"):
            return self.competition_archives.get(path.removeprefix("/files/").removesuffix(".zip"))
        if path.startswith("/kernel-output/"):
            owner, slug, name = path.removeprefix("/kernel-output/").split("/", 2)
            kernel = self.kernels.get(f"{owner}/{slug}")
            return kernel.outputs.get(name) if kernel else None
        return None


class FakeClock:
    """Time for the kit's waits (competition.kaggle.waiting.Clock), driven by the test: a sleep moves
    it on at once and calls `on_sleep`, by default letting time pass on the stand-in server too."""

    def __init__(self, on_sleep: Callable[[float], None]):
        self.seconds = 0.0
        self.sleeps: list[float] = []
        self.on_sleep = on_sleep

    def now(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.seconds += seconds
        self.on_sleep(seconds)


def bind_client_port(bind: Callable[[], T], timeout: float = 60.0) -> T:
    """`bind()` to the client's fixed port, waiting while another test run holds it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return bind()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _rpc_name(method: str, path: str) -> str:
    path = path.split("?")[0]
    if path.startswith("/api/v1/"):
        return path.rsplit("/", 1)[-1]
    if method == "PUT" and path.startswith("/uploads/"):
        return "BlobUpload"
    if path.startswith("/kernel-output/"):
        return "KernelOutputFile"
    return "FileDownload"


def _kaggle_log(text: str) -> str:
    """A script's log as Kaggle serves it: a JSON list of {stream_name, time, data}, a line each."""
    return json.dumps([{"stream_name": "stdout", "time": float(i), "data": line}
                       for i, line in enumerate(text.splitlines(keepends=True))])


def _error(status: int, message: str):
    return status, {"code": status, "message": message}, {}


def _handler_for(server: KaggleStandIn):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # keep test output quiet
            pass

        def do_POST(self):
            self._handle()

        def do_GET(self):
            self._handle()

        def do_PUT(self):
            self._handle()

        def _handle(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            request = RecordedRequest(self.command, self.path, dict(self.headers), body)
            server.requests.append(request)
            failure = server._take_failure(request.rpc)
            if failure == DROP:
                return self._drop()
            if isinstance(failure, int):
                return self._send(*_error(failure, f"stand-in failure {failure}"))
            if request.rpc == "BlobUpload":
                return self._put_upload(request)
            if self.command == "GET":
                return self._get_file(truncate=failure == TRUNCATE)
            if not server._authorized(request.headers):
                return self._send(*_error(401, "Unauthenticated"))
            return self._send(*server._answer_api(request.rpc, json.loads(body or b"{}")))

        def _put_upload(self, request):
            token = request.path.removeprefix("/uploads/")
            if token not in server.uploads:
                return self._send(*_error(404, "no such upload"))
            server.uploads[token].content = request.body
            return self._send(200, {}, {})

        def _get_file(self, truncate: bool):
            content = server._file(self.path.split("?")[0])
            if content is None:
                return self._send(*_error(404, "no such file"))
            etag = f'"{zlib.crc32(content):08x}"'
            start = 0
            if self.headers.get("Range") and self.headers.get("If-Range", etag) == etag:
                start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206 if start else 200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(content) - start))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", FILES_LAST_MODIFIED)
            if start:
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            self.end_headers()
            if truncate:
                self.wfile.write(content[start : start + (len(content) - start) // 2])
                return self._drop()
            self.wfile.write(content[start:])

        def _send(self, status: int, answer: dict | None, headers: dict[str, str]):
            payload = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def _drop(self):
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)

    return Handler


def build_competition_archive(dest: Path, n_train: int = 12, n_test: int = 6, seed: int = 0) -> Path:
    """The demo competition packed the way Kaggle serves freesound-audio-tagging.

    The real download is one zip holding train.csv, sample_submission.csv (and, since the
    competition ended, test_post_competition.csv) next to audio_train.zip and audio_test.zip,
    which hold the folders audio_train/ and audio_test/ of WAVs.
    """
    from competition.datasets.demo_synth import TEST_AUDIO_DIR, TRAIN_AUDIO_DIR, generate_demo

    unpacked = generate_demo(dest.with_name(dest.stem + "-unpacked"), n_train=n_train, n_test=n_test, seed=seed)
    with zipfile.ZipFile(dest, "w") as archive:
        for csv_file in sorted(unpacked.glob("*.csv")):
            archive.write(csv_file, csv_file.name)
        for folder in (TRAIN_AUDIO_DIR, TEST_AUDIO_DIR):
            audio_zip = io.BytesIO()
            with zipfile.ZipFile(audio_zip, "w") as audio:
                for wav in sorted((unpacked / folder).iterdir()):
                    audio.write(wav, f"{folder}/{wav.name}")
            archive.writestr(f"{folder}.zip", audio_zip.getvalue())
    return dest


@pytest.fixture(scope="session")
def competition_archive(tmp_path_factory) -> Path:
    return build_competition_archive(tmp_path_factory.mktemp("kaggle-archive") / f"{COMPETITION}.zip")


@pytest.fixture(scope="session")
def competition_files(competition_archive) -> Path:
    """The archive's files unpacked, as Kaggle mounts them for a kernel (read-only: copy before changing)."""
    unpacked = competition_archive.with_name(competition_archive.stem + "-unpacked")
    mounted = competition_archive.with_name(competition_archive.stem + "-mounted")
    if not mounted.exists():
        shutil.copytree(unpacked, mounted, ignore=shutil.ignore_patterns("demo.json"))  # the renderer's own notes
    return mounted


def pytest_collection_modifyitems(items) -> None:
    """`make test` runs on pytest-xdist's workers (`--dist loadgroup`): every test pointed at the
    client's fixed port (through `kaggle_env`) goes to one worker, so no test meets another's stand-in
    server, or a port it expected free."""
    for item in items:
        if "kaggle_env" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group(KAGGLE_PORT_GROUP))


@pytest.fixture
def kaggle_env(tmp_path, monkeypatch) -> Path:
    """A user with the fake username/key in the environment, pointed at the stand-in server.

    HOME is an empty folder under tmp_path (returned), so whatever the client writes there is
    checked for credentials with the rest of tmp_path.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME", "VERBOSE", "VERBOSE_OUTPUT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_API_ENVIRONMENT", "TEST")
    monkeypatch.setenv("KAGGLE_USERNAME", FAKE_USERNAME)
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "localhost,127.0.0.1")
    # Import the client now, while its import-time authentication finds a username/key and so
    # stays local (given a token, it would ask kaggle.com to check it).
    from competition import kaggle_client

    kaggle_client._client_class()
    return home


@pytest.fixture
def kaggle_server(kaggle_env, competition_archive, competition_files):
    server = KaggleStandIn(FAKE_USERNAME, FAKE_KEY, token=FAKE_TOKEN)
    server.add_competition(COMPETITION, competition_archive.read_bytes())
    server.competition_dirs[COMPETITION] = competition_files
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kaggle_time(kaggle_server, monkeypatch) -> FakeClock:
    """The kit's clock made the test's: every wait returns at once, and time passes on the server."""
    from competition.kaggle import waiting

    clock = FakeClock(lambda seconds: kaggle_server.advance())
    monkeypatch.setattr(waiting.Clock, "now", lambda self: clock.now())
    monkeypatch.setattr(waiting.Clock, "sleep", lambda self, seconds: clock.sleep(seconds))
    return clock


def credential_leaks(texts: list[str], root: Path | None = None) -> list[str]:
    """Where a fake credential shows up: in `texts`, or in a file under `root`."""
    leaks = [f"text #{index}" for index, text in enumerate(texts) if any(s in text for s in CREDENTIAL_STRINGS)]
    for path in sorted(root.rglob("*")) if root else []:
        if path.is_file():
            content = path.read_bytes()
            leaks += [str(path) for s in CREDENTIAL_STRINGS if s.encode() in content][:1]
    return leaks


@pytest.fixture
def no_credential_leaks(tmp_path, capfd):
    """Fails the test when a credential shows up in its output or in any file under tmp_path.

    Tests read their output with `capfd` (not capsys); what they read is kept for the check too.
    """
    seen: list[str] = []
    read = capfd.readouterr

    def read_and_keep():
        captured = read()
        seen.extend(captured)
        return captured

    capfd.readouterr = read_and_keep
    yield
    read_and_keep()
    assert credential_leaks(seen, tmp_path) == []
