"""`make app`: the page and its JSON endpoint over HTTP on generated audio with a tiny trained run; bad
uploads get a message, not a traceback; uploads never outlive their request; loopback only; the same
answer as `make predict`; memory stays flat over many uploads."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import soundfile
from make_targets import REPO, run_make
from tiny_run import tiny_workspace, trained_run, write_tone

from competition.app.images import PALETTE, png_bytes, spectrogram_png
from competition.app.server import HOST, AppServer, display_name, start, stop, upload_suffix
from competition.submit.predict import Tagger
from competition.workspace import Workspace

MAX_BYTES = 256 * 1024   # small limits, so the refused uploads stay small
MAX_SECONDS = 20.0


def request(server: AppServer, path: str, data: bytes | None = None) -> tuple[int, dict | str]:
    """(status, JSON answer or page text) of a GET, or of a POST when `data` is given."""
    method = "GET" if data is None else "POST"
    call = urllib.request.Request(server.url.rstrip("/") + path, data=data, method=method)
    try:
        with urllib.request.urlopen(call, timeout=60) as response:
            status, body, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, body, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(body) if kind == "application/json" else body.decode()


def upload(server: AppServer, path: Path, name: str | None = None) -> tuple[int, dict]:
    return request(server, "/api/tag?name=" + urllib.request.quote(name or path.name), path.read_bytes())


# ---------------------------------------------------------------- without a model

def test_the_spectrogram_png_is_the_frames_coloured_low_frequencies_at_the_bottom():
    from PIL import Image

    logmel = np.full((30, 8), -100.0, np.float32)
    logmel[:, 0] = 0.0  # the lowest band loud
    image = np.asarray(Image.open(io.BytesIO(spectrogram_png(logmel))))
    assert image.shape == (8, 30, 3)
    assert (image[-1] == PALETTE[-1]).all() and (image[:-1] == PALETTE[0]).all()  # the loud band at the bottom
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(rgb)))), rgb)


def test_upload_names_lose_their_folders_and_odd_extensions():
    assert display_name("../../etc/passwd") == "passwd"
    assert display_name("C:\\Users\\me\\clip.wav") == "clip.wav"
    assert display_name(None) == "upload" and display_name("") == "upload"
    assert upload_suffix("clip.FLAC") == ".flac"
    assert upload_suffix("clip.w/v") == "" and upload_suffix("noext") == "" and upload_suffix("a.$(rm)") == ""


def test_the_app_command_names_a_model_it_cannot_find(tmp_path):
    done = subprocess.run([sys.executable, "-m", "competition", "app", "--run", "no-such-run"], cwd=REPO,
                          env=dict(os.environ, KIT_HOME=str(tmp_path)), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: no-such-run: neither a run (folder, or name under {tmp_path}/runs) "
                                        f"nor a submission blend (CSV, or name under {tmp_path}/submissions)"]


# ---------------------------------------------------------------- with a tiny trained run

@pytest.fixture(scope="module")
def tagging_workspace(tmp_path_factory, tiny_competition) -> Workspace:
    workspace = tiny_workspace(tmp_path_factory.getbasetemp() / "tagging-workspace", tiny_competition)
    trained_run(workspace, "tiny-logmel")
    return workspace


@pytest.fixture(scope="module")
def tagger(tagging_workspace) -> Tagger:
    return Tagger.load(tagging_workspace.runs / "tiny-logmel")


@pytest.fixture
def app(tagger):
    server, thread = start(tagger, 0, max_bytes=MAX_BYTES, max_seconds=MAX_SECONDS, log=lambda line: None)
    yield server
    stop(server, thread)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:
    """Good uploads in several formats and lengths, and bad ones of every kind the app refuses."""
    folder = tmp_path_factory.mktemp("uploads")
    rng = np.random.default_rng(1)
    stereo = (0.3 * np.sin(2 * np.pi * 330 * np.arange(44100 * 2) / 44100)[:, None] * [1, 0.5]).astype(np.float32)
    soundfile.write(folder / "stereo.flac", stereo, 44100)
    soundfile.write(folder / "short.ogg", stereo[:6000], 44100)  # shorter than one crop
    soundfile.write(folder / "long.wav", np.zeros(2000 * 25, np.float32), 2000)  # 25 s: too long, yet small
    soundfile.write(folder / "silent.wav", np.zeros(0, np.float32), 22050)  # a valid file with no samples
    (folder / "notes.txt").write_text("these are not the sounds you are looking for\n")
    (folder / "empty.wav").write_bytes(b"")
    (folder / "huge.wav").write_bytes(rng.integers(0, 256, 2 * MAX_BYTES, dtype=np.uint8).tobytes())
    return {"tone": write_tone(folder / "tone.wav", 3.0), "stereo": folder / "stereo.flac",
            "short": folder / "short.ogg", "long": folder / "long.wav", "silent": folder / "silent.wav",
            "text": folder / "notes.txt", "empty": folder / "empty.wav", "huge": folder / "huge.wav"}


def test_the_page_says_the_model_and_the_limits(app):
    status, page = request(app, "/")
    assert status == 200
    assert "<b>tiny-logmel</b>" in page and 'type="file"' in page
    assert "up to 0.25 MB" in page and "20 s long" in page and "the model listens to the first 30 s" in page
    status, info = request(app, "/api/info")
    assert status == 200 and info["model"] == "tiny-logmel" and info["max_bytes"] == MAX_BYTES
    assert request(app, "/nowhere")[0] == 404


@pytest.mark.parametrize("kind", ["tone", "stereo", "short"])
def test_a_good_upload_gets_its_tags_spectrogram_and_timeline(app, tagger, audio, kind):
    from PIL import Image

    status, answer = upload(app, audio[kind])
    assert status == 200 and answer["ok"] is True and answer["file"] == audio[kind].name
    expected = tagger.tag(audio[kind])  # the answer is the Tagger's, as `make predict` gives it
    assert [t["label"] for t in answer["top"]] == [label for label, _ in expected.top]
    np.testing.assert_allclose([t["probability"] for t in answer["top"]], [p for _, p in expected.top], atol=1e-6)
    assert sum(answer["probabilities"]) == pytest.approx(1.0, abs=1e-4)
    assert [t["probability"] for t in answer["top"]] == sorted(answer["probabilities"], reverse=True)[:3]
    timeline = answer["timeline"]
    assert len(timeline["starts"]) == len(timeline["probabilities"]) == len(expected.crop_starts)
    assert timeline["starts"][0] == 0 and timeline["starts"][-1] + timeline["crop_seconds"] >= min(
        answer["seconds"], timeline["crop_seconds"]) - 0.05
    png = answer["spectrogram"].removeprefix("data:image/png;base64,")
    import base64

    width, height = Image.open(io.BytesIO(base64.b64decode(png))).size
    assert (width, height) == expected.logmel.shape
    assert answer["seconds"] == pytest.approx(sf_seconds(audio[kind]), abs=0.01)


def sf_seconds(path: Path) -> float:
    info = soundfile.info(str(path))
    return info.frames / info.samplerate


@pytest.mark.parametrize("kind, status, message", [
    ("text", 415, "notes.txt: not a readable audio file"),
    ("empty", 400, "empty.wav: empty file (0 bytes)"),
    ("huge", 413, "huge.wav: too big (0.5 MB); the limit is 0.25 MB"),
    ("long", 413, "long.wav: too long (25.0 s); the limit is 20 s"),
    ("silent", 400, "silent.wav: no audio in it (0 samples)"),
])
def test_a_bad_upload_gets_a_one_line_message_naming_it(app, audio, kind, status, message):
    got, answer = upload(app, audio[kind])
    assert got == status and answer["ok"] is False
    assert answer["error"].startswith(message)
    assert "\n" not in answer["error"] and "Traceback" not in answer["error"]
    assert str(app.uploads) not in answer["error"]  # the user's own file name, not the temporary one


def test_a_clip_longer_than_the_model_hears_is_tagged_from_its_start_and_says_so(tagger, tmp_path):
    server, thread = start(tagger, 0, max_bytes=MAX_BYTES, max_seconds=60.0, log=lambda line: None)
    soundfile.write(tmp_path / "long.wav", np.zeros(2000 * 35, np.float32), 2000)
    try:
        status, answer = upload(server, tmp_path / "long.wav")
    finally:
        stop(server, thread)
    assert status == 200 and answer["seconds"] == 30.0 and answer["file_seconds"] == 35.0
    assert answer["notes"] == ["cut to its first 30 s of 35.0 s (max_seconds)"]


def test_an_upload_announced_too_big_is_refused_before_it_is_sent(app):
    """`Expect: 100-continue` (curl's way): the answer comes before the body, a go-ahead within the limit."""
    host, port = app.server_address[:2]

    def first_answer(length: int) -> bytes:
        """What the server says before any of the body is sent: a 413 (read to its end, as the server
        then closes) or the go-ahead."""
        with socket.create_connection((host, port), timeout=10) as connection:
            connection.sendall(f"POST /api/tag?name=big.wav HTTP/1.1\r\nHost: {host}:{port}\r\n"
                               f"Content-Length: {length}\r\nExpect: 100-continue\r\n\r\n".encode())
            answer = b""
            while b"100 Continue\r\n\r\n" not in answer and (chunk := connection.recv(65536)):
                answer += chunk
            return answer

    refused = first_answer(10 * MAX_BYTES)
    assert refused.startswith(b"HTTP/1.1 413 ")
    assert json.loads(refused.split(b"\r\n\r\n", 1)[1]) == {
        "ok": False, "error": "big.wav: too big (2.5 MB); the limit is 0.25 MB"}
    assert first_answer(MAX_BYTES).startswith(b"HTTP/1.1 100 Continue")


def test_a_bug_while_tagging_is_one_line_on_the_page(app, audio, monkeypatch, capsys):
    def broken(path, k=3):
        raise RuntimeError("a bug")

    monkeypatch.setattr(app.tagger, "tag", broken)
    status, answer = upload(app, audio["tone"])
    assert status == 500
    assert answer == {"ok": False, "error": "tone.wav: internal error (RuntimeError); see the app's terminal"}
    assert "RuntimeError: a bug" in capsys.readouterr().err  # the traceback on the server's terminal


def test_uploads_are_deleted_after_each_answer_and_the_folder_at_exit(tagger, audio):
    server, thread = start(tagger, 0, max_bytes=MAX_BYTES, max_seconds=MAX_SECONDS, log=lambda line: None)
    uploads = server.uploads
    try:
        for kind in ("tone", "text", "long", "short", "empty", "huge"):
            upload(server, audio[kind])
            assert list(uploads.iterdir()) == [], kind
        assert uploads.is_dir()
    finally:
        stop(server, thread)
    assert not uploads.exists()


def non_loopback_addresses() -> list[str]:
    import psutil

    return [a.address for addresses in psutil.net_if_addrs().values() for a in addresses
            if a.family == socket.AF_INET and not a.address.startswith("127.")]


def test_a_request_for_another_host_name_is_refused(app):
    port = app.server_address[1]
    for host, status in ((f"evil.example:{port}", 403), (f"localhost:{port}", 200), (f"127.0.0.1:{port}", 200)):
        call = urllib.request.Request(f"http://127.0.0.1:{port}/api/info", headers={"Host": host})
        try:
            with urllib.request.urlopen(call, timeout=10) as response:
                got = response.status
        except urllib.error.HTTPError as error:
            got = error.code
        assert got == status, host


def test_the_server_listens_on_loopback_only(app):
    assert HOST == "127.0.0.1" and app.server_address[0] == "127.0.0.1"
    port = app.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    others = non_loopback_addresses()
    if not others:
        pytest.skip("this machine has no network address besides loopback to try")
    for address in others:
        with pytest.raises(OSError):
            socket.create_connection((address, port), timeout=5).close()


@pytest.mark.slow
def test_make_predict_prints_what_the_app_answers(app, tagging_workspace, audio, tmp_path):
    files = [audio["tone"], audio["text"], audio["stereo"]]
    done = run_make("predict", f"RUN={tagging_workspace.runs / 'tiny-logmel'}", "FILES=" + " ".join(map(str, files)),
                    kit_home=tagging_workspace.root, python_path=REPO)
    assert done.returncode == 2, done.stderr
    printed = dict(line.split(": ", 1) for line in done.stdout.splitlines() if line.startswith("/"))
    for path in (audio["tone"], audio["stereo"]):
        _, answer = upload(app, path)
        assert printed[str(path)] == "  ".join(f"{t['label']} {t['probability']:.3f}" for t in answer["top"])
    assert f"error: {audio['text']}: not a readable audio file" in done.stderr


@pytest.mark.slow
def test_make_app_serves_until_stopped_and_removes_its_upload_folder(tagging_workspace, audio, tmp_path):
    """The real command: `make app RUN=... PORT=...` prints its address, answers, and cleans up on SIGTERM."""
    with socket.socket() as probe:  # a free port to ask for
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, KIT_HOME=str(tagging_workspace.root), TMPDIR=str(tmp_path))
    process = subprocess.Popen(["make", "--no-print-directory", "-o", ".venv/.installed", "app", "RUN=tiny-logmel",
                                f"PORT={port}"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "open http" in line:
                break
        assert lines and lines[-1].strip() == f"tiny-logmel: open http://127.0.0.1:{port}/ (Ctrl-C stops the app)", \
            "".join(lines)
        assert [p.name for p in tmp_path.glob("kit-app-*")] != []
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/tag?name=tone.wav", data=audio["tone"].read_bytes(),
                                    timeout=60) as response:
            assert json.loads(response.read())["ok"] is True
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    assert "stopped" in process.stdout.read()
    assert list(tmp_path.glob("kit-app-*")) == []


@pytest.mark.slow
def test_memory_stays_flat_over_hundreds_of_uploads(tagger, audio, tmp_path):
    """Resident memory after 300 more uploads stays within a bound of what it was after the first 50
    (the allocators' pools are warm by then). The 300 carry several times the bound in audio, so a
    server that kept its uploads in memory would not stay within it."""
    import psutil

    server, thread = start(tagger, 0, log=lambda line: None)
    long_tone = write_tone(tmp_path / "thirty-seconds.wav", 30.0)
    kinds = [long_tone, audio["tone"], audio["stereo"], audio["short"], audio["text"]]
    process = psutil.Process()
    bound = 16 * 2**20

    def uploads(n) -> int:
        sent = 0
        for i in range(n):
            sent += kinds[i % len(kinds)].stat().st_size
            upload(server, kinds[i % len(kinds)])
        return sent

    try:
        uploads(50)
        before = process.memory_info().rss
        sent = uploads(300)
        growth = process.memory_info().rss - before
        print(f"resident memory {before / 2**20:.0f} MiB after 50 uploads, {growth / 2**20:+.1f} MiB after "
              f"300 more ({sent / 2**20:.0f} MiB uploaded)")
        assert sent > 4 * bound
        assert growth < bound
        assert list(server.uploads.iterdir()) == []
    finally:
        stop(server, thread)
