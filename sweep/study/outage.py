"""Ride out a storage outage: a database call that cannot reach its server waits and retries, up to a limit.

A database restart or failover (30-60 s on managed Postgres) must not end a sweep, and a user must not see a
line per retry. Each process keeps one Outage: the first call that finds the server gone prints one line, the
first call that gets through afterwards prints one line, and every call in between waits with backoff (0.5 s
doubling to 5 s) and tries again. Past `limit` seconds (config key outage_limit) the call raises
StorageUnreachable (exit code 2); from then on a failing call raises at once, until one gets through.

Only a lost server is waited for (refused or dropped connections, a server starting or shutting down, a pooler
that cannot reach it, SQLite's "database is locked"): a wrong password, host name or database is bad input and
fails at once. A call is retried as a whole, so a write whose commit reached the server just before it went down,
but whose answer was lost, is sent again: Optuna's writes set one row, a trial told twice is refused (the worker
loop takes that as "ended elsewhere"), and a trial created twice never gets a heartbeat and is failed after the
grace period. A stop request (Ctrl-C, SIGTERM) ends the waiting at once.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from sweep import stopping
from sweep.config import DEFAULT_OUTAGE_LIMIT
from sweep.errors import StorageUnreachable, filter_optuna_log

FIRST_WAIT, LONGEST_WAIT = 0.5, 5.0  # seconds between tries: doubling from the first to the longest
# A storage that fails again this soon after it came back is still coming back (a database restarting answers, then
# refuses while it recovers): the same outage, waited for without new lines.
RELAPSE_SECONDS = 30.0

# Parts of a driver's message that mean the URL or the account is wrong, not that the server is away.
BAD_INPUT = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",
    "could not translate host name",
    "name or service not known",
    "failed to resolve host",
    "nodename nor servname",
    "no pg_hba.conf entry",
    "invalid dsn",
    "invalid connection option",
)
# SQLite's operational errors other than these are bad input or a broken file (a missing folder, a read-only disk).
SQLITE_BUSY = ("database is locked", "database table is locked")

logger = logging.getLogger("sweep")
Result = TypeVar("Result")


def chain(exc: BaseException | None):
    """`exc`, then what it was raised from or during, outermost first (each once, should the chain loop)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def outage_cause(exc: BaseException | None) -> BaseException | None:
    """The driver error in `exc`'s chain (Optuna wraps it in StorageInternalError) when it means the server cannot
    be reached now, else None."""
    from sqlalchemy.exc import DBAPIError, OperationalError, PendingRollbackError

    for link in chain(exc):
        if isinstance(link, StorageUnreachable):
            return None  # an inner call already waited its limit
        if isinstance(link, PendingRollbackError) and "invalid transaction" in str(link):
            return link  # a query after one that lost its connection in the same transaction (Optuna's lazy loads)
        if isinstance(link, DBAPIError) and (link.connection_invalidated or isinstance(link, OperationalError)):
            original = link.orig if link.orig is not None else link
            text = str(original).lower()
            if type(original).__module__.startswith("sqlite3"):
                return link if any(marker in text for marker in SQLITE_BUSY) else None
            return None if any(marker in text for marker in BAD_INPUT) else link
    return None


def describe(cause: BaseException) -> str:
    """The driver's error as `Type: first line`, without SQLAlchemy's wrapping."""
    from sqlalchemy.exc import PendingRollbackError

    if isinstance(cause, PendingRollbackError):
        return "the connection was lost in the middle of a transaction"
    original = getattr(cause, "orig", None) or cause
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    return f"{type(original).__name__}: {lines[0]}" if lines else type(original).__name__


def unreachable_in(exc: BaseException | None) -> StorageUnreachable | None:
    """The StorageUnreachable in `exc`'s chain (Optuna's trial loop may raise another error on top of it)."""
    return next((link for link in chain(exc) if isinstance(link, StorageUnreachable)), None)


