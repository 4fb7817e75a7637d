"""Shared fixtures: tiny imbalanced tables, SQLite study files, a real Postgres when one is reachable."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sweep.config import SweepConfig, resolve_config

POSTGRES_ENV = "SWEEP_TEST_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def make_table(rows: int = 3000, positive_share: float = 0.08, seed: int = 0) -> pd.DataFrame:
    """A small imbalanced binary table with two informative numeric features f0, f1 and a 0/1 label."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=2,
        n_informative=2,
        n_redundant=0,
        n_clusters_per_class=1,
        weights=[1 - positive_share, positive_share],
        class_sep=1.0,
        random_state=seed,
    )
    return pd.DataFrame({"f0": X[:, 0], "f1": X[:, 1], "label": y})


@pytest.fixture(scope="session")
def tiny_csv(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    make_table().to_csv(path, index=False)
    return str(path)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'studies' / 'test.db'}"


def tiny_values(tiny_csv: str, storage: str, **overrides) -> SweepConfig:
    """A fast config on the tiny table: 2 epochs, small batches, one validation split (pass cv=K for folds)."""
    values = dict(
        data=tiny_csv,
        target="label",
        storage=storage,
        study="tiny",
        trials=2,
        epochs=2,
        batch_size=64,
        hidden_width="1:8",
        learning_rate=0.001,  # what these 2-epoch networks' expectations were set at; auto is tested on its own
        hidden_layers=1,  # likewise; hidden_layers = auto is tested on its own (tests/test_trial.py)
        seed=0,
        cv=0,
    )
    values.update(overrides)
    return resolve_config(values, env={})


@pytest.fixture
def tiny_config(tiny_csv, sqlite_url):
    """tiny_values with a SQLite file in tmp_path."""
    return lambda **overrides: tiny_values(tiny_csv, **({"storage": sqlite_url} | overrides))


@pytest.fixture
def lenient_decision_check(monkeypatch):
    """Export's decision check always passes: for tests of what a kind ships, on tiny data whose few-epoch refits may
    flag otherwise than the judged models (tests/test_decision.py tests the check itself)."""
    monkeypatch.setattr("sweep.handover.decision.FLAG_RATE_TOLERANCE", float("inf"))
    monkeypatch.setattr("sweep.handover.decision.FLAG_COUNT_SLACK", float("inf"))


@pytest.fixture(scope="session")
def cross_validated(tmp_path_factory, tiny_csv):
    """A 3-trial study with 5-fold cross-validated trials on the tiny table, exported (shared: it trains 15 models)."""
    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    folder = tmp_path_factory.mktemp("cv")
    config = tiny_values(tiny_csv, f"sqlite:///{folder / 'cv.db'}", study="cv", trials=3, cv=5)
    run_sweep(config)
    return config, export_best(config.storage, config.study, folder / "bundle", ensemble="single")


def _postgres_url() -> str:
    return os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)


@pytest.fixture
def postgres_url() -> str:
    """The test Postgres URL; skips with a reason when unreachable, fails instead when SWEEP_REQUIRE_POSTGRES=1 (CI)."""
    import sqlalchemy

    url = _postgres_url()
    try:
        engine = sqlalchemy.create_engine(url)
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:
        reason = f"no Postgres reachable at {POSTGRES_ENV} ({type(exc).__name__}); set it to run these tests"
        if os.environ.get("SWEEP_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SWEEP_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    return url


@pytest.fixture
def unique_name() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def pytest_collection_modifyitems(items):
    for item in items:
        if "postgres_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(autouse=True)
def _seeded_numpy():
    np.random.seed(0)


def run_temp_root(tmp_path_factory) -> Path:
    """The temp folder of the whole test run: under pytest-xdist, the one that holds each process's own folder (and
    what built_once_per_run builds); else this process's own."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(autouse=True)
def _forget_modules_from_temp_folders(tmp_path_factory):
    """A module a test wrote into a temporary folder and imported in this process (a model file, custom layers) is
    forgotten after it, so that a later test's module of the same name is not shadowed by it."""
    before = set(sys.modules)
    yield
    base = str(run_temp_root(tmp_path_factory))
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules.get(name), "__file__", None) or "").startswith(base):
            del sys.modules[name]


@pytest.fixture(autouse=True)
def _fresh_outage(monkeypatch):
    """Each test starts with this process's storage reachable and the default outage limit (sweep.study.outage)."""
    from sweep.study import outage

    monkeypatch.setattr(outage, "_process", outage.Outage())


CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
)


