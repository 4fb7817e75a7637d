"""What a bundle ships for a target of three or more classes: the chosen trial retrained (its value checked), one refit
on all non-test rows or the judged models themselves, the decision rule chosen on the judged models' pooled validation
probabilities and checked on the shipped models, the prior correction, and the test metrics with intervals, the rule's
own gain over plain argmax among them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sweep.errors import ExportError
from sweep.handover.decision import FLAG_COUNT_SLACK, FLAG_RATE_TOLERANCE
from sweep.handover.ensemble import Ensemble, fold_ensemble, single_model
from sweep.metrics import BOOTSTRAP_RESAMPLES
from sweep.models import Refit
from sweep.multiclass import (
    ClassJudge,
    DecisionRule,
    bind_class_goal,
    class_counts,
    class_metrics,
    effective_priors,
    fit_temperature,
    prior_corrected,
    with_temperature,
)

# What each column of `sweep predict` means for a bundle of several classes (best.json's "outputs").
CLASS_OUTPUTS = {
    "probability_<class>": "P(class): the network's output divided by the class's weight, each row renormalised, then "
    "the temperature fitted on the judged models' pooled validation scores; each row sums to 1 (best.json "
    "'calibration')",
    "score_<class>": "the network's raw output for the class (an ensemble's: the average of its members'), tilted by "
    "the class weights; the decision rule was chosen on this scale",
    "decision": "the class of argmax(log score_<class> + offset_<class>), the offsets of best.json 'decision_rule' "
    "(chosen on the judged models' pooled validation scores, checked on the shipped models: 'decision')",
}


@dataclass(frozen=True)
class ClassCheck:
    """Each class's share of the decisions: the judged models' on their validation rows and the shipped models' on the
    non-test rows, under the same rule; they agree when every class's share does."""

    judged: dict[str, float]
    judged_rows: int
    shipped: dict[str, float]
    shipped_rows: int
    rows: str  # which rows the shipped models were scored on, in words

    def _agrees(self, name: str) -> bool:
        judged, shipped = self.judged[name], self.shipped[name]
        if abs(shipped - judged) * self.shipped_rows <= FLAG_COUNT_SLACK:
            return True
        return judged / FLAG_RATE_TOLERANCE <= shipped <= judged * FLAG_RATE_TOLERANCE

    @property
    def passed(self) -> bool:
        return all(self._agrees(name) for name in self.judged)

    def describe(self) -> str:
        off = [name for name in self.judged if not self._agrees(name)] or list(self.judged)[:1]
        return "; ".join(
            f"class {name!r}: the judged models decide it for {self.judged[name]:.2%} of their validation rows, the "
            f"shipped ones for {self.shipped[name]:.2%} of {self.rows}"
            for name in off
        )

    def record(self) -> dict:
        return {
            "judged_flag_rates": self.judged,
            "judged_rows": self.judged_rows,
            "shipped_flag_rates": self.shipped,
            "shipped_rows": self.shipped_rows,
            "rows": self.rows,
            "passed": self.passed,
            "tolerance": f"each class's shipped flag rate within x{FLAG_RATE_TOLERANCE:g} of the judged one, or "
            f"within {FLAG_COUNT_SLACK} rows",
        }