class Outage:
    """One process's view of its storage: reachable, or unreachable since a moment; see the module docstring."""

    def __init__(
        self,
        limit: float = DEFAULT_OUTAGE_LIMIT,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.limit = limit
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self.since: float | None = None  # when the current outage was first seen
        self.given_up = False  # past the limit: failing calls raise at once
        self.ended: float | None = None  # when the last outage ended
        self.what = "the storage"
        self.reason = ""  # the last failed call's error, one line
        self.count = 0  # outages seen by this process
        self.announced = False  # whether the current outage's first line was printed

    def call(self, action: Callable[..., Result], *args, what: str | None = None, **kwargs) -> Result:
        """action(*args, **kwargs), waited for and retried while the storage (`what`, a masked URL) is unreachable."""
        wait = FIRST_WAIT
        while True:
            try:
                result = action(*args, **kwargs)
            except Exception as exc:
                cause = outage_cause(exc)
                if cause is None:
                    raise
                waited = self._lost(cause, what)
                if waited is None:
                    raise self.unreachable() from exc
                if stopping.requested() is not None:  # Ctrl-C or SIGTERM during an outage stops now, not at the limit
                    if threading.current_thread() is threading.main_thread():
                        stopping.check()
                    raise  # another thread (a report, a heartbeat): its error, at once
                self._sleep(max(0.0, min(wait, self.limit - waited)))
                wait = min(2 * wait, LONGEST_WAIT)
                continue
            if self.since is not None:
                self._back()
            return result

    def _lost(self, cause: BaseException, what: str | None) -> float | None:
        """Note a failed call: announce a new outage; seconds since it began, or None once past the limit."""
        with self._lock:
            now = self._clock()
            self.reason = describe(cause)
            if self.since is None:
                relapse = self.ended is not None and now - self.ended < RELAPSE_SECONDS
                self.since, self.given_up, self.what, self.count = now, False, what or self.what, self.count + 1
                # with no wait, the error that follows says it all; a relapse was said when the outage began
                self.announced = self.limit > 0 and not relapse
                if self.announced:
                    logger.warning(
                        "storage %s unreachable (%s); waiting for it up to %g s (outage_limit), retrying",
                        self.what,
                        self.reason,
                        self.limit,
                    )
            waited = now - self.since
            if self.given_up or waited >= self.limit:
                self.given_up = True
                return None
            return waited

    def _back(self) -> None:
        with self._lock:
            if self.since is None:
                return
            now = self._clock()
            seconds, self.since, self.given_up, self.ended = now - self.since, None, False, now
            if self.announced:
                logger.warning("storage %s reachable again after %.0f s; going on", self.what, seconds)

    def unreachable(self) -> StorageUnreachable:
        """The error for a call that failed past the limit: what was unreachable, for how long, what to do."""
        seconds = 0.0 if self.since is None else self._clock() - self.since
        return StorageUnreachable(
            f"storage {self.what} unreachable for {seconds:.0f} s, longer than outage_limit = {self.limit:g} s "
            f"({self.reason}); nothing stored is lost: once it is back, run the same command again to resume (to wait "
            "longer: --outage-limit or SWEEP_OUTAGE_LIMIT)",
            what=self.what,
            seconds=seconds,
            reason=self.reason,
        )

    def watch(self, what: str) -> None:
        """Name the storage this process talks to (a masked URL), for the lines of calls that do not say."""
        self.what = what

    def settling(self, grace_period: float) -> bool:
        """Whether the storage is away, or came back less than `grace_period` (plus the longest wait between tries)
        ago: live workers may not have stamped their trials' heartbeats again yet, so none may be taken for dead."""
        if self.since is not None:
            return True
        return self.ended is not None and self._clock() - self.ended < grace_period + LONGEST_WAIT


def _not_optunas_fallback(record: logging.LogRecord) -> bool:
    """Drop Optuna's warning that a query failed and it falls back to a slower one (meant for SQLite's limit on
    query variables) when the query failed because the server went away: the outage has its own line."""
    text = record.getMessage()
    return not (text.startswith("Caught an error from sqlalchemy") and any(word in text for word in CONNECTION_WORDS))


CONNECTION_WORDS = ("connection", "server login", "database is locked", "starting up", "shutting down")


def quiet_optuna_fallback() -> None:
    """Install _not_optunas_fallback on Optuna's log handler (once per process)."""
    filter_optuna_log(_not_optunas_fallback)


_process = Outage()


def process() -> Outage:
    """This process's Outage (one per process: its lines are one per outage, whatever the thread)."""
    return _process


def configure(limit: float) -> None:
    """Set this process's limit in seconds (config key outage_limit; 0 fails at the first lost call)."""
    _process.limit = float(limit)


def call(action: Callable[..., Result], *args, what: str | None = None, **kwargs) -> Result:
    """Outage.call on this process's Outage."""
    return _process.call(action, *args, what=what, **kwargs)


def rides_out(function: Callable[..., Result]) -> Callable[..., Result]:
    """Decorate a function that talks to the storage itself (a session of its own) so that it rides out an outage."""

    @functools.wraps(function)
    def riding(*args, **kwargs):
        return _process.call(function, *args, **kwargs)

    return riding