@pytest.fixture
def chromium(tmp_path):
    """Run headless Debian Chromium on a URL: returns a function (url, *extra flags) -> CompletedProcess.

    Skips with a reason when Chromium is missing; fails instead when SWEEP_REQUIRE_BROWSER=1 (CI installs it).
    """
    import shutil
    import subprocess

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "headless Chromium not installed (Debian package chromium); CI installs it"
        if os.environ.get("SWEEP_REQUIRE_BROWSER") == "1":
            pytest.fail(f"SWEEP_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)

    def run(url: str, *extra: str):
        profile = tmp_path / f"chromium-profile-{uuid.uuid4().hex[:6]}"
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, url],
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


# Your own Keras model: tiny builders (the example builders of studies/models.py) on tiny arrays and tables.
MODELS_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "studies", "models.py")


def user_model_values(data: str, storage: str, model: str, space: dict, **overrides) -> SweepConfig:
    """A fast user-model config: 2 epochs, one validation split, no pruning unless asked; `model` names a builder of
    studies/models.py, or is a whole PATH.py:FUNCTION spec."""
    values = dict(
        data=data,
        storage=storage,
        study="user",
        trials=3,
        epochs=2,
        batch_size=64,
        seed=0,
        cv=0,
        pruner="none",
        model=model if ":" in model else f"{MODELS_FILE}:{model}",
        space=space,
        minority_weight="1:50",
    )
    values.update(overrides)
    return resolve_config(values, env={})


@pytest.fixture(scope="session")
def example_files(tmp_path_factory):
    """Small versions of the example data: digits images (.npz), sensor sequences (.npz), a table with gaps (.csv)."""
    from sweep.data.examples import digits_arrays, sequence_arrays, tabular_frame

    folder = tmp_path_factory.mktemp("examples")
    x, y = digits_arrays()
    np.savez(folder / "digits.npz", x=x, y=y)
    x, y = sequence_arrays(rows=600, steps=16, positive_share=0.1)
    np.savez(folder / "sequences.npz", x=x, y=y)
    tabular_frame(rows=600).to_csv(folder / "tabular.csv", index=False)
    return {name: str(folder / name) for name in ("digits.npz", "sequences.npz", "tabular.csv")}


def built_once_per_run(tmp_path_factory, name: str, build):
    """What `build(folder)` returns, built once per test run rather than once per pytest-xdist process: the first to ask
    builds it under a lock in the run's shared temp folder and pickles it, the others wait and read it back. Only for
    trained fixtures whose tests read them and write elsewhere."""
    import fcntl  # the standard library's lock: filelock would be one more test dependency for this one use
    import pickle

    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return build(tmp_path_factory.mktemp(name))
    folder = run_temp_root(tmp_path_factory) / name
    folder.mkdir(exist_ok=True)
    built = folder / "built.pickle"
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not built.exists():
            built.write_bytes(pickle.dumps(build(folder)))
        return pickle.loads(built.read_bytes())


@pytest.fixture(scope="session")
def user_studies(tmp_path_factory, example_files):
    """The three example models swept and exported, shared by the tests that read them (each trains a few Keras
    models; built once per run): a Conv2D on digits (one split), a Conv1D on sequences (3-fold cross-validated), a
    tabular MLP with a searched dropout. Returns {name: (config, ExportResult)}."""
    return built_once_per_run(
        tmp_path_factory, "user-studies", lambda folder: _sweep_user_studies(folder, example_files)
    )


def _sweep_user_studies(folder: Path, example_files: dict) -> dict:
    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    storage = f"sqlite:///{folder / 'user.db'}"
    configs = {
        "digits": user_model_values(
            example_files["digits.npz"], storage, "digits_cnn", {"filters": "2:4", "dropout": "0.1"}, study="digits"
        ),
        "sequences": user_model_values(
            example_files["sequences.npz"],
            storage,
            "sequence_conv1d",
            {"filters": "2:4:log", "activation": "relu,gelu"},
            study="sequences",
            cv=3,
            trials=2,
        ),
        "tabular": user_model_values(
            example_files["tabular.csv"],
            storage,
            "tabular_mlp",
            {"dropout": "0.0:0.5", "units": "4", "depth": "2"},
            study="tabular",
            target="label",
            trials=2,
        ),
    }
    found = {}
    for name, config in configs.items():
        run_sweep(config)
        found[name] = (config, export_best(config.storage, config.study, folder / f"bundle-{name}"))
    return found