def flag_rates(rule: DecisionRule, probabilities: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Each class's share of the rule's decisions."""
    decided = class_counts(rule.decide(probabilities), len(names))
    return {name: round(float(n / max(len(probabilities), 1)), 6) for name, n in zip(names, decided)}


@dataclass(frozen=True)
class ClassRetrained:
    """A chosen trial of several classes, retrained, and what its bundle ships (see sweep.handover.retrain.Retrained,
    the binary counterpart)."""

    chosen: object  # sweep.handover.retrain.Chosen
    rule: DecisionRule
    judge: ClassJudge
    reproduced_value: float
    validation: dict  # the retrained trial's validation metrics under its rule
    refit: str
    ensemble: Ensemble
    model: object  # the Keras model the bundle saves
    preprocessor: object
    test: object  # the test Split encoded by `preprocessor`
    fit_counts: dict
    check: ClassCheck
    temperature: float  # fitted on the judged models' prior-corrected pooled validation probabilities
    fallback: str | None = None
    failed_check: ClassCheck | None = None

    @property
    def class_weight(self) -> dict[int, float]:
        return self.chosen.params.class_weight

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The calibrated class probabilities of raw scores: the weights' tilt undone, then the fitted temperature;
        rows sum to 1."""
        return with_temperature(prior_corrected(scores, self.class_weight), self.temperature)

    def calibration_record(self) -> dict:
        """best.json's "calibration" of several classes: what predict_proba applies, and where it was fitted."""
        plan = self.chosen.dataset.validation
        pooled = "pooled out-of-fold" if plan.kind == "cv" else "validation"
        return {
            "method": "prior+temperature",
            "class_weight": {str(c): w for c, w in self.class_weight.items()},
            "temperature": self.temperature,
            "fitted_on": f"trial #{self.chosen.trial.number}'s {pooled} scores ({len(plan.y)} rows)",
            "what": "each class's output divided by its weight, each row renormalised; then p ~ exp(log p / "
            "temperature), renormalised",
        }


def retrain_classes(chosen, choice, refit: str) -> ClassRetrained:
    """Retrain the chosen trial, re-choose its rule on the retrained pooled validation probabilities (the stored value
    is checked against it), and ship one refit on all non-test rows (`refit` "all") or the judged models ("judged":
    the trial's own model, or its fold models averaged); a refit whose decisions stray from the judged models' gives
    way to them, with the reason."""
    if choice.kind not in ("single", "folds"):
        raise ExportError(
            f"--ensemble {choice} is not offered for a target of several classes yet; use --ensemble single or folds"
        )
    dataset, best, kind, params, settings = chosen.dataset, chosen.trial, chosen.kind, chosen.params, chosen.settings
    plan, names = dataset.validation, dataset.classes
    retrained = kind.retrain(dataset, [best], chosen.trial_of)[best.number]
    class_goal = bind_class_goal(chosen.goal, names)
    judge = ClassJudge(class_goal, effective_priors(dataset.class_counts, params.class_weight), class_goal.name)
    rule, value = judge.choose(plan.y, retrained.pooled)
    validation = class_metrics(plan.y, rule.decide(retrained.pooled), names)
    judged = refit in ("judged", "train") or choice.kind == "folds"
    judged_rates = flag_rates(rule, retrained.pooled, names)
    temperature = fit_temperature(prior_corrected(retrained.pooled, params.class_weight), plan.y)
    common = dict(
        chosen=chosen, rule=rule, judge=judge, reproduced_value=value, validation=validation, refit=refit,
        temperature=temperature,
    )  # fmt: skip
    if judged:
        if plan.kind == "holdout":
            shipped = single_model(retrained.models[0], best.number, settings.seed, "the trial's training part")
            preprocessor, fit_counts = dataset.preprocessor, dataset.counts(dataset.train.y)
        else:
            shipped = fold_ensemble(retrained.models, plan, best.number, settings.seed)
            preprocessor, fit_counts = dataset.final_preprocessor, dataset.counts(dataset.development.y)
        check = ClassCheck(judged_rates, len(plan.y), judged_rates, len(plan.y), "their own validation rows")
        model = shipped.keras_model(dataset.input_shape, kind)
        return ClassRetrained(
            **common, ensemble=shipped, model=model, preprocessor=preprocessor,
            test=dataset.test_split(preprocessor), fit_counts=fit_counts, check=check,
        )  # fmt: skip
    development = dataset.development
    refit_model = kind.refit(dataset, [Refit(best.number, params, settings)])[0]
    fit_counts = dataset.counts(development.y)
    shipped = single_model(refit_model, best.number, settings.seed, f"all non-test rows ({fit_counts['rows']} rows)")
    rows = f"the {fit_counts['rows']} non-test rows"
    shipped_rates = flag_rates(rule, shipped.scores(development.X), names)
    check = ClassCheck(judged_rates, len(plan.y), shipped_rates, len(development.y), rows)
    if not check.passed:
        fallback = retrain_classes(chosen, choice, "judged")
        reason = (
            f"the refit model does not decide as the judged ones did ({check.describe()}); shipping the judged "
            "models themselves instead (--refit judged)"
        )
        return dataclasses.replace(fallback, fallback=reason, failed_check=check)
    model = shipped.keras_model(development.X.shape[1:], kind)
    return ClassRetrained(
        **common, ensemble=shipped, model=model, preprocessor=dataset.final_preprocessor, test=dataset.test,
        fit_counts=fit_counts, check=check,
    )  # fmt: skip


def class_test_record(found: ClassRetrained) -> dict:
    """The shipped models on the held-out test rows, touched once here: the metrics of their decisions under the rule,
    of the same scores read at plain argmax, and stratified bootstrap intervals of both and of the rule's gain."""
    names, seed, y = found.chosen.dataset.classes, found.chosen.settings.seed, found.test.y
    scores = found.ensemble.scores(found.test.X)
    decided = found.rule.decide(scores)
    at_argmax = np.argmax(scores, axis=1)
    resamples = bootstrap_class_metrics(y, {"rule": decided, "argmax": at_argmax}, len(names), seed)
    gain = resamples["rule"]["macro_f1"] - resamples["argmax"]["macro_f1"]
    probabilities = found.probabilities(scores)
    prior_only = prior_corrected(scores, found.class_weight)
    metrics, argmax_metrics = class_metrics(y, decided, names), class_metrics(y, at_argmax, names)
    return {
        "value": found.judge.goal.value(y, decided, len(names)),
        "metrics": metrics,
        "intervals": class_intervals(resamples["rule"], names),
        "argmax": {"metrics": argmax_metrics, "intervals": class_intervals(resamples["argmax"], names)},
        "rule_gain": {
            "macro_f1": float(metrics["macro_f1"] - argmax_metrics["macro_f1"]),
            "interval": [float(v) for v in np.percentile(gain, [2.5, 97.5])],
            "what": "the shipped model with its decision rule minus the same model read at argmax, macro-F1",
        },
        "confusion": confusion_matrix(y, decided, len(names)).tolist(),
        "probability": {
            "log_loss": _log_loss(y, probabilities),
            "log_loss_prior_correction_only": _log_loss(y, prior_only),
            "log_loss_raw_score": _log_loss(y, scores),
            "rows_sum_to_one": bool(np.allclose(probabilities.sum(axis=1), 1.0)),
        },
        "interval_method": f"95% percentile, stratified bootstrap of the test rows, {BOOTSTRAP_RESAMPLES} resamples, "
        f"seed {seed}",
    }


def _log_loss(y: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log probability of each row's own class (rows normalised first, as a raw softmax already is)."""
    rows = np.asarray(probabilities, dtype=np.float64)
    rows = rows / rows.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(np.clip(rows[np.arange(len(y)), np.asarray(y, dtype=np.int64)], 1e-12, 1.0))))


