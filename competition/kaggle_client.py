"""The kit's only door to Kaggle: the official `kaggle` client, imported lazily, errors made clear.

`import kaggle` authenticates as a side effect (printing a help block when it finds no
credentials) and creates a config folder in the home directory, so the client is imported here,
on first use, and nowhere else. Every call maps the client's failures onto `KaggleError`
subclasses whose messages say what to do, and none of them carries a credential.

The client reads credentials from, in order: `KAGGLE_API_TOKEN` (the token, or a path to a file
holding it), `~/.kaggle/access_token` or `~/.kaggle/access_token.txt`; `KAGGLE_USERNAME` +
`KAGGLE_KEY` or `kaggle.json` (in
`$KAGGLE_CONFIG_DIR`, `~/.kaggle` or `~/.config/kaggle`); OAuth credentials from `kaggle auth login`.
`KAGGLE_API_ENVIRONMENT=TEST` points it at http://localhost:7777 (the tests' stand-in server);
unset, it talks to kaggle.com.

Some failures pass: Kaggle's rate limit (HTTP 429), its server failing (5xx) and a connection
refused or dropped (`TRANSIENT_ERRORS`). Callers that wait on Kaggle for hours retry those
(`competition.kaggle.waiting`); this module never retries on its own.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import io
import json
import os
import re
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from competition.errors import KitError

HOW_TO_GET_CREDENTIALS = (
    "Create an API token: sign in at https://www.kaggle.com, open Settings > API and either "
    "'Create Legacy API Key' (downloads kaggle.json: move it to ~/.kaggle/kaggle.json and run "
    "`chmod 600 ~/.kaggle/kaggle.json`, or export KAGGLE_USERNAME and KAGGLE_KEY with its two "
    "values) or 'Generate New Token' (export KAGGLE_API_TOKEN=<token>, or save it to "
    "~/.kaggle/access_token)."
)
KERNEL_METADATA_FILE = "kernel-metadata.json"
# The files the client reads a token from, in its order (kagglesdk.kaggle_env.get_access_token_from_env).
TOKEN_FILES = ("access_token", "access_token.txt")
# What Kaggle says in a push's `error` when the account already runs as many GPU sessions as it may;
# the number has changed over the years, so it is read from the message.
OUTPUT_PAGE_SIZE = 20  # files per page of a kernel's output listing, the client's own default
DOWNLOAD_TIMEOUT_SECONDS = 300  # without any byte, a download is taken as dropped
SESSION_LIMIT_PATTERN = re.compile(r"Maximum batch GPU session count of (\d+) reached")


class KaggleError(KitError, RuntimeError):
    """Kaggle could not do what the kit asked; the message says why and what to do."""


class CredentialsMissing(KaggleError):
    """No credentials were found, or Kaggle rejected them (HTTP 401)."""


class Forbidden(KaggleError):
    """Kaggle refused access (HTTP 403)."""


class RulesNotAccepted(Forbidden):
    """HTTP 403 on a competition: its rules have not been accepted with this account."""


class NotFound(KaggleError):
    """HTTP 404: no such competition or kernel."""


class NetworkUnreachable(KaggleError):
    """The connection was refused, dropped, or the host name did not resolve."""


class ServerError(KaggleError):
    """HTTP 5xx: Kaggle failed, not the request."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.status = status


class RateLimited(KaggleError):
    """HTTP 429: too many requests in a short time; Kaggle answers again after a pause."""


class SessionLimitReached(KaggleError):
    """A push refused because the account already runs as many GPU sessions as Kaggle allows."""

    def __init__(self, message: str, limit: int):
        super().__init__(message)
        self.limit = limit


class LateSubmission(NotFound):
    """HTTP 404 on a submission: the competition may no longer accept submissions."""


# Failures that pass by themselves: worth retrying after a pause, unlike the others.
TRANSIENT_ERRORS = (RateLimited, ServerError, NetworkUnreachable)


def transient_reason(error: BaseException) -> str | None:
    """A few words for a failure that passes by itself ('HTTP 503', 'connection dropped'), else None."""
    if isinstance(error, NetworkUnreachable):
        return "connection refused or dropped"
    if isinstance(error, RateLimited):
        return "HTTP 429, too many requests"
    if isinstance(error, ServerError):
        return f"HTTP {error.status}"
    return None


