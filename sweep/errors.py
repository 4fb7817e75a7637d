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


class ExportError(SweepError):
    """The export cannot be written: no finished trial, or an output directory in the way."""


class TrialFailed(Exception):
    """One trial cannot produce a value (NaN loss, constant predictions); the sweep records it and goes on."""


class OverBudget(TrialFailed):
    """A trial started after other workers had already filled the study's budget; it is not run."""


class TrialTimedOut(TrialFailed):
    """A trial ran longer than --trial-timeout (sweep.trial.TrialClock); it ends FAIL with the reason and the sweep goes on."""