def confusion_matrix(y: np.ndarray, predicted: np.ndarray, classes: int) -> np.ndarray:
    """Rows: the true class; columns: the decided class."""
    cells = np.asarray(y, dtype=np.int64) * classes + np.asarray(predicted, dtype=np.int64)
    return np.bincount(cells, minlength=classes * classes).reshape(classes, classes)


def bootstrap_class_metrics(
    y: np.ndarray, decisions: dict[str, np.ndarray], classes: int, seed: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> dict[str, dict[str, np.ndarray]]:
    """Macro-F1, balanced accuracy and each class's recall of every set of `decisions` over the same stratified
    resamples of the rows (each class's rows resampled within it), so their differences are paired."""
    y = np.asarray(y, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picks = np.concatenate(
        [rng.choice(np.flatnonzero(y == c), size=(resamples, int(np.sum(y == c)))) for c in range(classes)], axis=1
    )
    found = {}
    for name, predicted in decisions.items():
        cells = (np.arange(resamples)[:, None] * classes + y[picks]) * classes + np.asarray(predicted)[picks]
        counts = np.bincount(cells.ravel(), minlength=resamples * classes * classes).reshape(
            resamples, classes, classes
        )
        tp = np.diagonal(counts, axis1=1, axis2=2).astype(np.float64)
        actual, flagged = counts.sum(axis=2), counts.sum(axis=1)
        recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
        f1 = np.divide(2 * tp, actual + flagged, out=np.zeros_like(tp), where=actual + flagged > 0)
        found[name] = {"macro_f1": f1.mean(axis=1), "balanced_accuracy": recall.mean(axis=1), "recall": recall}
    return found


def class_intervals(resampled: dict[str, np.ndarray], names: tuple[str, ...]) -> dict[str, list[float]]:
    """95% percentile intervals of one set of decisions' bootstrapped macro-F1, balanced accuracy and class recalls."""
    bounds = {key: np.percentile(resampled[key], [2.5, 97.5]) for key in ("macro_f1", "balanced_accuracy")}
    recall = np.percentile(resampled["recall"], [2.5, 97.5], axis=0)
    bounds |= {f"recall:{name}": recall[:, c] for c, name in enumerate(names)}
    return {key: [round(float(v), 6) for v in value] for key, value in bounds.items()}