def username() -> str:
    """The Kaggle username the credentials belong to (what a kernel's id starts with)."""
    with _translated_errors("account", "of these credentials", "checking your credentials"):
        api = _authenticated_api()
    return api.config_values[api.CONFIG_NAME_USER]


def download_competition(competition: str, dest_dir: Path) -> Path:
    """Download the competition's archive to `dest_dir/<competition>.zip` and return its path.

    The client downloads into a partial folder next to it (resuming there after an interruption)
    and the archive is renamed into place only once it opens as a zip, so an existing
    `<competition>.zip` is complete and a rerun returns it without touching the network.
    """
    dest_dir = Path(dest_dir)
    archive = dest_dir / f"{competition}.zip"
    if zipfile.is_zipfile(archive):
        return archive
    partial_dir = dest_dir / f".{competition}.zip.partial"
    action = f"downloading the files of competition '{competition}'"
    with _translated_errors("competition", competition, action):
        api = _authenticated_api()
        api.competition_download_files(competition, path=str(partial_dir), quiet=False)
    downloaded = partial_dir / archive.name
    if not zipfile.is_zipfile(downloaded):
        shutil.rmtree(partial_dir, ignore_errors=True)  # so that the next run starts over
        raise KaggleError(
            f"Kaggle's download of competition '{competition}' is not a readable zip archive; "
            "it was deleted, rerun to download it again."
        )
    os.replace(downloaded, archive)
    shutil.rmtree(partial_dir)
    return archive


