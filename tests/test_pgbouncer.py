"""Optuna's RDB storage through a real PgBouncer in transaction pooling mode (`?pgbouncer=1` storage URLs).

Each test starts its own `pgbouncer` on 127.0.0.1 at a free port in front of the test Postgres (generated
pgbouncer.ini and userlist in tmp_path; killed at the end). The tests skip with a reason when the binary is
missing, and fail instead when SWEEP_REQUIRE_PGBOUNCER=1 (CI installs Debian's package in .ci/run).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from conftest import find_pgbouncer, running_pgbouncer
from optuna.trial import TrialState

from sweep.study.storage import open_storage

HEARTBEAT, GRACE = 1, 2
SERVER_POOL = 2  # server connections PgBouncer may open: fewer than the clients the tests run at once
QUERY_WAIT = 10  # s a client may wait for a server connection before PgBouncer fails it (default 120)


@dataclass
class Bouncer:
    url: str  # postgresql+psycopg://...@127.0.0.1:PORT/db?pgbouncer=1
    tag: str  # application_name of PgBouncer's server connections (count them in pg_stat_activity)
    version: tuple[int, ...]
    log: Path


def pgbouncer_binary() -> str:
    """The pgbouncer binary; skips with a reason when missing, fails instead when SWEEP_REQUIRE_PGBOUNCER=1 (CI)."""
    binary = find_pgbouncer()
    if binary is None:
        reason = "pgbouncer not installed (Debian package pgbouncer); CI installs it"
        if os.environ.get("SWEEP_REQUIRE_PGBOUNCER") == "1":
            pytest.fail(f"SWEEP_REQUIRE_PGBOUNCER=1 but {reason}")
        pytest.skip(reason)
    return binary


@pytest.fixture
def bouncer(postgres_url, tmp_path):
    """A PgBouncer (transaction pooling, SERVER_POOL server connections) in front of the test Postgres."""
    pgbouncer_binary()
    tag = f"bouncer-{uuid.uuid4().hex[:8]}"
    with running_pgbouncer(postgres_url, tmp_path, SERVER_POOL, QUERY_WAIT, application_name=tag) as (
        url,
        version,
        log,
    ):
        yield Bouncer(url=url, tag=tag, version=version, log=log)


def server_connections(postgres_url: str, tag: str) -> int:
    """How many Postgres connections PgBouncer holds (its server connections carry application_name = tag)."""
    engine = sqlalchemy.create_engine(postgres_url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            return connection.execute(
                sqlalchemy.text("select count(*) from pg_stat_activity where application_name = :t"), {"t": tag}
            ).scalar()
    finally:
        engine.dispose()


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(12):  # each statement runs often enough (> 5 times a connection) that psycopg would prepare it
        trial.report(x * step, step)
        trial.should_prune()
    trial.set_user_attr("worker", os.getpid())
    return x


def test_trials_through_pgbouncer(bouncer, postgres_url, unique_name):
    """Check that a heartbeat study runs 12 trials in 4 threads (up to 4 client connections, sweep's pool cap, for
    the threads and their heartbeats) through PgBouncer's 2 server connections, every trial COMPLETE with its 12
    reports as read on Postgres directly, and that the engine got no `pgbouncer` option and no prepared statements."""
    storage = open_storage(bouncer.url, HEARTBEAT, GRACE)
    assert "pgbouncer" not in storage.engine.url.query
    with storage.engine.connect() as connection:
        assert connection.connection.dbapi_connection.prepare_threshold is None
    try:
        study = optuna.create_study(storage=storage, study_name=unique_name, direction="maximize")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.optimize(objective, n_trials=12, n_jobs=4)
        trials = optuna.load_study(study_name=unique_name, storage=postgres_url).trials
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 12
        assert all(len(t.intermediate_values) == 12 for t in trials)
        assert 1 <= server_connections(postgres_url, bouncer.tag) <= SERVER_POOL
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)
        storage.engine.dispose()


VICTIM = """
import sys, time, warnings
import optuna
from sweep.study.storage import open_storage

url, name, heartbeat, grace, marker = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
warnings.simplefilter("ignore")
study = optuna.load_study(study_name=name, storage=open_storage(url, heartbeat, grace))

def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(3):
        trial.report(x * step, step)
    if trial.number == 2:  # the third trial hangs mid-trial, heartbeats going, until the test kills the process
        open(marker, "w").close()
        time.sleep(3600)
    return x

