"""`python -m competition.app --run RUN [--port PORT]` (`make app`): load the run or blend once,
print the page's address, serve until Ctrl-C (or SIGTERM), then remove the upload folder."""

from __future__ import annotations

import argparse
import signal
import sys

from competition import quiet_start
from competition.errors import KitError
from competition.workspace import Workspace


class AppStartError(KitError, RuntimeError):
    """The app cannot listen where it was asked to."""


def build_parser() -> argparse.ArgumentParser:
    from competition.app.server import DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="python -m competition.app", description=__doc__)
    parser.add_argument("--run", required=True, help="run folder or name under runs/, or a submission blend "
                        "(CSV with its .json record, or its name under submissions/)")
    parser.add_argument("--port", type=int, help=f"port on 127.0.0.1 (default: {DEFAULT_PORT}, or a free one "
                        "if that is busy)")
    return parser


def open_server(tagger, port: int | None):
    from competition.app.server import DEFAULT_PORT, AppServer

    try:
        return AppServer(tagger, DEFAULT_PORT if port is None else port)
    except OSError as error:
        if port is not None:
            raise AppStartError(f"port {port}: cannot listen on it ({error.strerror}); choose another PORT") from None
        return AppServer(tagger, 0)


def _interrupt(signum, frame):
    # SIGTERM ends the app as Ctrl-C does, so the upload folder is removed either way.
    raise KeyboardInterrupt


def serve(model: str, port: int | None, workspace: Workspace) -> None:
    from competition.submit.predict import Tagger, resolve_model

    path = resolve_model(workspace, model)
    print(f"loading {path} ...", flush=True)
    tagger = Tagger.load(path, workspace.runs)
    server = open_server(tagger, port)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"{tagger.name}: open {server.url} (Ctrl-C stops the app)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    quiet_start.install()  # as the command line does: only the kit's own lines on the terminal
    args = build_parser().parse_args(argv)
    try:
        serve(args.run, args.port, Workspace.from_env())
    except KitError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
