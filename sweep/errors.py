"""Exceptions that carry a one-line message for the user and the exit code the CLI returns."""

from __future__ import annotations


class SweepError(Exception):
    """Bad usage, config, data or storage: stops the run before any trial starts (exit code 2)."""

    exit_code = 2


class ConfigError(SweepError):
    """A config value (from a file, the environment or a flag) is unknown or out of range."""


class DataError(SweepError):
    """The data cannot be used: missing file, bad target, non-numeric or non-finite features."""


class StorageError(SweepError):
    """The storage URL cannot be opened, or a study is missing or incompatible."""


class StorageUnreachable(StorageError):
    """The storage stayed unreachable longer than outage_limit (sweep.study.outage); nothing stored is lost
    (exit code 2)."""

    def __init__(self, message: str, *, what: str = "", seconds: float = 0.0, reason: str = "") -> None:
        super().__init__(message)
        self.what, self.seconds, self.reason = what, seconds, reason


class ExportError(SweepError):
    """The export cannot be written: no finished trial, or an output directory in the way."""


class TrialFailed(Exception):
    """One trial cannot produce a value (NaN loss, constant predictions); the sweep records it and goes on."""


class OverBudget(TrialFailed):
    """A trial started after other workers had already filled the study's budget; it is not run."""


class TrialTimedOut(TrialFailed):
    """A trial ran longer than --trial-timeout (sweep.study.watchdog.TrialClock); it ends FAIL with the reason and the
    sweep goes on."""


def _expected_failure(record) -> bool:
    """Keep Optuna's "Trial N failed ... because of <error>" line but drop its traceback when the error is an
    expected one (a failed trial, a storage that stayed away, a trial another worker had already ended), and its
    second line "Trial N failed with value None." (the first said it)."""
    from optuna.exceptions import UpdateFinishedTrialError

    if record.getMessage().endswith("failed with value None."):
        return False
    if record.exc_info and isinstance(record.exc_info[1], (TrialFailed, StorageUnreachable, UpdateFinishedTrialError)):
        record.exc_info = None
        record.exc_text = None
    return True


def quiet_trial_tracebacks() -> None:
    """One line per expected trial failure from Optuna's logger in this process (the CLI's and each worker's)."""
    filter_optuna_log(_expected_failure)


def filter_optuna_log(keep) -> None:
    """Install the log filter `keep` (record -> bool) on Optuna's handler in this process, once."""
    import logging

    import optuna

    optuna.logging.get_logger("optuna")  # creates Optuna's handler if this process has not logged yet
    for handler in logging.getLogger("optuna").handlers:
        if keep not in handler.filters:
            handler.addFilter(keep)
