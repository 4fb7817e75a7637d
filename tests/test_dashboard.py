"""Tests for sweep.reading.dashboard: the figures attached to best trials, the study note, where artifacts live, and
serving the dashboard (loopback only unless --allow-remote, basic auth, read-only) with real servers on 127.0.0.1."""

import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest

from sweep.errors import ConfigError
from sweep.reading.guard import (
    CREDENTIALS_ENV,
    BasicAuth,
    Credentials,
    ReadOnly,
    check_host,
    is_loopback,
    read_credentials,
)
from sweep.study.figures import FigureWorker, artifact_dir, study_note
from sweep.study.runner import run_sweep


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:///studies/sweeps.db", Path("studies/artifacts")),
        ("sqlite:////data/x/s.db", Path("/data/x/artifacts")),
        ("postgresql+psycopg://u:p@h/db", Path("studies/artifacts")),
    ],
)
def test_artifacts_live_beside_the_study(url, expected):
    """Check that artifacts go beside a SQLite file, and under ./studies/artifacts for a server database."""
    assert artifact_dir(url) == expected


def test_sweep_attaches_figures_to_best_trials_and_writes_a_note(tiny_config):
    """Check that the best trial carries its two figures and the study note names the best and its flag rate."""
    config = tiny_config(trials=4)
    run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    artifacts = optuna.artifacts.get_all_artifact_meta(study.best_trial, storage=study._storage)
    assert sorted(a.filename for a in artifacts) == ["confusion_matrix.png", "pr_curve.png"]
    note = study_note(study)
    assert f"trial #{study.best_trial.number}" in note and "flag rate" in note and "test" in note


def test_figures_wait_until_a_best_has_settled_and_the_last_is_drawn_at_close(tmp_path):
    """Check that a best superseded within the settle time gets no figures, one that stayed the best gets them while
    the run goes on, and close() draws the newest best at once instead of waiting out its settle time."""
    import numpy as np

    study = optuna.create_study(storage=f"sqlite:///{tmp_path}/f.db", direction="maximize")
    trials = [study.ask() for _ in range(3)]
    y, scores = np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9])
    worker = FigureWorker(optuna.artifacts.FileSystemArtifactStore(str(tmp_path)), settle=0.5)

    def drawn(trial) -> list[str]:
        return sorted(m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage))

    worker.submit(trials[0], y, scores, 0.5)
    time.sleep(0.2)  # within the settle time: trial 0 is superseded before it is drawn
    worker.submit(trials[1], y, scores, 0.5)
    deadline = time.monotonic() + 30
    while not drawn(trials[1]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert drawn(trials[1]) == ["confusion_matrix.png", "pr_curve.png"] and drawn(trials[0]) == []
    worker.settle = 60.0
    worker.submit(trials[2], y, scores, 0.5)
    started = time.monotonic()
    worker.close()
    assert time.monotonic() - started < 30 and drawn(trials[2]) == ["confusion_matrix.png", "pr_curve.png"]


def test_note_and_show_describe_cross_validated_trials(cross_validated):
    """Check that a cross-validated study's note says how trials are judged and shows the best trial's per-fold F1,
    and `sweep show` adds the F1 spread over folds."""
    from typer.testing import CliRunner

    from sweep.cli import app

    config, _ = cross_validated
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    note = study_note(study)
    assert "5 fold models" in note and "pooled out-of-fold" in note and "F1 across folds [" in note
    shown = CliRunner().invoke(app, ["show", config.study, "--storage", config.storage])
    assert shown.exit_code == 0 and "F1 sd over folds" in shown.stdout


# Serving: loopback only unless --allow-remote, then basic auth and/or read-only. Every server here binds
# 127.0.0.1 (with --allow-remote, so the remote-access rules are what is tested) and is killed at the end.

SWEEP = str(Path(sys.executable).with_name("sweep"))
USER, PASSWORD = "alice", "pw-Dashb0ard-4471"


@pytest.fixture
def small_study_url(tmp_path) -> str:
    """A SQLite storage with one 4-trial study 'demo', made with Optuna alone (no TensorFlow)."""
    url = f"sqlite:///{tmp_path / 'studies' / 'dash.db'}"
    (tmp_path / "studies").mkdir()
    study = optuna.create_study(study_name="demo", storage=url)
    for _ in range(2):
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    return url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _is_listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _request(url: str, method: str = "GET", auth: tuple[str, str] | None = None, header: str | None = None):
    """(status, headers, body) of one request; an HTTP error status is returned, not raised."""
    request = urllib.request.Request(url, method=method)
    if auth is not None:
        header = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    if header is not None:
        request.add_header("Authorization", header)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


@contextlib.contextmanager
def dashboard_server(storage_url: str, *flags: str, env: dict | None = None):
    """Run `sweep dashboard` on 127.0.0.1 and a free port; yields (base URL, the process); its output is read
    into process.output once it is stopped (killed at the end, whatever happens)."""
    port = _free_port()
    server = subprocess.Popen(
        [SWEEP, "dashboard", "--storage", storage_url, "--host", "127.0.0.1", "--port", str(port), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k != CREDENTIALS_ENV} | (env or {}),
    )
    try:
        deadline = time.monotonic() + 60
        while not _is_listening(port):
            assert server.poll() is None, f"sweep dashboard exited {server.returncode}: {server.stderr.read()}"
            assert time.monotonic() < deadline, "sweep dashboard did not listen within 60 s"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.kill()
        stdout, stderr = server.communicate(timeout=30)
        server.output = stdout + stderr


def _files_under(folder: Path, skip: set[Path] = frozenset()) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file() and path not in skip]


