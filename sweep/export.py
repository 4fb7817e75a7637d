"""Best trial -> refit -> a bundle (best.json, model.keras, and for tables preprocessor.json) and Bundle.predict()
on new rows with it: tables, .npz arrays, or the same in memory."""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np

from sweep.calibration import Calibration, fit_calibration, probability_scores
from sweep.config import config_from_dict
from sweep.data import ARRAY_SUFFIX, check_inputs, load_dataset, read_arrays, read_table
from sweep.decision import DecisionCheck, check_decision
from sweep.ensemble import (
    DEFAULT_ENSEMBLE,
    Ensemble,
    EnsembleChoice,
    automatic_ensemble,
    fold_ensemble,
    greedy_candidates,
    greedy_ensemble,
    greedy_selection,
    judged_greedy_ensemble,
    parse_ensemble,
    seed_ensemble,
    single_model,
)
from sweep.errors import DataError, ExportError, StorageError
from sweep.metrics import BOOTSTRAP_RESAMPLES, bootstrap_intervals, metrics, parse_goal
from sweep.models import ModelKind, Refit, model_kind
from sweep.optuna_private import trial_by_number
from sweep.preprocess import Preprocessor
from sweep.results import best_trial
from sweep.runtime import tensorflow
from sweep.space import TrialParams
from sweep.storage import load_study, mask_url, open_storage
from sweep.train import TrainSettings, score

BUNDLE_FILES = ("best.json", "model.keras", "preprocessor.json")  # an arrays bundle has no preprocessor.json
PACKAGES = ("sweep", "tensorflow", "keras", "optuna", "scikit-learn", "numpy", "pandas")
# Retraining on the same machine is bit-for-bit; across machines/devices float sums may differ slightly.
REPRODUCE_TOLERANCE = 1e-6
# What each column of `sweep predict` (and best.json's "outputs") means.
OUTPUTS = {
    "probability": "calibrated P(positive): the score's odds divided by the class weight, then the monotone map fitted on "
    "the trial's pooled validation scores (best.json 'calibration')",
    "score": "the network's raw output (an ensemble's: the average of its members'), inflated by the class weight; the "
    "threshold was searched on this scale",
    "decision": "1 when score >= threshold (the threshold chosen on the judged models' pooled validation scores, checked "
    "on the shipped models: best.json 'decision'; threshold_probability is its calibrated value)",
}


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    best: dict

    @property
    def reproduced(self) -> bool:
        return self.best["validation"]["reproduced"]

    @property
    def calibration(self) -> Calibration:
        return Calibration.from_dict(self.best["calibration"])


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


REFIT_CHOICES = ("all", "judged", "train")


@dataclass(frozen=True)
class Retrained:
    """A study's chosen trial trained again with its own seed (its stored value checked), and what the bundle
    ships: refit on all non-test rows (`refit` "all") or the models the threshold was chosen on ("judged",
    "train"), one model or an ensemble, with the decision checked on them."""

    study: object
    trial: object
    goal: object
    dataset: object
    config: object  # the study's config
    kind: ModelKind
    params: TrialParams
    settings: TrainSettings
    validation: dict  # the retrained trial's (pooled) validation metrics
    validation_scores: np.ndarray  # the retrained trial's pooled validation scores (out-of-fold for cv)
    refit: str
    ensemble: Ensemble  # what the bundle holds
    model: object  # what the bundle saves: the ensemble's Keras model, or its one member
    threshold: float  # the decision threshold (the trial's; a greedy ensemble's re-chosen one)
    calibration: Calibration  # raw score -> probability, fitted on validation scores
    preprocessor: object  # encodes rows for `model` (None: arrays go to the model as they are)
    test: object  # the test Split encoded by `preprocessor`
    fit_counts: dict  # rows the exported model learned from
    check: DecisionCheck  # the shipped models' flag rate at the threshold against the judged models'
    ensemble_validation: dict | None = (
        None  # metrics of the shipped models' pooled validation scores, where they differ
    )
    compiled_by: str | None = None  # a user model: "sweep" or "user" (who compiled it)
    fallback: str | None = None  # why the judged models ship instead of the refit asked for, if they do
    failed_check: DecisionCheck | None = None  # the refit's check that failed, if so


