"""One trial: space -> model/train -> metrics on the validation part; writes the trial's user attributes."""

from __future__ import annotations

import dataclasses
import os
import socket
import warnings
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
    check_scores(scores)
    return model, result, metrics(dataset.validation.y, scores, params.threshold), scores


def check_scores(scores: np.ndarray) -> None:
    """A model that gives every validation row the same probability ranks nothing: fail its trial."""
    if np.ptp(scores) < 1e-7:
        raise TrialFailed(f"model predicts the same probability ({scores[0]:.4g}) for every validation row")


def refit_trial(dataset: Dataset, trial) -> tuple:
    """Train a finished trial again from its stored settings: (model, validation metrics, validation scores).

    A trial that was trained in a population is reproduced by retraining its whole population with the
    stored members and shuffle seed, then slicing its member out as a plain Keras model.
    """
    params = TrialParams.from_dict(trial.params)
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    described = trial.user_attrs.get("population")
    if described is None:
        model, _, found, scores = fit_and_score(dataset, params, settings)
        return model, found, scores
    from sweep.population import Member, train_population

    members = [Member(m["hidden_width"], m["minority_weight"], m["seed"]) for m in described["members"]]
    population, _, _, _ = train_population(
        dataset.train.X, dataset.train.y, members, settings.epochs, settings.batch_size, settings.learning_rate,
        described["shuffle_seed"],
    )
    model = population.member_model(described["member"])
    scores = score(model, dataset.validation.X)
    return model, metrics(dataset.validation.y, scores, params.threshold), scores


def stop_if_requested(trial: optuna.Trial) -> None:
    """End the trial (FAIL, with the reason) when SIGINT/SIGTERM asked this worker to stop."""
    if stopping.requested():
        trial.set_user_attr("fail_reason", f"interrupted by {stopping.requested()}")
        stopping.check()


OVER_BUDGET_REASON = "not run: other workers had already filled the study's trial budget"


def mark_over_budget(trial: optuna.Trial) -> None:
    trial.set_user_attr("over_budget", True)
    trial.set_user_attr("fail_reason", OVER_BUDGET_REASON)


def record_setup(trial: optuna.Trial, params: TrialParams, settings: TrainSettings) -> None:
    """What a trial records before training: who runs it, where, and what retrains it."""
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # ties a trial to its process
    trial.set_user_attr("train_settings", dataclasses.asdict(settings))
    trial.set_user_attr("class_weight", {"0": 1.0, "1": params.minority_weight})
    trial.set_user_attr("device", device_label())
    trial.set_user_attr("threads", thread_settings())


def report_epoch(trial: optuna.Trial, objective: Objective, y_true, scores, threshold: float, epoch: int) -> float | None:
    """Report the epoch's validation objective; when the pruner stops the trial, record the epoch and
    return the value it was stopped at (else None)."""
    if objective.is_multi:
        return None  # Optuna cannot prune multi-objective trials, and has no intermediate values for them
    value = objective.value_of_scores(y_true, scores, threshold)
    if np.isnan(value):
        return None
    trial.report(value, epoch)
    if not trial.should_prune():
        return None
    trial.set_user_attr("pruned_at_epoch", epoch)
    trial.set_user_attr("epochs_run", epoch)
    return value


def record_result(trial, objective: Objective, dataset: Dataset, scores, threshold: float, seconds: float, epochs_run: int, artifacts):
    """Store a finished trial's validation metrics, timing and (for a new best) figures; return its value."""
    found = metrics(dataset.validation.y, scores, threshold)
    for key, value in found.items():
        trial.set_user_attr(f"val_{key}", value)
    trial.set_user_attr("train_seconds", round(seconds, 3))
    trial.set_user_attr("epochs_run", int(epochs_run))
    value = objective.value(found)
    if artifacts is not None and not objective.is_multi and is_new_best(trial, value):
        upload_trial_figures(trial, artifacts, dataset.validation.y, scores, threshold)
    return value


