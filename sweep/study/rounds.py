"""A population round: ask K trials, train them together as one population (sweep.models.population), then report,
prune and tell each as a single trial would be (sweep.study.trial); and a population trial's retraining for export."""

from __future__ import annotations

import threading
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.errors import TrialFailed, TrialTimedOut
from sweep.metrics import Goal
from sweep.models import TrainedFolds, check_scores, model_kind
from sweep.models.network import on_cadence
from sweep.models.population import fold_subnets, population_scores
from sweep.multiclass import bind_class_goal
from sweep.space import suggest, suggest_width, trial_seed
from sweep.study.optuna_private import (
    heartbeat_enabled,
    heartbeat_interval,
    record_heartbeat,
    set_user_attrs,
    storage_of,
    trial_id,
)
from sweep.study.reports import ReportThread, report_epoch, report_every
from sweep.study.trial import (
    class_judge,
    judged_threshold,
    mark_over_budget,
    record_class_result,
    record_result,
    setup_attrs,
    train_settings,
)
from sweep.study.watchdog import TrialClock, Watchdog

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset


def population_rate(config: SweepConfig) -> float:
    """The learning rate a population's Adam steps with: the fixed rate, or the geometric middle of a searched
    range (members then scale it to their own rates; see Population)."""
    if isinstance(config.learning_rate, tuple):
        return float(np.sqrt(config.learning_rate[0] * config.learning_rate[1]))
    return float(config.learning_rate)


def population_attrs(
    study_name: str, first: int, folds: int, shuffle_seed: int, learning_rate: float, members: list[dict]
) -> list[dict]:
    """Each member's `population` user attribute: its population's id, size and folds, its own index, and the
    number of the population's first trial (`first_trial`), which alone also holds what retraining any member
    needs (`members`: each member's trial, width, weight, seed and rate; `shuffle_seed`; the shared
    `learning_rate`). So a member stores the same few numbers whatever K, and a round K entries, not K x K."""
    head = {"id": f"{study_name}:{first}", "size": len(members), "folds": folds}
    described = {"shuffle_seed": shuffle_seed, "learning_rate": learning_rate, "members": members}
    return [
        head | {"member": index, "first_trial": first} | (described if index == 0 else {})
        for index in range(len(members))
    ]


def population_round(
    study: optuna.Study,
    config: SweepConfig,
    dataset: Dataset,
    goal: Goal,
    size: int,
    admit=None,
    figures=None,
    deadline: float | None = None,
) -> list:
    """Ask `size` trials, train them as one population, report and prune each member on its own, and tell
    each trial its value and user attributes as a single trial would. Returns the told (frozen) trials.

    Trials asked with study.ask() get no heartbeat from Optuna, so the members' heartbeats are recorded
    here while they train; a worker killed mid-population leaves trials that go stale and are retried.

    The members start and train together, so they share one clock: at the first epoch's end past
    --trial-timeout every member still open ends FAIL with the reason (each has run exactly that long), as it
    does, with run_timeout set, at the first epoch's end (but the last) past `deadline` (time.monotonic() of
    the run's --timeout); they leave training there as pruned members do. A round stuck in one call is
    failed by its watchdog (sweep.study.watchdog.Watchdog).
    """
    config = model_kind(config, dataset).sized(dataset)  # as run_sweep trains (a no-op on its sized config)
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
    if trials:
        # Heartbeats start before anything else is recorded: a worker killed from here on leaves trials that go
        # stale (a trial never stamped would stay RUNNING for ever).
        PopulationRound(study, config, dataset, goal, MemberTrials(study, trials, told), deadline).run(figures)
    return told