@dataclass(frozen=True)
class Chosen:
    """The trial to export with everything its retrain needs, read from the study."""

    study: object
    trial: object
    config: object
    goal: object
    dataset: object
    kind: ModelKind
    params: TrialParams
    settings: TrainSettings

    def trial_of(self, number: int):
        """Another trial of the study, by number (one trial read)."""
        return trial_by_number(self.study, number)


def retrain_best(
    storage_url: str,
    study_name: str,
    pick=None,
    refit: str = "all",
    data: dict | None = None,
    ensemble=DEFAULT_ENSEMBLE,
) -> Retrained:
    """Load the study, choose its best trial (a Pareto-front trial by `pick` when multi-objective), check the
    data is unchanged, retrain that trial deterministically from its stored settings (to check its value),
    and then make what the bundle holds (`ensemble`, sweep.ensemble): for "single" and refit "all", its
    configuration trained on all non-test rows; for refit "judged", the models the threshold was chosen on. Refits
    that do not flag what the judged models flagged at the threshold (sweep.decision) give way to the judged models,
    with the reason in `fallback`. `data` (frame= or arrays=) is the Python API's data in memory, for a study made
    from it."""
    choice = _checked_choice(parse_ensemble(ensemble), refit)
    chosen = _chosen(storage_url, study_name, pick, data, choice, refit)
    choice = automatic_ensemble(choice)
    found = _ship(chosen, choice, refit)
    if found.check.passed:
        return found
    fallback = retrain_best(
        storage_url, study_name, pick, "judged", data, str(choice) if choice.kind == "greedy" else "single"
    )
    return dataclasses.replace(
        fallback,
        fallback=f"the refit models do not decide as the judged ones did ({found.check.describe()}); shipping the "
        "judged models themselves instead (--refit judged)",
        failed_check=found.check,
    )


def _checked_choice(choice: EnsembleChoice, refit: str) -> EnsembleChoice:
    """--refit and --ensemble, refused in one line where they contradict each other."""
    if refit not in REFIT_CHOICES:
        raise ExportError(f"--refit {refit!r} is not known; expected one of: {', '.join(REFIT_CHOICES)}")
    if refit == "train" and choice.kind not in ("single", "auto"):
        raise ExportError(
            f"--refit train exports one trial's own model, but --ensemble is {choice}; use --ensemble single with "
            "--refit train"
        )
    if refit == "judged" and choice.kind == "seeds":
        raise ExportError(
            f"--refit judged ships the models that were judged, but --ensemble {choice} refits new seeds; use --refit all"
        )
    return choice


def _chosen(storage_url: str, study_name: str, pick, data: dict | None, choice: EnsembleChoice, refit: str) -> Chosen:
    """The study's chosen trial and its unchanged data, or one line saying why it cannot be exported as asked."""
    study = load_study(open_storage(storage_url), study_name)
    best = best_trial(study, pick)
    if best is None and len(study.directions) > 1 and best_trial(study) is not None:
        raise ExportError(f"no Pareto-front trial of study {study_name!r} meets --pick {pick}; relax the bound")
    if best is None:
        raise ExportError(f"study {study_name!r} has no complete trial yet; run `sweep run --study {study_name}` first")
    if "config" not in study.user_attrs or "train_settings" not in best.user_attrs:
        raise StorageError(f"study {study_name!r} was not made by `sweep run` (no stored config); cannot use it")
    config = config_from_dict(study.user_attrs["config"])
    goal = parse_goal(study.user_attrs["objective"]["spec"])
    if automatic_ensemble(choice).kind == "greedy" and goal.is_multi:
        raise ExportError(
            f"--ensemble {choice} ranks trials by one objective, but study {study_name!r} has {len(goal.names)} "
            f"({', '.join(goal.names)}); use --ensemble single, seeds:K or folds"
        )
    dataset = load_dataset(config, **(data or {}))
    stored_fingerprint = study.user_attrs["data"]["fingerprint"]
    if dataset.fingerprint != stored_fingerprint:
        raise DataError(
            f"the data at {config.data!r} changed since the sweep (fingerprint {dataset.fingerprint}, study has "
            f"{stored_fingerprint}); restore the original data to use this study"
        )
    if choice.kind == "folds" and dataset.validation.kind != "cv":
        raise ExportError(
            f"--ensemble folds averages a cross-validated trial's fold models, but study {study_name!r} judges trials "
            "on one validation split (no fold models); use --ensemble single or seeds:K, or sweep with --cv 5"
        )
    if refit == "train" and dataset.validation.kind == "cv":
        raise ExportError(
            f"--refit train exports the model a trial trained on the training part, but study {study_name!r} "
            f"cross-validates ({dataset.validation.n_splits} fold models per trial); use --refit all"
        )
    kind = model_kind(config)
    settings = TrainSettings(**best.user_attrs["train_settings"])
    return Chosen(study, best, config, goal, dataset, kind, kind.params(best), settings)


