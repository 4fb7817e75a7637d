"""Load the seed recipe or a CSV/Parquet table, check its labels, split it train/validation/test and scale it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from sweep.config import SweepConfig

# The tutorial's recipe (see DESIGN.md): 100,000 rows, ~1% positives, test = its exact 20,000 rows.
SEED_RECIPE = dict(
    n_samples=100_000, n_features=2, n_informative=2, n_redundant=0, n_repeated=0, n_classes=2,
    n_clusters_per_class=1, weights=[0.995, 0.005], class_sep=0.5, random_state=0,
)
SEED_TEST_SIZE = 0.2
SEED_SPLIT_STATE = 42
# A stratified three-way split needs a few minority rows in every part.
MIN_MINORITY_ROWS = 10
TABLE_SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


@dataclass(frozen=True)
class Split:
    """One part of the data: standardised float32 features and 0/1 labels (1 = the minority/positive class)."""

    X: np.ndarray
    y: np.ndarray

    def counts(self) -> dict[str, int]:
        positives = int(self.y.sum())
        return {"rows": int(len(self.y)), "negatives": int(len(self.y) - positives), "positives": positives}


@dataclass(frozen=True)
class Scaler:
    """Standardisation fitted on the training part only; saved as JSON in an export bundle."""

    feature_names: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, feature_names, X: np.ndarray) -> Scaler:
        scale = X.std(axis=0)
        return cls(tuple(feature_names), X.mean(axis=0), np.where(scale > 0, scale, 1.0))

    def transform(self, X: np.ndarray) -> np.ndarray:
        return ((X - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"feature_names": list(self.feature_names), "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, stored: dict) -> Scaler:
        return cls(tuple(stored["feature_names"]), np.asarray(stored["mean"]), np.asarray(stored["scale"]))


@dataclass(frozen=True)
class Dataset:
    """The three disjoint parts; the test part is for export and report only, never for the search."""

    source: str
    feature_names: tuple[str, ...]
    positive_label: str
    train: Split
    validation: Split
    test: Split
    scaler: Scaler
    fingerprint: str

    def summary(self) -> dict:
        """Split sizes and class counts, stored on the study and in the export bundle."""
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            "features": list(self.feature_names),
            "positive_label": self.positive_label,
            "splits": {name: getattr(self, name).counts() for name in ("train", "validation", "test")},
        }


def fingerprint(X: np.ndarray, y: np.ndarray, feature_names, positive_label: str) -> str:
    """Short content hash of the rows, labels and feature names: a resumed study must see the same data."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(feature_names), positive_label]).encode())
    digest.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


def load_dataset(config: SweepConfig) -> Dataset:
    """Load and split the data named by config.data ("seed" or a table path)."""
    if config.data == "seed":
        return _seed_dataset(config)
    frame = read_table(config.data)
    if config.target is None:
        raise DataError(
            f"no target column given for data file {config.data!r}; pass --target COLUMN "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    X, y, feature_names, positive = _features_and_labels(frame, config.target, config.positive_label, config.data)
    return _split_and_scale(config, config.data, X, y, feature_names, positive)


def _seed_dataset(config: SweepConfig) -> Dataset:
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    X, y = make_classification(**SEED_RECIPE)
    names = tuple(f"x{i}" for i in range(X.shape[1]))
    # The tutorial's exact (unstratified) test split, so our test rows are its test rows.
    X_rest, X_test, y_rest, y_test = train_test_split(X, y, test_size=SEED_TEST_SIZE, random_state=SEED_SPLIT_STATE)
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=config.validation_fraction, stratify=y_rest, random_state=config.seed
    )
    return _assemble("seed", names, "1", (X_train, y_train), (X_val, y_val), (X_test, y_test), fingerprint(X, y, names, "1"))