# A Postgres and a PgBouncer of a test's own (tests/test_outage.py stops and starts them; benchmarks/outages.py too).
def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process=None, seconds: float = 15) -> bool:
    """Whether 127.0.0.1:port accepts connections within `seconds` (False at once if `process` exited)."""
    import socket
    import time

    deadline = time.time() + seconds
    while time.time() < deadline and (process is None or process.poll() is None):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def trial_states(url: str) -> dict[int, str]:
    """Trial number -> state name, read on Postgres directly; {} while it is down or before the study exists."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sqlalchemy.text("select number, state from trials")).all()
        return {number: str(state).split(".")[-1] for number, state in rows}
    except sqlalchemy.exc.SQLAlchemyError:
        return {}
    finally:
        engine.dispose()


class PrivatePostgres:
    """A Postgres server of our own: initdb into a fresh folder under /tmp, its own port on 127.0.0.1, trust auth;
    stop() and start() make an outage. As root, the server runs as the `postgres` user (or nobody): Postgres
    refuses root."""

    def __init__(self, initdb: str) -> None:
        import pwd
        import shutil
        import tempfile
        from pathlib import Path

        self.bin = Path(os.path.realpath(initdb)).parent
        self.user = None
        if os.geteuid() == 0:
            names = [entry.pw_name for entry in pwd.getpwall()]
            self.user = "postgres" if "postgres" in names else "nobody"
        self.folder = Path(tempfile.mkdtemp(prefix="sweep-pg-"))
        if self.user is not None:
            shutil.chown(self.folder, self.user)
        self.data = self.folder / "data"
        self.port = free_port()
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.folder}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 100\n"
            )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False

    def _run(self, *command: str) -> None:
        import subprocess

        done = subprocess.run(command, capture_output=True, text=True, user=self.user, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {(done.stdout + done.stderr).strip()[-1500:]}")

    def start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.folder / "server.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
        self.running = False

    def close(self) -> None:
        import shutil

        if self.running:
            try:
                self.stop("immediate")
            except RuntimeError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _require(variable: str, reason: str) -> None:
    """Skip with `reason`, or fail when the environment `variable` is 1 (CI, where the tool must be there)."""
    if os.environ.get(variable) == "1":
        pytest.fail(f"{variable}=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def private_postgres():
    """A running PrivatePostgres (initdb, pg_ctl); skips with a reason without them, fails instead when
    SWEEP_REQUIRE_POSTGRES=1 (CI)."""
    import shutil

    initdb = shutil.which("initdb") or shutil.which("initdb", path="/usr/local/bin:/usr/lib/postgresql/15/bin")
    if initdb is None:
        _require(
            "SWEEP_REQUIRE_POSTGRES",
            "initdb and pg_ctl not found (Debian package postgresql); needed to start a Postgres of the test's own",
        )
    server = PrivatePostgres(initdb)
    try:
        server.start()
        yield server
    finally:
        server.close()


def find_pgbouncer() -> str | None:
    import shutil

    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")


@contextlib.contextmanager
def running_pgbouncer(
    target_url: str, folder, pool_size: int, query_wait: int, application_name: str | None = None, **settings
):
    """A PgBouncer (transaction pooling) on 127.0.0.1 at a free port in front of `target_url`, its ini, userlist and
    log in `folder`; yields (url with ?pgbouncer=1, version tuple, log path). Extra `settings` go into its ini."""
    import re
    import subprocess
    import textwrap

    import sqlalchemy

    binary = find_pgbouncer()
    found = re.search(r"(\d+)\.(\d+)", subprocess.run([binary, "--version"], capture_output=True, text=True).stdout)
    version = tuple(int(part) for part in found.groups()) if found else (0, 0)
    target = sqlalchemy.engine.make_url(target_url)
    user = target.username or "postgres"
    server = f"host={target.host or '127.0.0.1'} port={target.port or 5432} dbname={target.database}"
    if application_name:
        server += f" application_name={application_name}"
    if target.password:
        server += f" password={target.password}"
    (folder / "userlist.txt").write_text(f'"{user}" ""\n')
    log = folder / "pgbouncer.log"
    extra = "".join(f"{key} = {value}\n" for key, value in settings.items())
    for _attempt in range(3):  # the free port may be taken between probing and listening
        port = free_port()
        (folder / "pgbouncer.ini").write_text(
            textwrap.dedent(f"""\
            [databases]
            {target.database} = {server}
            [pgbouncer]
            listen_addr = 127.0.0.1
            listen_port = {port}
            unix_socket_dir =
            auth_type = trust
            auth_file = {folder / "userlist.txt"}
            pool_mode = transaction
            default_pool_size = {pool_size}
            max_client_conn = 200
            query_wait_timeout = {query_wait}
            """)
            + extra
        )
        # PgBouncer refuses to run as root; -u drops to nobody after it has read its files.
        command = [binary, *(["-u", "nobody"] if os.geteuid() == 0 else []), str(folder / "pgbouncer.ini")]
        with log.open("ab") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        url = (
            target.set(host="127.0.0.1", port=port)
            .update_query_dict({"pgbouncer": "1"})
            .render_as_string(hide_password=False)
        )
        if wait_for_port(port, process):
            break
        _stop_process(process)
    else:
        raise RuntimeError(f"pgbouncer did not start; its log:\n{log.read_text()[-2000:]}")
    try:
        yield url, version, log
    finally:
        _stop_process(process)


def _stop_process(process) -> None:
    import subprocess

    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


USER_MODEL = """
import keras


