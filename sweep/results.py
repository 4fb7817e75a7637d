"""Read a study's results: trial counts, the best trial (a Pareto-front pick for several objectives), the
summary of a run, and the tables `sweep show` and `sweep studies` print (as data; the CLI renders them)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep import optuna_private
from sweep.metrics import Pick
from sweep.storage import mask_url

# Trials that count towards --trials: finished with a value, or stopped early by a pruner.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# Failed trials whose reasons `sweep show` lists (the most recent ones).
SHOWN_FAILURES = 5


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
    return optuna_private.count_trials(study, states, below_number)


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
    beats no complete trial now. Exact, and the query (it sorts the study's values: 8 ms at 20,000 trials)
    runs about once per new best instead of once per trial."""

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
    counts = optuna_private.state_counts(study)
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
    """A trial's params in a line: minority weight first, the threshold last, a model's own params between."""
    between = [
        f"{'width' if k == 'hidden_width' else k} {format_value(v)}"
        for k, v in params.items()
        if k not in ("minority_weight", "threshold")
    ]
    return ", ".join(
        [f"minority weight 1:{params['minority_weight']:.4g}", *between, f"threshold {params['threshold']:.3f}"]
    )


def param_columns(trials) -> list[str]:
    """The param columns of a table of trials: minority_weight, the others in the order first seen, threshold."""
    names = {"minority_weight": None}
    for trial in trials:
        names.update(dict.fromkeys(k for k in trial.params if k not in ("minority_weight", "threshold")))
    return [*names, "threshold"]


def format_values(trial: FrozenTrial) -> str:
    """A trial's objective value(s): one number, or several for a multi-objective study."""
    return ", ".join(format_value(v) for v in trial.values)


@dataclass(frozen=True)
class Table:
    """A table to print: column names and rows of formatted cells (a title when it has one)."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    title: str | None = None


@dataclass(frozen=True)
class StudyView:
    """What `sweep show` prints about one study: its summary, the trial `pick` chooses, its top trials (the
    Pareto front for several objectives) and the reasons of its last failed trials."""

    summary: SweepResult
    multi: bool
    chosen: FrozenTrial | None
    trials: Table
    failures: tuple[tuple[int, str], ...]  # (trial number, fail_reason)


def view_study(study: optuna.Study, storage_url: str, top: int = 10, pick: Pick | None = None) -> StudyView:
    """Read what `sweep show` prints: the best `top` complete trials, or the whole Pareto front of a
    multi-objective study, with their validation metrics (and F1 spread over folds when cross-validated)."""
    summary = summarize(study, storage_url)
    multi = len(study.directions) > 1
    if multi:
        complete = sorted(study.best_trials, key=lambda t: t.values)
        title = f"Pareto front: {len(complete)} trials (validation)"
    else:  # the best few only: one ordered query, not every trial of the study (sweep.optuna_private)
        complete = optuna_private.best_complete_trials(study, top)
        title = f"top {len(complete)} trials (validation)"
    folds = study.user_attrs.get("data", {}).get("validation", {}).get("kind") == "cv"
    params = param_columns(complete) if complete else ["minority_weight", "hidden_width", "threshold"]
    columns = ["trial", summary.metric_name, *params, "precision", "recall", "flag rate"]
    columns += [*(["F1 sd over folds"] if folds else []), "seconds"]
    rows = []
    for trial in complete:
        a = trial.user_attrs
        rows.append(
            (
                f"#{trial.number}",
                format_values(trial),
                *(format_value(trial.params.get(name), 3 if name == "threshold" else 4) for name in params),
                format_value(a.get("val_precision"), 3),
                format_value(a.get("val_recall"), 3),
                format_value(a.get("val_flag_rate"), 3),
                *([format_value(a.get("cv_f1_sd"), 3)] if folds else []),
                format_value(a.get("train_seconds"), 3),
            )
        )
    failed = optuna_private.last_trials(study, (TrialState.FAIL,), SHOWN_FAILURES)
    failures = tuple((t.number, t.user_attrs.get("fail_reason", "no reason recorded")) for t in failed)
    chosen = best_trial(study, pick) if multi else summary.best  # pick chooses on a Pareto front only
    return StudyView(summary, multi, chosen, Table(tuple(columns), tuple(rows), title), failures)


def studies_table(storage: optuna.storages.BaseStorage, storage_url: str) -> Table:
    """What `sweep studies` prints: one row per study in `storage` with its trial counts and best value."""
    rows = []
    for name in optuna.get_all_study_names(storage):
        study = optuna.load_study(study_name=name, storage=storage)
        summary = summarize(study, storage_url)
        running = summary.running
        best = summary.best
        rows.append(
            (
                name,
                str(summary.finished),
                str(summary.failed),
                str(running),
                summary.metric_name,
                summary.direction,
                format_values(best) if best else "-",
                f"#{best.number}" if best else "-",
            )
        )
    columns = ("study", "finished", "failed", "running", "metric", "direction", "best value", "best trial")
    return Table(columns, tuple(rows))