def _split_and_scale(config, source, X, y, feature_names, positive) -> Dataset:
    from sklearn.model_selection import train_test_split

    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < MIN_MINORITY_ROWS:
        raise DataError(
            f"the minority class has {minority} rows in {source!r}; the train/validation/test split needs at least "
            f"{MIN_MINORITY_ROWS}; add rows of that class"
        )
    X_rest, X_test, y_rest, y_test = train_test_split(
        X, y, test_size=config.test_fraction, stratify=y, random_state=config.seed
    )
    X_train, X_val, y_train, y_val = train_test_split(
        X_rest, y_rest, test_size=config.validation_fraction, stratify=y_rest, random_state=config.seed
    )
    return _assemble(
        source, feature_names, positive, (X_train, y_train), (X_val, y_val), (X_test, y_test),
        fingerprint(X, y, feature_names, positive),
    )


def _assemble(source, names, positive, train, validation, test, digest) -> Dataset:
    scaler = Scaler.fit(names, train[0])
    parts = [Split(scaler.transform(X), np.asarray(y, dtype=np.int8)) for X, y in (train, validation, test)]
    return Dataset(source, tuple(names), positive, *parts, scaler, digest)


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file (chosen by suffix) into a DataFrame; every failure is a DataError."""
    import pandas as pd

    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(
            f"data file {str(path)!r} has suffix {path.suffix!r}; expected .csv, .parquet or .pq "
            "(or --data seed for the reference data)"
        )
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; pass --data seed or an existing CSV/Parquet file")
    try:
        frame = pd.read_csv(path) if kind == "CSV" else pd.read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {str(path)!r} is empty; expected a header row and data rows") from None
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"could not read data file {str(path)!r} as {kind} ({reason}); check the file") from None
    if frame.empty:
        raise DataError(f"data file {str(path)!r} has no data rows; expected at least one row per class")
    return frame


def numeric_features(frame: pd.DataFrame, columns, source: str) -> np.ndarray:
    """The named columns as a float64 matrix; a non-numeric or non-finite column is a DataError naming it."""
    import pandas as pd

    for column in columns:
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            raise DataError(
                f"column {column!r} in {source!r} is not numeric (dtype {series.dtype}); "
                "numeric features only: encode or drop it"
            )
        bad = int((~np.isfinite(series.to_numpy(dtype=np.float64, na_value=np.nan))).sum())
        if bad:
            raise DataError(
                f"column {column!r} in {source!r} has {bad} missing or infinite values; fill or drop those rows"
            )
    return frame[list(columns)].to_numpy(dtype=np.float64)


def _features_and_labels(frame, target: str, positive_label: str | None, source: str):
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found in {source!r}; pass --target with one of: "
            f"{', '.join(map(str, frame.columns))}"
        )
    labels = frame[target]
    if labels.isna().any():
        raise DataError(f"target column {target!r} in {source!r} has {int(labels.isna().sum())} missing labels; fill or drop them")
    classes = sorted(labels.astype(str).unique())
    if len(classes) != 2:
        raise DataError(
            f"target column {target!r} in {source!r} has {len(classes)} class{'' if len(classes) == 1 else 'es'} ({', '.join(classes[:5])}); "
            "expected exactly two (binary classification)"
        )
    text_labels = labels.astype(str)
    positive = _positive_label(text_labels, classes, positive_label, target, source)
    feature_columns = [c for c in frame.columns if c != target]
    if not feature_columns:
        raise DataError(f"data file {source!r} has only the target column {target!r}; expected feature columns too")
    X = numeric_features(frame, feature_columns, source)
    y = (text_labels == positive).to_numpy(dtype=np.int8)
    return X, y, tuple(map(str, feature_columns)), positive


def _positive_label(labels, classes, requested, target, source) -> str:
    """The class called 1: --positive-label if given, else 1 for 0/1 labels, else the rarer class."""
    if requested is not None:
        if requested not in classes:
            raise DataError(
                f"--positive-label {requested!r} is not a label of {target!r} in {source!r}; "
                f"expected one of: {', '.join(classes)}"
            )
        return requested
    if set(classes) in ({"0", "1"}, {"False", "True"}, {"0.0", "1.0"}):
        return max(classes)  # "1", "True", "1.0"
    counts = labels.value_counts()
    if counts[classes[0]] == counts[classes[1]]:
        raise DataError(
            f"target column {target!r} in {source!r} has two equally common labels ({', '.join(classes)}); "
            "pass --positive-label to say which is the minority"
        )
    return str(counts.idxmin())
