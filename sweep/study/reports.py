"""Per-epoch reports of a trial to Optuna (the pruner's input and the dashboard's learning curves), run in order on a
thread of their own so that their storage round trips overlap the next epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep.metrics import Goal, choose_threshold
from sweep.study.optuna_private import set_user_attrs

if TYPE_CHECKING:
    pass

# A trial reports at most about this many epochs: a linear network's many short epochs (LINEAR_STEPS on a small table)
# would otherwise spend more time reporting than training, for a learning curve no less readable at this resolution.
REPORTS_PER_TRIAL = 50


def report_every(epochs: int) -> int:
    """Report every this many epochs of a trial (or population member) of `epochs`, and its last: 1 up to
    REPORTS_PER_TRIAL epochs."""
    return max(1, -(-epochs // REPORTS_PER_TRIAL))


def report_epoch(
    trial: optuna.Trial, goal: Goal, y_true, scores, threshold: float | None, epoch: int, bounds=None
) -> float | None:
    """Report the epoch's validation objective (at the trial's threshold; for a tuned one, None, at the best
    threshold within `bounds`); when the pruner stops the trial, record the epoch and return the value it was
    stopped at (else None)."""
    if goal.is_multi:
        return None  # Optuna cannot prune multi-objective trials, and has no intermediate values for them
    if threshold is None and goal.uses_threshold:
        value = choose_threshold(goal, y_true, scores, bounds)[1]
    else:
        value = goal.value_of_scores(y_true, scores, threshold)
    if np.isnan(value):
        return None
    trial.report(value, epoch)
    if isinstance(trial.study.pruner, optuna.pruners.NopPruner) or not trial.should_prune():
        return None  # should_prune reads the trial back from storage, which a pruner that never prunes does not need
    set_user_attrs(trial, {"pruned_at_epoch": epoch, "epochs_run": epoch})
    return value


class ReportThread:
    """Report jobs (storage round trips: trial.report, the pruner's verdict) run in order on one thread of their
    own, overlapping the next epoch while TensorFlow trains and releases the GIL. A job's error is raised at
    the first look after it finished, and never lost. Used by single trials and population rounds."""

    def __init__(self, name: str) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: list = []

    def submit(self, job, *args) -> None:
        self._pending.append(self._pool.submit(job, *args))

    def raise_errors(self, wait: bool = False) -> None:
        """Raise the first error of a finished job; with `wait`, wait for every queued job first."""
        waiting = []
        for job in self._pending:  # one look per job, so a job that finishes between two looks is not lost
            if wait or job.done():
                job.result()
            else:
                waiting.append(job)
        self._pending = waiting

    def close(self, raise_errors: bool = True) -> None:
        """Wait for every queued job and stop the thread; then raise the first error, if asked to."""
        pending, self._pending = self._pending, []
        self._pool.shutdown(wait=True)
        if raise_errors:
            for job in pending:
                job.result()


class EpochReports:
    """A single trial's per-epoch reports (storage round trips every epoch: docs/benchmarks/trial-speed.md#section-11)
    on a ReportThread, as a population's are. A pruner's verdict is acted on at the next epoch boundary, or when
    training ends; the trial is told PRUNED at the epoch the pruner chose, and nothing is reported after it."""

    def __init__(
        self, trial: optuna.Trial, goal: Goal, y_true: np.ndarray, threshold: float | None, bounds=None
    ) -> None:
        self.trial, self.goal, self.y_true, self.threshold, self.bounds = trial, goal, y_true, threshold, bounds
        self._thread = ReportThread("trial-reports")
        self._pruned: str | None = None  # the pruner's verdict, once it has given one

    def submit(self, step: int, scores: np.ndarray, y_true: np.ndarray | None = None, where: str | None = None) -> None:
        """Report `scores` (of `y_true`'s rows; the pooled rows by default) at `step`, on the thread; `where` names
        the step in the pruned trial's reason."""
        y_true = self.y_true if y_true is None else y_true
        self._thread.submit(self._report, step, scores, y_true, where or f"epoch {step}")

    def _report(self, step: int, scores: np.ndarray, y_true: np.ndarray, where: str) -> None:
        if self._pruned is not None:
            return
        value = report_epoch(self.trial, self.goal, y_true, scores, self.threshold, step, self.bounds)
        if value is not None:
            self._pruned = f"pruned at {where} with {self.goal.name} = {value:.4g}"

    def raise_if_pruned(self, wait: bool = False) -> None:
        """Raise the first error of a finished report, then TrialPruned if the pruner stopped the trial;
        with `wait`, after every queued report has run."""
        self._thread.raise_errors(wait)
        if self._pruned is not None:
            raise optuna.TrialPruned(self._pruned)

    def close(self) -> None:
        self._thread.close(raise_errors=False)
