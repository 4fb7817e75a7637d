"""One trial: space -> model/train -> metrics on the validation part; writes the trial's user attributes."""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.dashboard import is_new_best, upload_trial_figures
from sweep.errors import OverBudget, TrialFailed
from sweep.metrics import Objective, metrics
from sweep.runtime import device_label, thread_settings
from sweep.space import TrialParams, suggest
from sweep.train import TrainSettings, score, train_model

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset


def trial_seed(base_seed: int, trial_number: int) -> int:
    """A distinct, reproducible training seed per trial."""
    return (base_seed * 1_000_003 + trial_number) % (2**31 - 1)


def train_settings(config: SweepConfig, seed: int) -> TrainSettings:
    return TrainSettings(config.epochs, config.batch_size, config.learning_rate, config.hidden_layers, seed)


def fit_and_score(dataset: Dataset, params: TrialParams, settings: TrainSettings, on_epoch=None):
    """Train on the training part, score the validation part; returns (model, result, validation metrics,
    validation scores)."""
    model, result = train_model(
        dataset.train.X, dataset.train.y, params.hidden_width, params.class_weight, settings, on_epoch
    )
    scores = score(model, dataset.validation.X)
    if np.ptp(scores) < 1e-7:
        raise TrialFailed(f"model predicts the same probability ({scores[0]:.4g}) for every validation row")
    return model, result, metrics(dataset.validation.y, scores, params.threshold), scores


def stop_if_requested(trial: optuna.Trial) -> None:
    """End the trial (FAIL, with the reason) when SIGINT/SIGTERM asked this worker to stop."""
    if stopping.requested():
        trial.set_user_attr("fail_reason", f"interrupted by {stopping.requested()}")
        stopping.check()


def make_objective(config: SweepConfig, dataset: Dataset, objective: Objective, admit=None, artifacts=None):
    """The function Optuna calls per trial; failures are recorded with a reason in user attr fail_reason.

    `admit(trial)` (optional) says whether the trial is still within the study's budget; when it is not,
    the trial ends FAIL with over_budget set and nothing is trained. With an artifact store, each new best
    trial gets its figures attached and the study note is refreshed (what optuna-dashboard shows).
    """

    def run_trial(trial: optuna.Trial) -> float:
        if admit is not None and not admit(trial):
            reason = "not run: other workers had already filled the study's trial budget"
            trial.set_user_attr("over_budget", True)
            trial.set_user_attr("fail_reason", reason)
            raise OverBudget(reason)
        stop_if_requested(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # ties a trial to its process
        params = suggest(trial, config)
        settings = train_settings(config, trial_seed(config.seed, trial.number))
        trial.set_user_attr("train_settings", dataclasses.asdict(settings))
        trial.set_user_attr("class_weight", {"0": 1.0, "1": params.minority_weight})
        trial.set_user_attr("device", device_label())
        trial.set_user_attr("threads", thread_settings())

        def report(epoch: int, _loss: float, model) -> None:
            """Per-epoch validation objective for the dashboard's learning curves and the pruner."""
            stop_if_requested(trial)
            if objective.is_multi:
                return  # Optuna cannot prune multi-objective trials, and has no intermediate values for them
            value = objective.value_of_scores(dataset.validation.y, score(model, dataset.validation.X), params.threshold)
            if np.isnan(value):
                return
            trial.report(value, epoch)
            if trial.should_prune():
                trial.set_user_attr("pruned_at_epoch", epoch)
                trial.set_user_attr("epochs_run", epoch)
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with {objective.name} = {value:.4g}")

        try:
            _, result, found, scores = fit_and_score(dataset, params, settings, on_epoch=report)
        except TrialFailed as failure:
            trial.set_user_attr("fail_reason", str(failure))
            raise
        for key, value in found.items():
            trial.set_user_attr(f"val_{key}", value)
        trial.set_user_attr("train_seconds", round(result.seconds, 3))
        trial.set_user_attr("epochs_run", result.epochs_run)
        value = objective.value(found)
        if artifacts is not None and not objective.is_multi and is_new_best(trial, value):
            upload_trial_figures(trial, artifacts, dataset.validation.y, scores, params.threshold)
        return value

    return run_trial
