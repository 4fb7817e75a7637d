"""Tests for sweep.study.outage and the storage that rides out an outage: the waiting and its lines (a fake clock),
which errors count as an outage, SQLite's lock, and a real Postgres of the test's own stopped in the middle of a
sweep."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from conftest import find_pgbouncer, free_port, running_pgbouncer, trial_states
from sqlalchemy.exc import DBAPIError, OperationalError

from sweep.errors import StorageUnreachable
from sweep.study import outage

SWEEP = str(Path(sys.executable).with_name("sweep"))
HEARTBEAT, GRACE = 1, 2  # the outages below last longer than GRACE: every running trial's heartbeat lapses


class FakeTime:
    """A clock that only sleeping moves."""

    def __init__(self) -> None:
        self.now, self.sleeps = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def refused() -> OperationalError:
    return OperationalError(
        "SELECT 1", {}, Exception('connection to server at "127.0.0.1", port 5432 failed: Connection refused')
    )


def failing(times: int, error=refused):
    """A storage call that fails `times` times with error(), then returns "ok"."""
    left = [times]

    def call() -> str:
        if left[0] > 0:
            left[0] -= 1
            raise error()
        return "ok"

    return call


def outage_lines(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "sweep"]


def test_an_outage_is_waited_for_with_one_line_each_way(caplog):
    """Check that a call failing 6 times with a refused connection returns once the storage is back, after waits of
    0.5 s doubling to at most 5 s, with one line when it was lost and one when it came back."""
    fake = FakeTime()
    watcher = outage.Outage(limit=60, clock=fake.clock, sleep=fake.sleep)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        assert watcher.call(failing(6), what="db") == "ok"
        assert watcher.call(failing(0), what="db") == "ok"
    assert fake.sleeps == [0.5, 1, 2, 4, 5, 5]
    lines = outage_lines(caplog)
    assert len(lines) == 2, lines
    assert lines[0].startswith("storage db unreachable (Exception: connection to server") and "up to 60 s" in lines[0]
    assert lines[1] == "storage db reachable again after 18 s; going on"


def test_a_relapse_while_coming_back_is_the_same_outage(caplog):
    """Check that a storage failing again within RELAPSE_SECONDS of coming back (a restarting database) adds no line,
    and that one failing again later is a new outage with its own two lines."""
    fake = FakeTime()
    watcher = outage.Outage(limit=60, clock=fake.clock, sleep=fake.sleep)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        assert watcher.call(failing(3), what="db") == "ok"
        fake.now += outage.RELAPSE_SECONDS / 2
        assert watcher.call(failing(2), what="db") == "ok"
        assert len(outage_lines(caplog)) == 2
        fake.now += outage.RELAPSE_SECONDS * 2
        assert watcher.call(failing(2), what="db") == "ok"
    lines = outage_lines(caplog)
    assert len(lines) == 4 and "unreachable" in lines[2] and "reachable again" in lines[3], lines


def test_past_the_limit_one_error_then_no_more_waiting(caplog):
    """Check that past outage_limit a call raises StorageUnreachable saying what, for how long and that a rerun resumes;
    that a later failing call raises at once (no new wait), and that a call getting through afterwards says so."""
    fake = FakeTime()
    watcher = outage.Outage(limit=10, clock=fake.clock, sleep=fake.sleep)
    with caplog.at_level(logging.WARNING, logger="sweep"):
        with pytest.raises(
            StorageUnreachable,
            match=r"storage db unreachable for 10 s, longer than outage_limit = 10 s \(Exception: .*Connection "
            r"refused\); nothing stored is lost.*run the same command again",
        ):
            watcher.call(failing(1000), what="db")
        waits = len(fake.sleeps)
        with pytest.raises(StorageUnreachable):
            watcher.call(failing(1000))
        assert len(fake.sleeps) == waits and sum(fake.sleeps) == 10
        assert watcher.call(failing(0)) == "ok"
    assert [line.split(" (")[0] for line in outage_lines(caplog)] == [
        "storage db unreachable",
        "storage db reachable again after 10 s; going on",
    ]


def _sqlite_error(text: str):
    def make():
        return OperationalError("SELECT 1", {}, sqlite3.OperationalError(text))

    return make


def _wrapped_by_optuna():
    try:
        raise refused()
    except OperationalError as exc:
        try:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
        except optuna.exceptions.StorageInternalError as wrapped:
            return wrapped


@pytest.mark.parametrize(
    "error, waited",
    [
        (refused, True),
        (
            lambda: DBAPIError(
                "SELECT 1", {}, Exception("server closed the connection unexpectedly"), connection_invalidated=True
            ),
            True,
        ),
        (lambda: OperationalError("SELECT 1", {}, Exception("the database system is starting up")), True),
        (_wrapped_by_optuna, True),
        (_sqlite_error("database is locked"), True),
        (
            lambda: sqlalchemy.exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back."),
            True,
        ),
        (lambda: OperationalError("x", {}, Exception('password authentication failed for user "sweeper"')), False),
        (lambda: OperationalError("x", {}, Exception('database "sweeps" does not exist')), False),
        (
            lambda: OperationalError(
                "x", {}, Exception("failed to resolve host 'db.example': [Errno -2] Name or service not known")
            ),
            False,
        ),
        (_sqlite_error("unable to open database file"), False),
        (lambda: ValueError("not a database error"), False),
    ],
    ids=[
        "refused",
        "dropped",
        "starting up",
        "wrapped by Optuna",
        "sqlite locked",
        "lazy load after a drop",
        "password",
        "no database",
        "no host",
        "sqlite file",
        "other",
    ],
)
def test_only_a_lost_server_is_waited_for(error, waited):
    """Check which errors are an outage (waited for) and which are bad input or bugs (raised at once, no wait)."""
    fake = FakeTime()
    watcher = outage.Outage(limit=60, clock=fake.clock, sleep=fake.sleep)
    if waited:
        assert watcher.call(failing(2, error)) == "ok" and fake.sleeps == [0.5, 1]
    else:
        with pytest.raises(type(error())):
            watcher.call(failing(2, error))
        assert fake.sleeps == []


@pytest.mark.parametrize(
    "error, shown", [("server closed the connection unexpectedly", False), ("too many SQL variables", True)]
)
def test_optunas_fallback_warning_is_dropped_for_a_lost_server_only(error, shown):
    """Check that Optuna's "Caught an error from sqlalchemy ... Falling back" warning is dropped when the server went
    away (the outage has its own line) and kept for what it is meant for (SQLite's limit on query variables)."""
    record = logging.LogRecord(
        "optuna.storages._rdb.storage",
        logging.WARNING,
        __file__,
        1,
        f"Caught an error from sqlalchemy: {error}. Falling back to a slower alternative.",
        None,
        None,
    )
    outage.quiet_optuna_fallback()
    handler = logging.getLogger("optuna").handlers[0]
    assert bool(handler.filter(record)) == shown


def test_no_trial_is_stale_until_live_workers_could_stamp_again():
    """Check that stale checks are held back during an outage and for grace_period plus the longest wait after it,
    only."""
    fake = FakeTime()
    watcher = outage.Outage(limit=60, clock=fake.clock, sleep=fake.sleep)
    assert not watcher.settling(2)
    watcher.call(failing(2))
    assert watcher.settling(2)
    fake.sleep(2 + outage.LONGEST_WAIT)
    assert not watcher.settling(2)


def test_sqlite_lock_is_ridden_out(tmp_path, monkeypatch, caplog):
    """Check that a study's write that meets a SQLite file locked by another process for longer than the busy timeout
    waits (one line), and goes through once the lock is released (one line)."""
    from sweep.study import storage as storage_module

    monkeypatch.setattr(storage_module, "SQLITE_TIMEOUT_SECONDS", 0.1)
    path = tmp_path / "locked.db"
    study = optuna.create_study(storage=storage_module.open_storage(f"sqlite:///{path}"), study_name="s")
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")
    releaser = threading.Timer(1.5, lambda: locker.execute("COMMIT"))
    releaser.start()
    try:
        with caplog.at_level(logging.WARNING, logger="sweep"):
            study.set_user_attr("k", 1)
    finally:
        releaser.join()
        locker.close()
    assert optuna.load_study(study_name="s", storage=f"sqlite:///{path}").user_attrs == {"k": 1}
    lines = outage_lines(caplog)
    assert len(lines) == 2 and "database is locked" in lines[0] and "reachable again" in lines[1], lines


def test_a_storage_unreachable_at_start_is_waited_for_then_one_line(tmp_path):
    """Check that a command started while its storage is away (here `sweep studies`, nothing listening) waits
    outage_limit (SWEEP_OUTAGE_LIMIT) with one line, then ends with one error line and exit 2."""
    url = f"postgresql+psycopg://u:pw123@127.0.0.1:{free_port()}/x"
    started = time.monotonic()
    done = subprocess.run(
        [SWEEP, "studies", "--storage", url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SWEEP_OUTAGE_LIMIT": "2"},
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert time.monotonic() - started >= 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, lines
    assert "unreachable" in lines[0] and "waiting for it up to 2 s" in lines[0]
    assert re.match(
        r"error: cannot open storage postgresql\+psycopg://u:\*\*\*@.*still unreachable after 2 s", lines[1]
    ), lines[1]
    assert "pw123" not in done.stderr


# A real Postgres of the test's own, stopped in the middle of a sweep of 2 workers.
def sweep_command(csv: str, url: str, *extra: str) -> list[str]:
    """2 workers, one trial at a time, 60 epochs of the tiny table with one hidden layer (about a second a trial),
    heartbeats every second."""
    return [
        SWEEP,
        "run",
        "--data",
        csv,
        "--target",
        "label",
        "--storage",
        url,
        "--study",
        "outage",
        "--workers",
        "2",
        "--population",
        "1",
        "--pruner",
        "none",
        "--epochs",
        "60",
        "--cv",
        "0",
        "--batch-size",
        "64",
        "--hidden-width",
        "1:8",
        "--hidden-layers",
        "1",  # no depth probe, and no linear network's 1,000-step floor: a trial stays about a second
        "--heartbeat-interval",
        str(HEARTBEAT),
        "--grace-period",
        str(GRACE),
        *extra,
    ]


def stop_when_trials_finished(server, url: str, process, finished: int) -> dict[int, str]:
    """Wait until `finished` trials are COMPLETE, stop the server, and return the states it held then."""
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        states = trial_states(url)
        if sum(state == "COMPLETE" for state in states.values()) >= finished:
            server.stop()
            return states
        time.sleep(0.2)
    pytest.fail(f"the sweep never finished {finished} trials: {process.communicate(timeout=30)[1][-3000:]}")


def lines_by_process(stderr: str, words: tuple[str, ...] = ("unreachable", "reachable again")) -> dict[str, list[str]]:
    """The stderr lines holding one of `words`, by process: '[worker N]' or the driver."""
    found = defaultdict(list)
    for line in stderr.splitlines():
        if any(word in line for word in words):
            match = re.match(r"\[worker (\d+)\]", line)
            found[f"worker {match.group(1)}" if match else "driver"].append(line)
    return dict(found)


@pytest.mark.parametrize("route", ["direct", pytest.param("pgbouncer", marks=pytest.mark.slow)])
def test_a_sweep_rides_out_a_database_restart(private_postgres, tiny_csv, tmp_path, route):
    """Check that a sweep of 2 workers whose Postgres is stopped for longer than the grace period (5 s against 2 s),
    then started again, directly or behind a PgBouncer that stays up, exits 0 with its budget met and nothing
    RUNNING, that every trial complete before the outage still is, and that each process prints at most two lines
    about the outage and no traceback."""
    if route == "pgbouncer" and find_pgbouncer() is None:
        pytest.skip("pgbouncer not installed (Debian package pgbouncer)")
    direct = contextlib.nullcontext((private_postgres.url,))
    with running_pgbouncer(private_postgres.url, tmp_path, 10, 20) if route == "pgbouncer" else direct as (url, *_):
        sweep = subprocess.Popen(
            sweep_command(tiny_csv, url, "--trials", "8"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
        )
        try:
            before = stop_when_trials_finished(private_postgres, private_postgres.url, sweep, 2)
            time.sleep(5)
            private_postgres.start()
            out, err = sweep.communicate(timeout=300)
        finally:
            if sweep.poll() is None:
                sweep.kill()
    assert sweep.returncode == 0, err[-3000:]
    after = trial_states(private_postgres.url)
    assert sum(state in ("COMPLETE", "PRUNED") for state in after.values()) == 8, after
    assert "RUNNING" not in after.values(), after
    assert all(after[number] == "COMPLETE" for number, state in before.items() if state == "COMPLETE")
    said = lines_by_process(err)
    assert said and all(len(lines) <= 2 for lines in said.values()), said  # behind PgBouncer a query may just wait
    assert "Traceback" not in err and not [line for line in err.splitlines() if line.startswith("error")], err[-3000:]
    assert "8 finished trials" in out


@pytest.mark.parametrize("rerun", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_an_outage_past_the_limit_is_one_line_exit_2_and_loses_nothing(private_postgres, tiny_csv, tmp_path, rerun):
    """Check that a sweep whose Postgres stays away longer than --outage-limit (3 s) ends with exit 2 and one error line
    saying what was unreachable and for how long, each process printing at most two lines about it; that the trials
    complete before the outage are all still there; and (slow) that the same command, once the server is back,
    resumes the study to its budget."""
    command = sweep_command(tiny_csv, private_postgres.url, "--trials", "6")
    sweep = subprocess.Popen(
        [*command, "--outage-limit", "3"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path
    )
    try:
        before = stop_when_trials_finished(private_postgres, private_postgres.url, sweep, 2)
        _out, err = sweep.communicate(timeout=120)
    finally:
        if sweep.poll() is None:
            sweep.kill()
    assert sweep.returncode == 2, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1, err[-3000:]
    assert re.match(
        r"error: storage postgresql\+psycopg://postgres@127\.0\.0\.1:\d+/postgres unreachable for \d+ s, longer than "
        r"outage_limit = 3 s \(.*\); nothing stored is lost",
        errors[0],
    ), errors[0]
    assert all(len(lines) <= 2 for lines in lines_by_process(err, ("unreachable",)).values()), err
    assert "Traceback" not in err
    private_postgres.start()
    after = trial_states(private_postgres.url)
    assert all(after[number] == "COMPLETE" for number, state in before.items() if state == "COMPLETE"), (before, after)
    if rerun:
        again = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        final = trial_states(private_postgres.url)
        assert (
            sum(state in ("COMPLETE", "PRUNED") for state in final.values()) == 6 and "RUNNING" not in final.values()
        ), final