def submit(competition: str, csv_path: Path, message: str) -> str:
    """Upload `csv_path` as a submission to `competition`, described by `message`; returns Kaggle's
    reply (which carries notes such as the daily limit)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise FileNotFoundError(f"submission file not found: {csv_path}")
    with _translated_errors("submission", competition, f"submitting to competition '{competition}'"):
        api = _authenticated_api()
        response = api.competition_submit(str(csv_path), message, competition, quiet=True)
    if response.message == api.COMPETITION_SUBMIT_UPLOAD_FAILED_MESSAGE:
        raise KaggleError(
            f"Uploading {csv_path.name} to Kaggle's storage failed (the client printed why above); "
            "nothing was submitted. Rerun to try again."
        )
    return _redacted(response.message or "")


def list_submissions(competition: str) -> list[dict]:
    """Your most recent submissions to `competition`, newest first (Kaggle's first page)."""
    with _translated_errors("competition", competition, f"listing submissions to '{competition}'"):
        api = _authenticated_api()
        submissions = api.competition_submissions(competition) or []
    return [
        {
            "date": submission.date.isoformat(sep=" ", timespec="seconds") if submission.date else "",
            "file_name": submission.file_name,
            "description": submission.description,
            "status": submission.status.name.lower(),
            "public_score": submission.public_score or None,
            "private_score": submission.private_score or None,
            "error": submission.error_description or None,
        }
        for submission in submissions
    ]


def push_kernel(folder: Path) -> dict:
    """Push the kernel in `folder` (kernel-metadata.json + its code file) as a new version.

    Returns `ref` (the metadata's `owner/slug` id, what `kernel_status` and `kernel_output`
    take), `url` and `version`. A refusal because of the GPU session limit is `SessionLimitReached`.
    """
    folder = Path(folder)
    kernel_id = _kernel_id(folder)
    with _translated_errors("kernel", kernel_id, f"pushing kernel '{kernel_id}'"):
        response = _authenticated_api().kernels_push(str(folder))
    if response.error:
        error = _redacted(response.error)
        limit = SESSION_LIMIT_PATTERN.search(error)
        if limit:
            raise SessionLimitReached(f"Kaggle did not start kernel '{kernel_id}': {error}", int(limit.group(1)))
        raise KaggleError(f"Kaggle refused kernel '{kernel_id}': {error}")
    unknown_sources = (
        response.invalid_dataset_sources
        + response.invalid_competition_sources
        + response.invalid_kernel_sources
        + response.invalid_model_sources
    )
    if unknown_sources:
        raise KaggleError(
            f"Kaggle saved kernel '{kernel_id}' (version {response.version_number}) but does not "
            f"know these sources, so it would run without them: {', '.join(unknown_sources)}. "
            f"Fix them in {folder / KERNEL_METADATA_FILE} (for a competition, accept its rules "
            "first) and push again."
        )
    return {"ref": kernel_id, "url": response.url, "version": response.version_number}


def kernel_status(kernel_ref: str) -> str:
    """State of the kernel's latest version: 'queued', 'running', 'complete', 'error', ..."""
    return kernel_session(kernel_ref)[0]


def kernel_session(kernel_ref: str) -> tuple[str, str]:
    """(state, Kaggle's failure message or '') of the kernel's latest version."""
    with _translated_errors("kernel", kernel_ref, f"asking for the status of kernel '{kernel_ref}'"):
        api = _authenticated_api()
        response = api.kernels_status(kernel_ref)
    return response.status.name.lower(), _redacted(response.failure_message or "")


def gpu_quota() -> dict | None:
    """This week's GPU quota: `total_hours`, `used_hours`, `remaining_hours`, `refresh` (when it
    renews, or ''); None when Kaggle gives none (the endpoint is new, and some accounts get no answer)."""
    import requests

    with _translated_errors("account", "of these credentials", "asking for the GPU quota"):
        api = _authenticated_api()
        try:
            response = api.quota_view()
        except requests.HTTPError as error:
            if _http_status(error) in (401, 403):
                raise
            return None
    quota = response.gpu_quota
    if quota is None or quota.total_time_allowed is None:
        return None
    total = quota.total_time_allowed.total_seconds() / 3600
    used = quota.time_used.total_seconds() / 3600 if quota.time_used else 0.0
    refresh = response.quota_refresh_time
    if refresh is not None and refresh.tzinfo is not None:
        refresh = refresh.astimezone(datetime.UTC)
    refresh = refresh.strftime("%Y-%m-%d %H:%M UTC") if refresh else ""  # Kaggle sends UTC
    return {"total_hours": total, "used_hours": used, "remaining_hours": max(0.0, total - used), "refresh": refresh}


def kernel_output(kernel_ref: str, dest_dir: Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """Download the output files (and log) of the kernel's latest version into `dest_dir` (only the
    files named `names`, when given).

    The listing is the client's own request; each file is then fetched from the address it gives,
    as the client's `kernels_output` does, but with its HTTP status checked: the client would
    write an error page into the file. Files land in a partial folder first and are moved into
    place once all have arrived.
    """
    import requests
    from kagglesdk.kernels.types.kernels_api_service import ApiListKernelSessionOutputRequest

    dest_dir = Path(dest_dir)
    owner, slug = kernel_ref.split("/", 1)
    partial_dir = dest_dir / ".kernel-output.partial"
    shutil.rmtree(partial_dir, ignore_errors=True)
    downloaded = []
    with _translated_errors("kernel", kernel_ref, f"downloading the output of kernel '{kernel_ref}'"):
        api = _authenticated_api()
        files, log, page_token = [], "", ""
        with api.build_kaggle_client() as kaggle:
            while True:
                request = ApiListKernelSessionOutputRequest()
                request.user_name, request.kernel_slug, request.page_size = owner, slug, OUTPUT_PAGE_SIZE
                if page_token:
                    request.page_token = page_token
                response = kaggle.kernels.kernels_api_client.list_kernel_session_output(request)
                files += response.files or []
                log = log or response.log or ""
                page_token = response.next_page_token
                if not page_token:
                    break
        for item in files:
            if names is not None and item.file_name not in names:
                continue
            target = _inside(partial_dir, item.file_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            with requests.get(item.url, stream=True, timeout=DOWNLOAD_TIMEOUT_SECONDS) as answer:
                answer.raise_for_status()
                with open(target, "wb") as handle:
                    for chunk in answer.iter_content(chunk_size=1 << 20):
                        handle.write(chunk)
            downloaded.append(target)
    if log:
        partial_dir.mkdir(parents=True, exist_ok=True)
        downloaded.append(partial_dir / f"{slug}.log")
        downloaded[-1].write_text(log)
    outputs = []
    for file in downloaded:
        target = dest_dir / file.relative_to(partial_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(file, target)
        outputs.append(target)
    shutil.rmtree(partial_dir, ignore_errors=True)
    return outputs


def _inside(folder: Path, name: str) -> Path:
    """`folder / name`, refused when the name Kaggle gives would land outside `folder`."""
    target = (folder / name).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise KaggleError(f"Kaggle listed an output file named {name!r}, which points outside {folder}")
    return folder / name


# ---------------------------------------------------------------------------------------------
# The client, imported once, and its errors


@functools.cache
def _client_class():
    """The official `KaggleApi`, imported quietly, talking to the endpoint the environment names."""
    with _config_dir_outside_home(), contextlib.redirect_stdout(io.StringIO()):
        # The import authenticates and, without credentials, prints a help block; the kit
        # authenticates explicitly later and words its own message.
        from kaggle.api.kaggle_api_extended import KaggleApi
    from kagglesdk.kaggle_client import KaggleClient
    from kagglesdk.kaggle_env import get_env

    class KitKaggleApi(KaggleApi):
        def build_kaggle_client(self):
            # KaggleApi's own version picks kaggle.com unless given CLI flags, ignoring
            # KAGGLE_API_ENVIRONMENT; get_env() honours it and is kaggle.com when it is unset.
            # verbose stays off: the client's verbose mode prints request headers, credentials
            # included.
            return KaggleClient(
                env=get_env(),
                verbose=False,
                username=self.config_values.get(self.CONFIG_NAME_USER),
                password=self.config_values.get(self.CONFIG_NAME_KEY),
                api_token=self.config_values.get(self.CONFIG_NAME_TOKEN),
                response_processor=self.get_response_processor(),
            )

    return KitKaggleApi


@contextlib.contextmanager
def _config_dir_outside_home():
    """While the client is imported, point it at a throwaway config folder if it has none.

    The client creates its config folder (~/.kaggle, else ~/.config/kaggle) at import time. When
    none exists there is no kaggle.json to read, so an empty temporary folder serves as well and
    the user's home stays untouched.
    """
    if os.environ.get("KAGGLE_CONFIG_DIR") or _client_config_dir().exists():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="kaggle-config-") as empty_dir:
        os.environ["KAGGLE_CONFIG_DIR"] = empty_dir
        try:
            yield
        finally:
            del os.environ["KAGGLE_CONFIG_DIR"]


def _client_config_dir() -> Path:
    """The config folder the client would use, as it decides it when imported."""
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return Path(os.environ["KAGGLE_CONFIG_DIR"])
    legacy_dir = Path.home() / ".kaggle"
    if legacy_dir.exists() or not sys.platform.startswith("linux"):
        return legacy_dir
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"


def _authenticated_api():
    api = _client_class()()
    client_output = io.StringIO()
    try:
        with contextlib.redirect_stdout(client_output):
            api.authenticate()
    except SystemExit:  # the client's way of saying it found no usable credentials
        raise CredentialsMissing(_no_credentials_message()) from None
    # What remains is a warning worth seeing, e.g. that kaggle.json is readable by other users.
    sys.stderr.write(client_output.getvalue())
    return api


def _no_credentials_message() -> str:
    sources = _credential_sources()
    if sources:
        return (
            f"No usable Kaggle credentials: the client could not use what it found in "
            f"{', '.join(sources)} (a username without its key, or a token Kaggle says is invalid "
            f"or expired). {HOW_TO_GET_CREDENTIALS}"
        )
    return f"No Kaggle credentials found. {HOW_TO_GET_CREDENTIALS}"


def _credential_sources() -> list[str]:
    """Where credentials were found, by name only."""
    sources = [name for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY") if os.environ.get(name)]
    kaggle_dir = Path.home() / ".kaggle"
    files = [
        *(kaggle_dir / name for name in TOKEN_FILES),
        _client_config_dir() / "kaggle.json",
        kaggle_dir / "kaggle.json",
        kaggle_dir / "credentials.json",
    ]
    return sources + [str(path) for path in dict.fromkeys(files) if path.is_file()]


@contextlib.contextmanager
def _translated_errors(kind: str, name: str, action: str):
    """Turn the client's failures while doing `action` on the `kind` called `name` into KaggleErrors."""
    import requests
    import urllib3

    try:
        yield
    except (requests.HTTPError, ValueError) as err:
        status = _http_status(err)
        if status is None:
            raise KaggleError(f"Failed {action}: {_redacted(str(err))}") from None
        raise _error_for_status(status, kind, name, action, str(err)) from None
    except (
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        urllib3.exceptions.HTTPError,  # what the download's retry loop re-raises unwrapped
    ) as err:
        from kagglesdk.kaggle_env import get_endpoint, get_env

        offline_copy = (
            "; to set up the competition data without the network, pass a copy you already have: "
            "make data FROM=DIR" if kind == "competition" else ""
        )
        raise NetworkUnreachable(
            f"Cannot reach Kaggle ({get_endpoint(get_env())}) while {action}: the connection was "
            f"refused, dropped or the host name did not resolve ({type(err).__name__}), so this "
            f"machine looks offline. Retry once it is online{offline_copy}"
        ) from None


def _http_status(err: BaseException) -> int | None:
    """The HTTP status behind `err`; the client turns some 401/403s into a ValueError raised
    while handling the HTTPError, which then is its context."""
    import requests

    for candidate in (err, err.__context__):
        if isinstance(candidate, requests.HTTPError) and candidate.response is not None:
            return candidate.response.status_code
    return None


def _error_for_status(status: int, kind: str, name: str, action: str, server_message: str) -> KaggleError:
    if status == 401:
        sources = _credential_sources()
        where = f" (found in {', '.join(sources)})" if sources else ""
        return CredentialsMissing(
            f"Kaggle rejected your credentials{where} with HTTP 401 while {action}: the key or "
            f"token is wrong, expired or revoked. {HOW_TO_GET_CREDENTIALS}"
        )
    if status == 403 and kind in ("competition", "submission"):
        return RulesNotAccepted(
            f"Kaggle refused access to competition '{name}' (HTTP 403) while {action}: accept the "
            f"rules at https://www.kaggle.com/competitions/{name}/rules, signed in as the account "
            "whose credentials the kit uses, then rerun."
        )
    if status == 403:
        return Forbidden(
            f"Kaggle refused access to {kind} '{name}' (HTTP 403) while {action}: it belongs to "
            "another account or is private to it. A kernel's id must start with your own Kaggle "
            f"username (the `id` in {KERNEL_METADATA_FILE})."
        )
    if status == 404 and kind == "submission":
        return LateSubmission(
            f"Kaggle answered HTTP 404 while {action}: the competition may no longer accept submissions "
            f"(late submissions closed), or its name is wrong; see https://www.kaggle.com/competitions/{name}"
        )
    if status == 404 and kind == "competition":
        return NotFound(
            f"Competition '{name}' was not found on Kaggle (HTTP 404) while {action}: check the "
            "name, the last part of its address https://www.kaggle.com/competitions/<name>."
        )
    if status == 404:
        return NotFound(
            f"{kind.capitalize()} '{name}' was not found on Kaggle (HTTP 404) while {action}: "
            "check the owner/slug; a kernel exists only once it has been pushed (make kernel)."
        )
    if status >= 500:
        return ServerError(
            f"Kaggle's server failed (HTTP {status}) while {action}; the request itself was "
            "fine. Retry in a few minutes.",
            status,
        )
    if status == 429:
        return RateLimited(f"Kaggle answered HTTP 429 (too many requests) while {action}; retry after a pause.")
    return KaggleError(f"Kaggle answered HTTP {status} while {action}: {_redacted(server_message)}")


def _redacted(text: str) -> str:
    """`text` with any credential value the client could have sent masked."""
    for secret in _secret_values():
        text = text.replace(secret, "***")
    return text


def _secret_values() -> list[str]:
    secrets = [os.environ.get(name, "") for name in ("KAGGLE_KEY", "KAGGLE_API_TOKEN")]
    token_files = [Path.home() / ".kaggle" / name for name in TOKEN_FILES]
    if os.environ.get("KAGGLE_API_TOKEN"):  # which may name a file holding the token
        token_files.append(Path(os.environ["KAGGLE_API_TOKEN"]))
    for token_file in token_files:
        with contextlib.suppress(OSError):
            secrets.append(token_file.read_text().strip())
    for config_file in (_client_config_dir() / "kaggle.json", Path.home() / ".kaggle" / "kaggle.json"):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            secrets.append(str(json.loads(config_file.read_text()).get("key", "")))
    return [secret for secret in secrets if len(secret) >= 8]  # too short to be a key: not masked


def _kernel_id(folder: Path) -> str:
    """The `id` in the folder's metadata, or the folder's name when it cannot be read."""
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):
        return str(json.loads((folder / KERNEL_METADATA_FILE).read_text())["id"])
    return folder.name