@pytest.mark.parametrize(
    "host, loopback",
    [
        ("127.0.0.1", True),
        ("127.3.4.5", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("", False),
        ("::", False),
        ("192.168.1.10", False),
        ("10.0.0.1", False),
        ("example.org", False),
        ("localhost.example.org", False),
        ("128.0.0.1", False),
    ],
)
def test_only_loopback_hosts_pass_without_allow_remote(host, loopback):
    """Check that 127.0.0.0/8, ::1 and localhost pass check_host, any other host (even "" or 0.0.0.0) needs
    --allow-remote."""
    assert is_loopback(host) == loopback
    check_host(host, allow_remote=True)
    if loopback:
        check_host(host, allow_remote=False)
    else:
        with pytest.raises(ConfigError, match="--allow-remote"):
            check_host(host, allow_remote=False)


@pytest.mark.parametrize(
    "flags, env, message",
    [
        (["--host", "0.0.0.0"], {}, "--host '0.0.0.0' would serve the dashboard beyond this machine"),
        (["--allow-remote"], {}, "--allow-remote was given without credentials"),
        (["--allow-remote"], {CREDENTIALS_ENV: "no-colon-" + PASSWORD}, f"{CREDENTIALS_ENV} holds no user:password"),
        (["--credentials-file", "no-such-file"], {}, "--credentials-file no-such-file cannot be read"),
    ],
)
def test_unsafe_or_broken_dashboard_setups_are_refused(tmp_path, flags, env, message):
    """Check that a remote host without --allow-remote, --allow-remote without credentials, and bad credentials
    exit 2 with one line that never shows the secret, before any storage is opened or port bound."""
    port = _free_port()
    storage = tmp_path / "never.db"
    result = subprocess.run(
        [SWEEP, "dashboard", "--storage", f"sqlite:///{storage}", "--port", str(port), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != CREDENTIALS_ENV} | env,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {message}") and "expected" in result.stderr
    assert PASSWORD not in result.stderr
    assert not storage.exists() and not _is_listening(port)


def test_a_taken_port_is_one_line(small_study_url):
    """Check that a --port something already listens on is exit 2 with one line naming it, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [SWEEP, "dashboard", "--storage", small_study_url, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert result.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port} (Address already in use)"), result.stderr


@pytest.mark.parametrize(
    "text",
    ["someone", "someone:", ":hidden-pw-91", "someone:hidden-pw-91\nbob:other-pw"],
)
@pytest.mark.parametrize("where", ["env", "file"])
def test_malformed_credentials_are_refused_without_echoing_them(tmp_path, text, where):
    """Check that credentials without both a user and a password, or on several lines, are a ConfigError that hides the
    value."""
    file = tmp_path / "credentials"
    file.write_text(text)
    with pytest.raises(ConfigError, match="holds no user:password") as raised:
        read_credentials({CREDENTIALS_ENV: text}, None) if where == "env" else read_credentials({}, file)
    assert "hidden-pw-91" not in str(raised.value) and "someone" not in str(raised.value)


def test_credentials_come_from_the_file_before_the_environment_and_never_show(tmp_path):
    """Check that --credentials-file wins over the environment, an unset or empty variable means none, and the repr
    hides them."""
    file = tmp_path / "credentials"
    file.write_text(f"{USER}:{PASSWORD}\n")
    from_file = read_credentials({CREDENTIALS_ENV: "bob:other-pw"}, file)
    assert (from_file.user, from_file.password, from_file.source) == (USER, PASSWORD, f"--credentials-file {file}")
    assert read_credentials({CREDENTIALS_ENV: f"{USER}:{PASSWORD}:with-colon"}).password == f"{PASSWORD}:with-colon"
    assert read_credentials({}) is None and read_credentials({CREDENTIALS_ENV: ""}) is None
    assert PASSWORD not in repr(from_file) and USER not in str(from_file)


def _call(app, method: str = "GET", authorization: str | None = None):
    """Call a WSGI app in-process: (status, headers, body, the environ the inner app saw or None)."""
    seen, started = {}, {}

    def inner(environ, start_response):
        seen.update(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    environ = {"REQUEST_METHOD": method, "PATH_INFO": "/api/studies"}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    body = b"".join(app(inner)(environ, lambda status, headers: started.update(status=status, headers=dict(headers))))
    return started["status"], started["headers"], body, (seen or None)


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    "authorization, admitted",
    [
        (_basic(USER, PASSWORD), True),
        ("basic " + _basic(USER, PASSWORD).split()[1], True),
        (None, False),
        (_basic(USER, "wrong"), False),
        (_basic("bob", PASSWORD), False),
        (_basic(USER, PASSWORD + "x"), False),
        (_basic(USER + ":" + PASSWORD, ""), False),
        ("Basic not-base64!", False),
        ("Bearer " + PASSWORD, False),
        ("", False),
    ],
)
def test_basic_auth_middleware_admits_only_the_exact_user_and_password(authorization, admitted):
    """Check that BasicAuth passes only the exact user:password, answers anything else 401 with the Basic challenge,
    and the inner app never sees the Authorization header."""
    credentials = Credentials(USER, PASSWORD)
    status, headers, body, seen = _call(lambda inner: BasicAuth(inner, credentials), authorization=authorization)
    if admitted:
        assert status == "200 OK" and body == b"ok" and "HTTP_AUTHORIZATION" not in seen
    else:
        assert status == "401 Unauthorized" and seen is None
        assert headers["WWW-Authenticate"] == 'Basic realm="sweep"' and PASSWORD.encode() not in body


@pytest.mark.parametrize(
    "method, allowed",
    [
        ("GET", True),
        ("HEAD", True),
        ("OPTIONS", True),
        ("POST", False),
        ("PUT", False),
        ("DELETE", False),
        ("PATCH", False),
    ],
)
def test_read_only_middleware_refuses_every_method_that_may_write(method, allowed):
    """Check that ReadOnly passes GET, HEAD and OPTIONS to the app and refuses any other method with 403."""
    status, _, body, seen = _call(ReadOnly, method=method)
    assert (status, seen is not None) == (("200 OK", True) if allowed else ("403 Forbidden", False))
    assert allowed or method.encode() in body


@pytest.mark.parametrize("source", ["env", "file"])
def test_remote_dashboard_requires_the_credentials(small_study_url, tmp_path, source):
    """Check that `sweep dashboard --allow-remote` with credentials (from the environment or a file) answers 401 without
    or with wrong ones, 200 with them, and its output and the files it wrote never hold the password."""
    credentials_file = tmp_path / "dashboard-credentials"
    if source == "file":
        credentials_file.write_text(f"{USER}:{PASSWORD}\n")
        flags, env = ["--allow-remote", "--credentials-file", str(credentials_file)], {}
    else:
        flags, env = ["--allow-remote"], {CREDENTIALS_ENV: f"{USER}:{PASSWORD}"}
    with dashboard_server(small_study_url, *flags, env=env) as (base, server):
        for path in ["/api/studies", "/dashboard/", "/api/studies/1"]:
            status, headers, _ = _request(base + path)
            assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="sweep"', path
            assert _request(base + path, auth=(USER, "wrong-" + PASSWORD))[0] == 401
            assert _request(base + path, auth=("bob", PASSWORD))[0] == 401
        assert _request(base + "/api/studies", header=f"Basic {PASSWORD}")[0] == 401
        status, _, body = _request(base + "/api/studies", auth=(USER, PASSWORD))
        assert status == 200 and [s["study_name"] for s in json.loads(body)["study_summaries"]] == ["demo"]
        assert _request(base + "/dashboard/", auth=(USER, PASSWORD))[0] == 200
    assert "basic auth required" in server.output and 'GET /api/studies HTTP/1.1" 401' in server.output
    assert PASSWORD not in server.output and USER not in server.output
    written = _files_under(tmp_path, skip={credentials_file})
    assert any(path.suffix == ".db" for path in written)
    for path in written:
        assert PASSWORD.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("with_auth", [False, True])
def test_read_only_dashboard_refuses_changes_and_keeps_the_study(small_study_url, with_auth):
    """Check that `--allow-remote --read-only` refuses deleting the study, writing its note and telling a trial with 403
    (behind basic auth too), still serves GETs, and the study is intact afterwards."""
    env = {CREDENTIALS_ENV: f"{USER}:{PASSWORD}"} if with_auth else {}
    auth = (USER, PASSWORD) if with_auth else None
    study_id = optuna.load_study(study_name="demo", storage=small_study_url)._study_id
    with dashboard_server(small_study_url, "--allow-remote", "--read-only", env=env) as (base, server):
        for method, path in [
            ("DELETE", f"/api/studies/{study_id}"),
            ("PUT", f"/api/studies/{study_id}/note"),
            ("POST", "/api/trials/1/tell"),
        ]:
            status, _, body = _request(base + path, method=method, auth=auth)
            assert status == 403 and b"read-only" in body, (method, path)
            if with_auth:
                assert _request(base + path, method=method)[0] == 401
        status, _, body = _request(base + "/api/studies", auth=auth)
        assert status == 200 and json.loads(body)["study_summaries"][0]["study_name"] == "demo"
        assert _request(base + f"/api/studies/{study_id}", auth=auth)[0] == 200
    assert optuna.get_all_study_names(small_study_url) == ["demo"]
    assert len(optuna.load_study(study_name="demo", storage=small_study_url).trials) == 4
    if with_auth:
        assert "basic auth required" in server.output and "read-only" in server.output
    else:
        assert "read-only WITHOUT authentication" in server.output


def test_dashboard_paths_import_no_tensorflow(small_study_url):
    """Check that building the dashboard app from the CLI module imports neither TensorFlow nor Keras (it starts
    fast)."""
    code = (
        "import sys; import sweep.cli; from sweep.reading.dashboard import Credentials, dashboard_app; "
        f"dashboard_app({small_study_url!r}, Credentials('u', 'p'), read_only=True); "
        "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr


def test_authenticated_dashboard_renders_in_chromium(small_study_url, chromium, tmp_path):
    """Check that headless Chromium, given the credentials in the URL, logs in and renders the dashboard's study
    list."""
    with dashboard_server(small_study_url, "--allow-remote", env={CREDENTIALS_ENV: f"{USER}:{PASSWORD}"}) as (
        base,
        server,
    ):
        # The root URL, not /dashboard/: its redirect drops the credentials from the page's URL (Chromium keeps
        # them for the realm); a page whose own URL holds credentials cannot fetch() its /api/... data.
        page = base.replace("http://", f"http://{USER}:{PASSWORD}@") + "/"
        shot = tmp_path / "dashboard-authenticated.png"
        browsed = chromium(page, "--window-size=1200,800", f"--screenshot={shot}")
        assert browsed.returncode == 0, browsed.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10000  # the study list: about 20 KB
    for path in ["/dashboard", "/static/bundle.js", "/api/meta", "/api/studies"]:  # the page's own fetches got in too
        assert f'GET {path} HTTP/1.1" 200' in server.output, server.output[-2000:]
    assert PASSWORD not in server.output
