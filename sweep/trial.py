"""One trial: space -> model/train -> metrics on the validation rows (one split, or pooled out-of-fold scores
of cross-validated fold models); writes the trial's user attributes. Also the pieces a population round
(sweep.rounds) shares with a single trial: seeds, settings, score checks, per-epoch reports and results."""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.errors import OverBudget, TrialFailed
from sweep.metrics import Goal, metrics
from sweep.optuna_private import set_user_attrs
from sweep.runtime import device_label, placement, thread_settings
from sweep.space import TrialParams, fixed_params, suggest
from sweep.train import TrainSettings, score, train_models

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset, Validation


def trial_seed(base_seed: int, trial_number: int) -> int:
    """A distinct, reproducible training seed per trial."""
    return (base_seed * 1_000_003 + trial_number) % (2**31 - 1)


def train_settings(config: SweepConfig, seed: int, params: TrialParams) -> TrainSettings:
    """What trains the trial besides its params' weight and width: its learning rate is searched or fixed."""
    rate = params.learning_rate if params.learning_rate is not None else config.learning_rate
    return TrainSettings(config.epochs, config.batch_size, float(rate), config.hidden_layers, seed)


def fit_and_score(dataset: Dataset, params: TrialParams, settings: TrainSettings, on_epoch=None):
    """Train the trial's fold models (one for a single validation split) and score their validation rows;
    returns (models, result, pooled validation scores, per-fold scores)."""
    plan = dataset.validation

    def report(epoch: int, loss: float, models) -> None:
        on_epoch(epoch, loss, plan.pool(fold_scores_of(plan, models)))

    models, result = train_models(
        plan.X_fit, plan.y_fit, params.hidden_width, params.class_weight, settings, [f.keep for f in plan.folds],
        None if on_epoch is None else report,
    )
    fold_scores = fold_scores_of(plan, models)
    pooled = plan.pool(fold_scores)
    check_scores(pooled)
    return models, result, pooled, fold_scores


def fold_scores_of(plan: Validation, models) -> list[np.ndarray]:
    """Each fold model's scores on its own validation rows."""
    return [score(model, fold.X_val) for model, fold in zip(models, plan.folds)]


def check_scores(scores: np.ndarray) -> None:
    """A model that gives every validation row the same probability ranks nothing: fail its trial."""
    if np.ptp(scores) < 1e-7:
        raise TrialFailed(f"model predicts the same probability ({scores.flat[0]:.4g}) for every validation row")


def fold_rows(plan: Validation) -> list:
    """What each fold model of a user-model trial trains and is judged on, as rows of plan.X_fit."""
    from sweep.keras_fit import FoldRows

    n_fit = len(plan.y_fit)
    return [FoldRows(f.training_rows(n_fit), f.val_rows, f.X_val if f.val_rows is None else None) for f in plan.folds]


def fit_and_score_user_model(dataset: Dataset, spec: str, params: TrialParams, settings: TrainSettings, on_epoch=None):
    """A user-model trial's fold models trained one after another through Keras fit and scored on their
    validation rows; returns (models, result, pooled validation scores, per-fold scores, compiled_by)."""
    from sweep.keras_fit import train_user_models

    plan = dataset.validation
    models, fold_scores, result, compiled_by = train_user_models(
        spec, params.model_params, params.class_weight, settings, plan.X_fit, plan.y_fit, fold_rows(plan), on_epoch,
    )
    pooled = plan.pool(fold_scores)
    check_scores(pooled)
    return models, result, pooled, fold_scores, compiled_by


def pruning_steps(config: SweepConfig, fold_models: int) -> int:
    """Steps a trial reports: its epochs, or, for a user model's fold models trained one after another, the
    epochs of all of them (step = fold * epochs + epoch, so trials are compared fold by fold)."""
    return config.epochs * (fold_models if config.user_model else 1)


def refit_trial(dataset: Dataset, trial) -> tuple:
    """Train a finished trial that was trained alone again from its stored settings: (model for --refit train
    or None, pooled validation metrics, pooled validation scores). A cross-validated trial has no one model
    (--refit train is refused for it): None. A trial trained in a population: sweep.rounds.refit_member.
    """
    params = TrialParams.from_dict(trial.params)
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    plan = dataset.validation
    models, _, pooled, _ = fit_and_score(dataset, params, settings)
    model = models[0] if plan.kind == "holdout" else None
    return model, metrics(plan.y, pooled, params.threshold), pooled


def refit_user_trial(dataset: Dataset, trial, config: SweepConfig) -> tuple:
    """refit_trial for a user model's trial: its fold models through Keras fit again, from the stored seed."""
    params = user_trial_params(trial, config)
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    plan = dataset.validation
    models, _, pooled, _, _ = fit_and_score_user_model(dataset, config.model, params, settings)
    model = models[0] if plan.kind == "holdout" else None
    return model, metrics(plan.y, pooled, params.threshold), pooled


def user_trial_params(trial, config: SweepConfig) -> TrialParams:
    """A finished user-model trial's params, with the fixed values of the study's space."""
    return TrialParams.from_dict(trial.params, fixed_params(config), user_model=True)


def stop_if_requested(trial: optuna.Trial) -> None:
    """End the trial (FAIL, with the reason) when SIGINT/SIGTERM asked this worker to stop."""
    if stopping.requested():
        trial.set_user_attr("fail_reason", stopping.reason())
        stopping.check()


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
        **placement(),  # where a cluster placed this worker (sweep.cluster)
    }


