"""A population round: ask K trials, train them together as one population (sweep.population), then report,
prune and tell each as a single trial would be (sweep.trial); and a population trial's retraining for export."""

from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.errors import TrialFailed, TrialTimedOut
from sweep.metrics import Goal, metrics
from sweep.optuna_private import heartbeat_enabled, heartbeat_interval, record_heartbeat, set_user_attrs, storage_of, trial_by_number, trial_id
from sweep.space import TrialParams, suggest
from sweep.train import TrainSettings
from sweep.trial import (
    ReportThread, TrialClock, Watchdog, check_scores, judged_threshold, mark_over_budget, record_result, report_epoch, setup_attrs,
    train_settings, trial_seed,
)

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset, Validation


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


def population_attrs(study_name: str, first: int, folds: int, shuffle_seed: int, learning_rate: float, members: list[dict]) -> list[dict]:
    """Each member's `population` user attribute: its population's id, size and folds, its own index, and the
    number of the population's first trial (`first_trial`), which alone also holds what retraining any member
    needs (`members`: each member's trial, width, weight, seed and rate; `shuffle_seed`; the shared
    `learning_rate`). So a member stores the same few numbers whatever K, and a round K entries, not K x K."""
    head = {"id": f"{study_name}:{first}", "size": len(members), "folds": folds}
    described = {"shuffle_seed": shuffle_seed, "learning_rate": learning_rate, "members": members}
    return [head | {"member": index, "first_trial": first} | (described if index == 0 else {}) for index in range(len(members))]


def population_description(trial, study: optuna.Study | None = None) -> dict:
    """What retraining population member `trial` needs: its `population` attribute with the population's
    members, shuffle seed and rate. Those are on the trial itself for the first member, and for every member
    of a study swept before they were stored once (every member held them all); otherwise they are read from
    the population's first trial in `study` (one trial read, not the study's trials)."""
    described = trial.user_attrs["population"]
    if "members" in described:
        return described
    if study is None:
        raise ValueError(f"trial #{trial.number} points to its population's trial #{described['first_trial']}: pass its study")
    first = trial_by_number(study, described["first_trial"]).user_attrs["population"]
    return first | {"member": described["member"]}


def refit_member(dataset: Dataset, trial, study: optuna.Study | None = None) -> tuple:
    """Train a finished trial that was trained in a population again: (model for --refit train or None, pooled
    validation metrics, pooled validation scores), as sweep.trial.refit_trial gives for a trial trained alone.

    Its whole population is retrained with the stored members and shuffle seed (population_description: from
    the population's first trial in `study`, or from the trial itself in a study of the old layout); its model
    (single validation split only) is sliced out as a plain Keras model. A cross-validated trial has no one
    model: None.
    """
    population, member, size = _retrained_population(dataset, trial, study)
    params = TrialParams.from_dict(trial.params)
    plan = dataset.validation
    pooled = population_scores(population, plan, size)[0][member]
    model = population.member_model(member) if plan.kind == "holdout" else None
    return model, metrics(plan.y, pooled, params.threshold), pooled


def retrain_population_members(dataset: Dataset, trial, study: optuna.Study | None = None) -> dict:
    """Every trial of population member `trial`'s population, from one retraining of it: {trial number: (its
    fold networks in the plan's order, its pooled validation scores)}; what an ensemble of several trials needs."""
    population, _, size = _retrained_population(dataset, trial, study)
    pooled = population_scores(population, dataset.validation, size)[0]
    described = population_description(trial, study)["members"]
    folds = len(dataset.validation.folds)
    return {
        entry["trial"]: ([member_network(population, f * size + index) for f in range(folds)], pooled[index])
        for index, entry in enumerate(described)
    }


def retrain_member_fold_models(dataset: Dataset, trial, study: optuna.Study | None = None) -> tuple:
    """sweep.trial.retrain_fold_models for a population member: (its fold networks, pooled validation metrics,
    pooled validation scores), from one retraining of its population."""
    models, pooled = retrain_population_members(dataset, trial, study)[trial.number]
    params = TrialParams.from_dict(trial.params)
    return models, metrics(dataset.validation.y, pooled, params.threshold), pooled


def member_network(population, index: int):
    """Network `index` of a trained population (member k of fold f is f * size + k) as a plain Network."""
    from sweep.train import Network

    units = slice(int(population.offsets[index]), int(population.offsets[index + 1]))
    v = population.weights()
    return Network(((v["W1"][:, units], v["b1"][units]), (v["w2"][units, None], v["b2"][index : index + 1])))


