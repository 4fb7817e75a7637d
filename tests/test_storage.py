"""Tests for sweep.storage: URLs, masking, SQLite folders and a real Postgres."""

import optuna
import pytest

from sweep.errors import StorageError
from sweep.storage import load_study, mask_url, open_storage


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
        ("postgresql+psycopg://u:hunter2@127.0.0.1:1/none", r"cannot open storage postgresql\+psycopg://u:\*\*\*@127.0.0.1:1/none"),
        ("sqlite:////proc/forbidden/x.db", r"cannot (create the folder|open storage)"),
    ],
)
def test_unopenable_storage_is_a_one_line_error(url, match):
    """Check that a storage that cannot be opened is a StorageError that hides the password and says how to fix it."""
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