class PopulationRound:
    """One population of open trials (MemberTrials) from set-up to telling: one clock, one watchdog, the
    members' reports on the MemberTrials' reporter thread."""

    def __init__(self, study, config: SweepConfig, dataset: Dataset, goal: Goal, open_trials, deadline) -> None:
        self.study, self.config, self.dataset, self.goal, self.deadline = study, config, dataset, goal, deadline
        self.open_trials, self.trials = open_trials, open_trials.trials
        self.plan = dataset.validation
        self.size, self.folds = len(self.trials), len(self.plan.folds)
        self.clock = TrialClock(config.trial_timeout, config.epochs)
        self.every = report_every(config.epochs)  # as a single trial reports
        self.watchdog = Watchdog(self.clock, config.grace_period, open_trials.fail_open)
        self.params: list = []
        self.class_goal = bind_class_goal(goal, dataset.classes)  # None for a binary target
        self.judges: list = []  # each member's judge: the goal, or for several classes its ClassJudge

    def run(self, figures) -> None:
        """Set up, train and tell the members; on any failure (KeyboardInterrupt included) no member stays RUNNING."""
        try:  # everything after the heartbeats started: a failure ends every open member with its reason
            self.watchdog.start()
            population, epochs_run, seconds = self._train()
            self.open_trials.drain()
            if not self.open_trials.indices():  # every member pruned, failed or stopped by a timeout
                return
            scores, blocks = population_scores(population, self.plan, self.size)
            if not self.watchdog.claim():  # it failed every member while they were being scored
                return
            self._tell(scores, blocks, epochs_run, seconds, figures)
        except BaseException as exc:
            self.watchdog.stop()
            self.open_trials.drain(raise_errors=False)
            if isinstance(exc, TrialTimedOut) and self.watchdog.fired:
                return  # its SIGALRM: the watchdog has ended every member with its reason
            self._fail_open(stopping.reason() or f"population stopped: {type(exc).__name__}: {exc}")
            raise
        finally:
            self.watchdog.stop()
            self.open_trials.close()

    def _train(self) -> tuple:
        """Draw the members' params, record what retrains them, and train them as one population: (population,
        epochs each member ran, seconds)."""
        from sweep.models.population import Member, train_population

        config, trials, plan, counts = self.config, self.trials, self.plan, self.dataset.class_counts
        self.params = [suggest(trial, config, suggest_width, counts) for trial in trials]
        self.judges = [
            self.goal if self.class_goal is None else class_judge(self.class_goal, self.dataset, p) for p in self.params
        ]
        shuffle_seed = trial_seed(config.seed, trials[0].number)
        members = [
            Member(
                p.hidden_width, p.minority_weight, trial_seed(config.seed, t.number), p.learning_rate, p.class_weights
            )
            for t, p in zip(trials, self.params)
        ]
        shared_rate = population_rate(config)
        described = [
            {
                "trial": t.number,
                "hidden_width": m.hidden_width,
                "minority_weight": m.minority_weight,
                "seed": m.seed,
                "learning_rate": m.learning_rate,
            }
            | ({} if m.class_weights is None else {"class_weights": list(m.class_weights)})
            for t, m in zip(trials, members)
        ]
        placed = population_attrs(
            self.study.study_name, trials[0].number, self.folds, shuffle_seed, shared_rate, described
        )
        for trial, p, member, population_attr in zip(trials, self.params, members, placed):
            settings = train_settings(config, member.seed, p)
            set_user_attrs(trial, setup_attrs(p, settings) | {"population": population_attr})
        subnets, keep, member_fold = fold_subnets(members, plan)
        population, epochs_run, seconds, _ = train_population(
            plan.X_fit, plan.y_fit, subnets, config.epochs, config.batch_size, shared_rate, shuffle_seed,
            self._on_epoch, keep=keep, member_fold=member_fold, weight_decay=config.weight_decay,
        )  # fmt: skip
        return population, epochs_run, seconds

    def _on_epoch(self, epoch: int, losses, population, active):
        """After each epoch: a stop request, the clock and the run's deadline; then, every `every`-th epoch and at the
        last, the members' reports, queued."""
        stopping.check()
        config, size, folds = self.config, self.size, self.folds
        reason, attrs = self.clock.over(epoch), {}
        if reason is None and self.deadline is not None and epoch < config.epochs and time.monotonic() >= self.deadline:
            reason = f"stopped at the run's --timeout {config.timeout:g} s ({self.clock.where})"
            attrs = {"run_timeout": True}
        if reason is not None:  # after this epoch's reports, on the reporter: every open member ends FAIL
            self.open_trials.submit(self.open_trials.fail_open, reason, attrs)
            return np.zeros(size * folds, dtype=bool)
        if on_cadence(epoch, self.every, config.epochs):
            # The validation scores are taken now, before the next epoch changes the weights; reporting them
            # (metrics, trial.report, pruning: storage round trips) overlaps with the next epoch. A trial's
            # loss is the mean of its fold models' losses; its fold models leave training together.
            scores, _ = population_scores(population, self.plan, size)
            member_losses = losses.reshape(folds, size).mean(axis=0)
            self.open_trials.submit(self._report_members, epoch, member_losses, scores, active[:size])
        return np.tile(active[:size] & self.open_trials.still_open(size), folds)

    def _report_members(self, epoch: int, losses, scores, active) -> None:
        """Each open member's epoch: a NaN loss fails it, the pruner may prune it."""
        open_trials, config = self.open_trials, self.config
        for index in open_trials.indices():
            trial = open_trials.get(index)
            if not active[index] or trial is None:  # None: ended meanwhile by the watchdog
                continue
            try:
                if not np.isfinite(losses[index]):
                    trial.set_user_attr("fail_reason", f"training loss became {losses[index]} at epoch {epoch}")
                    open_trials.end(index, state=optuna.trial.TrialState.FAIL)
                    continue
                threshold, judge = self.params[index].threshold, self.judges[index]
                if (
                    report_epoch(trial, judge, self.plan.y, scores[index], threshold, epoch, config.threshold)
                    is not None
                ):
                    open_trials.end(index, state=optuna.trial.TrialState.PRUNED)
            except Exception:
                if open_trials.get(index) is not None:
                    raise  # no error where the watchdog ended the member while it was being reported

    def _tell(self, scores, blocks, epochs_run, seconds: float, figures) -> None:
        """Record each open member's result and tell it; a member whose scores rank nothing ends FAIL."""
        open_trials, plan = self.open_trials, self.plan
        values, thresholds = {}, {}
        for index in open_trials.indices():
            trial = open_trials[index]
            try:
                check_scores(scores[index])
            except TrialFailed as failure:
                trial.set_user_attr("fail_reason", str(failure))
                open_trials.end(index, state=optuna.trial.TrialState.FAIL)
                continue
            if self.class_goal is not None:
                trained = TrainedFolds([], scores[index], [], seconds / self.size, epochs_run[index])
                values[index] = record_class_result(trial, self.judges[index], self.dataset, trained, {})
                continue
            thresholds[index] = judged_threshold(
                trial, self.config, self.goal, plan.y, scores[index], self.params[index]
            )
            values[index] = record_result(
                trial, self.goal, self.dataset, scores[index], thresholds[index], seconds / self.size,
                epochs_run[index], None, [block[index] for block in blocks],
            )  # fmt: skip
        # Figures only for the population's best member, and only when it is the study's new best: drawing
        # them for each member that was a best so far in telling order would cost seconds for nothing.
        if figures is not None and values and not self.goal.is_multi:
            best = (min if self.goal.direction == "minimize" else max)(values, key=values.get)
            if self.class_goal is not None:  # several classes: the confusion matrix of its rule's decisions
                rule = self.judges[best].choose(plan.y, scores[best])[0]
                thresholds[best] = (rule, self.dataset.classes)
            figures.submit_if_best(open_trials[best], values[best], plan.y, scores[best], thresholds[best])
        for index, value in values.items():
            open_trials.end(index, values=value)

    def _fail_open(self, reason: str) -> None:
        """End every open member FAIL, with `reason` unless it has one already."""
        for index in self.open_trials.indices():
            trial = self.open_trials[index]
            if "fail_reason" not in trial.user_attrs:
                trial.set_user_attr("fail_reason", reason)
            self.open_trials.end(index, state=optuna.trial.TrialState.FAIL)


class MemberTrials:
    """The running trials of a population, ended (told) one by one, with a heartbeat thread and a one-thread
    reporter.

    Per-epoch reporting is storage round trips for every member (docs/benchmarks/population.md#section-8) while
    TensorFlow trains with one thread and releases the GIL, so the reporter thread overlaps the two on a second core.
    Its jobs run in epoch order; a member it prunes leaves training at the next epoch boundary it sees (its trial is
    told PRUNED at the epoch the pruner chose; the extra epoch it trained is never used).
    """

    def __init__(self, study: optuna.Study, trials: list, told: list) -> None:
        self.study, self.told, self.trials = study, told, list(trials)
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
