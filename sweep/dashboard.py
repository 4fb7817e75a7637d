"""What optuna-dashboard shows beyond Optuna's own pages: PNG figures of each new best trial (precision-recall
curve with the chosen threshold, confusion matrix) in Optuna's artifact store, drawn off the training path,
and a markdown study note; and how it is served: loopback only unless --allow-remote, then behind HTTP basic
auth and/or read-only (optuna-dashboard has no login of its own)."""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import optuna

from sweep.errors import ConfigError, StorageUnreachable
from sweep.optuna_private import attach_artifact, storage_of, trial_id
from sweep.plots import trial_figures
from sweep.results import NewBests, describe_params, tally


def artifact_dir(storage_url: str) -> Path:
    """Where a study's artifacts live: beside a SQLite file (studies/artifacts), else ./studies/artifacts."""
    from sqlalchemy.engine import make_url

    parsed = make_url(storage_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).parent / "artifacts"
    return Path("studies") / "artifacts"


def artifact_store(storage_url: str) -> optuna.artifacts.FileSystemArtifactStore:
    folder = artifact_dir(storage_url)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


class FigureWorker:
    """Draws new best trials' figures (sweep.plots.trial_figures) and lists them on the trial in the artifact
    store, on one background thread: drawing takes about 0.2 s a trial, which the next trial does not wait
    for. A trial that has finished by then still gets them (optuna_private.attach_artifact).

    A best that a newer best superseded before its turn is skipped: drawing it would show a trial that is no
    longer the best, and on this thread it slows training (matplotlib holds the GIL the training loop needs
    between epochs; drawing every best cost a fresh sweep's single trials about 15%). The last best always
    gets its figures: `close()` waits for them. A figure that fails is logged and never fails the sweep."""

    def __init__(self, store) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trial-figures")
        self._jobs: list = []
        self._latest = 0  # the newest submission: an older one still queued is skipped
        self.is_new_best = NewBests()

    def submit_if_best(
        self, trial: optuna.Trial, value: float, y_true: np.ndarray, scores: np.ndarray, threshold: float
    ) -> None:
        """Queue the trial's figures when `value` is a new best of the study (the trial is still running)."""
        if self.is_new_best(trial, value):
            self.submit(trial, y_true, scores, threshold)

    def submit(self, trial: optuna.Trial, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> None:
        self._latest += 1
        storage, number = storage_of(trial.study), trial.number
        arguments = (self._latest, storage, trial_id(trial), number, np.array(y_true), np.array(scores), threshold)
        self._jobs.append(self._pool.submit(self._attach, *arguments))

    def _attach(self, submission: int, storage, trial_key: int, number: int, y_true, scores, threshold: float) -> None:
        if submission != self._latest:
            return
        with tempfile.TemporaryDirectory() as folder:
            for path in trial_figures(y_true, scores, threshold, Path(folder), f"trial #{number}"):
                attach_artifact(storage, trial_key, self.store, str(path), "image/png")

    def close(self) -> None:
        """Wait for every queued figure (log the ones that failed); the worker takes no more."""
        self._pool.shutdown(wait=True)
        for job in self._jobs:  # a storage that stayed away is said once, by the run
            if job.exception() is not None and not isinstance(job.exception(), StorageUnreachable):
                logging.getLogger("sweep").warning("could not attach a trial's figures: %s", job.exception())
        self._jobs = []


def study_note(study: optuna.Study) -> str:
    """Markdown for the dashboard's study note: data, protocol, objective and the current best."""
    attrs = study.user_attrs
    data, objective, config = attrs.get("data", {}), attrs.get("objective", {}), attrs.get("config", {})
    counted = tally(study)
    splits = data.get("splits", {})
    rows = "\n".join(
        f"| {name} | {part['rows']} | {part['positives']} | {part['positives'] / max(part['rows'], 1):.2%} |"
        for name, part in splits.items()
    )
    lines = [
        f"# {study.study_name}",
        f"**Data**: `{data.get('source', '?')}` (fingerprint `{data.get('fingerprint', '?')}`), features "
        f"{', '.join(data.get('features', [])) or 'arrays of rows ' + 'x'.join(map(str, data.get('input_shape', [])))}"
        f", positive label `{data.get('positive_label', '?')}`.",
        "",
        "| part | rows | positives | share |",
        "|---|---|---|---|",
        rows,
        "",
        f"**Protocol**: {_judged(data.get('validation', {}))} *test* is used only by `sweep export` and "
        f"`sweep report`, whose model learns from all non-test rows. {config.get('epochs', '?')} epochs, batch "
        f"{config.get('batch_size', '?')}, pruner `{config.get('pruner', '?')}`, seed {config.get('seed', '?')}.",
        "",
        f"**Objective**: `{objective.get('spec', '?')}` ({objective.get('name', '?')}, "
        f"{objective.get('direction', '?')}).",
        f"**Trials**: {counted.finished} finished, {counted.failed} failed.",
    ]
    best = counted.best
    if best is not None:
        a = best.user_attrs
        values = ", ".join(f"{v:.4g}" for v in best.values)
        how = (
            f" (Pareto front of {len(study.best_trials)} trials; picked by best F1)"
            if len(study.directions) > 1
            else ""
        )
        lines += [
            "",
            f"**Best so far**{how}: trial #{best.number}, {objective.get('name', 'value')} = {values}: "
            f"{describe_params(best.params)}; validation precision {a.get('val_precision', float('nan')):.3f}, "
            f"recall {a.get('val_recall', float('nan')):.3f}, **flag rate {a.get('val_flag_rate', float('nan')):.2%}**"
            + (f"; F1 across folds {a['cv_folds']['f1']} (sd {a['cv_f1_sd']:.3f})." if "cv_folds" in a else "."),
            "",
            f"Export it with `sweep export {study.study_name} --out exports/{study.study_name}`.",
        ]
    return "\n".join(lines)


def _judged(validation: dict) -> str:
    """How trials are judged, in a sentence for the study note."""
    if validation.get("kind") == "cv":
        repeats = validation.get("repeats", 1)
        again = f", {repeats} times over" if repeats > 1 else ""
        return (
            f"each trial trains {validation.get('folds')} fold models on the *development* rows (all non-test rows), "
            f"each holding out its fold{again}, and is scored on their pooled out-of-fold predictions (objective and "
            "pruning; per-fold values in `cv_folds`);"
        )
    return "each trial trains on *train* and is scored on *validation* (objective and pruning);"


def save_study_note(study: optuna.Study) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(study, study_note(study))


# Serving the dashboard. optuna-dashboard has no login: whoever reaches its port can delete a study, rewrite
# notes and tell trials. So it binds loopback only unless told --allow-remote, and then it asks for HTTP basic
# auth (a WSGI middleware around optuna_dashboard.wsgi) or serves read-only (a middleware refusing writes).

CREDENTIALS_ENV = "SWEEP_DASHBOARD_CREDENTIALS"
AUTH_REALM = "sweep"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_CREDENTIALS_HINT = (
    f"set {CREDENTIALS_ENV}=user:password or pass --credentials-file PATH of a file holding user:password"
)


@dataclass(frozen=True)
class Credentials:
    """The one user and password the dashboard admits, and where they came from (for messages, never the values)."""

    user: str
    password: str
    source: str = CREDENTIALS_ENV

    def __repr__(self) -> str:  # a stray print or log of it shows no secret
        return f"Credentials(user=***, password=***, source={self.source!r})"


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the dashboard on this machine: 127.0.0.0/8, ::1 (bracketed or not) or localhost."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:  # a host name other than localhost, or "" (every interface)
        return False


def check_host(host: str, allow_remote: bool) -> None:
    """Refuse a --host beyond loopback unless --allow-remote says the user means it (and then protects it)."""
    if is_loopback(host) or allow_remote:
        return
    raise ConfigError(
        f"--host {host!r} would serve the dashboard beyond this machine, and optuna-dashboard has no login of its own "
        "(anyone reaching the port can delete studies); expected 127.0.0.1, ::1 or localhost; to serve others add "
        f"--allow-remote and {_CREDENTIALS_HINT} (or --read-only), best behind a TLS reverse proxy"
    )


def read_credentials(env: Mapping[str, str], file: Path | None = None) -> Credentials | None:
    """The user:password from --credentials-file, else from $SWEEP_DASHBOARD_CREDENTIALS; None when neither is given.

    Never from a command-line value (it would show in `ps` and shell history); messages never show the value."""
    if file is not None:
        source = f"--credentials-file {file}"
        try:
            text = Path(file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"{source} cannot be read ({type(exc).__name__}); expected a readable UTF-8 file holding "
                "user:password; fix the path or the file's permissions"
            ) from None
    else:
        source = CREDENTIALS_ENV
        text = env.get(CREDENTIALS_ENV, "")
        if not text:
            return None
    user, colon, password = text.partition(":")
    if not colon or not user or not password or "\n" in text:
        raise ConfigError(
            f"{source} holds no user:password (value hidden); expected one line user:password with a user and a "
            f"password, such as alice:a-long-passphrase; {_CREDENTIALS_HINT}"
        )
    return Credentials(user=user, password=password, source=source)


def check_protected(allow_remote: bool, credentials: Credentials | None, read_only: bool) -> None:
    """Refuse --allow-remote with neither credentials nor --read-only: others could then change every study."""
    if allow_remote and credentials is None and not read_only:
        raise ConfigError(
            f"--allow-remote was given without credentials: {CREDENTIALS_ENV} is unset and no --credentials-file was "
            f"passed; expected basic-auth credentials or --read-only; {_CREDENTIALS_HINT}, or add --read-only"
        )


def access_summary(credentials: Credentials | None, read_only: bool) -> str:
    """How the dashboard admits requests, for the startup line ("" for plain loopback use); names where the
    credentials came from, never them."""
    if credentials is not None:
        return f"basic auth required (credentials from {credentials.source})" + (", read-only" if read_only else "")
    if read_only:
        return "read-only WITHOUT authentication: anyone who reaches the port can read every study"
    return ""


def _plain_response(start_response, status: str, text: str, headers: Sequence[tuple[str, str]] = ()) -> list[bytes]:
    body = text.encode("utf-8")
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *headers,
        ],
    )
    return [body]


