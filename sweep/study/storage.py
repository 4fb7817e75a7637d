"""Storage URL -> Optuna RDB storage that rides out outages: SQLite by default under studies/, Postgres for many
workers."""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import optuna

from sweep.errors import StorageError, StorageUnreachable
from sweep.study import outage
from sweep.study.optuna_private import (
    CACHED_STORAGE_CALLS,
    rdb_stale_trial_ids,
    set_attr_of_finished_trial,
    storage_of,
    trial_id,
)

SQLITE_TIMEOUT_SECONDS = 60
POOL_SIZE = 4
PGBOUNCER_OPTION = (
    "pgbouncer"  # ...?pgbouncer=1 on a Postgres URL: the server behind it is PgBouncer (transaction pooling)
)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print, log and store."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable storage URL>"


def _hide_secret(text: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return text
    return text.replace(str(password), "***") if password else text


def sqlite_file(parsed) -> str | None:
    """The file a parsed SQLite URL names; None for another database or SQLite in memory."""
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return parsed.database


def may_hold_studies(url: str) -> bool:
    """False for a SQLite file that does not exist yet (opening it would create it), else True: a URL that does not
    parse may too, so that open_storage says in one line what is wrong with it."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        path = sqlite_file(make_url(url))
    except (ArgumentError, ValueError):
        return True
    return path is None or Path(path).exists()


def _engine_kwargs(parsed, pgbouncer: bool, hint: str) -> dict:
    """SQLAlchemy engine settings for the storage at `parsed`: SQLite's lock timeout (its folder made), or a
    Postgres pool that pings, is bounded, and prepares no statements behind PgBouncer."""
    engine_kwargs: dict = {}
    if parsed.get_backend_name() == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_SECONDS}
        if sqlite_file(parsed):
            try:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(
                    f"cannot create the folder of SQLite file {parsed.database!r} ({exc.strerror}); {hint}"
                ) from None
    else:
        # Optuna turns on pool_pre_ping only for MySQL; a dropped Postgres connection must not kill a worker.
        engine_kwargs["pool_pre_ping"] = True
        # At most POOL_SIZE connections per process, one per thread that talks to the database (the loop, a
        # heartbeat, a population's reporter and heartbeat): a loop holds 2 when measured, never more than 4,
        # so the server's max_connections bounds the workers predictably (benchmarks/storage_load.py).
        engine_kwargs.update(pool_size=POOL_SIZE, max_overflow=0)
        if pgbouncer and parsed.get_driver_name() == "psycopg":
            # Behind PgBouncer's transaction pooling each transaction may run on another server connection, so a
            # statement psycopg 3 prepared on one (it does after 5 runs of a query) is missing or duplicated on the
            # next ("prepared statement "_pg3_0" already exists"). Off; PgBouncer < 1.21 cannot track them at all.
            engine_kwargs["connect_args"] = {"prepare_threshold": None}
    return engine_kwargs


def _heartbeat_kwargs(heartbeat_interval: int | None, grace_period: int | None) -> dict:
    """RDBStorage's heartbeat settings, with the callback that retries a stale trial and records why."""
    heartbeat: dict = {}
    if heartbeat_interval:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry = RetryStaleTrialWithReason(grace_period, max_retry=2)
        heartbeat = dict(
            heartbeat_interval=heartbeat_interval, grace_period=grace_period, heartbeat_stale_trial_callback=retry
        )
    return heartbeat


def open_storage(
    url: str, heartbeat_interval: int | None = None, grace_period: int | None = None
) -> optuna.storages.RDBStorage:
    """Open (and create the tables of) the storage at `url`; any failure is a one-line StorageError.

    With a heartbeat, each running trial is stamped every `heartbeat_interval` seconds; a trial whose
    stamp is older than `grace_period` (its worker died) is failed and retried by the next worker that
    starts a trial (RetryHeartbeatStaleTrialCallback, at most twice per trial).

    A Postgres URL ending in ?pgbouncer=1 points at PgBouncer in transaction pooling mode: the option is
    removed, psycopg prepares no statements and the schema check takes one connection at a time (below).

    A server that cannot be reached is waited for up to the process's outage_limit (sweep.study.outage), here and in
    every call of the storage returned (RidingStorage); a wrong URL, password or database fails at once.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    shown = mask_url(url)
    hint = "pass --storage (or SWEEP_STORAGE) a SQLAlchemy URL such as sqlite:///studies/sweeps.db or postgresql+psycopg://user@host/db"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StorageError(f"storage URL {url!r} is not a database URL; {hint}") from None
    pgbouncer = PGBOUNCER_OPTION in parsed.query and _pgbouncer_flag(parsed, hint)
    if PGBOUNCER_OPTION in parsed.query:  # ours, not the driver's: libpq would refuse it
        parsed = parsed.difference_update_query([PGBOUNCER_OPTION])
        url = parsed.render_as_string(hide_password=False)
    engine_kwargs = _engine_kwargs(parsed, pgbouncer, hint)
    heartbeat = _heartbeat_kwargs(heartbeat_interval, grace_period)

    def connect() -> RidingStorage:
        with warnings.catch_warnings():  # the heartbeat and its retry callback are "experimental" in Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = RidingStorage(
                url, shown, engine_kwargs=engine_kwargs, skip_compatibility_check=pgbouncer, **heartbeat
            )
        if pgbouncer:
            _check_schema_version(storage)
        if sqlite_file(parsed):
            _use_write_ahead_log(storage.engine)
        return storage

    try:
        outage.process().watch(shown)
        outage.quiet_optuna_fallback()
        return outage.call(connect, what=shown)
    except StorageUnreachable as exc:
        raise StorageError(
            f"cannot open storage {shown} ({_hide_secret(exc.reason, url)}; still unreachable after {exc.seconds:.0f} "
            f"s, outage_limit); {hint}, or start the server"
        ) from None
    except Exception as exc:  # SQLAlchemy/driver errors vary by backend; all mean "cannot open"
        reason = _hide_secret(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
        raise StorageError(f"cannot open storage {shown} ({reason}); {hint}") from None


# RDBStorage's methods that do not talk to the database, or that Optuna calls only while opening it.
_LOCAL_METHODS = {
    "remove_session",
    "upgrade",
    "get_current_version",
    "get_head_version",
    "get_all_versions",
    "get_heartbeat_interval",
    "get_heartbeat_stale_trial_callback",
    "get_failed_trial_callback",
    "check_trial_is_updatable",
}


class RidingStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage whose every call rides out an outage of its server (sweep.study.outage): it waits and tries
    again, with one line per outage for the process, up to outage_limit, then raises StorageUnreachable.

    Two calls differ. A heartbeat that cannot be stamped past the limit is skipped (its thread must not die; the
    trial's own calls say why the worker stops). And no trial is taken for stale while the storage is away or has
    just come back: every heartbeat stopped during the outage, so without this the first worker back would fail
    the trials of all the others, alive and training, once the outage outlasts grace_period.
    """

    def __init__(self, url: str, shown_url: str, **kwargs) -> None:
        self.shown_url = shown_url  # the URL as given (password masked), in its lines
        super().__init__(url, **kwargs)

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            outage.call(super().record_heartbeat, trial_id, what=self.shown_url)
        except StorageUnreachable:
            pass

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        if outage.process().settling(self.grace_period or 2 * (self.heartbeat_interval or 1)):
            return []
        return outage.call(rdb_stale_trial_ids, self, study_id, what=self.shown_url)


def _riding(method):
    @functools.wraps(method)
    def riding(self, *args, **kwargs):
        return outage.call(method, self, *args, what=self.shown_url, **kwargs)

    return riding


def _ride_every_call() -> None:
    """Wrap each RDBStorage method that talks to the database (public, or private but called by Optuna's cache in
    front of it) that RidingStorage does not define itself in outage.call."""
    rdb = optuna.storages.RDBStorage
    names = [name for name in dir(rdb) if not name.startswith("_") and callable(getattr(rdb, name))] + list(
        CACHED_STORAGE_CALLS
    )
    for name in names:
        if name not in _LOCAL_METHODS and name not in vars(RidingStorage):
            setattr(RidingStorage, name, _riding(getattr(rdb, name)))


_ride_every_call()


def _pgbouncer_flag(parsed, hint: str) -> bool:
    """Whether the URL's ?pgbouncer= option is on (1/true/yes/on) or off (0/false/no/off); another value, or on
    for a URL that is not Postgres, is a StorageError.

    Nothing else changes behind PgBouncer: every storage call of Optuna and sweep is one short transaction
    (no SET, advisory lock, temporary table, LISTEN or cursor outliving a commit), heartbeats are rows, and
    each process keeps its pool of POOL_SIZE client connections with pre-ping (cheap on PgBouncer's side:
    a server connection is taken only for the length of a transaction)."""
    value = parsed.query[PGBOUNCER_OPTION]
    flag = {
        "1": True,
        "true": True,
        "yes": True,
        "on": True,
        "0": False,
        "false": False,
        "no": False,
        "off": False,
    }.get(value.strip().lower() if isinstance(value, str) else None)
    if flag is None:
        raise StorageError(
            f"storage URL option {PGBOUNCER_OPTION}={value!r} is not 1 or 0; write ?{PGBOUNCER_OPTION}=1 when the URL "
            "points at PgBouncer"
        )
    if flag and parsed.get_backend_name() != "postgresql":
        raise StorageError(
            f"storage URL option {PGBOUNCER_OPTION}=1 is for Postgres URLs behind PgBouncer, not "
            f"{parsed.get_backend_name()}; {hint}"
        )
    return flag


def _check_schema_version(storage: optuna.storages.RDBStorage) -> None:
    """Optuna's check that the tables are of its schema version, without its nesting: Optuna reads the version
    on a second connection while a transaction on its first is open, so behind PgBouncer N processes opening
    the storage at once can each hold one of the N server connections and wait for another, until PgBouncer's
    query_wait_timeout (120 s) fails them (measured with benchmarks/storage_load.py: 4 clients, a pool of 2)."""
    current, head = storage.get_current_version(), storage.get_head_version()
    if current != head:
        fix = (
            "run `optuna storage upgrade` on Postgres directly"
            if current in storage.get_all_versions()
            else "update optuna (pip install -U optuna)"
        )
        raise RuntimeError(f"the tables are of Optuna schema {current}, this optuna needs {head}; {fix}")


class RetryStaleTrialWithReason(optuna.storages.RetryHeartbeatStaleTrialCallback):
    """Optuna's retry of a trial whose heartbeat lapsed, after recording why it failed (user attr fail_reason).

    Optuna fails the stale trial before calling this, and its API refuses attributes on a finished trial, so
    the attribute is written through the storage itself (sweep.study.optuna_private.set_attr_of_finished_trial).
    """

    def __init__(self, grace_period: int | None, max_retry: int) -> None:
        super().__init__(max_retry=max_retry)
        self.reason = (
            f"worker lost: no heartbeat for more than {grace_period} s (its process or machine died); the "
            "trial is retried"
        )

    def __call__(self, study: optuna.Study, trial) -> None:
        try:
            set_attr_of_finished_trial(storage_of(study), trial_id(trial), "fail_reason", self.reason)
        except Exception as exc:  # the reason is a courtesy; the retry must happen regardless
            import logging

            logging.getLogger("sweep").warning(
                "could not record the fail_reason of stale trial #%d (%s)", trial.number, exc
            )
        super().__call__(study, trial)


def _use_write_ahead_log(engine) -> None:
    """SQLite in WAL mode with synchronous=NORMAL: readers (optuna-dashboard, other workers) no longer wait
    for writers, and a commit costs no fsync, which matters when a population reports many trials per epoch
    (docs/benchmarks/storage-load.md). A commit survives the process being killed; only
    an operating-system crash can lose the last ones. WAL needs a local disk, not a network file system."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _set_pragmas(connection, _record) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    engine.dispose()  # connections Optuna opened to create the tables predate the listener


def load_study(storage: optuna.storages.RDBStorage, name: str) -> optuna.Study:
    """Load an existing study; an unknown name is a StorageError listing the studies that exist."""
    names = optuna.get_all_study_names(storage)
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise StorageError(f"no study named {name!r} in this storage (studies: {known}); check the name or --storage")
    return optuna.load_study(study_name=name, storage=storage)
