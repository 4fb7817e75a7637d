"""The tables `sweep show` and `sweep studies` print (as data; the CLI renders them), from a study's summary
(sweep.study.summary)."""

from __future__ import annotations

from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep.metrics import Pick
from sweep.study import queries
from sweep.study.summary import SweepResult, best_trial, format_value, summarize

# Failed trials whose reasons `sweep show` lists (the most recent ones).
SHOWN_FAILURES = 5


def param_columns(trials, classes: bool = False) -> list[str]:
    """The param columns of a table of trials: minority_weight, the others in the order first seen, threshold (none
    for a target of several classes, whose trials have a decision rule instead)."""
    names = {"minority_weight": None}
    for trial in trials:
        names.update(dict.fromkeys(k for k in trial.params if k not in ("minority_weight", "threshold")))
    return [*names] if classes else [*names, "threshold"]


# What `sweep show` lists of a trial's validation results: (column, user attribute, digits).
BINARY_COLUMNS = (("precision", "val_precision", 3), ("recall", "val_recall", 3), ("flag rate", "val_flag_rate", 3))
CLASS_COLUMNS = (("macro-F1", "val_macro_f1", 3), ("balanced accuracy", "val_balanced_accuracy", 3))


def class_cells(attrs: dict, classes: list[str]) -> list[str]:
    """A trial of several classes in `sweep show`: its rule's tau and the class it recalls worst."""
    rule = attrs.get("decision_rule", {})
    recalls = {c: attrs.get(f"val_recall:{c}") for c in classes if attrs.get(f"val_recall:{c}") is not None}
    worst = min(recalls, key=recalls.get) if recalls else None
    shown = f"{worst} {format_value(recalls[worst], 3)}" if worst is not None else "-"
    return [format_value(rule.get("tau", 0.0 if rule.get("kind") == "argmax" else None), 3), shown]


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
    else:  # the best few only: one ordered query, not every trial of the study (sweep.study.queries)
        complete = queries.best_complete_trials(study, top)
        title = f"top {len(complete)} trials (validation)"
    data = study.user_attrs.get("data", {})
    folds, classes = data.get("validation", {}).get("kind") == "cv", data.get("classes", [])
    shown = CLASS_COLUMNS if classes else BINARY_COLUMNS
    params = param_columns(complete, bool(classes)) if complete else ["minority_weight", "hidden_width", "threshold"]
    columns = ["trial", summary.metric_name, *params, *(name for name, _, _ in shown)]
    columns += ["rule tau", "worst recall"] if classes else []
    columns += [*(["F1 sd over folds"] if folds and not classes else []), "seconds"]
    rows = []
    for trial in complete:
        a = trial.user_attrs
        rows.append(
            (
                f"#{trial.number}",
                format_values(trial),
                *(format_value(trial.params.get(name), 3 if name == "threshold" else 4) for name in params),
                *(format_value(a.get(key), digits) for _, key, digits in shown),
                *(class_cells(a, classes) if classes else []),
                *([format_value(a.get("cv_f1_sd"), 3)] if folds and not classes else []),
                format_value(a.get("train_seconds"), 3),
            )
        )
    failed = queries.last_trials(study, (TrialState.FAIL,), SHOWN_FAILURES)
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
