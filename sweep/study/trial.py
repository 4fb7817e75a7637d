"""One trial: space -> model/train -> metrics on the validation rows (one split, or pooled out-of-fold scores
of cross-validated fold models); writes the trial's user attributes. Also the pieces a population round
(sweep.study.rounds) shares with a single trial: seeds, settings, score checks, per-epoch reports and results."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.errors import OverBudget, TrialFailed, TrialTimedOut
from sweep.metrics import Goal, choose_threshold, metrics
from sweep.models import model_kind
from sweep.models.network import TrainSettings
from sweep.runtime import device_label, placement, thread_settings
from sweep.space import TrialParams, trial_seed
from sweep.study.optuna_private import set_param, set_user_attrs, storage_of, trial_id

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset, Validation


def train_settings(config: SweepConfig, seed: int, params: TrialParams) -> TrainSettings:
    """What trains the trial besides its params' weight and width: its learning rate is searched or fixed."""
    rate = params.learning_rate if params.learning_rate is not None else config.learning_rate
    return TrainSettings(config.epochs, config.batch_size, float(rate), config.hidden_layers, seed)


def stop_if_requested(trial: optuna.Trial) -> None:
    """End the trial (FAIL, with the reason) when SIGINT/SIGTERM asked this worker to stop."""
    if stopping.requested():
        trial.set_user_attr("fail_reason", stopping.reason())
        stopping.check()


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
                f"stopped after {_seconds(self.clock.elapsed())} s: longer than --trial-timeout {self.clock.limit:g} and "
                f"stuck in one call for more than its grace_period of {self.grace:g} s ({self.clock.where}); failed by the watchdog"
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


OVER_BUDGET_REASON = "not run: other workers had already filled the study's trial budget"


def mark_over_budget(trial: optuna.Trial) -> None:
    set_user_attrs(trial, {"over_budget": True, "fail_reason": OVER_BUDGET_REASON})


def setup_attrs(params: TrialParams, settings: TrainSettings, model: str = "builtin") -> dict:
    """What a trial records before training: who runs it, where, and what retrains it (a user model's builder
    and every value its builder is called with, fixed ones included)."""
    own = {"model": model, "model_params": params.model_params} if model != "builtin" else {}
    return own | {
        "worker": f"{socket.gethostname()}:{os.getpid()}",  # ties a trial to its process
        "train_settings": dataclasses.asdict(settings),
        "class_weight": {"0": 1.0, "1": params.minority_weight},
        "device": device_label(),
        "threads": thread_settings(),
        **placement(),  # where a cluster placed this worker (sweep.study.cluster)
    }


def report_epoch(
    trial: optuna.Trial, goal: Goal, y_true, scores, threshold: float | None, epoch: int, bounds=None
) -> float | None:
    """Report the epoch's validation objective (at the trial's threshold; for a tuned one, None, at the best
    threshold within `bounds`); when the pruner stops the trial, record the epoch and return the value it was
    stopped at (else None)."""
    if goal.is_multi:
        return None  # Optuna cannot prune multi-objective trials, and has no intermediate values for them
    if threshold is None:
        value = choose_threshold(goal, y_true, scores, bounds)[1]
    else:
        value = goal.value_of_scores(y_true, scores, threshold)
    if np.isnan(value):
        return None
    trial.report(value, epoch)
    if not trial.should_prune():
        return None
    set_user_attrs(trial, {"pruned_at_epoch": epoch, "epochs_run": epoch})
    return value


FOLD_METRICS = ("f1", "precision", "recall", "average_precision", "flag_rate")


def record_tuned_threshold(trial: optuna.Trial, config: SweepConfig, threshold: float) -> None:
    """Store a threshold tuned on the trial's own scores as its "threshold" param, with the distribution a sampled one
    has, so the dashboard, `sweep show`, the sampler and export read it as they read a sampled one."""
    set_param(trial, "threshold", float(threshold), optuna.distributions.FloatDistribution(*config.threshold))


def judged_threshold(
    trial: optuna.Trial, config: SweepConfig, goal: Goal, y_true, scores, params: TrialParams
) -> float:
    """The threshold a trained trial is judged at: its sampled one, or (threshold_search "tuned") the one within the
    configured range that scores best by the objective on its pooled validation scores, as scikit-learn's
    TunedThresholdClassifierCV chooses it, recorded as the trial's threshold param."""
    if params.threshold is not None:
        return params.threshold
    threshold = choose_threshold(goal, y_true, scores, config.threshold)[0]
    record_tuned_threshold(trial, config, threshold)
    return threshold


