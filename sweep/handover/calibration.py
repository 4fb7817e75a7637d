"""What a bundle's `probability` is: the network's raw score corrected for the class weight it was trained with,
then mapped by a monotone calibration fitted on the retrained trial's pooled validation scores (out-of-fold for
cross-validated trials; the validation part otherwise; never the test rows).

A network trained with the positive class weighted w learns odds about w times the true odds, so the prior
correction q = p / (p + w (1 - p)) divides the odds by w exactly. What is left (the network's own
miscalibration) is fitted on validation scores: Platt scaling, a logistic regression on logit(q) with Platt's
smoothed targets (the default, METHOD), isotonic regression on q, or nothing ("prior").

METHOD is Platt scaling by measurement (benchmarks/calibration.py, docs/benchmarks/calibration.md#section-14):
it has the lowest mean Brier score and log loss and never a log loss worse than predicting the positive rate
everywhere; isotonic's steps at probability 0 cost it log loss on small tables; the correction alone is as good
on the reference data but worse on small tables.

Everything is stored as JSON numbers (Platt's slope and intercept; isotonic's knots, applied with np.interp and
clipped at the ends as sklearn's IsotonicRegression(out_of_bounds="clip") predicts), so loading runs no code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("isotonic", "platt", "prior")
# Chosen by benchmarks/calibration.py (docs/benchmarks/calibration.md#section-14).
METHOD = "platt"
# Scores are clipped this far inside (0, 1) before a logit, and probabilities before a log loss.
EPS = 1e-12


def prior_correction(scores, weight: float) -> np.ndarray:
    """p / (p + w (1 - p)): the odds of `scores` divided by the positive class weight `weight` (float64)."""
    p = np.asarray(scores, dtype=np.float64)
    w = float(weight)
    if not w > 0 or not np.isfinite(w):
        raise ValueError(f"class weight must be a positive number, got {weight}")
    return p / (p + w * (1.0 - p))


def logit(p) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1.0 - EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


@dataclass(frozen=True)
class Calibration:
    """raw score -> probability: the prior correction with `weight`, then the fitted monotone map of `method`."""

    method: str
    weight: float
    x: tuple[float, ...] = ()  # isotonic: knots on the corrected scale, increasing
    y: tuple[float, ...] = ()  # isotonic: the probability at each knot, non-decreasing
    slope: float = 1.0  # platt: sigmoid(slope * logit(q) + intercept)
    intercept: float = 0.0
    fitted_on: str = ""  # the rows the map was fitted on, in words

    def corrected(self, scores) -> np.ndarray:
        return prior_correction(scores, self.weight)

    def __call__(self, scores) -> np.ndarray:
        """The calibrated probability of each raw score (float64, same shape); non-decreasing in the score."""
        q = self.corrected(scores)
        if self.method == "isotonic":
            return np.interp(q, self.x, self.y)  # constant beyond the end knots, as out_of_bounds="clip"
        if self.method == "platt":
            return _sigmoid(self.slope * logit(q) + self.intercept)
        return q

    def to_dict(self) -> dict:
        """What best.json stores: plain numbers only."""
        found = {"method": self.method, "class_weight": self.weight, "fitted_on": self.fitted_on}
        if self.method == "isotonic":
            found |= {"x": list(self.x), "y": list(self.y)}
        elif self.method == "platt":
            found |= {"slope": self.slope, "intercept": self.intercept}
        return found

    @classmethod
    def from_dict(cls, values: dict) -> Calibration:
        """Read back to_dict(); ValueError (or KeyError/TypeError) when it is not a valid calibration."""
        method = values["method"]
        if method not in METHODS:
            raise ValueError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
        weight = float(values["class_weight"])
        fitted_on = str(values.get("fitted_on", ""))
        if method == "isotonic":
            x = tuple(float(v) for v in values["x"])
            y = tuple(float(v) for v in values["y"])
            if not x or len(x) != len(y):
                raise ValueError(f"isotonic calibration needs as many knots as values (got {len(x)} and {len(y)})")
            if (
                np.any(np.diff(x) < 0)
                or np.any(np.diff(y) < 0)
                or min(y) < 0
                or max(y) > 1
                or not np.all(np.isfinite(x))
            ):
                raise ValueError(
                    "isotonic calibration knots must be increasing and its values non-decreasing in [0, 1]"
                )
            return cls(method, weight, x, y, fitted_on=fitted_on)
        if method == "platt":
            slope, intercept = float(values["slope"]), float(values["intercept"])
            if not (np.isfinite(slope) and np.isfinite(intercept) and slope >= 0):
                raise ValueError(
                    f"Platt calibration needs a finite slope >= 0 and intercept (got {slope}, {intercept})"
                )
            return cls(method, weight, slope=slope, intercept=intercept, fitted_on=fitted_on)
        return cls(method, weight, fitted_on=fitted_on)

    def describe(self) -> str:
        """One line for the CLI and the report."""
        fitted = {
            "isotonic": f"then isotonic regression ({len(self.x)} knots)",
            "platt": f"then Platt scaling (slope {self.slope:.3g}, intercept {self.intercept:+.3g})",
            "prior": "alone",
        }[self.method]
        where = f", fitted on {self.fitted_on}" if self.fitted_on and self.method != "prior" else ""
        return f"prior correction for class weight 1:{self.weight:g} {fitted}{where}"


def fit_isotonic(q: np.ndarray, y: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """sklearn's IsotonicRegression(out_of_bounds="clip") on corrected scores: its knots (X_thresholds_,
    y_thresholds_)."""
    from sklearn.isotonic import IsotonicRegression

    fitted = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(q, y)
    return tuple(float(v) for v in fitted.X_thresholds_), tuple(float(v) for v in fitted.y_thresholds_)


def fit_platt(q: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling on logit(q): the logistic regression of the labels on logit(q) with Platt's (1999) targets,
    (positives + 1) / (positives + 2) for a positive and 1 / (negatives + 2) for a negative, which keep the slope
    finite when the validation scores separate the classes. Fitted by Newton's method from slope 1, intercept 0
    (the correction alone); returns (slope, intercept), slope >= 0 so the map is non-decreasing."""
    z = logit(q)
    positives = float(np.sum(y))
    target = np.where(y > 0.5, (positives + 1) / (positives + 2), 1 / (len(y) - positives + 2))
    design = np.column_stack([z, np.ones_like(z)])
    beta = np.array([1.0, 0.0])
    for _ in range(100):
        p = _sigmoid(design @ beta)
        gradient = design.T @ (p - target)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + 1e-9 * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        loss = _log_loss_of(target, design @ beta)
        scale = 1.0
        while scale > 1e-6 and _log_loss_of(target, design @ (beta - scale * step)) > loss + 1e-12:
            scale /= 2
        beta = beta - scale * step
        if np.max(np.abs(scale * step)) < 1e-10:
            break
    return float(max(beta[0], 0.0)), float(beta[1])


