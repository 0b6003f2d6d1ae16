"""The app's web server (`make app`): the page at `/`, tagging at `POST /api/tag`, on loopback only.

The standard library's ThreadingHTTPServer, so the app needs nothing the kit does not already have.
An upload is the request body itself (the page sends the chosen file as it is, its name in `?name=`);
it is written to the server's own temporary folder, tagged, and deleted before the answer goes out,
and the folder is removed when the server closes. Tagging holds a lock: the model is loaded once and
two clips tagged at once would only share the same cores.

Every answer is JSON. A file the kit cannot use gets `{"ok": false, "error": "<file>: <problem>"}`
with a 4xx status, which the page shows as it is; anything unexpected is a 500 with a one-line
message on the page and its traceback on the server's terminal.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from competition.app.answer import answer_json
from competition.app.page import render_page
from competition.errors import KitError
from competition.submit.predict import Tagger

HOST = "127.0.0.1"          # loopback only: the app is for the person at this machine
DEFAULT_PORT = 8765         # tried first when no port is given; a free one is taken if it is busy
MAX_UPLOAD_BYTES = 32 * 1024 * 1024   # a few minutes of CD-quality WAV
MAX_UPLOAD_SECONDS = 300.0  # longer files are refused; of the rest only the start the model hears is tagged
CHUNK_BYTES = 1 << 20       # an upload is copied to disk this much at a time, never held whole in memory
MAX_NAME_CHARS = 200        # of the file name echoed back


class AppError(KitError, ValueError):
    """An upload or request the app refuses; the message names the file and the problem."""

    def __init__(self, message: str, status: HTTPStatus = HTTPStatus.BAD_REQUEST):
        super().__init__(message)
        self.status = status


def display_name(raw: str | None) -> str:
    """The uploaded file's own name, without any folder, for messages and answers."""
    name = Path((raw or "").replace("\\", "/")).name.strip()
    return (name or "upload")[:MAX_NAME_CHARS]


def upload_suffix(name: str) -> str:
    """The name's extension if it is a plain one (decoders mostly read the format from the bytes)."""
    suffix = Path(name).suffix.lower()
    return suffix if 1 < len(suffix) <= 8 and suffix[1:].isalnum() else ""


def megabytes(n_bytes: int) -> str:
    return f"{round(n_bytes / (1024 * 1024), 2):g} MB"