study.optimize(objective, n_trials=3)
"""


def test_killed_client_is_failed_as_stale_and_retried_through_pgbouncer(bouncer, postgres_url, unique_name, tmp_path):
    """Check that a worker process SIGKILLed mid-trial behind PgBouncer (after 2 trials, its heartbeat thread
    stamping through the pooler) leaves a trial that a surviving worker, also behind PgBouncer, fails as stale
    after the grace period with sweep's fail_reason, and retries with the same params to COMPLETE; nothing stays
    RUNNING."""
    storage = open_storage(bouncer.url, HEARTBEAT, GRACE)
    optuna.create_study(storage=storage, study_name=unique_name, direction="maximize")
    marker = tmp_path / "hanging"
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, bouncer.url, unique_name, str(HEARTBEAT), str(GRACE), str(marker)],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 90
        while not marker.exists() and victim.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert marker.exists(), (
            f"the victim never reached its third trial: {victim.communicate(timeout=10)[0].decode()[-2000:]}"
        )
        time.sleep(HEARTBEAT + 0.5)  # at least one heartbeat of the hanging trial went through the pooler
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        hung = optuna.load_study(study_name=unique_name, storage=postgres_url).trials[2]
        assert hung.state == TrialState.RUNNING
        time.sleep(GRACE + 1.5)

        survivor = optuna.load_study(study_name=unique_name, storage=storage)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            survivor.optimize(objective, n_trials=2)  # fails the stale trial first, then runs its retry

        trials = optuna.load_study(study_name=unique_name, storage=postgres_url).trials
        assert trials[2].state == TrialState.FAIL
        assert "worker lost: no heartbeat" in trials[2].user_attrs["fail_reason"]
        retries = [t for t in trials if t.system_attrs.get("failed_trial") == 2]
        assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
        assert retries[0].params == hung.params
        assert not [t for t in trials if t.state == TrialState.RUNNING]
        assert [t.state for t in trials[:2]] == [TrialState.COMPLETE] * 2
    finally:
        if victim.poll() is None:
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait(timeout=10)
        optuna.delete_study(study_name=unique_name, storage=postgres_url)
        storage.engine.dispose()


def test_many_storages_open_at_once(bouncer, postgres_url):
    """Check that 8 storages opened at the same moment through PgBouncer's 2 server connections all open, in less
    than PgBouncer's wait limit: Optuna's own schema check holds a transaction open while it takes a second
    connection, which behind a pooler deadlocks (until query_wait_timeout) once every server connection is held so;
    open_storage skips it and checks the schema version without nesting."""
    import threading

    barrier, errors, storages = threading.Barrier(8), [], []

    def open_one() -> None:
        barrier.wait()
        try:
            storages.append(open_storage(bouncer.url, HEARTBEAT, GRACE))
        except Exception as exc:
            errors.append(str(exc))

    started = time.perf_counter()
    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=3 * QUERY_WAIT)
    seconds = time.perf_counter() - started
    for storage in storages:
        storage.engine.dispose()
    assert not errors and len(storages) == 8, errors[:2]
    assert seconds < QUERY_WAIT, seconds


def test_why_prepared_statements_are_off(bouncer):
    """Check the reason for `prepare_threshold=None`: through PgBouncer < 1.21 in transaction mode, two psycopg
    connections with psycopg's default (prepare after 5 runs) that share a server connection both name their
    first prepared statement _pg3_0, and the second fails; with ?pgbouncer=1's setting neither prepares."""
    import psycopg

    if bouncer.version >= (1, 21):
        pytest.skip(
            f"PgBouncer {'.'.join(map(str, bouncer.version))} may track prepared statements (max_prepared_statements)"
        )
    conninfo = (
        sqlalchemy.engine.make_url(bouncer.url)
        .difference_update_query(["pgbouncer"])
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )

    def run(prepare_threshold) -> str:
        with (
            psycopg.connect(conninfo, autocommit=True, prepare_threshold=prepare_threshold) as first,
            psycopg.connect(conninfo, autocommit=True, prepare_threshold=prepare_threshold) as second,
        ):
            try:
                for _ in range(8):  # autocommit: each statement is its own transaction, on any server connection
                    first.execute("select 1 + %s", (1,)).fetchone()
                    second.execute("select 2 + %s", (1,)).fetchone()
            except psycopg.Error as exc:
                return str(exc).splitlines()[0]
        return "ok"

    failed = run(5)
    assert "prepared statement" in failed, failed
    assert run(None) == "ok"