def _log_loss_of(y: np.ndarray, z: np.ndarray) -> float:
    """Mean log loss of logits z against (possibly soft) targets y (stable)."""
    return float(np.mean(np.logaddexp(0.0, z) - y * z))


def fit_calibration(scores, y_true, weight: float, method: str = METHOD, fitted_on: str = "") -> Calibration:
    """The calibration of raw `scores` (validation scores, never test) with labels `y_true`, for a network trained
    with positive class weight `weight`."""
    if method not in METHODS:
        raise ValueError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    q = prior_correction(np.asarray(scores, dtype=np.float64).ravel(), weight)
    y = np.asarray(y_true, dtype=np.float64).ravel()
    if len(q) != len(y):
        raise ValueError(f"{len(q)} scores for {len(y)} labels")
    if method == "isotonic":
        x, fitted = fit_isotonic(q, y)
        return Calibration(method, float(weight), x, fitted, fitted_on=fitted_on)
    if method == "platt":
        slope, intercept = fit_platt(q, y)
        return Calibration(method, float(weight), slope=slope, intercept=intercept, fitted_on=fitted_on)
    return Calibration(method, float(weight), fitted_on=fitted_on)


def brier(y_true, probabilities) -> float:
    """Mean squared error of the probabilities against the 0/1 labels."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    return float(np.mean((np.asarray(probabilities, dtype=np.float64).ravel() - y) ** 2))


def row_log_loss(y_true, probabilities) -> np.ndarray:
    """Each row's log loss, probabilities clipped to [EPS, 1 - EPS] (a certain wrong answer costs -log(EPS), 27.6)."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), EPS, 1.0 - EPS)
    return -(y * np.log(p) + (1 - y) * np.log1p(-p))


def log_loss(y_true, probabilities) -> float:
    return float(np.mean(row_log_loss(y_true, probabilities)))


def probability_scores(y_true, probabilities, seed: int = 0) -> dict:
    """Brier score and log loss of probabilities on labelled rows, each with a 95% interval from the same stratified
    bootstrap as the test metrics' (sweep.metrics.bootstrap_mean_intervals), and the mean probability."""
    from sweep.metrics import bootstrap_mean_intervals

    y = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(probabilities, dtype=np.float64).ravel()
    losses = {"brier": (p - y) ** 2, "log_loss": row_log_loss(y, p)}
    intervals = bootstrap_mean_intervals(y, losses, seed=seed)
    return {
        "mean_probability": float(p.mean()),
        **{name: float(values.mean()) for name, values in losses.items()},
        "intervals": {name: list(interval) for name, interval in intervals.items()},
    }
