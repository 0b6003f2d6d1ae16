"""`make app` in a real browser: headless Chromium loads the page, a clip is chosen in its file input,
and the tags the page draws are read back; a screenshot goes into the run folder. Chromium is driven
through chromedriver's W3C WebDriver HTTP API with urllib, so no Python package is needed; without
Chromium and chromedriver (Debian: `apt-get install chromium chromium-driver`) the test is skipped."""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from tiny_run import tiny_workspace, trained_run, write_tone

from competition.app.server import start, stop
from competition.submit.predict import Tagger

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # the W3C key of an element reference
WAIT_SECONDS = 60

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER),
                                 reason="needs headless Chromium and chromedriver, which are not installed "
                                        "(Debian: apt-get install chromium chromium-driver)")]


class Browser:
    """One WebDriver session: each method is one W3C endpoint."""

    def __init__(self, driver_url: str):
        self.driver_url = driver_url
        options = {"binary": CHROMIUM, "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                                                "--disable-dev-shm-usage", "--window-size=1100,1400"]}
        self.session = self.call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "browserName": "chrome", "goog:chromeOptions": options}}})["sessionId"]

    def call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.driver_url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            raise AssertionError(f"WebDriver {method} {path}: {error.read().decode()}") from None

    def in_session(self, method: str, path: str, body: dict | None = None):
        return self.call(method, f"/session/{self.session}{path}", body)

    def open(self, url: str) -> None:
        self.in_session("POST", "/url", {"url": url})

    def element(self, css: str) -> str:
        found = self.in_session("POST", "/element", {"using": "css selector", "value": css})
        assert ELEMENT in found, found
        return found[ELEMENT]

    def choose_file(self, css: str, path) -> None:
        self.in_session("POST", f"/element/{self.element(css)}/value", {"text": str(path)})

    def script(self, source: str):
        return self.in_session("POST", "/execute/sync", {"script": source, "args": []})

    def wait_for(self, source: str):
        """The script's value once it is truthy."""
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            value = self.script(source)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"the page never got there: {source}")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.in_session("GET", "/screenshot"))

    def close(self) -> None:
        self.in_session("DELETE", "")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def browser():
    port = free_port()
    driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(url + "/status", timeout=5) as response:
                    if json.loads(response.read())["value"]["ready"]:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "chromedriver did not start"
            time.sleep(0.1)
        session = Browser(url)
        try:
            yield session
        finally:
            session.close()
    finally:
        driver.terminate()
        driver.wait(timeout=30)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_competition):
    workspace = tiny_workspace(tmp_path_factory.getbasetemp() / "tagging-workspace", tiny_competition)
    return trained_run(workspace, "tiny-logmel")


TAGS_SHOWN = """const rows = [...document.querySelectorAll('#tags li')];
return document.getElementById('result').hidden ? null :
    rows.map(li => [li.querySelector('.label').textContent, li.querySelector('.prob').textContent]);"""


def test_the_page_tags_a_chosen_clip_in_chromium(browser, run_dir, tmp_path):
    tagger = Tagger.load(run_dir)
    server, thread = start(tagger, 0, log=lambda line: None)
    clip = write_tone(tmp_path / "tone.wav", 4.0)
    (tmp_path / "notes.txt").write_text("not audio\n")
    try:
        browser.open(server.url)
        assert "tiny-logmel" in browser.script("return document.querySelector('.model').textContent")

        browser.choose_file("#file", tmp_path / "notes.txt")
        error = browser.wait_for("const s = document.getElementById('status');"
                                 "return s.className === 'error' ? s.textContent : null;")
        assert error.startswith("notes.txt: not a readable audio file")

        browser.choose_file("#file", clip)
        shown = browser.wait_for(TAGS_SHOWN)
        assert shown == [[label, f"{p:.3f}"] for label, p in tagger.tag(clip).top]
        assert browser.wait_for("return document.getElementById('spectrogram').naturalWidth") > 0
        assert browser.script("return document.querySelectorAll('#timeline polyline').length") == 3
        shot = run_dir / "app-screenshot.png"
        shot.write_bytes(browser.screenshot())
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        print(f"screenshot: {shot}")
    finally:
        stop(server, thread)