class BasicAuth:
    """WSGI middleware: a request passes only with the right HTTP basic-auth user and password, else 401.

    Compared with hmac.compare_digest (no timing leak); the Authorization header is dropped before the app sees it."""

    def __init__(self, app, credentials: Credentials, realm: str = AUTH_REALM) -> None:
        self.app = app
        self._user = credentials.user.encode("utf-8")
        self._password = credentials.password.encode("utf-8")
        self._challenge = ("WWW-Authenticate", f'Basic realm="{realm}"')

    def _admits(self, header: str) -> bool:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, colon, password = base64.b64decode(token.strip(), validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return False
        user_matches = hmac.compare_digest(user, self._user)
        password_matches = hmac.compare_digest(password, self._password)
        return bool(colon) and user_matches and password_matches

    def __call__(self, environ, start_response):
        header = environ.pop("HTTP_AUTHORIZATION", "")
        if self._admits(header):
            return self.app(environ, start_response)
        return _plain_response(
            start_response,
            "401 Unauthorized",
            "401: this dashboard needs a user and password (HTTP basic auth)\n",
            [self._challenge],
        )


class ReadOnly:
    """WSGI middleware: refuses with 403 every request whose method may change something (all but GET, HEAD,
    OPTIONS)."""

    def __init__(self, app) -> None:
        self.app = app

    def __call__(self, environ, start_response):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        if method in SAFE_METHODS:
            return self.app(environ, start_response)
        return _plain_response(
            start_response,
            "403 Forbidden",
            f"403: this dashboard is read-only (sweep dashboard --read-only); {method} refused\n",
        )


def dashboard_app(storage_url: str, credentials: Credentials | None = None, read_only: bool = False):
    """optuna-dashboard's WSGI app on the study storage and its artifacts, behind basic auth and/or read-only when
    asked."""
    import optuna_dashboard

    from sweep.storage import open_storage

    app = optuna_dashboard.wsgi(open_storage(storage_url), artifact_store=artifact_store(storage_url))
    if read_only:
        app = ReadOnly(app)
    if credentials is not None:  # outermost: without credentials nothing, not even a 403, is told
        app = BasicAuth(app, credentials)
    return app


def make_server(app, host: str, port: int):
    """A threaded wsgiref server bound to host:port (port 0: any free one), as the `optuna-dashboard` command runs
    its app; a port already taken is a one-line ConfigError."""
    import socket
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer
    from wsgiref.simple_server import make_server as make_wsgiref_server

    class ThreadedServer(socketserver.ThreadingMixIn, WSGIServer):
        daemon_threads = True  # a browser's open keep-alive request does not hold up Ctrl-C
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class AccessLog(WSGIRequestHandler):
        """The access log is the request line, status and size only: never a header (Authorization)."""

        def address_string(self) -> str:
            return self.client_address[0]

    try:
        return make_wsgiref_server(host.strip("[]"), port, app, ThreadedServer, AccessLog)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or type(exc).__name__}); expected a free port on an "
            "address of this machine; pass another --port or stop what listens there"
        ) from None


def serve(server) -> None:
    """Serve requests until Ctrl-C (a quiet exit, as optuna-dashboard's run_server), then close the socket."""
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