def _ship(chosen: Chosen, choice: EnsembleChoice, refit: str) -> Retrained:
    """The chosen trial retrained (its value checked), what ships made as `choice` and `refit` say, and the check
    that it decides as the judged models did."""
    dataset, best, kind, params, settings = chosen.dataset, chosen.trial, chosen.kind, chosen.params, chosen.settings
    judged = refit in ("judged", "train")  # ship the models the threshold was chosen on: no refit
    retrained = kind.retrain(dataset, [best], chosen.trial_of)[best.number]
    pooled = retrained.pooled
    calibration = fit_calibration(
        pooled, dataset.validation.y, params.minority_weight, fitted_on=_fitted_on(dataset, best)
    )
    holdout = dataset.validation.kind == "holdout"
    if judged and holdout:  # the trials' own models, encoded as they were judged
        preprocessor, fit_counts = dataset.preprocessor, dataset.train.counts()
    else:
        preprocessor, fit_counts = dataset.final_preprocessor, dataset.development.counts()
    keep_folds = choice.kind == "folds" or (judged and choice.kind == "single")
    threshold, ensemble_validation, judged_scores = params.threshold, None, pooled
    if keep_folds and holdout:
        shipped = single_model(retrained.models[0], best.number, settings.seed, "the trial's training part")
    elif keep_folds:
        shipped = fold_ensemble(retrained.models, dataset.validation, best.number, settings.seed)
    elif choice.kind == "seeds":
        shipped = seed_ensemble(dataset, kind, best.number, params, settings, choice.size)
    elif choice.kind == "greedy":
        shipped, threshold, judged_scores = _greedy(chosen, retrained, choice.size, judged)
        ensemble_validation = metrics(dataset.validation.y, judged_scores, threshold)
        calibration = _greedy_calibration(dataset, shipped, judged_scores)
    else:
        model = kind.refit(dataset, [Refit(best.number, params, settings)])[0]
        shipped = single_model(model, best.number, settings.seed, f"all non-test rows ({fit_counts['rows']} rows)")
    input_shape = dataset.input_shape if judged else dataset.development.X.shape[1:]
    model = shipped.models[0] if len(shipped.models) == 1 else shipped.keras_model(input_shape, kind)
    if judged or keep_folds:  # the judged models themselves: the threshold was chosen on exactly these scores
        check = check_decision(judged_scores, judged_scores, threshold, "their own validation rows")
    else:
        rows = f"the {fit_counts['rows']} non-test rows"
        check = check_decision(judged_scores, shipped.scores(dataset.development.X), threshold, rows)
    return Retrained(
        study=chosen.study, trial=best, goal=chosen.goal, dataset=dataset, config=chosen.config, kind=kind,
        params=params, settings=settings, validation=metrics(dataset.validation.y, pooled, params.threshold),
        validation_scores=pooled, refit=refit, ensemble=shipped, model=model, threshold=threshold,
        calibration=calibration, preprocessor=preprocessor, test=dataset.test_split(preprocessor),
        fit_counts=fit_counts, check=check, ensemble_validation=ensemble_validation,
        compiled_by=best.user_attrs.get("compiled_by"),
    )  # fmt: skip


