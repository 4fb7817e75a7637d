"""Carry the decision from the models that were judged to the models that ship, and check that it holds.

The threshold is chosen on the judged models' pooled validation (or out-of-fold) scores. A bundle may hold other
models (refits on all non-test rows, an ensemble of refits) whose score scale moved with their training, so the same
number can flag a very different share of rows. `carry` says how the threshold crosses over: "value" keeps the judged
number; "rank" sets the shipped models' threshold so that they flag the same share of the non-test rows as the judged
models did. Either way `check_decision` compares the two flag rates on non-test rows (never test rows).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sweep.errors import ExportError

CARRY_CHOICES = ("rank", "value")
DEFAULT_CARRY = "rank"
# The shipped models' flag rate on the non-test rows must lie within this factor of the judged models' flag rate,
# or differ from the judged count by at most FLAG_COUNT_SLACK rows (a handful of flagged rows is too few for a ratio).
FLAG_RATE_TOLERANCE = 2.0
FLAG_COUNT_SLACK = 3


def parse_carry(text) -> str:
    """--carry's value; one line saying what was received and what is expected otherwise."""
    given = str(text).strip().lower()
    if given not in CARRY_CHOICES:
        raise ExportError(
            f"--carry {text!r} is not known; expected one of: {', '.join(CARRY_CHOICES)} (rank: flag the judged share of "
            "rows; value: keep the judged threshold)"
        )
    return given


def flag_rate(scores: np.ndarray, threshold: float) -> float:
    """Share of rows with score >= threshold (the bundle's decision rule)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    return float(np.count_nonzero(scores >= threshold) / len(scores)) if len(scores) else 0.0


def rank_threshold(scores: np.ndarray, share: float) -> float:
    """The threshold at which `scores` flag `share` of their rows (as near as ties allow): the midpoint between the
    k-th and (k+1)-th highest distinct score, k = round(share * rows). Kept inside [0, 1], the bundle's range."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    k = int(round(share * len(ordered)))
    if k <= 0:
        return float(min(1.0, np.nextafter(ordered[0], np.inf)))
    if k >= len(ordered):
        return float(max(0.0, ordered[-1]))
    upper, lower = ordered[k - 1], ordered[k]
    return float(np.clip((upper + lower) / 2 if upper > lower else upper, 0.0, 1.0))


@dataclass(frozen=True)
class DecisionCheck:
    """The judged and the shipped models' flag rates at their thresholds on non-test rows, and whether they agree."""

    judged_threshold: float
    judged_flag_rate: float
    judged_rows: int
    threshold: float  # the shipped models' threshold
    shipped_flag_rate: float
    shipped_rows: int
    shipped_max_score: float
    judged_quantile: float  # share of the judged scores below the judged threshold
    shipped_quantile: float  # share of the shipped scores below the shipped threshold

    @property
    def passed(self) -> bool:
        judged, shipped = self.judged_flag_rate, self.shipped_flag_rate
        if abs(shipped - judged) * self.shipped_rows <= FLAG_COUNT_SLACK:
            return True
        return judged / FLAG_RATE_TOLERANCE <= shipped <= judged * FLAG_RATE_TOLERANCE

    def describe(self) -> str:
        return (
            f"the judged models flag {self.judged_flag_rate:.2%} of non-test rows at {self.judged_threshold:.4g}; "
            f"the shipped ones {self.shipped_flag_rate:.2%} at {self.threshold:.4g} (highest score {self.shipped_max_score:.4g})"
        )

    def record(self) -> dict:
        return {
            "judged_threshold": self.judged_threshold, "judged_flag_rate": self.judged_flag_rate, "judged_rows": self.judged_rows,
            "threshold": self.threshold, "shipped_flag_rate": self.shipped_flag_rate, "shipped_rows": self.shipped_rows,
            "shipped_max_score": self.shipped_max_score, "judged_quantile": self.judged_quantile,
            "shipped_quantile": self.shipped_quantile, "passed": self.passed,
            "tolerance": f"shipped flag rate within x{FLAG_RATE_TOLERANCE:g} of the judged one, or within {FLAG_COUNT_SLACK} rows",
        }


def check_decision(judged_scores: np.ndarray, judged_threshold: float, shipped_scores: np.ndarray, threshold: float) -> DecisionCheck:
    """Compare the flag rate of the judged models' pooled scores at their threshold with the shipped models' on the
    non-test rows at the shipped threshold."""
    judged_rate, shipped_rate = flag_rate(judged_scores, judged_threshold), flag_rate(shipped_scores, threshold)
    return DecisionCheck(
        float(judged_threshold), judged_rate, int(np.size(judged_scores)), float(threshold), shipped_rate,
        int(np.size(shipped_scores)), float(np.max(shipped_scores)), 1.0 - judged_rate, 1.0 - shipped_rate,
    )


@dataclass(frozen=True)
class CarriedDecision:
    """The threshold the bundle ships, how it was carried over, its check, and the fallback taken (None: none)."""

    threshold: float
    carry: str
    check: DecisionCheck
    fallback: str | None = None

    def record(self) -> dict:
        return {"carry": self.carry, "fallback": self.fallback} | self.check.record()


def carry_decision(judged_scores: np.ndarray, judged_threshold: float, shipped_scores: np.ndarray, carry: str) -> CarriedDecision:
    """The shipped models' threshold by `carry`, checked. A judged value that the shipped models do not reproduce
    (their flag rate outside the tolerance) falls back to the threshold carried over by rank; a bundle that still
    disagrees (ties at the top of the score range) is refused rather than written."""
    judged_rate = flag_rate(judged_scores, judged_threshold)
    if carry == "rank":
        threshold = rank_threshold(shipped_scores, judged_rate)
        decision = CarriedDecision(threshold, "rank", check_decision(judged_scores, judged_threshold, shipped_scores, threshold))
    else:
        decision = CarriedDecision(judged_threshold, "value", check_decision(judged_scores, judged_threshold, shipped_scores, judged_threshold))
        if not decision.check.passed:
            threshold = rank_threshold(shipped_scores, judged_rate)
            check = check_decision(judged_scores, judged_threshold, shipped_scores, threshold)
            decision = CarriedDecision(
                threshold, "rank", check,
                f"at the judged threshold {decision.check.describe()}; threshold carried over by rank instead ({threshold:.4g})",
            )
    if not decision.check.passed:
        raise ExportError(
            f"the shipped models cannot decide as the judged ones did: {decision.check.describe()} (tied scores); "
            "export the judged models themselves with --ensemble folds (cross-validated studies) or --refit train"
        )
    return decision
