"""What optuna-dashboard shows beyond Optuna's own pages: PNG figures of each new best trial (precision-recall
curve with the chosen threshold, confusion matrix) in Optuna's artifact store, and a markdown study note."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import optuna
from optuna.trial import TrialState

from sweep.plots import trial_figures
from sweep.results import BUDGET_STATES, best_trial, count_trials


def artifact_dir(storage_url: str) -> Path:
    """Where a study's artifacts live: beside a SQLite file (studies/artifacts), else ./studies/artifacts."""
    from sqlalchemy.engine import make_url

    parsed = make_url(storage_url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        return Path(parsed.database).parent / "artifacts"
    return Path("studies") / "artifacts"


def artifact_store(storage_url: str) -> optuna.artifacts.FileSystemArtifactStore:
    folder = artifact_dir(storage_url)
    folder.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(folder)


def upload_trial_figures(trial: optuna.Trial, store, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> None:
    """Attach the trial's figures to it in the artifact store (the dashboard lists them on the trial)."""
    with tempfile.TemporaryDirectory() as folder:
        for path in trial_figures(y_true, scores, threshold, Path(folder), f"trial #{trial.number}"):
            optuna.artifacts.upload_artifact(artifact_store=store, file_path=str(path), study_or_trial=trial, mimetype="image/png")


def study_note(study: optuna.Study) -> str:
    """Markdown for the dashboard's study note: data, protocol, objective and the current best."""
    attrs = study.user_attrs
    data, objective, config = attrs.get("data", {}), attrs.get("objective", {}), attrs.get("config", {})
    splits = data.get("splits", {})
    rows = "\n".join(
        f"| {name} | {part['rows']} | {part['positives']} | {part['positives'] / max(part['rows'], 1):.2%} |"
        for name, part in splits.items()
    )
    lines = [
        f"# {study.study_name}",
        f"**Data**: `{data.get('source', '?')}` (fingerprint `{data.get('fingerprint', '?')}`), features "
        f"{', '.join(data.get('features', []))}, positive label `{data.get('positive_label', '?')}`.",
        "",
        "| part | rows | positives | share |",
        "|---|---|---|---|",
        rows,
        "",
        f"**Protocol**: {_judged(data.get('validation', {}))} *test* is used only by `sweep export` and "
        f"`sweep report`, whose model learns from all non-test rows. {config.get('epochs', '?')} epochs, batch "
        f"{config.get('batch_size', '?')}, pruner `{config.get('pruner', '?')}`, seed {config.get('seed', '?')}.",
        "",
        f"**Objective**: `{objective.get('spec', '?')}` ({objective.get('name', '?')}, {objective.get('direction', '?')}).",
        f"**Trials**: {count_trials(study, BUDGET_STATES)} finished, {count_trials(study, (TrialState.FAIL,))} failed.",
    ]
    best = best_trial(study)
    if best is not None:
        a = best.user_attrs
        values = ", ".join(f"{v:.4g}" for v in best.values)
        how = f" (Pareto front of {len(study.best_trials)} trials; picked by best F1)" if len(study.directions) > 1 else ""
        lines += [
            "",
            f"**Best so far**{how}: trial #{best.number}, {objective.get('name', 'value')} = {values}: "
            f"minority weight 1:{best.params['minority_weight']:.4g}, width {best.params['hidden_width']}, "
            f"threshold {best.params['threshold']:.3f}; validation precision {a.get('val_precision', float('nan')):.3f}, "
            f"recall {a.get('val_recall', float('nan')):.3f}, **flag rate {a.get('val_flag_rate', float('nan')):.2%}**"
            + (f"; F1 across folds {a['cv_folds']['f1']} (sd {a['cv_f1_sd']:.3f})." if "cv_folds" in a else "."),
            "",
            f"Export it with `sweep export {study.study_name} --out exports/{study.study_name}`.",
        ]
    return "\n".join(lines)


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
