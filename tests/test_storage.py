"""Tests for sweep.study.storage: URLs, masking, SQLite folders and a real Postgres."""

import re

import optuna
import pytest

from sweep.errors import StorageError
from sweep.study import outage
from sweep.study.storage import load_study, mask_url, open_storage


@pytest.mark.parametrize(
    "url, shown",
    [
        ("postgresql+psycopg://sweeper:s3cret@db:5432/sweeps", "postgresql+psycopg://sweeper:***@db:5432/sweeps"),
        ("sqlite:///studies/sweeps.db", "sqlite:///studies/sweeps.db"),
        ("not a url", "<unparseable storage URL>"),
    ],
)
def test_mask_url_hides_passwords(url, shown):
    """Check that a printed storage URL never shows the password."""
    assert mask_url(url) == shown


def test_sqlite_creates_its_folder(tmp_path):
    """Check that a SQLite URL in a folder that does not exist yet creates the folder and the tables."""
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="s")
    assert (tmp_path / "a" / "b" / "x.db").is_file()
    assert optuna.get_all_study_names(storage) == ["s"]


@pytest.mark.parametrize(
    "url, match",
    [
        ("nonsense", r"storage URL 'nonsense' is not a database URL"),
        ("nosuchdb://x/y", r"cannot open storage nosuchdb://x/y"),
        (
            "postgresql+psycopg://u:hunter2@127.0.0.1:1/none",
            r"cannot open storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/none",
        ),
        ("sqlite:////proc/forbidden/x.db", r"cannot (create the folder|open storage)"),
    ],
)
def test_unopenable_storage_is_a_one_line_error(url, match, monkeypatch):
    """Check that a storage that cannot be opened is a StorageError that hides the password and says how to fix it
    (with outage_limit 0: no waiting for a server that may be restarting)."""
    monkeypatch.setattr(outage.process(), "limit", 0)
    with pytest.raises(StorageError, match=match) as raised:
        open_storage(url)
    message = str(raised.value)
    assert "hunter2" not in message and "\n" not in message and "--storage" in message


def test_unknown_study_lists_known_ones(sqlite_url):
    """Check that loading an unknown study names the studies that exist."""
    storage = open_storage(sqlite_url)
    optuna.create_study(storage=storage, study_name="known")
    with pytest.raises(StorageError, match=r"no study named 'missing'.*studies: known"):
        load_study(storage, "missing")


def test_postgres_round_trip(postgres_url, unique_name):
    """Check that a real Postgres storage opens with pre-ping and stores and reads a study."""
    storage = open_storage(postgres_url)
    assert storage.engine.pool._pre_ping
    study = optuna.create_study(storage=storage, study_name=unique_name)
    study.enqueue_trial({"x": 1.0})
    study.optimize(lambda t: t.suggest_float("x", 0, 2) ** 2, n_trials=2)
    try:
        assert len(load_study(open_storage(postgres_url), unique_name).trials) == 2
    finally:
        optuna.delete_study(study_name=unique_name, storage=storage)


@pytest.mark.parametrize(
    "url, match",
    [
        ("sqlite:///x.db?pgbouncer=1", r"pgbouncer=1 is for Postgres URLs behind PgBouncer, not sqlite"),
        ("postgresql+psycopg://u@127.0.0.1:1/db?pgbouncer=maybe", r"option pgbouncer='maybe' is not 1 or 0"),
        (
            "postgresql+psycopg://u:p%40ss@127.0.0.1:1/none?pgbouncer=1",
            r"cannot open storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/none\?pgbouncer=1",
        ),
    ],
)
def test_pgbouncer_option_errors(url, match, monkeypatch):
    """Check that ?pgbouncer= takes only an on/off value and only on Postgres, and that a URL with it that cannot be
    opened is the usual one-line error with the password hidden (also the password's decoded form)."""
    monkeypatch.setattr(outage.process(), "limit", 0)
    with pytest.raises(StorageError, match=match) as raised:
        open_storage(url)
    assert "p@ss" not in str(raised.value) and "p%40ss" not in str(raised.value)


def test_pgbouncer_option_off_is_dropped(tmp_path):
    """Check that ?pgbouncer=0 is accepted and removed before the URL reaches the driver (here SQLite)."""
    storage = open_storage(f"sqlite:///{tmp_path / 'x.db'}?pgbouncer=0")
    assert "pgbouncer" not in storage.engine.url.query
    optuna.create_study(storage=storage, study_name="s")


@pytest.mark.parametrize(
    "option, threshold", [("", 5), ("pgbouncer=1", None), ("pgbouncer=true", None), ("pgbouncer=0", 5)]
)
def test_pgbouncer_option_turns_off_prepared_statements(postgres_url, option, threshold):
    """Check that ?pgbouncer=1 gives psycopg connections no server-side prepared statements (prepare_threshold None;
    psycopg's default is 5), keeps pre-ping and the pool cap, and is not passed on to the driver."""
    storage = open_storage(postgres_url + (("&" if "?" in postgres_url else "?") + option if option else ""))
    try:
        assert "pgbouncer" not in storage.engine.url.query
        assert storage.engine.pool._pre_ping and storage.engine.pool.size() == 4
        with storage.engine.connect() as connection:
            assert connection.connection.dbapi_connection.prepare_threshold == threshold
    finally:
        storage.engine.dispose()


@pytest.mark.parametrize(
    "current, fix", [("v3.0.0.a", "run `optuna storage upgrade` on Postgres directly"), ("v99.0.0.z", "update optuna")]
)
def test_pgbouncer_schema_check_refuses_other_versions(current, fix):
    """Check that the schema check open_storage runs behind PgBouncer (in place of Optuna's, which nests two
    connections) refuses tables of another Optuna schema version, saying how to fix it."""
    from sweep.study.storage import _check_schema_version

    class Tables:
        get_current_version = staticmethod(lambda: current)
        get_head_version = staticmethod(lambda: "v3.2.0.a")
        get_all_versions = staticmethod(lambda: ["v3.2.0.a", "v3.0.0.a"])

    with pytest.raises(RuntimeError, match=rf"schema {current}, this optuna needs v3.2.0.a; {re.escape(fix)}"):
        _check_schema_version(Tables())
    Tables.get_current_version = staticmethod(lambda: "v3.2.0.a")
    _check_schema_version(Tables())