def build(params, input_shape):
    hidden = keras.layers.Dense(8, activation="relu")
    return keras.Sequential([keras.Input(input_shape), hidden, keras.layers.Dense(UNITS, activation="softmax")])
"""


def class_table(rows: int = 900, seed: int = 0) -> pd.DataFrame:
    """Three classes (75/17/8%) told apart by two numeric features, with a text column and gaps."""
    rng = np.random.default_rng(seed)
    y = rng.choice(["low", "mid", "high"], size=rows, p=[0.75, 0.17, 0.08])
    frame = pd.DataFrame(
        {
            "f0": rng.normal(size=rows) + 1.5 * (y == "mid"),
            "f1": rng.normal(size=rows) + 2.0 * (y == "high"),
            "kind": rng.choice(["a", "b"], size=rows),
            "label": y,
        }
    )
    frame.loc[::17, "f0"] = np.nan
    return frame


def class_arrays(rows: int = 800, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Four classes (60/25/10/5%) as arrays of 3 features."""
    rng = np.random.default_rng(seed)
    y = rng.choice(4, size=rows, p=[0.6, 0.25, 0.1, 0.05])
    x = rng.normal(size=(rows, 3)).astype(np.float32)
    x[:, 0] += y
    x[:, 1] += 2.0 * (y == 3)
    return x, y


def write_class_model(folder: Path, units: int) -> str:
    (folder / "model.py").write_text(USER_MODEL.replace("UNITS", str(units)))
    return f"{folder / 'model.py'}:build"


@dataclass(frozen=True)
class Invoked:
    """What a CliRunner call left that the tests read (its Result holds a traceback and does not pickle)."""

    exit_code: int
    output: str


@pytest.fixture(scope="session", params=["table", "arrays"])
def swept_classes(request, tmp_path_factory):
    """A 3-class table (the builtin network) or 4-class arrays (a user's model) swept for 3 trials, resumed to 5,
    exported and predicted, built once per run: (kind, workdir, storage, data path, classes, run outputs, export
    output, bundle, predict output, predictions)."""
    kind = request.param
    return built_once_per_run(tmp_path_factory, f"classes-{kind}", lambda folder: _sweep_classes(kind, folder))


def _sweep_classes(kind: str, folder: Path) -> tuple:
    storage = f"sqlite:///{folder / 'classes.db'}"
    if kind == "table":
        data = folder / "three.csv"
        class_table().to_csv(data, index=False)
        args = ["--data", str(data), "--target", "label", "--hidden-width", "2:16"]
        classes = ["high", "low", "mid"]
    else:
        data = folder / "four.npz"
        x, y = class_arrays()
        np.savez(data, x=x, y=y)
        args = ["--data", str(data), "--model", write_class_model(folder, 4), "--cv", "0"]
        classes = ["0", "1", "2", "3"]
    common = ["--storage", storage, "--study", "classes", "--epochs", "4", *args]
    from typer.testing import CliRunner

    from sweep.cli import app

    def invoke(*args: str) -> Invoked:
        result = CliRunner().invoke(app, list(args), env={"SWEEP_STORAGE": None})
        return Invoked(result.exit_code, result.output)

    runs = [invoke("run", *common, "--trials", str(trials)) for trials in (3, 5)]
    bundle = folder / "bundle"
    exported = invoke("export", "classes", "--out", str(bundle), "--storage", storage)
    predicted = folder / "predicted.csv"
    scored = invoke("predict", str(bundle), "--data", str(data), "--out", str(predicted))
    return kind, folder, storage, data, classes, runs, exported, bundle, scored, predicted
