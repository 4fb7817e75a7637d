"""What a bundle ships, made from a study's chosen trial: that trial retrained from its stored settings (its value
checked), then one refit on all non-test rows, refit seeds, its fold models or a greedy ensemble
(sweep.handover.ensemble), with its calibration and the check that the shipped models decide as the judged ones did
(sweep.handover.decision)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sweep.config import config_from_dict
from sweep.data import load_dataset
from sweep.errors import DataError, ExportError, StorageError
from sweep.handover.calibration import Calibration, fit_calibration
from sweep.handover.decision import (
    DecisionCheck,
    ThresholdChoice,
    check_decision,
    check_threshold_rule,
    shipped_threshold,
)
from sweep.handover.ensemble import (
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
from sweep.metrics import metrics, parse_goal
from sweep.models import ModelKind, Refit, model_kind
from sweep.models.network import TrainSettings
from sweep.space import TrialParams
from sweep.study.optuna_private import trial_by_number
from sweep.study.storage import load_study, open_storage
from sweep.study.summary import best_trial

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
    model: object  # what the bundle saves: the shipped models as one Keras model
    threshold: float  # the decision threshold (the trial's or re-chosen on its scores: `cut`; a greedy ensemble's own)
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
    cut: ThresholdChoice | None = None  # how `threshold` was found (None: a greedy ensemble's own)


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
    threshold_rule: str = "auto",
) -> Retrained:
    """Load the study, choose its best trial (a Pareto-front trial by `pick` when multi-objective), check the
    data is unchanged, retrain that trial deterministically from its stored settings (to check its value),
    and then make what the bundle holds (`ensemble`, sweep.handover.ensemble): for "single" and refit "all", its
    configuration trained on all non-test rows; for refit "judged", the models the threshold was chosen on. Refits that
    do not flag what the judged models flagged at the threshold (sweep.handover.decision) give way to the judged models,
    with the reason in `fallback`. The threshold is the trial's own or re-chosen on its validation scores, as
    `threshold_rule` says (sweep.handover.decision.shipped_threshold). `data` (frame= or arrays=) is the Python API's
    data in memory, for a study made from it."""
    choice = _checked_choice(parse_ensemble(ensemble), refit)
    chosen = _chosen(storage_url, study_name, pick, data, choice, refit)
    choice = automatic_ensemble(choice)
    check_threshold_rule(threshold_rule, chosen.goal, choice.kind == "greedy", bool(chosen.dataset.classes))
    if chosen.dataset.classes:
        from sweep.handover.classes import retrain_classes

        return retrain_classes(chosen, choice, refit)
    found = _ship(chosen, choice, refit, threshold_rule)
    if found.check.passed:
        return found
    fallback = retrain_best(
        storage_url,
        study_name,
        pick,
        "judged",
        data,
        str(choice) if choice.kind == "greedy" else "single",
        threshold_rule,
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
            f"--refit judged ships the models that were judged, but --ensemble {choice} refits new seeds; "
            "use --refit all"
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
    kind = model_kind(config, dataset)
    settings = TrainSettings(**best.user_attrs["train_settings"])
    return Chosen(study, best, config, goal, dataset, kind, kind.params(best), settings)


def _ship(chosen: Chosen, choice: EnsembleChoice, refit: str, threshold_rule: str) -> Retrained:
    """The chosen trial retrained (its value checked), what ships made as `choice` and `refit` say, its threshold
    found as `threshold_rule` says, and the check that it decides as the judged models did."""
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
    cut = None
    if choice.kind != "greedy":
        bounds = chosen.config.threshold
        cut = shipped_threshold(threshold_rule, chosen.goal, dataset.validation, pooled, params.threshold, bounds)
    threshold, ensemble_validation, judged_scores = (cut.threshold if cut else params.threshold), None, pooled
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
    model = shipped.keras_model(input_shape, kind)
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
        compiled_by=best.user_attrs.get("compiled_by"), cut=cut,
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
    found = {best.number: retrained} | kind.retrain(dataset, others, chosen.trial_of)
    pooled = {n: f.pooled for n, f in found.items()}  # the best trial first, as greedy selection starts from it
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