def record_result(
    trial,
    goal: Goal,
    dataset: Dataset,
    scores,
    threshold: float,
    seconds: float,
    epochs_run: int,
    figures,
    fold_scores=None,
):
    """Store a finished trial's pooled validation metrics (and, cross-validated, each fold's) and timing in
    one write, and hand a new best's figures to `figures` (a FigureWorker, or None); return its value."""
    plan = dataset.validation
    found = metrics(plan.y, scores, threshold)
    attrs = {f"val_{key}": value for key, value in found.items()}
    if plan.kind == "cv" and fold_scores is not None:
        per_fold = [metrics(plan.y[fold.slots], s, threshold) for fold, s in zip(plan.folds, fold_scores)]
        attrs["cv_folds"] = {k: [round(float(m[k]), 4) for m in per_fold] for k in FOLD_METRICS}
        attrs["cv_f1_sd"] = round(float(np.std([m["f1"] for m in per_fold])), 4)
    attrs |= {"train_seconds": round(seconds, 3), "epochs_run": int(epochs_run)}
    set_user_attrs(trial, attrs)
    value = goal.value(found)
    if figures is not None and not goal.is_multi:
        figures.submit_if_best(trial, value, plan.y, scores, threshold)
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
        for job in self._pending:  # one look per job: a job that finished between two looks was once lost
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
    """A single trial's per-epoch reports (about 3 ms of storage round trips an epoch on SQLite) on a
    ReportThread, as a population's are. A pruner's verdict is acted on at the next epoch boundary, or when
    training ends; the trial is told PRUNED at the epoch the pruner chose, and nothing is reported after it."""

    def __init__(
        self, trial: optuna.Trial, goal: Goal, y_true: np.ndarray, threshold: float | None, bounds=None
    ) -> None:
        self.trial, self.goal, self.y_true, self.threshold, self.bounds = trial, goal, y_true, threshold, bounds
        self._thread = ReportThread("trial-reports")
        self._pruned: str | None = None  # the pruner's verdict, once it has given one

    def submit(self, epoch: int, pooled: np.ndarray) -> None:
        self._thread.submit(self._report, epoch, pooled)

    def _report(self, epoch: int, pooled: np.ndarray) -> None:
        if self._pruned is not None:
            return
        value = report_epoch(self.trial, self.goal, self.y_true, pooled, self.threshold, epoch, self.bounds)
        if value is not None:
            self._pruned = f"pruned at epoch {epoch} with {self.goal.name} = {value:.4g}"

    def raise_if_pruned(self, wait: bool = False) -> None:
        """Raise the first error of a finished report, then TrialPruned if the pruner stopped the trial;
        with `wait`, after every queued report has run."""
        self._thread.raise_errors(wait)
        if self._pruned is not None:
            raise optuna.TrialPruned(self._pruned)

    def close(self) -> None:
        self._thread.close(raise_errors=False)


class TrialHooks:
    """A single trial's EpochHooks (sweep.models): after an epoch of fold models trained side by side, the clock, a
    stop request and the pruner's last verdict are checked and the pooled objective is reported on a thread; after
    an epoch of one fold model trained alone, its objective is reported at step fold * epochs + epoch and the
    pruner's verdict is acted on at once (in the middle of fit)."""

    def __init__(self, trial: optuna.Trial, config: SweepConfig, goal: Goal, plan: Validation, params, clock) -> None:
        self.trial, self.config, self.goal, self.plan, self.params, self.clock = (
            trial,
            config,
            goal,
            plan,
            params,
            clock,
        )
        self.reports = EpochReports(trial, goal, plan.y, params.threshold, config.threshold)

    def side_by_side(self, epoch: int, pooled: np.ndarray) -> None:
        self.clock.check(epoch)  # first: once its watchdog has failed the trial, nothing more is written to it
        stop_if_requested(self.trial)
        self.reports.raise_if_pruned()
        self.reports.submit(epoch, pooled)

    def one_fold(self, fold: int, epoch: int, scores: np.ndarray) -> None:
        plan, params = self.plan, self.params
        step = fold * self.config.epochs + epoch
        y_fold = plan.y[plan.folds[fold].slots]
        value = report_epoch(self.trial, self.goal, y_fold, scores, params.threshold, step, self.config.threshold)
        if value is not None:
            where = f"fold model {fold + 1}, epoch {epoch}" if plan.kind == "cv" else f"epoch {epoch}"
            raise optuna.TrialPruned(f"pruned at {where} with {self.goal.name} = {value:.4g}")


def trial_function(config: SweepConfig, dataset: Dataset, goal: Goal, admit=None, figures=None):
    """The function Optuna calls per trial; failures are recorded with a reason in user attr fail_reason.

    `admit(trial)` (optional) says whether the trial is still within the study's budget; when it is not,
    the trial ends FAIL with over_budget set and nothing is trained. With a FigureWorker, each new best
    trial gets its figures attached (what optuna-dashboard shows), drawn while the next trial runs.
    """
    kind = model_kind(config)
    plan = dataset.validation

    def run_trial(trial: optuna.Trial) -> float:
        if admit is not None and not admit(trial):
            mark_over_budget(trial)
            raise OverBudget(OVER_BUDGET_REASON)
        stop_if_requested(trial)
        clock, watchdog = watch_trial(config, trial, kind.sequential_folds(plan))
        with watchdog:
            kind.start_trial()
            params = kind.suggest(trial)
            settings = train_settings(config, trial_seed(config.seed, trial.number), params)
            set_user_attrs(trial, setup_attrs(params, settings, kind.name))
            trained = _train(
                trial, watchdog, kind, dataset, params, settings, TrialHooks(trial, config, goal, plan, params, clock)
            )
            if not watchdog.claim():
                raise TrialTimedOut(watchdog.reason)
            if trained.compiled_by is not None:
                trial.set_user_attr("compiled_by", trained.compiled_by)
            threshold = judged_threshold(trial, config, goal, plan.y, trained.pooled, params)
            return record_result(
                trial,
                goal,
                dataset,
                trained.pooled,
                threshold,
                trained.seconds,
                trained.epochs_run,
                figures,
                trained.fold_scores,
            )

    return run_trial


def _train(trial, watchdog: Watchdog, kind, dataset: Dataset, params, settings, hooks: TrialHooks):
    """The trial's fold models, trained; a failure or a stop request is recorded as the trial's fail_reason unless
    its watchdog already ended it."""
    try:
        trained = kind.train_folds(dataset, params, settings, hooks, hooks.clock)
        hooks.reports.raise_if_pruned(wait=True)
        return trained
    except TrialFailed as failure:
        if watchdog.claim():
            trial.set_user_attr("fail_reason", str(failure))
        raise
    except KeyboardInterrupt:
        if watchdog.claim():
            trial.set_user_attr("fail_reason", stopping.reason() or "interrupted")
        raise
    finally:
        hooks.reports.close()