class AppServer(ThreadingHTTPServer):
    """Serves one Tagger. `uploads` is the temporary folder; closing the server removes it."""

    daemon_threads = True

    def __init__(self, tagger: Tagger, port: int = 0, *, max_bytes: int = MAX_UPLOAD_BYTES,
                 max_seconds: float = MAX_UPLOAD_SECONDS, log=None):
        self.tagger = tagger
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self.tag_lock = threading.Lock()
        self.uploads = Path(tempfile.mkdtemp(prefix="kit-app-"))
        try:
            super().__init__((HOST, port), AppHandler)
        except OSError:
            shutil.rmtree(self.uploads, ignore_errors=True)
            raise
        self.page = render_page(model=tagger.name, max_bytes=max_bytes, max_size=megabytes(max_bytes),
                                max_seconds=max_seconds, tagged_seconds=tagger.max_seconds).encode()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}/"

    def info(self) -> dict:
        return {"model": self.tagger.name, "labels": self.tagger.labels, "max_bytes": self.max_bytes,
                "max_seconds": self.max_seconds, "tagged_seconds": self.tagger.max_seconds}

    def handle_error(self, request, client_address) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the browser went away mid-answer: nothing to tell anyone
        super().handle_error(request, client_address)

    def server_close(self) -> None:
        super().server_close()
        shutil.rmtree(self.uploads, ignore_errors=True)

    def tag_upload(self, path: Path, name: str) -> dict:
        """Check the stored upload against the limits, then tag it; AppError for what is refused."""
        from competition.audio import AudioError, audio_info

        started = time.perf_counter()

        def named(error: Exception) -> str:
            # The decoder names the temporary file; the user knows only their own file's name.
            return str(error).replace(str(path), name)

        with self.tag_lock:
            try:
                rate, frames, _ = audio_info(path)
                file_seconds = frames / rate
                if frames == 0:
                    raise AppError(f"{name}: no audio in it (0 samples)")
                if file_seconds > self.max_seconds:
                    raise AppError(f"{name}: too long ({file_seconds:.1f} s); the limit is {self.max_seconds:g} s",
                                   HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
                tags = self.tagger.tag(path)
            except AudioError as error:
                raise AppError(named(error), HTTPStatus.UNSUPPORTED_MEDIA_TYPE) from None
            except AppError:
                raise
            except KitError as error:
                raise AppError(named(error), HTTPStatus.UNPROCESSABLE_ENTITY) from None
        answer = answer_json(tags, file_name=name, file_seconds=file_seconds, model=self.tagger.name,
                             elapsed=time.perf_counter() - started)
        self.log(f"{name}: " + "  ".join(f"{t['label']} {t['probability']:.3f}" for t in answer["top"])
                 + f"  ({answer['elapsed_seconds']:.2f} s)")
        return answer


class AppHandler(BaseHTTPRequestHandler):
    server: AppServer
    server_version = "kit-app"
    # HTTP/1.1 for `Expect: 100-continue` (curl sends it before a body): an upload over the limit is
    # refused before it is sent, one within it gets its go-ahead at once instead of after curl's wait.
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args) -> None:
        pass  # one line per tagged file is logged instead of one per request

    def send_json(self, payload: dict, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def handle_expect_100(self) -> bool:
        if self.content_length_or_zero() > self.server.max_bytes:
            name = display_name(parse_qs(urlsplit(self.path).query).get("name", [None])[0])
            self.close_connection = True  # the body is never sent
            self.send_json({"ok": False, "error": self.too_big(name, self.content_length_or_zero())},
                           HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
            return False
        return super().handle_expect_100()

    def too_big(self, name: str, length: int) -> str:
        return f"{name}: too big ({megabytes(length)}); the limit is {megabytes(self.server.max_bytes)}"

    def addressed_to_us(self) -> bool:
        """Whether the request names this server as its host. A page elsewhere that gets its own name
        resolved to 127.0.0.1 (DNS rebinding) sends its own name, and is refused."""
        port = self.server.server_address[1]
        if self.headers.get("Host", "") in (f"{HOST}:{port}", f"localhost:{port}"):
            return True
        self.close_connection = True
        self.drain(self.content_length_or_zero())
        self.send_json({"ok": False, "error": "this app answers only at its own address, "
                        f"http://{HOST}:{port}/"}, HTTPStatus.FORBIDDEN)
        return False

    def do_GET(self) -> None:
        if not self.addressed_to_us():
            return
        path = urlsplit(self.path).path
        if path == "/":
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.server.page)))
            self.end_headers()
            self.wfile.write(self.server.page)
        elif path == "/api/info":
            self.send_json(self.server.info())
        else:
            self.send_json({"ok": False, "error": f"{path}: no such page"}, HTTPStatus.NOT_FOUND)

    def do_POST(self) -> None:
        if not self.addressed_to_us():
            return
        url = urlsplit(self.path)
        if url.path != "/api/tag":
            self.drain(self.content_length_or_zero())
            self.send_json({"ok": False, "error": f"{url.path}: no such endpoint"}, HTTPStatus.NOT_FOUND)
            return
        name = display_name(parse_qs(url.query).get("name", [None])[0])
        try:
            self.send_json(self.tag(name))
        except AppError as error:
            self.close_connection = True  # whatever of the body was not read must not be taken for a request
            self.send_json({"ok": False, "error": str(error)}, error.status)
        except Exception as error:  # a bug: the page gets one line, the terminal the traceback
            traceback.print_exc()
            self.close_connection = True
            self.send_json({"ok": False, "error": f"{name}: internal error ({type(error).__name__}); "
                            "see the app's terminal"}, HTTPStatus.INTERNAL_SERVER_ERROR)

    def content_length_or_zero(self) -> int:
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            return 0

    def tag(self, name: str) -> dict:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise AppError(f"{name}: the upload has no valid Content-Length", HTTPStatus.LENGTH_REQUIRED)
        length = int(length)
        if length == 0:
            raise AppError(f"{name}: empty file (0 bytes)")
        if length > self.server.max_bytes:
            # Read and dropped, not stored: closing on an unread body would reset the connection
            # before the browser reads this answer.
            self.drain(length)
            raise AppError(self.too_big(name, length), HTTPStatus.REQUEST_ENTITY_TOO_LARGE)
        with tempfile.NamedTemporaryFile(dir=self.server.uploads, prefix="upload-", suffix=upload_suffix(name),
                                         delete=False) as handle:
            path = Path(handle.name)
        try:
            with path.open("wb") as handle:
                left = length
                while left:
                    chunk = self.rfile.read(min(CHUNK_BYTES, left))
                    if not chunk:
                        raise AppError(f"{name}: upload cut short ({length - left} of {length} bytes arrived)")
                    handle.write(chunk)
                    left -= len(chunk)
            return self.server.tag_upload(path, name)
        finally:
            path.unlink(missing_ok=True)

    def drain(self, length: int) -> None:
        while length > 0:
            chunk = self.rfile.read(min(CHUNK_BYTES, length))
            if not chunk:
                return
            length -= len(chunk)


def start(tagger: Tagger, port: int = 0, **limits) -> tuple[AppServer, threading.Thread]:
    """A server answering in a background thread (for tests and scripts); close it with stop()."""
    server = AppServer(tagger, port, **limits)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="kit-app",
                              daemon=True)
    thread.start()
    return server, thread


def stop(server: AppServer, thread: threading.Thread) -> None:
    server.shutdown()
    thread.join()
    server.server_close()