def make_objective(config: SweepConfig, dataset: Dataset, objective: Objective, admit=None, artifacts=None):
    """The function Optuna calls per trial; failures are recorded with a reason in user attr fail_reason.

    `admit(trial)` (optional) says whether the trial is still within the study's budget; when it is not,
    the trial ends FAIL with over_budget set and nothing is trained. With an artifact store, each new best
    trial gets its figures attached and the study note is refreshed (what optuna-dashboard shows).
    """

    def run_trial(trial: optuna.Trial) -> float:
        if admit is not None and not admit(trial):
            mark_over_budget(trial)
            raise OverBudget(OVER_BUDGET_REASON)
        stop_if_requested(trial)
        params = suggest(trial, config)
        settings = train_settings(config, trial_seed(config.seed, trial.number))
        record_setup(trial, params, settings)

        def report(epoch: int, _loss: float, model) -> None:
            """Per-epoch validation objective for the dashboard's learning curves and the pruner."""
            stop_if_requested(trial)
            value = report_epoch(trial, objective, dataset.validation.y, score(model, dataset.validation.X), params.threshold, epoch)
            if value is not None:
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with {objective.name} = {value:.4g}")

        try:
            _, result, _, scores = fit_and_score(dataset, params, settings, on_epoch=report)
        except TrialFailed as failure:
            trial.set_user_attr("fail_reason", str(failure))
            raise
        return record_result(trial, objective, dataset, scores, params.threshold, result.seconds, result.epochs_run, artifacts)

    return run_trial


def population_round(study: optuna.Study, config: SweepConfig, dataset: Dataset, objective: Objective, size: int, admit=None, artifacts=None) -> list:
    """Ask `size` trials, train them as one population, report and prune each member on its own, and tell
    each trial its value and user attributes as a single trial would. Returns the told (frozen) trials.

    Trials asked with study.ask() get no heartbeat from Optuna, so this records one per running member
    after every epoch; a worker killed mid-population leaves trials that go stale and are retried.
    """
    from sweep.population import Member, train_population

    told = []
    with warnings.catch_warnings():  # heartbeats for asked trials are recorded below, by hand
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
        asked = [study.ask() for _ in range(size)]
    trials = []
    for trial in asked:
        if admit is not None and not admit(trial):
            mark_over_budget(trial)
            told.append(study.tell(trial, state=optuna.trial.TrialState.FAIL))
        else:
            trials.append(trial)
    if not trials:
        return told
    params = [suggest(trial, config) for trial in trials]
    shuffle_seed = trial_seed(config.seed, trials[0].number)
    members = [Member(p.hidden_width, p.minority_weight, trial_seed(config.seed, t.number)) for t, p in zip(trials, params)]
    description = {
        "id": f"{study.study_name}:{trials[0].number}", "size": len(trials), "shuffle_seed": shuffle_seed,
        "members": [{"trial": t.number, "hidden_width": m.hidden_width, "minority_weight": m.minority_weight, "seed": m.seed} for t, m in zip(trials, members)],
    }
    for index, (trial, p, member) in enumerate(zip(trials, params, members)):
        record_setup(trial, p, train_settings(config, member.seed))
        trial.set_user_attr("population", description | {"member": index})
    storage = study._storage
    open_trials = {index: trial for index, trial in enumerate(trials)}
    beating = optuna.storages._heartbeat.is_heartbeat_enabled(storage)

    def heartbeat() -> None:
        # A trial with no heartbeat row is never taken for stale, so stamp each member as soon as it exists.
        if beating:
            for trial in open_trials.values():
                storage.record_heartbeat(trial._trial_id)

    heartbeat()

    def end(index: int, **tell) -> None:
        told.append(study.tell(open_trials.pop(index), **tell))

    def on_epoch(epoch: int, losses, population, active):
        stop_if_requested(next(iter(open_trials.values())))
        scores = population.scores(dataset.validation.X)
        still = active.copy()
        for index in [i for i in list(open_trials) if active[i]]:
            trial = open_trials[index]
            if not np.isfinite(losses[index]):
                trial.set_user_attr("fail_reason", f"training loss became {losses[index]} at epoch {epoch}")
                end(index, state=optuna.trial.TrialState.FAIL)
                still[index] = False
                continue
            if report_epoch(trial, objective, dataset.validation.y, scores[index], params[index].threshold, epoch) is not None:
                end(index, state=optuna.trial.TrialState.PRUNED)
                still[index] = False
        heartbeat()
        return still

    try:
        population, epochs_run, seconds, _ = train_population(
            dataset.train.X, dataset.train.y, members, config.epochs, config.batch_size, config.learning_rate,
            shuffle_seed, on_epoch,
        )
        scores = population.scores(dataset.validation.X)
        for index in list(open_trials):
            trial = open_trials[index]
            try:
                check_scores(scores[index])
            except TrialFailed as failure:
                trial.set_user_attr("fail_reason", str(failure))
                end(index, state=optuna.trial.TrialState.FAIL)
                continue
            value = record_result(
                trial, objective, dataset, scores[index], params[index].threshold, seconds / len(trials), epochs_run[index], artifacts
            )
            end(index, values=value)
    except BaseException as exc:  # KeyboardInterrupt included: no member may stay RUNNING
        for index, trial in list(open_trials.items()):
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", f"population stopped: {type(exc).__name__}: {exc}")
            end(index, state=optuna.trial.TrialState.FAIL)
        raise
    return told
