"""Best trial -> refit -> a bundle (best.json, model.keras, preprocessor.json) and predict() on new data with it."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from sweep.config import config_from_dict
from sweep.data import load_dataset, read_table
from sweep.errors import DataError, ExportError, StorageError
from sweep.metrics import BOOTSTRAP_RESAMPLES, bootstrap_intervals, metrics, parse_goal
from sweep.results import best_trial
from sweep.rounds import refit_member
from sweep.space import TrialParams
from sweep.runtime import tensorflow
from sweep.storage import load_study, mask_url, open_storage
from sweep.preprocess import Preprocessor
from sweep.train import Network, TrainSettings, score, train_model
from sweep.trial import refit_trial

BUNDLE_FILES = ("best.json", "model.keras", "preprocessor.json")
PACKAGES = ("sweep", "tensorflow", "keras", "optuna", "scikit-learn", "numpy", "pandas")
# Retraining on the same machine is bit-for-bit; across machines/devices float sums may differ slightly.
REPRODUCE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    best: dict

    @property
    def reproduced(self) -> bool:
        return self.best["validation"]["reproduced"]


def _versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def _check_out_dir(out_dir: Path, force: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"export path {str(out_dir)!r} is a file; pass --out a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not force:
        raise ExportError(
            f"export directory {str(out_dir)!r} exists and is not empty; choose another --out or pass --force to overwrite"
        )


def _clean(values: dict) -> dict:
    """JSON-safe metrics (NaN -> null)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


REFIT_CHOICES = ("all", "train")


@dataclass(frozen=True)
class Retrained:
    """A study's chosen trial trained again with its own seed (its stored value checked), and the model to
    use: refit on all non-test rows (`refit` "all") or the trial's own model ("train", single split only)."""

    study: object
    trial: object
    goal: object
    dataset: object
    params: TrialParams
    settings: TrainSettings
    model: object
    validation: dict  # the retrained trial's (pooled) validation metrics
    refit: str
    preprocessor: object  # encodes rows for `model`
    test: object  # the test Split encoded by `preprocessor`
    fit_counts: dict  # rows the exported model learned from


def retrain_best(storage_url: str, study_name: str, pick=None, refit: str = "all") -> Retrained:
    """Load the study, choose its best trial (a Pareto-front trial by `pick` when multi-objective), check the
    data is unchanged, retrain that trial deterministically from its stored settings (to check its value),
    and then, for refit "all", train its configuration on all non-test rows."""
    if refit not in REFIT_CHOICES:
        raise ExportError(f"--refit {refit!r} is not known; expected one of: {', '.join(REFIT_CHOICES)}")
    study = load_study(open_storage(storage_url), study_name)
    best = best_trial(study, pick)
    if best is None and len(study.directions) > 1 and best_trial(study) is not None:
        raise ExportError(f"no Pareto-front trial of study {study_name!r} meets --pick {pick}; relax the bound")
    if best is None:
        raise ExportError(f"study {study_name!r} has no complete trial yet; run `sweep run --study {study_name}` first")
    if "config" not in study.user_attrs or "train_settings" not in best.user_attrs:
        raise StorageError(f"study {study_name!r} was not made by `sweep run` (no stored config); cannot use it")
    config = config_from_dict(study.user_attrs["config"])
    dataset = load_dataset(config)
    stored_fingerprint = study.user_attrs["data"]["fingerprint"]
    if dataset.fingerprint != stored_fingerprint:
        raise DataError(
            f"the data at {config.data!r} changed since the sweep (fingerprint {dataset.fingerprint}, study has "
            f"{stored_fingerprint}); restore the original data to use this study"
        )
    if refit == "train" and dataset.validation.kind == "cv":
        raise ExportError(
            f"--refit train exports the model a trial trained on the training part, but study {study_name!r} "
            f"cross-validates ({dataset.validation.n_splits} fold models per trial); use --refit all"
        )
    params = TrialParams.from_dict(best.params)
    settings = TrainSettings(**best.user_attrs["train_settings"])
    trial_model, validation, _ = _retrain(dataset, best)
    goal = parse_goal(study.user_attrs["objective"]["spec"])
    if refit == "train":
        preprocessor, model, fit_counts = dataset.preprocessor, trial_model, dataset.train.counts()
    else:
        preprocessor, fit_counts = dataset.final_preprocessor, dataset.development.counts()
        model, _ = train_model(dataset.development.X, dataset.development.y, params.hidden_width, params.class_weight, settings)
    return Retrained(
        study, best, goal, dataset, params, settings, model, validation, refit, preprocessor,
        dataset.test_split(preprocessor), fit_counts,
    )


