"""Best trial -> what ships (sweep.handover.retrain) -> a bundle written to a folder: best.json (the decision, its
check, the calibration, validation and test metrics with intervals), model.keras, and for tables preprocessor.json."""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from sweep.errors import ExportError
from sweep.handover.bundle import OUTPUTS
from sweep.handover.calibration import Calibration, probability_scores
from sweep.handover.classes import CLASS_OUTPUTS, ClassRetrained, class_test_record
from sweep.handover.ensemble import (
    DEFAULT_ENSEMBLE,
    parse_ensemble,
)
from sweep.handover.retrain import Retrained, refit_rows, retrain_best
from sweep.metrics import BOOTSTRAP_RESAMPLES, bootstrap_intervals, metrics
from sweep.study.storage import mask_url

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

    @property
    def calibration(self) -> Calibration | None:
        """The binary bundle's calibration (None for several classes: their probabilities are prior-corrected)."""
        if self.classes:
            return None
        return Calibration.from_dict(self.best["calibration"])

    @property
    def classes(self) -> list[str]:
        """The target's class names for a bundle of three or more classes, else []."""
        return self.best.get("classes", [])


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
            f"export directory {str(out_dir)!r} exists and is not empty; "
            "choose another --out or pass --force to overwrite"
        )


def _clean(values: dict) -> dict:
    """JSON-safe metrics (NaN -> null)."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in values.items()}


def export_best(
    storage_url: str,
    study_name: str,
    out_dir: str | Path,
    force: bool = False,
    pick=None,
    refit: str = "all",
    data: dict | None = None,
    ensemble=DEFAULT_ENSEMBLE,
    threshold_rule: str = "auto",
) -> ExportResult:
    """Retrain the study's best trial with its own seed and check it reproduces the stored validation value,
    make what the bundle holds (`ensemble`: one refit on all non-test rows, K refit seeds, the trial's fold models
    or a greedy ensemble; sweep.handover.ensemble), check that it flags what the judged models flagged on the non-test
    rows (the judged models ship where it does not: sweep.handover.decision), evaluate it once on the held-out test part
    (with bootstrap intervals), and write the bundle to `out_dir`. `data`, `threshold_rule`: see retrain_best."""
    out_dir = Path(out_dir)
    parse_ensemble(ensemble)
    _check_out_dir(out_dir, force)
    found = retrain_best(storage_url, study_name, pick, refit, data, ensemble, threshold_rule)
    kind = found.chosen.kind if isinstance(found, ClassRetrained) else found.kind
    refusal = kind.refusal(found.model)
    if refusal is not None:
        raise ExportError(refusal)
    if isinstance(found, ClassRetrained):
        bundle = class_bundle_record(found, storage_url)
    else:
        bundle = bundle_record(found, storage_url, pick)
    if out_dir.is_dir() and force:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found.model.save(out_dir / "model.keras")
    if found.preprocessor is not None:
        (out_dir / "preprocessor.json").write_text(json.dumps(found.preprocessor.to_dict(), indent=2) + "\n")
    (out_dir / "best.json").write_text(json.dumps(bundle, indent=2) + "\n")
    return ExportResult(out_dir, bundle)


def bundle_record(found: Retrained, storage_url: str, pick=None) -> dict:
    """best.json: what was chosen and how, the decision and its check, the calibration, the model, and its
    validation (stored and reproduced) and test metrics with bootstrap intervals."""
    best, goal, params, settings, calibration = found.trial, found.goal, found.params, found.settings, found.calibration
    threshold = found.threshold
    return {
        "study": found.study.study_name,
        "storage": mask_url(storage_url),
        "trial": best.number,
        "objective": {
            "spec": found.study.user_attrs["objective"]["spec"],
            "names": goal.names,
            "directions": goal.directions,
            "picked_by": str(pick) if goal.is_multi and pick is not None else ("best f1" if goal.is_multi else None),
        },
        "params": dict(best.params) | params.model_params,
        "class_weight": {"0": 1.0, "1": params.minority_weight},
        "threshold": threshold,
        "threshold_probability": float(calibration(np.array([threshold]))[0]),
        "threshold_rule": found.cut.record() if found.cut else None,
        "decision": found.check.record()
        | {"fallback": found.fallback, "failed_check": found.failed_check.record() if found.failed_check else None},
        "calibration": calibration.to_dict(),
        "outputs": OUTPUTS,
        "hidden_width": params.hidden_width,
        "hidden_layers": found.kind.hidden_layers(settings),
        "depth_choice": found.study.user_attrs.get("depth"),
        "model": _model_summary(found.kind, found.model, found.compiled_by, found.test, found.dataset),
        "train_settings": best.user_attrs["train_settings"],
        "seed": settings.seed,
        "ensemble": found.ensemble.record(),
        "refit": {
            "rows": refit_rows(found),
            "choice": found.refit,
            "counts": found.fit_counts,
            "epochs": settings.epochs,
        },
        "validation": _validation_record(found),
        "test": _test_record(found),
        "data": found.dataset.summary(),
        "config": found.study.user_attrs["config"],
        "features": list(found.preprocessor.columns) if found.preprocessor is not None else None,
        "versions": _versions(),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def class_bundle_record(found: ClassRetrained, storage_url: str) -> dict:
    """best.json of a target of several classes: as bundle_record's, with every class's weight, the decision rule in
    place of a threshold, per-class metrics and the rule's gain over argmax on the test rows."""
    chosen = found.chosen
    best, params, settings, dataset = chosen.trial, chosen.params, chosen.settings, chosen.dataset
    stored_value = best.value
    reproduced = bool(np.isclose(found.reproduced_value, stored_value, rtol=0, atol=REPRODUCE_TOLERANCE))
    return {
        "study": chosen.study.study_name,
        "storage": mask_url(storage_url),
        "trial": best.number,
        "objective": {
            "spec": chosen.study.user_attrs["objective"]["spec"],
            "names": [found.judge.name],
            "directions": chosen.goal.directions,
            "picked_by": None,
        },
        "classes": list(dataset.classes),
        "params": dict(best.params) | params.model_params,
        "class_weight": {str(c): w for c, w in found.class_weight.items()},
        "decision_rule": found.rule.record(),
        "threshold": None,
        "decision": found.check.record()
        | {"fallback": found.fallback, "failed_check": found.failed_check.record() if found.failed_check else None},
        "calibration": found.calibration_record(),
        "outputs": CLASS_OUTPUTS,
        "hidden_width": params.hidden_width,
        "hidden_layers": chosen.kind.hidden_layers(settings),
        "depth_choice": chosen.study.user_attrs.get("depth"),
        "model": _model_summary(chosen.kind, found.model, best.user_attrs.get("compiled_by"), found.test, dataset),
        "train_settings": best.user_attrs["train_settings"],
        "seed": settings.seed,
        "ensemble": found.ensemble.record(),
        "refit": {
            "rows": found.ensemble.members[0]["fitted_on"]
            if len(found.ensemble.members) == 1
            else "each fold model: the non-test rows outside its fold",
            "choice": found.refit,
            "counts": found.fit_counts,
            "epochs": settings.epochs,
        },
        "validation": {
            "judged_by": dataset.validation.describe(),
            "value": stored_value,
            "reproduced_value": found.reproduced_value,
            "reproduced": reproduced,
            "metrics": found.validation,
        },
        "test": class_test_record(found),
        "data": dataset.summary(),
        "config": chosen.study.user_attrs["config"],
        "features": list(found.preprocessor.columns) if found.preprocessor is not None else None,
        "versions": _versions(),
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _validation_record(found: Retrained) -> dict:
    """How the trial was judged, its stored value and the retrain's (checked to reproduce it)."""
    best, goal = found.trial, found.goal
    reproduced_value = goal.value(found.validation)
    stored_value = tuple(best.values) if goal.is_multi else best.value
    reproduced = bool(np.allclose(reproduced_value, stored_value, rtol=0, atol=REPRODUCE_TOLERANCE))
    shipped = {"ensemble_metrics": _clean(found.ensemble_validation)} if found.ensemble_validation is not None else {}
    return {
        "judged_by": found.dataset.validation.describe(),
        "value": stored_value,
        "reproduced_value": reproduced_value,
        "reproduced": reproduced,
        "metrics": _clean(found.validation),
    } | shipped


def _test_record(found: Retrained) -> dict:
    """The shipped models on the held-out test rows, touched once here: metrics at the threshold, bootstrap
    intervals, and the Brier score and log loss of the raw and the calibrated output (same bootstrap)."""
    seed, y_test = found.settings.seed, found.test.y
    test_scores = found.ensemble.scores(found.test.X)
    test = metrics(y_test, test_scores, found.threshold)
    intervals = bootstrap_intervals(y_test, test_scores, found.threshold, seed=seed)
    method = f"95% percentile, stratified bootstrap of the test rows, {BOOTSTRAP_RESAMPLES} resamples, seed {seed}"
    return {
        "value": found.goal.value(test),
        "metrics": _clean(test),
        "intervals": {k: list(v) for k, v in intervals.items()},
        "interval_method": method,
        "probability": {
            "raw score": probability_scores(y_test, test_scores, seed=seed),
            "calibrated probability": probability_scores(y_test, found.calibration(test_scores), seed=seed),
        },
    }


def _model_summary(kind, model, compiled_by: str | None, test, dataset) -> dict:
    """What best.json says of the model: its kind (a user's: the builder, who compiled it, its Keras class), the
    shape of one input row (of the `test` part it was scored on) and the kind of data it takes."""
    return kind.describe(model, compiled_by) | {"input_shape": list(test.X.shape[1:]), "data_kind": dataset.kind}
