"""The check that what ships decides as what was judged.

The threshold is chosen on the judged models' pooled validation (or out-of-fold) scores. A bundle may hold other
models (refits on all non-test rows, an ensemble of refits) whose score scale moved with their training, so the same
threshold can flag a very different share of rows, or none. `check_decision` compares the two flag rates on the
non-test rows (never the test rows); export ships the judged models themselves where a refit fails it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

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
