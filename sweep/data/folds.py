"""Split off the test rows (stratified) and lay out how trials are validated: one validation split, or stratified folds
of all non-test rows, each fold model's rows and where its scores are pooled."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweep.errors import DataError

if TYPE_CHECKING:
    from sweep.config import SweepConfig


# Automatic --cv: cross-validate with AUTO_FOLDS folds when one validation part would hold fewer than
# AUTO_CV_BELOW positives (docs/concepts/protocol.md, "One split or cross-validated trials", says why).
AUTO_FOLDS = 5


AUTO_CV_BELOW = 100


@dataclass(frozen=True)
class Fold:
    """One fold model of a trial: it trains on the plan's fit rows weighted by `keep` (0 = held out; None =
    every fit row) and is judged on X_val, whose scores go to `slots` of the pooled validation vector.

    Arrays (.npz) are indexed, never copied per fold: their folds name their rows of X_fit instead
    (`fit_rows` trains, `val_rows` judges, and X_val is None)."""

    keep: np.ndarray | None
    X_val: np.ndarray | None
    slots: np.ndarray
    fit_rows: np.ndarray | None = None
    val_rows: np.ndarray | None = None

    @classmethod
    def everything(cls, n_fit: int, X: np.ndarray) -> Fold:
        """A model that learns from all `n_fit` rows of X and is judged on none (a refit)."""
        return cls(None, X[:0], np.empty(0, dtype=np.int64))

    def training_rows(self, n_fit: int) -> np.ndarray:
        """Indices of the plan's fit rows this fold model learns from."""
        if self.fit_rows is not None:
            return self.fit_rows
        return np.arange(n_fit) if self.keep is None else np.flatnonzero(self.keep)


@dataclass(frozen=True)
class Validation:
    """How every trial is judged: fold models trained on (X_fit, y_fit), their validation scores pooled so
    each validation row (each non-test row, when cross-validating) is scored exactly once per repeat."""

    kind: str  # "holdout" or "cv"
    X_fit: np.ndarray
    y_fit: np.ndarray
    folds: tuple[Fold, ...]
    y: np.ndarray  # pooled labels, aligned with pool()'s output
    n_splits: int = 1
    repeats: int = 1

    def pool(self, fold_scores, rows_first: bool = False) -> np.ndarray:
        """Place each fold model's validation scores at its rows: (..., n_pooled) from [(..., n_fold_rows)];
        `rows_first`: (n_pooled, classes) from [(n_fold_rows, classes)]."""
        if rows_first:
            return self.pool([np.asarray(scores).T for scores in fold_scores]).T
        first = np.asarray(fold_scores[0])
        if self.kind == "holdout":  # one fold whose slots are every row in order: nothing to place
            return first.astype(np.float64)
        pooled = np.empty(first.shape[:-1] + (len(self.y),), dtype=np.float64)
        for fold, scores in zip(self.folds, fold_scores):
            pooled[..., fold.slots] = scores
        return pooled

    def describe(self) -> dict:
        """Stored on the study: a resumed study must be judged the same way."""
        if self.kind == "holdout":
            return {"kind": "holdout"}
        return {"kind": "cv", "folds": self.n_splits, "repeats": self.repeats}


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed): the same rows
    in the same order (a test compares them), as int32 positions.

    StratifiedShuffleSplit's own steps with arrays where it gathers each part's rows in Python lists, whose objects cost
    more memory than a big table's float32 features (docs/benchmarks/memory.md#section-15). Anything unusual (a class of
    fewer than 2 rows, a part smaller than the number of classes) goes to scikit-learn itself."""
    from math import ceil

    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    try:  # scikit-learn's own helper (a private name): where a release drops it, scikit-learn splits itself
        from sklearn.utils.extmath import _approximate_mode
    except ImportError:
        return tuple(train_test_split(row_numbers(len(y)), test_size=test_fraction, stratify=y, random_state=seed))
    n_test = ceil(test_fraction * len(y))
    n_train = len(y) - n_test
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if not 0 < test_fraction < 1 or class_counts.min() < 2 or min(n_train, n_test) < len(classes):
        return tuple(train_test_split(row_numbers(len(y)), test_size=test_fraction, stratify=y, random_state=seed))
    class_indices = np.split(row_positions(np.argsort(y_indices, kind="stable")), np.cumsum(class_counts)[:-1])
    del y_indices
    rng = check_random_state(seed)
    n_i = _approximate_mode(class_counts, n_train, rng)
    t_i = _approximate_mode(class_counts - n_i, n_test, rng)
    train, test = [], []
    for i in range(len(classes)):
        rows = class_indices[i].take(rng.permutation(class_counts[i]), mode="clip")
        train.append(rows[: n_i[i]])
        test.append(rows[n_i[i] : n_i[i] + t_i[i]])
    # RandomState.permutation shuffles an array of any integer type with the same draws.
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def row_numbers(count: int) -> np.ndarray:
    """0 .. count - 1 to split, as int32 when they fit: the parts' positions come out int32 too (the same rows)."""
    return np.arange(count, dtype=np.int32 if count < np.iinfo(np.int32).max else np.int64)


def row_positions(rows: np.ndarray) -> np.ndarray:
    """Row positions as int32 when they fit (half the memory of int64)."""
    rows = np.asarray(rows)
    return rows.astype(np.int32, copy=False) if len(rows) and rows.max() < np.iinfo(np.int32).max else rows


def choose_folds(config: SweepConfig, dev_positives: int, rarest: str | None = None) -> int:
    """Folds per trial: config.cv when set (0 = one validation split), else automatic: cross-validate
    (AUTO_FOLDS folds) when a single validation part would hold fewer than AUTO_CV_BELOW positives (of a target of
    several classes: rows of its `rarest` class)."""
    if config.cv is not None:
        if config.cv > dev_positives:
            found = (
                f"positive rows outside the test part, found {dev_positives}"
                if rarest is None
                else f"rows of every class outside the test part; class {rarest!r} has {dev_positives}"
            )
            raise DataError(f"--cv {config.cv} needs at least {config.cv} {found}; use fewer folds or --cv 0")
        return config.cv
    return AUTO_FOLDS if dev_positives * config.validation_fraction < AUTO_CV_BELOW else 0
