"""One trial: space -> model/train -> metrics on the validation rows (one split, or pooled out-of-fold scores
of cross-validated fold models); writes the trial's user attributes. Also the pieces a population round
(sweep.study.rounds) shares with a single trial: seeds, settings, score checks, per-epoch reports and results."""

from __future__ import annotations

import dataclasses
import os
import socket
from typing import TYPE_CHECKING

import numpy as np
import optuna

from sweep import stopping
from sweep.errors import OverBudget, TrialFailed, TrialTimedOut
from sweep.metrics import Goal, choose_threshold, metrics
from sweep.models import model_kind
from sweep.models.network import TrainSettings
from sweep.multiclass import ClassJudge, bind_class_goal, class_metrics, effective_priors
from sweep.runtime import device_label, placement, thread_settings
from sweep.space import TrialParams, trial_seed
from sweep.study.optuna_private import set_param, set_user_attrs
from sweep.study.reports import EpochReports, report_every
from sweep.study.watchdog import Watchdog, watch_trial

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset
    from sweep.data.folds import Validation


def train_settings(config: SweepConfig, seed: int, params: TrialParams) -> TrainSettings:
    """What trains the trial besides its params' weight and width: its learning rate is searched or fixed."""
    rate = params.learning_rate if params.learning_rate is not None else config.learning_rate
    return TrainSettings(config.epochs, config.batch_size, float(rate), config.hidden_layers, seed, config.weight_decay)


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
        "class_weight": {str(c): w for c, w in params.class_weight.items()},
        "device": device_label(),
        "threads": thread_settings(),
        **placement(),  # where a cluster placed this worker (sweep.study.cluster)
    }


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
    extra: dict | None = None,
):
    """Store a finished trial's pooled validation metrics (and, cross-validated, each fold's), timing and `extra`
    attributes in one write, and hand a new best's figures to `figures` (a FigureWorker, or None); return its value."""
    plan = dataset.validation
    found = metrics(plan.y, scores, threshold)
    attrs = {f"val_{key}": value for key, value in found.items()}
    if plan.kind == "cv" and fold_scores is not None:
        per_fold = [metrics(plan.y[fold.slots], s, threshold) for fold, s in zip(plan.folds, fold_scores)]
        attrs["cv_folds"] = {k: [round(float(m[k]), 4) for m in per_fold] for k in FOLD_METRICS}
        attrs["cv_f1_sd"] = round(float(np.std([m["f1"] for m in per_fold])), 4)
    attrs |= {"train_seconds": round(seconds, 3), "epochs_run": int(epochs_run)} | (extra or {})
    set_user_attrs(trial, attrs)
    value = goal.value(found)
    if figures is not None and not goal.is_multi:
        figures.submit_if_best(trial, value, plan.y, scores, threshold)
    return value


class TrialHooks:
    """A single trial's EpochHooks (sweep.models): after an epoch of fold models trained side by side, the clock, a
    stop request and the pruner's last verdict are checked and the pooled objective is reported on a thread; after
    an epoch of one fold model trained alone, the pruner's last verdict is acted on (in the middle of fit) and the
    fold's objective is reported on the thread at step fold * epochs + epoch. Either way a verdict stops training
    one report after the epoch it was given at, and the trial is told PRUNED at that epoch's value. Side by side,
    a long training reports every `every`-th epoch (report_every)."""

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
        self.every = report_every(config.epochs)

    def side_by_side(self, epoch: int, pooled: np.ndarray) -> None:
        self.clock.check(epoch)  # first: once its watchdog has failed the trial, nothing more is written to it
        stop_if_requested(self.trial)
        self.reports.raise_if_pruned()
        self.reports.submit(epoch, pooled)

    def one_fold(self, fold: int, epoch: int, scores: np.ndarray) -> None:
        self.reports.raise_if_pruned()
        plan = self.plan
        where = f"fold model {fold + 1}, epoch {epoch}" if plan.kind == "cv" else f"epoch {epoch}"
        self.reports.submit(fold * self.config.epochs + epoch, scores, plan.y[plan.folds[fold].slots], where)


def trial_function(config: SweepConfig, dataset: Dataset, goal: Goal, admit=None, figures=None):
    """The function Optuna calls per trial; failures are recorded with a reason in user attr fail_reason.

    `admit(trial)` (optional) says whether the trial is still within the study's budget; when it is not,
    the trial ends FAIL with over_budget set and nothing is trained. With a FigureWorker, a new best trial gets its
    figures attached (what optuna-dashboard shows) once it has stayed the best a while, drawn while trials run on.
    """
    config = model_kind(config, dataset).sized(dataset)  # as run_sweep trains (a no-op on its sized config)
    kind = model_kind(config, dataset)
    plan = dataset.validation
    class_goal = bind_class_goal(goal, dataset.classes)

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
            judge = goal if class_goal is None else class_judge(class_goal, dataset, params)
            hooks = TrialHooks(trial, config, judge, plan, params, clock)
            trained = _train(trial, watchdog, kind, dataset, params, settings, hooks)
            if not watchdog.claim():
                raise TrialTimedOut(watchdog.reason)
            compiled = {} if trained.compiled_by is None else {"compiled_by": trained.compiled_by}
            if class_goal is not None:
                return record_class_result(trial, judge, dataset, trained, compiled, figures)
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
                compiled,
            )

    return run_trial


def class_judge(class_goal, dataset: Dataset, params: TrialParams) -> ClassJudge:
    """A trial's judge on a target of three or more classes: its objective, and the priors its weighted model learns
    (what its logit adjustment corrects)."""
    return ClassJudge(class_goal, effective_priors(dataset.class_counts, params.class_weight), class_goal.name)


def record_class_result(trial, judge: ClassJudge, dataset: Dataset, trained, extra: dict, figures=None) -> float:
    """Store a finished trial of several classes in one write: the decision rule chosen on its pooled validation
    probabilities, the metrics of its decisions (overall and each class's), timing and `extra`; hand a new best's
    confusion matrix to `figures`; return its value."""
    plan = dataset.validation
    rule, value = judge.choose(plan.y, trained.pooled)
    found = class_metrics(plan.y, rule.decide(trained.pooled), dataset.classes)
    attrs = {f"val_{key}": value for key, value in found.items()} | {"decision_rule": rule.record()}
    attrs |= {"train_seconds": round(trained.seconds, 3), "epochs_run": int(trained.epochs_run)} | extra
    set_user_attrs(trial, attrs)
    if figures is not None:
        figures.submit_if_best(trial, value, plan.y, trained.pooled, (rule, dataset.classes))
    return value


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