def _retrained_population(dataset: Dataset, trial, study: optuna.Study | None) -> tuple:
    """Population member `trial`'s population trained again from its stored description: (population, the
    trial's index in it, its size)."""
    from sweep.population import Member, train_population

    settings = TrainSettings(**trial.user_attrs["train_settings"])
    plan = dataset.validation
    described = population_description(trial, study)
    members = [Member(m["hidden_width"], m["minority_weight"], m["seed"], m.get("learning_rate")) for m in described["members"]]
    subnets, keep, member_fold = fold_subnets(members, plan)
    population, _, _, _ = train_population(
        plan.X_fit, plan.y_fit, subnets, settings.epochs, settings.batch_size,
        described.get("learning_rate", settings.learning_rate), described["shuffle_seed"], keep=keep, member_fold=member_fold,
    )
    return population, described["member"], len(members)


def population_round(
    study: optuna.Study, config: SweepConfig, dataset: Dataset, goal: Goal, size: int, admit=None, figures=None, deadline: float | None = None,
) -> list:
    """Ask `size` trials, train them as one population, report and prune each member on its own, and tell
    each trial its value and user attributes as a single trial would. Returns the told (frozen) trials.

    Trials asked with study.ask() get no heartbeat from Optuna, so the members' heartbeats are recorded
    here while they train; a worker killed mid-population leaves trials that go stale and are retried.

    The members start and train together, so they share one clock: at the first epoch's end past
    --trial-timeout every member still open ends FAIL with the reason (each has run exactly that long), as it
    does, with run_timeout set, at the first epoch's end (but the last) past `deadline` (time.monotonic() of
    the run's --timeout); they leave training there as pruned members do. A round stuck in one call is
    failed by its watchdog (sweep.trial.Watchdog).
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
    # Heartbeats start before anything else is recorded: a worker killed from here on leaves trials that go
    # stale (a trial never stamped would stay RUNNING for ever).
    open_trials = MemberTrials(study, trials, told)
    plan = dataset.validation
    size, folds = len(trials), len(plan.folds)
    clock = TrialClock(config.trial_timeout, config.epochs)
    watchdog = Watchdog(clock, config.grace_period, open_trials.fail_open)

    def on_epoch(epoch: int, losses, population, active):
        stopping.check()
        reason, attrs = clock.over(epoch), {}
        if reason is None and deadline is not None and epoch < config.epochs and time.monotonic() >= deadline:
            reason, attrs = f"stopped at the run's --timeout {config.timeout:g} s ({clock.where})", {"run_timeout": True}
        if reason is not None:  # after this epoch's reports, on the reporter: every open member ends FAIL
            open_trials.submit(open_trials.fail_open, reason, attrs)
            return np.zeros(size * folds, dtype=bool)
        # The validation scores are taken now, before the next epoch changes the weights; reporting them
        # (metrics, trial.report, pruning: storage round trips) overlaps with the next epoch. A trial's
        # loss is the mean of its fold models' losses; its fold models leave training together.
        scores, _ = population_scores(population, plan, size)
        member_losses = losses.reshape(folds, size).mean(axis=0)
        open_trials.submit(report_members, epoch, member_losses, scores, active[:size])
        return np.tile(active[:size] & open_trials.still_open(size), folds)

    def report_members(epoch: int, losses, scores, active) -> None:
        for index in open_trials.indices():
            trial = open_trials.get(index)
            if not active[index] or trial is None:  # None: ended meanwhile by the watchdog
                continue
            try:
                if not np.isfinite(losses[index]):
                    trial.set_user_attr("fail_reason", f"training loss became {losses[index]} at epoch {epoch}")
                    open_trials.end(index, state=optuna.trial.TrialState.FAIL)
                elif report_epoch(trial, goal, plan.y, scores[index], params[index].threshold, epoch, config.threshold) is not None:
                    open_trials.end(index, state=optuna.trial.TrialState.PRUNED)
            except Exception:
                if open_trials.get(index) is not None:
                    raise  # no error where the watchdog ended the member while it was being reported

    try:  # everything after the heartbeats started: a failure ends every open member with its reason
        watchdog.start()
        params = [suggest(trial, config) for trial in trials]
        shuffle_seed = trial_seed(config.seed, trials[0].number)
        members = [
            Member(p.hidden_width, p.minority_weight, trial_seed(config.seed, t.number), p.learning_rate) for t, p in zip(trials, params)
        ]
        shared_rate = population_rate(config)
        subnets, keep, member_fold = fold_subnets(members, plan)
        described = [
            {"trial": t.number, "hidden_width": m.hidden_width, "minority_weight": m.minority_weight, "seed": m.seed, "learning_rate": m.learning_rate}
            for t, m in zip(trials, members)
        ]
        placed = population_attrs(study.study_name, trials[0].number, folds, shuffle_seed, shared_rate, described)
        for trial, p, member, population_attr in zip(trials, params, members, placed):
            set_user_attrs(trial, setup_attrs(p, train_settings(config, member.seed, p)) | {"population": population_attr})
        population, epochs_run, seconds, _ = train_population(
            plan.X_fit, plan.y_fit, subnets, config.epochs, config.batch_size, shared_rate,
            shuffle_seed, on_epoch, keep=keep, member_fold=member_fold,
        )
        open_trials.drain()
        if not open_trials.indices():  # every member pruned, failed or stopped by a timeout
            return told
        scores, blocks = population_scores(population, plan, size)
        if not watchdog.claim():  # it failed every member while they were being scored
            return told
        values, thresholds = {}, {}
        for index in open_trials.indices():
            trial = open_trials[index]
            try:
                check_scores(scores[index])
            except TrialFailed as failure:
                trial.set_user_attr("fail_reason", str(failure))
                open_trials.end(index, state=optuna.trial.TrialState.FAIL)
                continue
            thresholds[index] = judged_threshold(trial, config, goal, plan.y, scores[index], params[index])
            values[index] = record_result(
                trial, goal, dataset, scores[index], thresholds[index], seconds / len(trials), epochs_run[index],
                None, [block[index] for block in blocks],
            )
        # Figures only for the population's best member, and only when it is the study's new best: drawing
        # them for each member that was a best so far in telling order would cost seconds for nothing.
        if figures is not None and values and not goal.is_multi:
            best = (min if goal.direction == "minimize" else max)(values, key=values.get)
            figures.submit_if_best(open_trials[best], values[best], plan.y, scores[best], thresholds[best])
        for index, value in values.items():
            open_trials.end(index, values=value)
    except BaseException as exc:  # KeyboardInterrupt included: no member may stay RUNNING
        watchdog.stop()
        open_trials.drain(raise_errors=False)
        if isinstance(exc, TrialTimedOut) and watchdog.fired:
            return told  # its SIGALRM: the watchdog has ended every member with its reason
        reason = stopping.reason() or f"population stopped: {type(exc).__name__}: {exc}"
        for index in open_trials.indices():
            trial = open_trials[index]
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", reason)
            open_trials.end(index, state=optuna.trial.TrialState.FAIL)
        raise
    finally:
        watchdog.stop()
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
        self.study, self.told = study, told
        self._open = dict(enumerate(trials))
        self._lock = threading.Lock()
        self.reports = ReportThread("population-reporter")
        self._storage = storage_of(study)
        self._stop_beating = threading.Event()
        self._beater = None
        if heartbeat_enabled(self._storage):
            # A trial with no heartbeat row is never taken for stale, so the first stamp is taken right away.
            self._beater = threading.Thread(target=self._beat, name="population-heartbeat", daemon=True)
            self._beater.start()

    def __getitem__(self, index: int) -> optuna.Trial:
        return self._open[index]

    def get(self, index: int) -> optuna.Trial | None:
        """Member `index`'s trial while it is open, else None."""
        return self._open.get(index)

    def indices(self) -> list[int]:
        with self._lock:
            return sorted(self._open)

    def still_open(self, size: int) -> np.ndarray:
        """Which members are still running, as a mask; also raises the first error a report job hit."""
        self.reports.raise_errors()
        mask = np.zeros(size, dtype=bool)
        mask[self.indices()] = True
        return mask

    def submit(self, job, *args) -> None:
        self.reports.submit(job, *args)

    def drain(self, raise_errors: bool = True) -> None:
        """Wait for every queued report; then stop the reporter thread."""
        self.reports.close(raise_errors)

    def end(self, index: int, **tell) -> None:
        """Tell member `index` (nothing if it has already been ended, by fail_open)."""
        with self._lock:
            trial = self._open.pop(index, None)
        if trial is not None:
            self.told.append(self.study.tell(trial, **tell))

    def fail_open(self, reason: str, attrs: dict | None = None) -> None:
        """End every open member FAIL with fail_reason `reason` (and `attrs`), from any thread (the reporter's, a
        watchdog's): they leave training at the next epoch boundary, and get no heartbeat from now on."""
        with self._lock:
            ending, self._open = self._open, {}
        for _, trial in sorted(ending.items()):
            set_user_attrs(trial, {"fail_reason": reason} | (attrs or {}))
            self.told.append(self.study.tell(trial, state=optuna.trial.TrialState.FAIL))

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

