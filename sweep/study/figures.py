"""What optuna-dashboard shows beyond Optuna's own pages, written while a study runs: PNG figures of the best
trial (precision-recall curve with the chosen threshold, confusion matrix) in Optuna's artifact store, drawn off
the training path, and a markdown study note."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np
import optuna

from sweep.errors import StorageUnreachable
from sweep.plots import class_confusion_figure, trial_figures
from sweep.study.optuna_private import attach_artifact, storage_of, trial_id
from sweep.study.summary import NewBests, describe_params, tally


def artifact_dir(storage_url: str) -> Path:
    """Where a study's artifacts live: beside a SQLite file (studies/artifacts), else ./studies/artifacts."""
    from sqlalchemy.engine import make_url

    from sweep.study.storage import sqlite_file

    database = sqlite_file(make_url(storage_url))
    return Path(database).parent / "artifacts" if database else Path("studies") / "artifacts"


def artifact_store(storage_url: str) -> optuna.artifacts.FileSystemArtifactStore:
    folder = artifact_dir(storage_url)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


# A new best's figures are drawn once it has stayed the best this long, or when the run ends: most bests of a
# fresh sweep are superseded within seconds, and every pair drawn competes with training for the CPU
# (docs/benchmarks/user-model.md#overhead).
SETTLE_SECONDS = 10.0


