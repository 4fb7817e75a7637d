"""A study's state as the runner and export need it: trial counts, the best trial (a Pareto-front pick for several
objectives), whether a value is a new best, and the summary of a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.metrics import Pick
from sweep.study import queries
from sweep.study.storage import mask_url

# Trials that count towards --trials: finished with a value, or stopped early by a pruner.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


@dataclass(frozen=True)
class SweepResult:
    """What a finished run has to tell: where the study is and how good its best trial is."""

    study_name: str
    storage: str  # masked
    metric_name: str
    direction: str
    finished: int
    failed: int
    ran_now: int
    best: FrozenTrial | None
    stop_reason: str | None = None
    running: int = 0  # trials RUNNING when it was read


def count_trials(study: optuna.Study, states: Sequence[TrialState], below_number: int | None = None) -> int:
    """How many trials of the study are in `states` (and numbered below `below_number`), read from the
    storage now: one COUNT query, so its cost does not grow with the study."""
    return queries.count_trials(study, states, below_number)


def best_trial(study: optuna.Study, pick: Pick | None = None, complete: int | None = None) -> FrozenTrial | None:
    """The best complete trial, or None when there is none. For a multi-objective study: the trial of the
    Pareto front chosen by `pick` (default: best validation F1), or None when no front trial meets its bound.
    `complete`: the study's complete trials when the caller has just counted them."""
    if (count_trials(study, (TrialState.COMPLETE,)) if complete is None else complete) == 0:
        return None
    if len(study.directions) == 1:
        return study.best_trial
    pick = pick or Pick()
    front = [t for t in study.best_trials if pick.allows(validation_metrics(t))]
    return max(front, key=lambda t: pick.key(validation_metrics(t))) if front else None


def _beats(study: optuna.Study, value: float, best: float) -> bool:
    return value > best if study.direction == optuna.study.StudyDirection.MAXIMIZE else value < best


def is_new_best(trial: optuna.Trial, value: float) -> bool:
    """Whether `value` beats every complete trial of the study so far (the trial itself is still running)."""
    try:
        best = trial.study.best_value  # one ordered query on an RDB storage
    except ValueError:  # no complete trial yet
        return True
    return _beats(trial.study, value, best)


class NewBests:
    """is_new_best for one process's trials of one study, querying the storage only when a value beats the best
    this process last read: the study's best only improves, so a value that does not beat a best read earlier
    beats no complete trial now. Exact, and the query (it sorts the study's values, a cost that grows with the
    study: docs/benchmarks/trial-speed.md#section-11) runs about once per new best instead of once per trial."""

    def __init__(self) -> None:
        self.best_read: float | None = None

    def __call__(self, trial: optuna.Trial, value: float) -> bool:
        if self.best_read is not None and not _beats(trial.study, value, self.best_read):
            return False
        try:
            self.best_read = trial.study.best_value
        except ValueError:  # no complete trial yet
            return True
        return _beats(trial.study, value, self.best_read)


def validation_metrics(trial: FrozenTrial) -> dict:
    """A trial's val_* user attributes without the prefix."""
    return {k.removeprefix("val_"): v for k, v in trial.user_attrs.items() if k.startswith("val_")}


@dataclass(frozen=True)
class Tally:
    """A study's finished (budget), failed and running trials and its best trial, read with one state-count query."""

    finished: int
    failed: int
    running: int
    best: FrozenTrial | None


def tally(study: optuna.Study) -> Tally:
    counts = queries.state_counts(study)
    return Tally(
        finished=sum(counts.get(state, 0) for state in BUDGET_STATES),
        failed=counts.get(TrialState.FAIL, 0),
        running=counts.get(TrialState.RUNNING, 0),
        best=best_trial(study, complete=counts.get(TrialState.COMPLETE, 0)),
    )


def summarize(study: optuna.Study, storage_url: str, ran_now: int = 0, stop_reason: str | None = None) -> SweepResult:
    objective = study.user_attrs.get("objective", {})
    counted = tally(study)
    return SweepResult(
        study_name=study.study_name,
        storage=mask_url(storage_url),
        metric_name=",".join(study.metric_names or [objective.get("name", "value")]),
        direction=",".join(d.name.lower() for d in study.directions),
        finished=counted.finished,
        failed=counted.failed,
        ran_now=ran_now,
        best=counted.best,
        stop_reason=stop_reason,
        running=counted.running,
    )


def format_value(value, digits: int = 4) -> str:
    """One cell of a printed table: a float to `digits` significant digits, None as "-"."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def describe_params(params: dict) -> str:
    """A trial's params in a line: minority weight first (of several classes: the rarest class's), the threshold last
    (none where a decision rule decides), a model's own params between."""
    between = [
        f"{'width' if k == 'hidden_width' else k} {format_value(v)}"
        for k, v in params.items()
        if k not in ("minority_weight", "threshold")
    ]
    threshold = [f"threshold {params['threshold']:.3f}"] if "threshold" in params else []
    return ", ".join([f"minority weight 1:{params['minority_weight']:.4g}", *between, *threshold])