def _greedy(chosen: Chosen, retrained, size: int, judged: bool) -> tuple:
    """Greedy selection over the `size` best complete trials on their pooled validation scores (each retrained
    from its stored settings; a population once for all its members), then the chosen configurations refit on all
    non-test rows, or, `judged`, their retrained fold models shipped as they are: (Ensemble, its threshold, its
    averaged pooled validation scores)."""
    dataset, study, goal, best, kind = chosen.dataset, chosen.study, chosen.goal, chosen.trial, chosen.kind
    candidates = greedy_candidates(study, goal, size)
    trials = {t.number: t for t in [best] + candidates}
    others = [t for t in candidates if t.number != best.number]  # the best trial is retrained already
    found = kind.retrain(dataset, others, chosen.trial_of) | {best.number: retrained}
    pooled = {best.number: retrained.pooled} | {n: f.pooled for n, f in found.items() if n != best.number}
    y = dataset.validation.y
    selected, threshold, value = greedy_selection(goal, y, pooled, chosen.config.threshold)
    if judged:
        fold_models = {n: f.models for n, f in found.items()}
        shipped = judged_greedy_ensemble(
            dataset, kind, goal, selected, trials, fold_models, threshold, value, len(candidates)
        )
    else:
        shipped = greedy_ensemble(dataset, kind, goal, selected, trials, threshold, value, len(candidates))
    averaged = np.sum([c / sum(selected.values()) * pooled[n] for n, c in selected.items()], axis=0)
    return shipped, threshold, averaged


def _greedy_calibration(dataset, shipped: Ensemble, averaged: np.ndarray) -> Calibration:
    """A greedy ensemble's calibration: the prior correction of its members' weights' geometric mean, then the map
    fitted on its averaged pooled validation scores."""
    weight = float(np.exp(np.sum(shipped.weights * np.log([m["params"]["minority_weight"] for m in shipped.members]))))
    fitted_on = f"the greedy ensemble's averaged {_pooled_words(dataset)} ({len(averaged)} rows)"
    return fit_calibration(averaged, dataset.validation.y, weight, fitted_on=fitted_on)


def _pooled_words(dataset) -> str:
    return "pooled out-of-fold scores" if dataset.validation.kind == "cv" else "scores on the validation part"


def _fitted_on(dataset, trial) -> str:
    """The rows a calibration is fitted on, in words: the trial's pooled validation scores, never test rows."""
    plan = dataset.validation
    counts = f"{len(plan.y)} rows, {int(np.sum(plan.y))} positives"
    if plan.kind == "cv":
        repeats = f" x {plan.repeats} repeats" if plan.repeats > 1 else ""
        return f"trial #{trial.number}'s pooled out-of-fold scores ({plan.n_splits} folds{repeats}, {counts})"
    return f"trial #{trial.number}'s scores on the validation part ({counts})"


def export_best(
    storage_url: str,
    study_name: str,
    out_dir: str | Path,
    force: bool = False,
    pick=None,
    refit: str = "all",
    data: dict | None = None,
    ensemble=DEFAULT_ENSEMBLE,
) -> ExportResult:
    """Retrain the study's best trial with its own seed and check it reproduces the stored validation value,
    make what the bundle holds (`ensemble`: one refit on all non-test rows, K refit seeds, the trial's fold models
    or a greedy ensemble; sweep.ensemble), check that it flags what the judged models flagged on the non-test rows
    (the judged models ship where it does not: sweep.decision), evaluate it once on the held-out test part (with
    bootstrap intervals), and write the bundle to `out_dir`. `data`: see retrain_best."""
    out_dir = Path(out_dir)
    parse_ensemble(ensemble)
    _check_out_dir(out_dir, force)
    found = retrain_best(storage_url, study_name, pick, refit, data, ensemble)
    refusal = found.kind.refusal(found.model)
    if refusal is not None:
        raise ExportError(refusal)
    bundle = bundle_record(found, storage_url, pick)
    if out_dir.is_dir() and force:
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found.kind.keras_model(found.model).save(out_dir / "model.keras")  # an ensemble: one Keras model already
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
        "decision": found.check.record()
        | {"fallback": found.fallback, "failed_check": found.failed_check.record() if found.failed_check else None},
        "calibration": calibration.to_dict(),
        "outputs": OUTPUTS,
        "hidden_width": params.hidden_width,
        "hidden_layers": found.kind.hidden_layers(settings),
        "model": _model_summary(found),
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


