"""One trial: space -> model/train -> metrics on the validation rows (one split, or pooled out-of-fold scores
of cross-validated fold models); writes the trial's user attributes."""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.dashboard import upload_trial_figures
from sweep.errors import OverBudget, TrialFailed
from sweep.metrics import Objective, metrics
from sweep.optuna_private import heartbeat_enabled, heartbeat_interval, record_heartbeat, storage_of, trial_id
from sweep.results import is_new_best
from sweep.runtime import device_label, placement, thread_settings
from sweep.space import TrialParams, suggest
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


def population_scores(population, plan: Validation, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(size, pooled rows) validation scores of a population's trials and each fold's (size, fold rows) block;
    the models of fold f are population members f*size .. (f+1)*size - 1."""
    blocks = [population.block_scores(fold.X_val, f * size, size) for f, fold in enumerate(plan.folds)]
    return plan.pool(blocks), blocks


def population_rate(config: SweepConfig) -> float:
    """The learning rate a population's Adam steps with: the fixed rate, or the geometric middle of a searched
    range (members then scale it to their own rates; see Population)."""
    if isinstance(config.learning_rate, tuple):
        return float(np.sqrt(config.learning_rate[0] * config.learning_rate[1]))
    return float(config.learning_rate)


def fold_subnets(members: list, plan: Validation) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """The population's networks for `members` under `plan`: one per member and fold (fold-major), the
    (rows, folds) keep matrix and each network's fold (None for a single validation split)."""
    folds = len(plan.folds)
    subnets = [member for _ in range(folds) for member in members]
    if plan.kind == "holdout":
        return subnets, None, None
    keep = np.column_stack([fold.keep for fold in plan.folds])
    return subnets, keep, np.repeat(np.arange(folds), len(members))


def check_scores(scores: np.ndarray) -> None:
    """A model that gives every validation row the same probability ranks nothing: fail its trial."""
    if np.ptp(scores) < 1e-7:
        raise TrialFailed(f"model predicts the same probability ({scores.flat[0]:.4g}) for every validation row")


def refit_trial(dataset: Dataset, trial) -> tuple:
    """Train a finished trial again from its stored settings: (model for --refit train or None, pooled
    validation metrics, pooled validation scores).

    A trial that was trained in a population is reproduced by retraining its whole population with the
    stored members and shuffle seed; its model (single validation split only) is sliced out as a plain
    Keras model. A cross-validated trial has no one model (--refit train is refused for it): None.
    """
    params = TrialParams.from_dict(trial.params)
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    plan = dataset.validation
    described = trial.user_attrs.get("population")
    if described is None:
        models, _, pooled, _ = fit_and_score(dataset, params, settings)
        model = models[0] if plan.kind == "holdout" else None
        return model, metrics(plan.y, pooled, params.threshold), pooled
    from sweep.population import Member, train_population

    members = [Member(m["hidden_width"], m["minority_weight"], m["seed"], m.get("learning_rate")) for m in described["members"]]
    subnets, keep, member_fold = fold_subnets(members, plan)
    population, _, _, _ = train_population(
        plan.X_fit, plan.y_fit, subnets, settings.epochs, settings.batch_size,
        described.get("learning_rate", settings.learning_rate), described["shuffle_seed"], keep=keep, member_fold=member_fold,
    )
    pooled = population_scores(population, plan, len(members))[0][described["member"]]
    model = population.member_model(described["member"]) if plan.kind == "holdout" else None
    return model, metrics(plan.y, pooled, params.threshold), pooled


def stop_if_requested(trial: optuna.Trial) -> None:
    """End the trial (FAIL, with the reason) when SIGINT/SIGTERM asked this worker to stop."""
    if stopping.requested():
        trial.set_user_attr("fail_reason", stopping.reason())
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
    for key, value in placement().items():  # where a cluster placed this worker (sweep.cluster)
        trial.set_user_attr(key, value)


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


FOLD_METRICS = ("f1", "precision", "recall", "average_precision", "flag_rate")


def record_result(trial, objective: Objective, dataset: Dataset, scores, threshold: float, seconds: float, epochs_run: int, artifacts, fold_scores=None):
    """Store a finished trial's pooled validation metrics (and, cross-validated, each fold's), timing and
    (for a new best) figures; return its value."""
    plan = dataset.validation
    found = metrics(plan.y, scores, threshold)
    for key, value in found.items():
        trial.set_user_attr(f"val_{key}", value)
    if plan.kind == "cv" and fold_scores is not None:
        per_fold = [metrics(plan.y[fold.slots], s, threshold) for fold, s in zip(plan.folds, fold_scores)]
        trial.set_user_attr("cv_folds", {k: [round(float(m[k]), 4) for m in per_fold] for k in FOLD_METRICS})
        trial.set_user_attr("cv_f1_sd", round(float(np.std([m["f1"] for m in per_fold])), 4))
    trial.set_user_attr("train_seconds", round(seconds, 3))
    trial.set_user_attr("epochs_run", int(epochs_run))
    value = objective.value(found)
    if artifacts is not None and not objective.is_multi and is_new_best(trial, value):
        upload_trial_figures(trial, artifacts, plan.y, scores, threshold)
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
        settings = train_settings(config, trial_seed(config.seed, trial.number), params)
        record_setup(trial, params, settings)

        def report(epoch: int, _loss: float, pooled) -> None:
            """Per-epoch (pooled) validation objective for the dashboard's learning curves and the pruner."""
            stop_if_requested(trial)
            value = report_epoch(trial, objective, dataset.validation.y, pooled, params.threshold, epoch)
            if value is not None:
                raise optuna.TrialPruned(f"pruned at epoch {epoch} with {objective.name} = {value:.4g}")

        try:
            _, result, scores, fold_scores = fit_and_score(dataset, params, settings, on_epoch=report)
        except TrialFailed as failure:
            trial.set_user_attr("fail_reason", str(failure))
            raise
        return record_result(trial, objective, dataset, scores, params.threshold, result.seconds, result.epochs_run, artifacts, fold_scores)

    return run_trial


def population_round(study: optuna.Study, config: SweepConfig, dataset: Dataset, objective: Objective, size: int, admit=None, artifacts=None) -> list:
    """Ask `size` trials, train them as one population, report and prune each member on its own, and tell
    each trial its value and user attributes as a single trial would. Returns the told (frozen) trials.

    Trials asked with study.ask() get no heartbeat from Optuna, so the members' heartbeats are recorded
    here while they train; a worker killed mid-population leaves trials that go stale and are retried.
    """
    from sweep.population import Member, train_population

    told = []
    with warnings.catch_warnings():  # heartbeats for asked trials are recorded by MemberTrials, by hand
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
    members = [
        Member(p.hidden_width, p.minority_weight, trial_seed(config.seed, t.number), p.learning_rate) for t, p in zip(trials, params)
    ]
    shared_rate = population_rate(config)
    plan = dataset.validation
    size, folds = len(trials), len(plan.folds)
    subnets, keep, member_fold = fold_subnets(members, plan)
    description = {
        "id": f"{study.study_name}:{trials[0].number}", "size": len(trials), "folds": folds, "shuffle_seed": shuffle_seed,
        "learning_rate": shared_rate,
        "members": [
            {"trial": t.number, "hidden_width": m.hidden_width, "minority_weight": m.minority_weight, "seed": m.seed, "learning_rate": m.learning_rate}
            for t, m in zip(trials, members)
        ],
    }
    for index, (trial, p, member) in enumerate(zip(trials, params, members)):
        record_setup(trial, p, train_settings(config, member.seed, p))
        trial.set_user_attr("population", description | {"member": index})
    open_trials = MemberTrials(study, trials, told)

    def on_epoch(epoch: int, losses, population, active):
        stopping.check()
        # The validation scores are taken now, before the next epoch changes the weights; reporting them
        # (metrics, trial.report, pruning: storage round trips) overlaps with the next epoch. A trial's
        # loss is the mean of its fold models' losses; its fold models leave training together.
        scores, _ = population_scores(population, plan, size)
        member_losses = losses.reshape(folds, size).mean(axis=0)
        open_trials.submit(report_members, epoch, member_losses, scores, active[:size])
        return np.tile(active[:size] & open_trials.still_open(size), folds)

    def report_members(epoch: int, losses, scores, active) -> None:
        for index in open_trials.indices():
            if not active[index]:
                continue
            trial = open_trials[index]
            if not np.isfinite(losses[index]):
                trial.set_user_attr("fail_reason", f"training loss became {losses[index]} at epoch {epoch}")
                open_trials.end(index, state=optuna.trial.TrialState.FAIL)
            elif report_epoch(trial, objective, plan.y, scores[index], params[index].threshold, epoch) is not None:
                open_trials.end(index, state=optuna.trial.TrialState.PRUNED)

    try:
        population, epochs_run, seconds, _ = train_population(
            plan.X_fit, plan.y_fit, subnets, config.epochs, config.batch_size, shared_rate,
            shuffle_seed, on_epoch, keep=keep, member_fold=member_fold,
        )
        open_trials.drain()
        scores, blocks = population_scores(population, plan, size)
        values = {}
        for index in open_trials.indices():
            trial = open_trials[index]
            try:
                check_scores(scores[index])
            except TrialFailed as failure:
                trial.set_user_attr("fail_reason", str(failure))
                open_trials.end(index, state=optuna.trial.TrialState.FAIL)
                continue
            values[index] = record_result(
                trial, objective, dataset, scores[index], params[index].threshold, seconds / len(trials), epochs_run[index],
                None, [block[index] for block in blocks],
            )
        # Figures only for the population's best member, and only when it is the study's new best: drawing
        # them for each member that was a best so far in telling order would cost seconds for nothing.
        if artifacts is not None and values and not objective.is_multi:
            best = (min if objective.direction == "minimize" else max)(values, key=values.get)
            if is_new_best(open_trials[best], values[best]):
                upload_trial_figures(open_trials[best], artifacts, plan.y, scores[best], params[best].threshold)
        for index, value in values.items():
            open_trials.end(index, values=value)
    except BaseException as exc:  # KeyboardInterrupt included: no member may stay RUNNING
        open_trials.drain(raise_errors=False)
        reason = stopping.reason() or f"population stopped: {type(exc).__name__}: {exc}"
        for index in open_trials.indices():
            trial = open_trials[index]
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", reason)
            open_trials.end(index, state=optuna.trial.TrialState.FAIL)
        raise
    finally:
        open_trials.close()
    return told


class MemberTrials:
    """The running trials of a population, ended (told) one by one, with a heartbeat thread and a one-thread
    reporter.

    Per-epoch reporting is storage round trips (about 2 ms per member on SQLite) while TensorFlow trains
    with one thread and releases the GIL, so the reporter thread overlaps the two on a second core. Its
    jobs run in epoch order; a member it prunes leaves training at the next epoch boundary it sees (its
    trial is told PRUNED at the epoch the pruner chose; the extra epoch it trained is never used).
    """

    def __init__(self, study: optuna.Study, trials: list, told: list) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.study, self.told = study, told
        self._open = dict(enumerate(trials))
        self._lock = threading.Lock()
        self._reporter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="population-reporter")
        self._pending: list = []
        self._storage = storage_of(study)
        self._stop_beating = threading.Event()
        self._beater = None
        if heartbeat_enabled(self._storage):
            # A trial with no heartbeat row is never taken for stale, so the first stamp is taken right away.
            self._beater = threading.Thread(target=self._beat, name="population-heartbeat", daemon=True)
            self._beater.start()

    def __getitem__(self, index: int) -> optuna.Trial:
        return self._open[index]

    def indices(self) -> list[int]:
        with self._lock:
            return sorted(self._open)

    def still_open(self, size: int) -> np.ndarray:
        """Which members are still running, as a mask; also raises the first error a report job hit."""
        waiting = []
        for job in self._pending:  # one look per job: a job that finished between two looks was once lost
            if job.done():
                job.result()
            else:
                waiting.append(job)
        self._pending = waiting
        mask = np.zeros(size, dtype=bool)
        mask[self.indices()] = True
        return mask

    def submit(self, job, *args) -> None:
        self._pending.append(self._reporter.submit(job, *args))

    def drain(self, raise_errors: bool = True) -> None:
        """Wait for every queued report; then stop the reporter thread."""
        pending, self._pending = self._pending, []
        self._reporter.shutdown(wait=True)
        if raise_errors:
            for job in pending:
                job.result()

    def end(self, index: int, **tell) -> None:
        with self._lock:
            trial = self._open.pop(index)
        self.told.append(self.study.tell(trial, **tell))

    def close(self) -> None:
        """Stop the heartbeat (call once every member has been told)."""
        self._stop_beating.set()
        if self._beater is not None:
            self._beater.join()

    def _beat(self) -> None:
        """Stamp every open member now and then every heartbeat_interval, from a thread of its own as Optuna
        does for study.optimize: a long epoch must not make live members look dead."""
        while True:
            for index in self.indices():
                trial = self._open.get(index)
                if trial is not None:
                    record_heartbeat(self._storage, trial_id(trial))
            if self._stop_beating.wait(heartbeat_interval(self._storage)):
                return
