"""Graceful stop on SIGINT/SIGTERM: the first signal asks the running trial to stop at its next epoch.

Raising KeyboardInterrupt straight from a signal handler can land inside a garbage-collection callback,
where Python swallows it, so the handler only records the request and the trial loop checks it at safe
points (trial start, end of each epoch). A second signal stops at once.
"""

from __future__ import annotations

import contextlib
import signal

_requested: dict[str, str | None] = {"signal": None}


def _request(signum, _frame) -> None:
    if _requested["signal"] is not None:
        raise KeyboardInterrupt(f"stopped by a second {signal.Signals(signum).name}")
    _requested["signal"] = signal.Signals(signum).name


def install() -> dict:
    """Route SIGINT and SIGTERM (Ctrl-C, `kill`, `docker stop`) to a graceful stop; returns the old handlers."""
    return {signum: signal.signal(signum, _request) for signum in (signal.SIGINT, signal.SIGTERM)}


@contextlib.contextmanager
def graceful():
    """install() for the duration of a block, then the previous handlers again."""
    previous = install()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def request(name: str) -> None:
    """Ask for a graceful stop from code, not a signal (e.g. a cluster task told its driver was stopped);
    `name` says by what, as in the fail_reason "interrupted by <name>"."""
    _requested["signal"] = name


def clear() -> None:
    """Forget a stop request: a long-lived process (a Dask worker) runs the next task afresh."""
    _requested["signal"] = None


def requested() -> str | None:
    """The name of the signal that asked this process to stop, if any."""
    return _requested["signal"]


def reason() -> str | None:
    """What a trial stopped by the request records as its fail_reason ("interrupted by SIGTERM"), else None."""
    return f"interrupted by {_requested['signal']}" if _requested["signal"] is not None else None


def check() -> None:
    """Raise KeyboardInterrupt when a stop was requested (Optuna then marks the running trial FAIL)."""
    if _requested["signal"] is not None:
        raise KeyboardInterrupt(f"stopped by {_requested['signal']}")