def report_epoch(trial: optuna.Trial, goal: Goal, y_true, scores, threshold: float, epoch: int) -> float | None:
    """Report the epoch's validation objective; when the pruner stops the trial, record the epoch and
    return the value it was stopped at (else None)."""
    if goal.is_multi:
        return None  # Optuna cannot prune multi-objective trials, and has no intermediate values for them
    value = goal.value_of_scores(y_true, scores, threshold)
    if np.isnan(value):
        return None
    trial.report(value, epoch)
    if not trial.should_prune():
        return None
    set_user_attrs(trial, {"pruned_at_epoch": epoch, "epochs_run": epoch})
    return value


FOLD_METRICS = ("f1", "precision", "recall", "average_precision", "flag_rate")


def record_result(trial, goal: Goal, dataset: Dataset, scores, threshold: float, seconds: float, epochs_run: int, figures, fold_scores=None):
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

    def __init__(self, trial: optuna.Trial, goal: Goal, y_true: np.ndarray, threshold: float) -> None:
        self.trial, self.goal, self.y_true, self.threshold = trial, goal, y_true, threshold
        self._thread = ReportThread("trial-reports")
        self._pruned: str | None = None  # the pruner's verdict, once it has given one

    def submit(self, epoch: int, pooled: np.ndarray) -> None:
        self._thread.submit(self._report, epoch, pooled)

    def _report(self, epoch: int, pooled: np.ndarray) -> None:
        if self._pruned is not None:
            return
        value = report_epoch(self.trial, self.goal, self.y_true, pooled, self.threshold, epoch)
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


def trial_function(config: SweepConfig, dataset: Dataset, goal: Goal, admit=None, figures=None):
    """The function Optuna calls per trial; failures are recorded with a reason in user attr fail_reason.

    `admit(trial)` (optional) says whether the trial is still within the study's budget; when it is not,
    the trial ends FAIL with over_budget set and nothing is trained. With a FigureWorker, each new best
    trial gets its figures attached (what optuna-dashboard shows), drawn while the next trial runs.
    """

    if config.user_model:
        return user_trial_function(config, dataset, goal, admit, figures)

    def run_trial(trial: optuna.Trial) -> float:
        if admit is not None and not admit(trial):
            mark_over_budget(trial)
            raise OverBudget(OVER_BUDGET_REASON)
        stop_if_requested(trial)
        params = suggest(trial, config)
        settings = train_settings(config, trial_seed(config.seed, trial.number), params)
        set_user_attrs(trial, setup_attrs(params, settings))

        reports = EpochReports(trial, goal, dataset.validation.y, params.threshold)

        def report(epoch: int, _loss: float, pooled) -> None:
            """Per-epoch (pooled) validation objective for the dashboard's learning curves and the pruner."""
            stop_if_requested(trial)
            reports.raise_if_pruned()
            reports.submit(epoch, pooled)

        try:
            _, result, scores, fold_scores = fit_and_score(dataset, params, settings, on_epoch=report)
            reports.raise_if_pruned(wait=True)
        except TrialFailed as failure:
            trial.set_user_attr("fail_reason", str(failure))
            raise
        finally:
            reports.close()
        return record_result(trial, goal, dataset, scores, params.threshold, result.seconds, result.epochs_run, figures, fold_scores)

    return run_trial



def user_trial_function(config: SweepConfig, dataset: Dataset, goal: Goal, admit=None, figures=None):
    """trial_function for a user's own model: Keras fit per fold model, one after another. After every epoch the
    fold model's validation objective is reported at step fold * epochs + epoch (the pruner may stop the trial
    there, in the middle of fit); a stop request ends fit at the next batch and the trial FAIL with the reason."""
    plan = dataset.validation

    def run_trial(trial: optuna.Trial) -> float:
        if admit is not None and not admit(trial):
            mark_over_budget(trial)
            raise OverBudget(OVER_BUDGET_REASON)
        stop_if_requested(trial)
        import keras

        keras.backend.clear_session(free_memory=False)  # Keras' global state of earlier trials' models
        params = suggest(trial, config)
        params = dataclasses.replace(params, model_params=params.model_params | fixed_params(config))
        settings = train_settings(config, trial_seed(config.seed, trial.number), params)
        set_user_attrs(trial, setup_attrs(params, settings, config.model))

        def report(fold: int, epoch: int, _loss: float, scores) -> None:
            value = report_epoch(trial, goal, plan.y[plan.folds[fold].slots], scores, params.threshold, fold * config.epochs + epoch)
            if value is not None:
                where = f"fold model {fold + 1}, epoch {epoch}" if plan.kind == "cv" else f"epoch {epoch}"
                raise optuna.TrialPruned(f"pruned at {where} with {goal.name} = {value:.4g}")

        try:
            _, result, scores, fold_scores, compiled_by = fit_and_score_user_model(dataset, config.model, params, settings, report)
        except TrialFailed as failure:
            trial.set_user_attr("fail_reason", str(failure))
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("fail_reason", stopping.reason() or "interrupted")
            raise
        trial.set_user_attr("compiled_by", compiled_by)
        return record_result(trial, goal, dataset, scores, params.threshold, result.seconds, result.epochs_run, figures, fold_scores)

    return run_trial
