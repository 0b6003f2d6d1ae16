"""Serving the page (`make app`, `python -m competition app`): load the run or blend once, print the
page's address, serve until Ctrl-C (or SIGTERM), then remove the upload folder."""

from __future__ import annotations

import signal

from competition.errors import KitError
from competition.workspace import Workspace


class AppStartError(KitError, RuntimeError):
    """The app cannot listen where it was asked to."""


def open_server(tagger, port: int | None):
    from competition.app.server import DEFAULT_PORT, AppServer

    try:
        return AppServer(tagger, DEFAULT_PORT if port is None else port)
    except OSError as error:
        if port is not None:
            raise AppStartError(f"port {port}: cannot listen on it ({error.strerror}); choose another PORT") from None
        return AppServer(tagger, 0)


def _interrupt(signum, frame):
    # SIGTERM ends the app as Ctrl-C does, so the upload folder is removed either way. Later signals
    # are ignored from here on, so none cuts the clean-up short: `make` passes its own SIGTERM on to
    # the app, which the process group has already delivered once.
    for other in (signal.SIGTERM, signal.SIGINT):
        signal.signal(other, signal.SIG_IGN)
    raise KeyboardInterrupt


def serve(model: str, port: int | None, workspace: Workspace) -> None:
    from competition.submit.predict import Tagger, resolve_model

    path = resolve_model(workspace, model)
    print(f"loading {path} ...", flush=True)
    tagger = Tagger.load(path, workspace.runs)
    server = open_server(tagger, port)
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print(f"{tagger.name}: open {server.url} (Ctrl-C stops the app)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
