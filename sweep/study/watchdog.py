"""A trial's clock against --trial-timeout and the watchdog that fails a trial stuck in one call past it (a thread
that ends the trial in storage, and SIGALRM that interrupts the call)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import optuna

from sweep.errors import TrialTimedOut
from sweep.study.optuna_private import set_user_attrs, storage_of, trial_id

if TYPE_CHECKING:
    from sweep.config import SweepConfig


logger = logging.getLogger("sweep")


class TrialClock:
    """A trial's wall clock against --trial-timeout (`limit` seconds; None: no limit), from the moment the trial
    starts: its setup, its builder, every fold model and their scoring count towards it. A population round's
    members share one (they start and train together). `over` is the check made at each epoch's end (and at every
    batch of a user's model); it also records how far the trial got, which the watchdog's reason names."""

    def __init__(self, limit: float | None, epochs: int, folds: int = 1) -> None:
        self.limit, self.epochs, self.folds = limit, epochs, folds  # folds: fold models trained one after another
        self.started = time.monotonic()
        self._epoch: int | None = None
        self._fold: int | None = None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def expired(self) -> bool:
        return self.limit is not None and self.elapsed() > self.limit

    @property
    def where(self) -> str:
        """How far the trial got, as a reason says it: "epoch 12 of 50" (or "fold model 2 of 3, epoch 12 of 50")."""
        if self._epoch is None:
            return "before its first epoch"
        epoch = f"epoch {self._epoch} of {self.epochs}"
        return epoch if self._fold is None or self.folds == 1 else f"fold model {self._fold} of {self.folds}, {epoch}"

    def over(self, epoch: int, fold: int | None = None) -> str | None:
        """The trial is at `epoch` (1-based; of fold model `fold`, 1-based): its fail_reason if it has run longer
        than the limit, else None."""
        self._epoch, self._fold = epoch, fold
        if not self.expired():
            return None
        return f"stopped after {_seconds(self.elapsed())} s: longer than --trial-timeout {self.limit:g} ({self.where})"

    def check(self, epoch: int, fold: int | None = None) -> None:
        """Raise TrialTimedOut with the reason if the trial has run longer than the limit at `epoch`."""
        reason = self.over(epoch, fold)
        if reason is not None:
            raise TrialTimedOut(reason)


def _seconds(seconds: float) -> str:
    return f"{seconds:.1f}" if seconds < 100 else f"{seconds:.0f}"


# The watchdog whose trial the main thread is running (read by the SIGALRM handler), and how many trials this
# process's watchdogs have failed since the runner last looked (sweep.study.runner: told_after_watchdog).
_alarmed: list = [None]
_abandoned: list[int] = []


def _on_alarm(_signum, frame) -> None:
    """SIGALRM from a watchdog that fired: raise TrialTimedOut in the main thread, which is still inside its trial
    (never in Watchdog.__exit__, which is leaving it)."""
    watchdog = _alarmed[0]
    if watchdog is None or watchdog.reason is None or (frame is not None and frame.f_code in _LEAVING):
        return
    raise TrialTimedOut(watchdog.reason)


def _alarm_installed() -> bool:
    """Make _on_alarm this process's SIGALRM handler (once; main thread only); False, and nothing installed, where
    another handler owns SIGALRM."""
    if not hasattr(signal, "pthread_kill"):
        return False
    current = signal.getsignal(signal.SIGALRM)
    if current is _on_alarm:
        return True
    if current is not signal.SIG_DFL:
        return False
    signal.signal(signal.SIGALRM, _on_alarm)
    return True


class Watchdog:
    """Fails a trial stuck in one call (a builder that sleeps, an op that never returns), which never reaches its
    clock's checks: once the trial has run `grace` seconds (grace_period) past --trial-timeout, `fail(reason)` ends
    it FAIL with the reason in storage from the watchdog's thread, so it no longer holds a place in the budget.
    Where the trial runs on the main thread, SIGALRM then raises TrialTimedOut there, again every `grace` seconds
    until the trial has left: that ends a sleep or a Python loop at once, a call inside C code (a stuck TensorFlow
    op) only once it returns. A thread other than the main one stays in its call until it returns.

    The trial's own ending and the watchdog's firing exclude each other (`claim`): whichever comes first records
    the trial's end. Nothing is watched without a limit."""

    def __init__(self, clock: TrialClock, grace: float, fail: Callable[[str], None]) -> None:
        self.clock, self.grace, self.fail = clock, grace, fail
        self.reason: str | None = None  # set once the watchdog has failed the trial
        self._lock = threading.Lock()
        self._claimed = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._main: int | None = None

    @property
    def fired(self) -> bool:
        return self.reason is not None

    def claim(self) -> bool:
        """The trial is ending by itself: stop the watchdog from firing. False if it already has (the trial is FAIL
        with the watchdog's reason: write nothing more to it)."""
        with self._lock:
            self._claimed = True
            return self.reason is None

    def start(self) -> None:
        """Start watching the trial (nothing without a limit)."""
        if self.clock.limit is None or self._thread is not None:
            return
        if threading.current_thread() is threading.main_thread() and _alarm_installed():
            self._main = threading.main_thread().ident
            _alarmed[0] = self
        self._thread = threading.Thread(target=self._watch, name="trial-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The trial has left (or is leaving): stop watching it, and wait for the watchdog's thread. Idempotent."""
        if self._main is not None:
            _alarmed[0] = None  # first of all: a SIGALRM from now on raises nothing
        self.claim()
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Watchdog:
        self.start()
        return self

    def __exit__(self, *_exc) -> bool:
        self.stop()
        return False

    def _watch(self) -> None:
        if self._done.wait(max(0.0, self.clock.limit + self.grace - self.clock.elapsed())):
            return
        with self._lock:
            if self._claimed:
                return
            reason = (
                f"stopped after {_seconds(self.clock.elapsed())} s: "
                f"longer than --trial-timeout {self.clock.limit:g} and "
                f"stuck in one call for more than its grace_period of {self.grace:g} s ({self.clock.where}); "
                "failed by the watchdog"
            )
            try:
                self.fail(reason)
            except (
                Exception
            ) as exc:  # the storage is unreachable too: the trial stays RUNNING until it is told or goes stale
                logger.warning("the watchdog could not fail a stuck trial (%s: %s)", type(exc).__name__, exc)
            self.reason = reason
            _abandoned.append(1)
        logger.warning("%s", reason)
        while self._main is not None:
            signal.pthread_kill(self._main, signal.SIGALRM)
            if self._done.wait(self.grace):
                return


_LEAVING = (Watchdog.stop.__code__, Watchdog.__exit__.__code__)


def told_after_watchdog(exc: BaseException) -> bool:
    """Whether `exc`, out of study.optimize or a population round, comes from a trial this process's watchdog had
    already failed: Optuna refusing to tell it (after its function returned), or a late SIGALRM. That trial is over
    and recorded, and the worker goes on."""
    refused = isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a")  # Optuna's study.tell
    if (refused or isinstance(exc, TrialTimedOut)) and _abandoned:
        _abandoned.clear()
        return True
    return False


def fail_in_storage(trial: optuna.Trial, reason: str) -> None:
    """End a running trial FAIL with `reason` from another thread than the one running it (the watchdog's)."""
    set_user_attrs(trial, {"fail_reason": reason})
    storage_of(trial.study).set_trial_state_values(trial_id(trial), state=optuna.trial.TrialState.FAIL)


def watch_trial(config: SweepConfig, trial: optuna.Trial, folds: int = 1) -> tuple[TrialClock, Watchdog]:
    """A single trial's clock (started now) and its watchdog (a `with` block around the trial)."""
    clock = TrialClock(config.trial_timeout, config.epochs, folds)
    return clock, Watchdog(clock, config.grace_period, lambda reason: fail_in_storage(trial, reason))