def _retrain(dataset, trial) -> tuple:
    """A finished trial trained again from its stored settings, alone or with the population it was trained in:
    (its model, or None when cross-validated; pooled validation metrics; pooled validation scores)."""
    if "population" in trial.user_attrs:
        return refit_member(dataset, trial)
    return refit_trial(dataset, trial)


def export_best(storage_url: str, study_name: str, out_dir: str | Path, force: bool = False, pick=None, refit: str = "all") -> ExportResult:
    """Retrain the study's best trial with its own seed and check it reproduces the stored validation value,
    refit it (on all non-test rows by default), evaluate that model once on the held-out test part (with
    bootstrap intervals), and write the bundle to `out_dir`."""
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, force)
    found = retrain_best(storage_url, study_name, pick, refit)
    best, goal, dataset, params, settings, model = found.trial, found.goal, found.dataset, found.params, found.settings, found.model
    validation = found.validation
    reproduced_value = goal.value(validation)
    stored_value = tuple(best.values) if goal.is_multi else best.value
    reproduced = bool(np.allclose(reproduced_value, stored_value, rtol=0, atol=REPRODUCE_TOLERANCE))
    test_scores = score(model, found.test.X)
    test = metrics(found.test.y, test_scores, params.threshold)
    intervals = bootstrap_intervals(found.test.y, test_scores, params.threshold, seed=settings.seed)

    bundle = {
        "study": study_name,
        "storage": mask_url(storage_url),
        "trial": best.number,
        "objective": {
            "spec": found.study.user_attrs["objective"]["spec"], "names": goal.names, "directions": goal.directions,
            "picked_by": str(pick) if goal.is_multi and pick is not None else ("best f1" if goal.is_multi else None),
        },
        "params": dict(best.params),
        "class_weight": {"0": 1.0, "1": params.minority_weight},
        "threshold": params.threshold,
        "hidden_width": params.hidden_width,
        "hidden_layers": settings.hidden_layers,
        "train_settings": best.user_attrs["train_settings"],
        "seed": settings.seed,
        "refit": {
            "rows": "all non-test rows" if found.refit == "all" else "the trial's training part",
            "choice": found.refit,
            "counts": found.fit_counts,
            "epochs": settings.epochs,
        },
        "validation": {
            "judged_by": dataset.validation.describe(),
            "value": stored_value,
            "reproduced_value": reproduced_value,
            "reproduced": reproduced,
            "metrics": _clean(validation),
        },
        "test": {
            "value": goal.value(test),
            "metrics": _clean(test),
            "intervals": {k: list(v) for k, v in intervals.items()},
            "interval_method": f"95% percentile, stratified bootstrap of the test rows, {BOOTSTRAP_RESAMPLES} resamples, seed {settings.seed}",
        },
        "data": dataset.summary(),
        "config": found.study.user_attrs["config"],
        "features": list(found.preprocessor.columns),
        "versions": _versions(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if out_dir.is_dir() and force:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (model.to_keras() if isinstance(model, Network) else model).save(out_dir / "model.keras")
    (out_dir / "preprocessor.json").write_text(json.dumps(found.preprocessor.to_dict(), indent=2) + "\n")
    (out_dir / "best.json").write_text(json.dumps(bundle, indent=2) + "\n")
    return ExportResult(out_dir, bundle)


def load_bundle(bundle_dir: str | Path):
    """Read an export bundle back: (best.json dict, preprocessor, keras model). Nothing in it is pickled:
    JSON for the settings and the fitted preprocessing, the Keras format for the network."""
    tensorflow()
    import keras

    bundle_dir = Path(bundle_dir)
    missing = [name for name in BUNDLE_FILES if not (bundle_dir / name).is_file()]
    if missing:
        raise DataError(
            f"{str(bundle_dir)!r} is not an export bundle (missing {', '.join(missing)}); "
            "pass the --out directory of `sweep export`"
        )
    best = json.loads((bundle_dir / "best.json").read_text())
    preprocessor = Preprocessor.from_dict(json.loads((bundle_dir / "preprocessor.json").read_text()))
    # safe_mode (the default, spelled out): a .keras file with a Lambda layer's pickled code is refused.
    model = keras.saving.load_model(bundle_dir / "model.keras", safe_mode=True)
    return best, preprocessor, model


def predict(bundle_dir: str | Path, data_path: str | Path):
    """Score a CSV/Parquet table with a bundle: one row per input row, in order, columns probability, decision.
    Rows may have missing values and levels the model never saw (encoded as the preprocessing says)."""
    import pandas as pd

    best, preprocessor, model = load_bundle(bundle_dir)
    frame = read_table(data_path)
    probability = score(model, preprocessor.transform(frame, str(data_path)))
    decision = (probability >= best["threshold"]).astype(np.int8)
    return pd.DataFrame({"probability": probability, "decision": decision}, index=frame.index)