def refit_rows(found: Retrained) -> str:
    """What the shipped models learned from, in words."""
    if found.refit in ("train", "judged") and found.dataset.validation.kind == "holdout":
        return (
            "the trial's training part"
            if len(found.ensemble.models) == 1
            else "each model: its trial's training part (best.json 'ensemble')"
        )
    if found.ensemble.kind == "folds" or found.refit == "judged":
        return "each fold model: the non-test rows outside its fold (best.json 'ensemble')"
    return "all non-test rows"


def _model_summary(found: Retrained) -> dict:
    """What best.json says of the model: its kind (a user's: the builder, who compiled it, its Keras class), the
    shape of one input row and the kind of data it takes."""
    shape = {"input_shape": list(found.test.X.shape[1:]), "data_kind": found.dataset.kind}
    return found.kind.describe(found.model, found.compiled_by) | shape


@dataclass(frozen=True)
class Bundle:
    """An export bundle loaded back: best.json, the fitted table encoding (None for arrays) and the Keras model.

    predict_proba / predict take what the model was trained on: a DataFrame (or a CSV/Parquet path) with the
    model's feature columns for a table, an array (or an .npz path holding x) of rows of `input_shape` for arrays.
    """

    best: dict
    preprocessor: Preprocessor | None
    model: object
    calibration: Calibration | None = None  # None: read from best.json

    def __post_init__(self) -> None:
        if self.calibration is None:
            object.__setattr__(self, "calibration", calibration_of(self.best))

    @property
    def threshold(self) -> float:
        """The chosen threshold, on the raw score's scale: predict() flags score >= threshold."""
        return float(self.best["threshold"])

    @property
    def threshold_probability(self) -> float:
        """The calibrated probability at the threshold."""
        return float(self.calibration(np.array([self.threshold]))[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.best.get("model", {}).get("input_shape") or (len(self.preprocessor.output_names),))

    def rows(self, data, source: str = "data") -> np.ndarray:
        """The model's input rows for `data` (encoded by the bundle's preprocessing for a table)."""
        import pandas as pd

        if isinstance(data, (str, Path)):
            source = str(data)
            data = (
                read_arrays(data, need_labels=False)[0]
                if Path(data).suffix.lower() == ARRAY_SUFFIX
                else read_table(data)
            )
        if self.preprocessor is not None:
            if not isinstance(data, pd.DataFrame):
                raise DataError(
                    f"this bundle's model was trained on a table; pass a DataFrame (or a CSV/Parquet file) with columns "
                    f"{', '.join(self.preprocessor.columns)}, not a {type(data).__name__}"
                )
            return self.preprocessor.transform(data, source)
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        x = np.asarray(data)
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"{source!r} holds rows of shape {tuple(x.shape[1:])} (x is {x.shape}); this bundle's model takes rows of shape "
                f"{self.input_shape}: pass x of shape (N, {', '.join(map(str, self.input_shape))})"
            )
        return check_inputs(x, source)

    def score(self, data) -> np.ndarray:
        """The network's raw output for each row, in order (what the threshold was searched on; its odds are
        about class-weight times the true odds)."""
        return score(self.model, self.rows(data)).astype(np.float64)

    def predict_proba(self, data) -> np.ndarray:
        """The calibrated positive-class probability for each row, in order: the bundle's calibration of score()."""
        return self.calibration(self.score(data))

    def predict(self, data) -> np.ndarray:
        """0/1 decisions, one per row, in order: 1 when score() >= the exported threshold."""
        return (self.score(data) >= self.threshold).astype(np.int8)


def calibration_of(best: dict) -> Calibration:
    """A bundle's calibration, from best.json; a bundle exported before calibrations gets the prior correction
    alone with its class weight."""
    if "calibration" in best:
        return Calibration.from_dict(best["calibration"])
    return Calibration("prior", float(best["class_weight"]["1"]))