class FigureWorker:
    """Draws the best trial's figures (sweep.plots.trial_figures) and lists them on the trial in the artifact store,
    on one background thread that the next trial does not wait for (docs/benchmarks/trial-speed.md#section-11).
    A trial that has finished by then still gets them (optuna_private.attach_artifact).

    A new best is drawn once it has stayed the best for `settle` seconds; one that a newer best superseded before
    then is skipped, since drawing it would show a trial that is no longer the best, and on this thread it slows
    training (matplotlib holds the GIL the training loop needs between epochs). The last best always gets its
    figures: `close()` draws it at once and waits. A figure that fails is logged and never fails the sweep."""

    def __init__(self, store, settle: float = SETTLE_SECONDS) -> None:
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.store, self.settle = store, settle
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trial-figures")
        self._jobs: list = []
        self._latest = 0  # the newest submission: an older one is skipped
        self._closing = threading.Event()
        self.is_new_best = NewBests()

    def submit_if_best(
        self, trial: optuna.Trial, value: float, y_true: np.ndarray, scores: np.ndarray, threshold: float
    ) -> None:
        """Queue the trial's figures when `value` is a new best of the study (the trial is still running); `threshold`
        is (decision rule, class names) for a target of several classes."""
        if self.is_new_best(trial, value):
            self.submit(trial, y_true, scores, threshold)

    def submit(self, trial: optuna.Trial, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> None:
        import time

        self._latest += 1
        storage, number = storage_of(trial.study), trial.number
        due = time.monotonic() + self.settle
        arguments = (self._latest, due, storage, trial_id(trial), number, np.array(y_true), np.array(scores), threshold)
        self._jobs.append(self._pool.submit(self._attach, *arguments))

    def _attach(
        self, submission: int, due: float, storage, trial_key: int, number: int, y_true, scores, threshold: float
    ) -> None:
        import time

        self._closing.wait(max(0.0, due - time.monotonic()))
        if submission != self._latest:
            return
        with tempfile.TemporaryDirectory() as folder:
            if isinstance(threshold, tuple):  # several classes: (the trial's decision rule, the class names)
                rule, names = threshold
                paths = [
                    class_confusion_figure(
                        y_true, rule.decide(scores), names, Path(folder) / "confusion.png", "validation"
                    )
                ]
            else:
                paths = trial_figures(y_true, scores, threshold, Path(folder), f"trial #{number}")
            for path in paths:
                attach_artifact(storage, trial_key, self.store, str(path), "image/png")

    def close(self) -> None:
        """Draw the last best now and wait for it (log the figures that failed); the worker takes no more."""
        self._closing.set()
        self._pool.shutdown(wait=True)
        for job in self._jobs:  # a storage that stayed away is said once, by the run
            if job.exception() is not None and not isinstance(job.exception(), StorageUnreachable):
                logging.getLogger("sweep").warning("could not attach a trial's figures: %s", job.exception())
        self._jobs = []


def study_note(study: optuna.Study) -> str:
    """Markdown for the dashboard's study note: data, protocol, objective and the current best."""
    attrs = study.user_attrs
    data, objective, config = attrs.get("data", {}), attrs.get("objective", {}), attrs.get("config", {})
    counted = tally(study)
    splits = data.get("splits", {})
    classes = data.get("classes", [])
    if classes:
        header = ["| part | rows | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
        rows = "\n".join(
            f"| {name} | {part['rows']} | " + " | ".join(str(part["classes"][c]) for c in classes) + " |"
            for name, part in splits.items()
        )
        labels = f", classes {', '.join(f'`{c}`' for c in classes)}."
    else:
        header = ["| part | rows | positives | share |", "|---|---|---|---|"]
        rows = "\n".join(
            f"| {name} | {part['rows']} | {part['positives']} | {part['positives'] / max(part['rows'], 1):.2%} |"
            for name, part in splits.items()
        )
        labels = f", positive label `{data.get('positive_label', '?')}`."
    lines = [
        f"# {study.study_name}",
        f"**Data**: `{data.get('source', '?')}` (fingerprint `{data.get('fingerprint', '?')}`), features "
        f"{', '.join(data.get('features', [])) or 'arrays of rows ' + 'x'.join(map(str, data.get('input_shape', [])))}"
        + labels,
        "",
        *header,
        rows,
        "",
        f"**Protocol**: {_judged(data.get('validation', {}))} *test* is used only by `sweep export` and "
        f"`sweep report`, whose model learns from all non-test rows. {config.get('epochs', '?')} epochs, batch "
        f"{config.get('batch_size', '?')}, pruner `{config.get('pruner', '?')}`, seed {config.get('seed', '?')}.",
        "",
        f"**Objective**: `{objective.get('spec', '?')}` ({objective.get('name', '?')}, "
        f"{objective.get('direction', '?')}).",
        f"**Trials**: {counted.finished} finished, {counted.failed} failed.",
    ]
    best = counted.best
    if best is not None:
        a = best.user_attrs
        values = ", ".join(f"{v:.4g}" for v in best.values)
        how = (
            f" (Pareto front of {len(study.best_trials)} trials; picked by best F1)"
            if len(study.directions) > 1
            else ""
        )
        lines += [
            "",
            f"**Best so far**{how}: trial #{best.number}, {objective.get('name', 'value')} = {values}: "
            f"{describe_params(best.params)}; " + (_class_words(a, classes) if classes else _binary_words(a)),
            "",
            f"Export it with `sweep export {study.study_name} --out exports/{study.study_name}`.",
        ]
    return "\n".join(lines)


def _binary_words(attrs: dict) -> str:
    """The best trial's validation figures in words: precision, recall, flag rate (and F1 across folds)."""
    nan = float("nan")
    words = (
        f"validation precision {attrs.get('val_precision', nan):.3f}, recall {attrs.get('val_recall', nan):.3f}, "
        f"**flag rate {attrs.get('val_flag_rate', nan):.2%}**"
    )
    folds = f"; F1 across folds {attrs['cv_folds']['f1']} (sd {attrs['cv_f1_sd']:.3f})." if "cv_folds" in attrs else "."
    return words + folds


def _class_words(attrs: dict, classes: list[str]) -> str:
    """A best trial of several classes in words: macro-F1, balanced accuracy, each class's recall and flag rate."""
    nan = float("nan")
    each = ", ".join(
        f"`{c}` {attrs.get(f'val_recall:{c}', nan):.3f} ({attrs.get(f'val_flag_rate:{c}', nan):.1%} of rows)"
        for c in classes
    )
    rule = attrs.get("decision_rule", {})
    return (
        f"validation macro-F1 {attrs.get('val_macro_f1', nan):.3f}, balanced accuracy "
        f"{attrs.get('val_balanced_accuracy', nan):.3f}; decision rule {rule.get('kind', '?')}"
        + (f" (tau {rule['tau']})" if "tau" in rule else "")
        + f"; recall per class (**flag rate**): {each}."
    )


def _judged(validation: dict) -> str:
    """How trials are judged, in a sentence for the study note."""
    if validation.get("kind") == "cv":
        repeats = validation.get("repeats", 1)
        again = f", {repeats} times over" if repeats > 1 else ""
        return (
            f"each trial trains {validation.get('folds')} fold models on the *development* rows (all non-test rows), "
            f"each holding out its fold{again}, and is scored on their pooled out-of-fold predictions (objective and "
            "pruning; per-fold values in `cv_folds`);"
        )
    return "each trial trains on *train* and is scored on *validation* (objective and pruning);"


def save_study_note(study: optuna.Study) -> None:
    import optuna_dashboard

    optuna_dashboard.save_note(study, study_note(study))
