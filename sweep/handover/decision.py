"""Where the shipped models cut, and the check that what ships decides as what was judged.

The threshold is chosen on the judged models' pooled validation (or out-of-fold) scores: the best trial's own, or
(`shipped_threshold`) re-chosen on that trial's scores where they hold enough positives to trust a finer cut. A bundle
may hold other models (refits on all non-test rows, an ensemble of refits) whose score scale moved with their
training, so the same threshold can flag a very different share of rows, or none. `check_decision` compares the two
flag rates on the non-test rows (never the test rows); export ships the judged models themselves where a refit fails
it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.errors import ExportError
from sweep.metrics import fold_mean_threshold

THRESHOLD_RULES = ("auto", "trial", "folds")
# threshold_rule "auto" re-chooses the cut across the folds only where the validation rows hold at least this many
# positives: with fewer, the best trial's own threshold decided better on the test rows of real tables; with more,
# the re-chosen cut did (docs/benchmarks/export.md#threshold-rule).
FOLD_CUT_MIN_POSITIVES = 200

# The shipped models' flag rate on the non-test rows must lie within this factor of the judged models' flag rate,
# or differ from the judged count by at most FLAG_COUNT_SLACK rows (a handful of flagged rows is too few for a ratio).
FLAG_RATE_TOLERANCE = 2.0
FLAG_COUNT_SLACK = 3


def flag_rate(scores: np.ndarray, threshold: float) -> float:
    """Share of rows with score >= threshold (the bundle's decision rule)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    return float(np.count_nonzero(scores >= threshold) / len(scores)) if len(scores) else 0.0


@dataclass(frozen=True)
class DecisionCheck:
    """The judged and the shipped models' flag rates at the threshold on non-test rows, and whether they agree."""

    threshold: float
    judged_flag_rate: float
    judged_rows: int
    shipped_flag_rate: float
    shipped_rows: int
    shipped_max_score: float
    rows: str  # which rows the shipped models were scored on, in words

    @property
    def passed(self) -> bool:
        judged, shipped = self.judged_flag_rate, self.shipped_flag_rate
        if abs(shipped - judged) * self.shipped_rows <= FLAG_COUNT_SLACK:
            return True
        return judged / FLAG_RATE_TOLERANCE <= shipped <= judged * FLAG_RATE_TOLERANCE

    def describe(self) -> str:
        return (
            f"at threshold {self.threshold:.4g} the judged models flag {self.judged_flag_rate:.2%} of their validation "
            f"rows, the shipped ones {self.shipped_flag_rate:.2%} of {self.rows} (their highest score "
            f"{self.shipped_max_score:.4g})"
        )

    def record(self) -> dict:
        return {
            "threshold": self.threshold,
            "judged_flag_rate": self.judged_flag_rate,
            "judged_rows": self.judged_rows,
            "shipped_flag_rate": self.shipped_flag_rate,
            "shipped_rows": self.shipped_rows,
            "rows": self.rows,
            "shipped_max_score": self.shipped_max_score,
            "passed": self.passed,
            "tolerance": f"shipped flag rate within x{FLAG_RATE_TOLERANCE:g} of the judged one, or within "
            f"{FLAG_COUNT_SLACK} rows",
        }


def check_decision(judged_scores: np.ndarray, shipped_scores: np.ndarray, threshold: float, rows: str) -> DecisionCheck:
    """Compare the flag rate of the judged models' pooled validation scores with the shipped models' scores of
    non-test `rows` (in words), both at `threshold`."""
    shipped_scores = np.asarray(shipped_scores)
    return DecisionCheck(
        float(threshold),
        flag_rate(judged_scores, threshold),
        int(np.size(judged_scores)),
        flag_rate(shipped_scores, threshold),
        int(shipped_scores.size),
        float(np.max(shipped_scores)) if shipped_scores.size else float("nan"),
        rows,
    )


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold a bundle ships and how it was found: the best trial's own ("trial") or re-chosen on that trial's
    validation scores as the best mean of the folds' objective ("folds"), with each one's validation value."""

    rule: str  # "trial" or "folds"
    asked: str  # the threshold_rule asked for (auto, trial, folds)
    threshold: float
    value: float | None  # the objective on the pooled validation scores at `threshold` (None: several objectives)
    trial_threshold: float
    trial_value: float | None
    positives: int  # positives in the validation rows

    def describe(self) -> str:
        if self.rule == "trial":
            why = (
                "--threshold-rule trial"
                if self.asked == "trial"
                else f"auto: {self.positives} validation positives, fewer than {FOLD_CUT_MIN_POSITIVES}"
                if self.positives < FOLD_CUT_MIN_POSITIVES
                else "auto: the objective has no single threshold to re-choose"
            )
            return f"the best trial's own ({why})"
        return (
            f"re-chosen on the best trial's validation scores, best on average over its folds ({self.asked}: "
            f"{self.positives} validation positives); the trial's own was {self.trial_threshold:.4g}, validation "
            f"value {self.trial_value:.4g} there, {self.value:.4g} here"
        )

    def record(self) -> dict:
        return {
            "rule": self.rule,
            "asked": self.asked,
            "threshold": self.threshold,
            "validation_value": self.value,
            "trial_threshold": self.trial_threshold,
            "trial_validation_value": self.trial_value,
            "validation_positives": self.positives,
            "min_positives_for_folds": FOLD_CUT_MIN_POSITIVES,
            "how": self.describe(),
        }


def check_threshold_rule(rule: str, goal, greedy: bool, classes: bool) -> None:
    """Refuse in one line a threshold_rule that is unknown or cannot apply: "folds" re-chooses one objective's
    threshold of a binary target's single configuration."""
    if rule not in THRESHOLD_RULES:
        raise ExportError(f"--threshold-rule {rule!r} is not known; expected one of: {', '.join(THRESHOLD_RULES)}")
    if rule != "folds":
        return
    why = (
        "a greedy ensemble chooses its own threshold on its averaged scores; use --threshold-rule auto"
        if greedy
        else "a target of three or more classes decides by its class rule, not a threshold"
        if classes
        else f"objective {goal.text or goal.kind!r} has {'several values' if goal.is_multi else 'no threshold'}; "
        "use --threshold-rule trial"
        if goal.is_multi or not goal.uses_threshold
        else None
    )
    if why:
        raise ExportError(f"--threshold-rule folds cannot apply here: {why}")


def shipped_threshold(rule: str, goal, plan, scores: np.ndarray, trial_threshold: float, bounds) -> ThresholdChoice:
    """The threshold to ship for the best trial, from its pooled validation scores `scores` on `plan` (a
    sweep.data.Validation): "trial", its own; "folds", sweep.metrics.fold_mean_threshold within the study's range
    `bounds`; "auto", folds where the validation rows hold FOLD_CUT_MIN_POSITIVES positives or more and the objective
    is one with a threshold, else trial. With repeated folds, the mean runs over every repeat's folds."""
    positives = int(np.sum(plan.y)) // plan.repeats  # repeated folds score each row once per repeat
    trial_value = None if goal.is_multi else float(goal.value_of_scores(plan.y, scores, trial_threshold))
    chosen = rule
    if rule == "auto":
        fits = not goal.is_multi and goal.uses_threshold
        chosen = "folds" if fits and positives >= FOLD_CUT_MIN_POSITIVES else "trial"
    if chosen == "trial":
        return ThresholdChoice("trial", rule, trial_threshold, trial_value, trial_threshold, trial_value, positives)
    threshold, _ = fold_mean_threshold(goal, plan.y, scores, [fold.slots for fold in plan.folds], bounds)
    value = float(goal.value_of_scores(plan.y, scores, threshold))
    return ThresholdChoice("folds", rule, threshold, value, trial_threshold, trial_value, positives)