def import_custom_objects(modules, beside: str = "builtin") -> None:
    """Import the modules that register a model's custom layers (keras.saving.register_keras_serializable), so
    that safe-mode loading finds them; nothing shipped inside a bundle is ever run. A module is looked for in the
    working directory, then beside the builder's file (`beside`, the study's model spec PATH.py:FUNCTION), where
    the sweep imported it from."""
    from sweep.model import BuilderError, import_user_module, importable_beside

    target = beside.rpartition(":")[0]
    if modules and target.endswith(".py") and Path(target).parent.is_dir():
        importable_beside(Path(target), first=False)
    for name in modules or ():
        try:
            import_user_module(name)
        except BuilderError as exc:
            raise DataError(f"--custom-objects {name}: {str(exc).removeprefix('model ')}") from None


def load_bundle(bundle_dir: str | Path, custom_objects=()) -> Bundle:
    """Read an export bundle back. Nothing in it is pickled: JSON for the settings and the fitted preprocessing,
    the Keras format loaded in safe mode for the network (a Lambda layer's code is refused; a custom layer loads
    only when one of `custom_objects`, importable module names, registers it)."""
    tensorflow()
    import keras

    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "best.json").is_file():
        raise DataError(
            f"{str(bundle_dir)!r} is not an export bundle (no best.json); pass the --out directory of `sweep export`"
        )
    try:
        best = json.loads((bundle_dir / "best.json").read_text())
        threshold = float(best["threshold"])
        table = best.get("model", {}).get("data_kind", "table") == "table"
        calibration = calibration_of(best)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{str(bundle_dir / 'best.json')!r} is damaged ({type(exc).__name__}: {exc}); export the study again"
        ) from None
    if not 0 <= threshold <= 1:
        raise DataError(
            f"{str(bundle_dir / 'best.json')!r} has threshold {threshold}, outside [0, 1]; export the study again"
        )
    needed = [name for name in BUNDLE_FILES[1:] if table or name != "preprocessor.json"]
    missing = [name for name in needed if not (bundle_dir / name).is_file()]
    if missing:
        raise DataError(
            f"{str(bundle_dir)!r} is not a whole export bundle (missing {', '.join(missing)}); pass the --out directory of `sweep export`"
        )
    preprocessor = Preprocessor.from_dict(json.loads((bundle_dir / "preprocessor.json").read_text())) if table else None
    import_custom_objects(custom_objects, beside=best.get("config", {}).get("model", "builtin"))
    try:
        # safe_mode (the default, spelled out): a .keras file with a Lambda layer's pickled code is refused.
        model = keras.saving.load_model(bundle_dir / "model.keras", safe_mode=True)
    except Exception as exc:
        raise DataError(_load_error(bundle_dir / "model.keras", exc)) from None
    return Bundle(best, preprocessor, model, calibration)


def _load_error(path: Path, exc: Exception) -> str:
    """One line for a model.keras Keras cannot load: a custom class it cannot find, unsafe code, or a damaged file."""
    text = " ".join(str(exc).split())
    if "safe_mode" in text or "Lambda" in text:
        return (
            f"{str(path)!r} holds code (a Lambda layer) that Keras' safe mode refuses to run; rebuild the model without "
            "Lambda layers (a registered custom layer instead) and export again"
        )
    if "Could not locate" in text or "custom_objects" in text or "Unknown layer" in text:
        return (
            f"{str(path)!r} uses a custom class Keras cannot find ({text[:160]}); pass --custom-objects MODULE, the importable "
            "module that registers it with keras.saving.register_keras_serializable"
        )
    return f"{str(path)!r} cannot be loaded ({type(exc).__name__}: {text[:160]}); the file is damaged or not a Keras model: export again"


def predict(bundle_dir: str | Path, data, custom_objects=()):
    """Score rows with a bundle: one output row per input row, in order, columns probability (calibrated), decision
    (score >= threshold) and score (the network's raw output); see OUTPUTS. A table (a CSV/Parquet path or a
    DataFrame) may have missing values and levels the model never saw (encoded as the preprocessing says); arrays
    (an .npz path holding x, or an array) must have the model's row shape."""
    import pandas as pd

    bundle = load_bundle(bundle_dir, custom_objects)
    raw = bundle.score(data)
    decision = (raw >= bundle.threshold).astype(np.int8)
    index = data.index if isinstance(data, pd.DataFrame) else None
    return pd.DataFrame({"probability": bundle.calibration(raw), "decision": decision, "score": raw}, index=index)
