"""Objectives and validation metrics of a scored split: confusion counts, flag rate, F-scores, AP, ROC-AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.errors import ConfigError

OBJECTIVE_SYNTAX = (
    "f1 | fbeta:BETA | ap | recall_at_precision:MIN_PRECISION | cost:miss=COST,false_alarm=COST"
)


@dataclass(frozen=True)
class Objective:
    """A parsed --objective: what to compute on the validation part and which way is better."""

    kind: str
    beta: float = 1.0
    min_precision: float = 0.0
    miss_cost: float = 1.0
    false_alarm_cost: float = 1.0

    @property
    def direction(self) -> str:
        return "minimize" if self.kind == "cost" else "maximize"

    @property
    def name(self) -> str:
        """Metric name shown by optuna-dashboard (study.set_metric_names)."""
        if self.kind == "fbeta":
            return f"val_f{self.beta:g}"
        if self.kind == "recall_at_precision":
            return f"val_recall_at_precision_{self.min_precision:g}"
        if self.kind == "cost":
            return f"val_cost_per_row(miss={self.miss_cost:g},false_alarm={self.false_alarm_cost:g})"
        return {"f1": "val_f1", "ap": "val_average_precision"}[self.kind]

    @property
    def uses_threshold(self) -> bool:
        return self.kind != "ap"

    def value_of_scores(self, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
        """The objective straight from scores, computing only what it needs (used after every epoch)."""
        if self.kind == "ap":
            return average_precision(y_true, scores)
        return self.value(threshold_metrics(y_true, scores, threshold))

    def value(self, metrics: dict) -> float:
        """The objective from metrics(); see the README for how each kind prices misses and false alarms."""
        if self.kind == "f1":
            return metrics["f1"]
        if self.kind == "fbeta":
            return fbeta(metrics["precision"], metrics["recall"], self.beta)
        if self.kind == "ap":
            return metrics["average_precision"]
        if self.kind == "recall_at_precision":
            # Feasible trials score their recall in [0, 1]; infeasible ones score how far precision falls
            # short (negative), so the sampler is still led towards the constraint.
            shortfall = self.min_precision - metrics["precision"]
            return metrics["recall"] if shortfall <= 0 else -shortfall
        total = metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"]
        return (self.miss_cost * metrics["fn"] + self.false_alarm_cost * metrics["fp"]) / total


def _bad_objective(spec: str, source: str, why: str) -> ConfigError:
    return ConfigError(f"objective {spec!r} (from {source}) is invalid: {why}; expected {OBJECTIVE_SYNTAX}")


def _positive_number(text: str, spec: str, source: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _bad_objective(spec, source, f"{what} {text!r} is not a number") from None
    if not number > 0 or not np.isfinite(number):
        raise _bad_objective(spec, source, f"{what} must be a positive number, got {text}")
    return number


def parse_objective(spec: str, source: str = "--objective") -> Objective:
    """Parse the objective syntax (OBJECTIVE_SYNTAX); errors say what was received and what is expected."""
    text = spec.strip().lower()
    kind, _, argument = text.partition(":")
    if kind == "f1" and not argument:
        return Objective("f1")
    if kind in ("ap", "average_precision") and not argument:
        return Objective("ap")
    if kind == "fbeta":
        return Objective("fbeta", beta=_positive_number(argument, spec, source, "beta"))
    if kind == "recall_at_precision":
        floor = _positive_number(argument, spec, source, "minimum precision")
        if floor >= 1:
            raise _bad_objective(spec, source, f"minimum precision must be below 1, got {argument}")
        return Objective("recall_at_precision", min_precision=floor)
    if kind == "cost":
        costs = {}
        for part in filter(None, argument.split(",")):
            name, _, number = part.partition("=")
            if name.strip() not in ("miss", "false_alarm"):
                raise _bad_objective(spec, source, f"unknown cost {name.strip()!r} (use miss= and false_alarm=)")
            costs[name.strip()] = _positive_number(number.strip(), spec, source, f"cost {name.strip()}")
        if set(costs) != {"miss", "false_alarm"}:
            raise _bad_objective(spec, source, "both miss= and false_alarm= costs are needed")
        return Objective("cost", miss_cost=costs["miss"], false_alarm_cost=costs["false_alarm"])
    raise _bad_objective(spec, source, "unknown objective")


def fbeta(precision: float, recall: float, beta: float) -> float:
    """F-beta from precision and recall (0 when both are 0), as sklearn.metrics.fbeta_score defines it."""
    denominator = beta**2 * precision + recall
    return 0.0 if denominator == 0 else (1 + beta**2) * precision * recall / denominator


def threshold_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Confusion counts, precision, recall, F1 and flag rate at `threshold` (flag = score >= threshold).

    Plain numpy rather than sklearn.metrics.confusion_matrix: this runs after every epoch for pruning,
    where sklearn's input validation costs more than the counting (tests check both agree).
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    flagged = np.asarray(scores).ravel() >= threshold
    tp = int(np.count_nonzero(flagged & y_true))
    fp = int(np.count_nonzero(flagged)) - tp
    fn = int(np.count_nonzero(y_true)) - tp
    tn = len(y_true) - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": fbeta(precision, recall, 1.0),
        "flag_rate": (tp + fp) / len(y_true) if len(y_true) else 0.0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's average precision; NaN when only one class is present."""
    from sklearn.metrics import average_precision_score

    y_true = np.asarray(y_true).astype(int).ravel()
    both_classes = 0 < y_true.sum() < len(y_true)
    return float(average_precision_score(y_true, np.asarray(scores).ravel())) if both_classes else float("nan")


def metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """All validation or test metrics of scores flagged at `threshold`: threshold_metrics plus AP and ROC-AUC."""
    from sklearn.metrics import roc_auc_score

    y_int = np.asarray(y_true).astype(int).ravel()
    found = threshold_metrics(y_int, scores, threshold)
    found["average_precision"] = average_precision(y_int, scores)
    both_classes = 0 < y_int.sum() < len(y_int)
    found["roc_auc"] = float(roc_auc_score(y_int, np.asarray(scores).ravel())) if both_classes else float("nan")
    return found
