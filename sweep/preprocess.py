"""Turn a table's feature columns into the standardised float matrix a network trains on.

Fitted on training rows only, with scikit-learn's own components (SimpleImputer for medians and missing
indicators, OneHotEncoder for levels with its rare/unseen "infrequent" rule, StandardScaler). What they
learn is kept as plain JSON (`to_dict`), and `transform` applies it with pandas/numpy: an export bundle
is then readable, independent of scikit-learn's version, and loading it never unpickles code (a test
checks the transform equals the fitted scikit-learn pipeline's).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from sweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

MISSING_LEVEL = "(missing)"
OTHER_LEVEL = "(other)"
# A text column with at least this many values, nearly all distinct, is taken for an identifier.
ID_MIN_ROWS = 20
ID_UNIQUE_SHARE = 0.9


def is_numeric(series: pd.Series) -> bool:
    """Numbers are numeric features; booleans, text and pandas categories are categorical."""
    import pandas as pd

    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def as_levels(series: pd.Series) -> pd.Series:
    """A categorical column as text levels, a missing value being a level of its own."""
    return series.astype(object).where(series.notna(), MISSING_LEVEL).astype(str)


def as_numbers(series: pd.Series, column: str, source: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing or infinite values; text in it is a DataError."""
    import pandas as pd

    values = np.array(pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan))
    unreadable = series.notna().to_numpy() & np.isnan(values)
    if unreadable.any():
        example = series[unreadable].iloc[0]
        raise DataError(
            f"column {column!r} in {source!r} holds {example!r} where a number is expected (the model learned it "
            "as numeric); fix the value or leave it empty"
        )
    values[~np.isfinite(values)] = np.nan
    return values


def check_identifiers(frame: pd.DataFrame, columns, source: str) -> None:
    """Refuse a text column whose values are (nearly) all distinct: an id or free text teaches nothing."""
    for column in columns:
        series = frame[column]
        if is_numeric(series) or series.dtype == bool:
            continue
        present = series.dropna()
        if len(present) >= ID_MIN_ROWS and present.astype(str).nunique() >= ID_UNIQUE_SHARE * len(present):
            raise DataError(
                f"column {column!r} in {source!r} looks like an identifier ({present.astype(str).nunique()} distinct "
                f"text values in {len(present)} rows); drop it with --drop {column}"
            )


@dataclass(frozen=True)
class Preprocessor:
    """What was learned from the training rows: per column its kind, median or levels, and the scaling.

    Output columns, in order: numeric values, their missing indicators, then each categorical column's
    one-hot levels (with OTHER_LEVEL last when rare levels existed at fit time: rare and unseen levels
    go there; without it an unseen level encodes as all zeros, as OneHotEncoder does).
    """

    numeric: tuple[str, ...]
    medians: tuple[float, ...]
    indicators: tuple[str, ...]  # numeric columns that had missing values at fit time
    categorical: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]  # kept levels per categorical column (frequent ones)
    has_other: tuple[bool, ...]
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    dropped: dict[str, str] = field(default_factory=dict)  # column -> why it was dropped
    grouped: dict[str, str] = field(default_factory=dict)  # column -> which of its frequent levels went to OTHER_LEVEL

    @property
    def columns(self) -> tuple[str, ...]:
        """Input columns a table must have to be transformed."""
        return self.numeric + self.categorical

    @property
    def output_names(self) -> tuple[str, ...]:
        names = list(self.numeric) + [f"{c}_missing" for c in self.indicators]
        for column, levels, other in zip(self.categorical, self.levels, self.has_other):
            names += [f"{column}={level}" for level in levels] + ([f"{column}={OTHER_LEVEL}"] if other else [])
        return tuple(names)

    @classmethod
    def fit(cls, frame: pd.DataFrame, columns, source: str, min_level_count: int = 5, max_levels: int = 50) -> Preprocessor:
        """Learn the encoding from `frame` (the training rows); drops entirely-missing and constant columns
        (named in `dropped`); a column with more than max_levels frequent levels keeps the max_levels most
        frequent ones and groups the rest with the rare levels in OTHER_LEVEL (named in `grouped`), as
        OneHotEncoder(max_categories=) does."""
        from sklearn.impute import SimpleImputer
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        dropped: dict[str, str] = {}
        grouped: dict[str, str] = {}
        numeric, categorical = [], []
        for column in columns:
            series = frame[column]
            if series.isna().all():
                dropped[column] = "entirely missing in the training rows"
            elif series.nunique(dropna=False) <= 1:
                value = series.iloc[0]
                dropped[column] = f"constant ({(value.item() if hasattr(value, 'item') else value)!r}) in the training rows"
            else:
                (numeric if is_numeric(series) else categorical).append(column)
        if not numeric and not categorical:
            reasons = "; ".join(f"{c}: {why}" for c, why in dropped.items()) or "none given"
            raise DataError(
                f"no usable feature column in {source!r} ({reasons}); expected at least one column that varies"
            )
        medians, indicators = (), ()
        if numeric:
            values = np.column_stack([as_numbers(frame[c], c, source) for c in numeric])
            imputer = SimpleImputer(strategy="median", add_indicator=True).fit(values)
            medians = tuple(float(m) for m in imputer.statistics_)
            missing = imputer.indicator_.features_ if imputer.indicator_ is not None else []
            indicators = tuple(numeric[i] for i in missing)
        levels, has_other = [], []
        if categorical:
            # max_categories counts the infrequent (other) category too: max_levels frequent levels + (other).
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_level_count, max_categories=max_levels + 1)
            encoder.fit(np.column_stack([as_levels(frame[c]).to_numpy() for c in categorical]))
            for column, seen, rare in zip(categorical, encoder.categories_, encoder.infrequent_categories_):
                rare = set() if rare is None else set(rare)
                kept = tuple(str(level) for level in seen if level not in rare)
                frequent = int((as_levels(frame[column]).astype(str).value_counts() >= min_level_count).sum())
                if frequent > max_levels:
                    grouped[column] = (
                        f"{frequent} levels seen at least {min_level_count} times; the {max_levels} most frequent are kept "
                        f"and the other {frequent - max_levels} go to {OTHER_LEVEL!r} (raise --max-levels to keep more)"
                    )
                levels.append(kept)
                has_other.append(bool(rare))
        unscaled = cls(tuple(numeric), medians, indicators, tuple(categorical), tuple(levels), tuple(has_other), (), (), dropped, grouped)
        blocks = unscaled.encode(frame, source)
        scaler = StandardScaler().fit(blocks)
        return cls(
            tuple(numeric), medians, indicators, tuple(categorical), tuple(levels), tuple(has_other),
            tuple(float(m) for m in scaler.mean_), tuple(float(s) for s in scaler.scale_), dropped, grouped,
        )

    def encode(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        """The unscaled matrix: medians filled in, indicators, one-hot levels (float64)."""
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source!r} lacks feature column {missing[0]!r} the model was trained on; expected columns: "
                f"{', '.join(self.columns)}"
            )
        parts = []
        if self.numeric:
            values = np.column_stack([as_numbers(frame[c], c, source) for c in self.numeric])
            gaps = np.isnan(values)
            parts.append(np.where(gaps, np.asarray(self.medians), values))
            parts.append(gaps[:, [self.numeric.index(c) for c in self.indicators]].astype(np.float64))
        for column, levels, other in zip(self.categorical, self.levels, self.has_other):
            text = as_levels(frame[column]).to_numpy()
            onehot = (text[:, None] == np.asarray(levels, dtype=object)[None, :]).astype(np.float64)
            parts.append(onehot)
            if other:
                parts.append((onehot.sum(axis=1, keepdims=True) == 0).astype(np.float64))
        return np.concatenate(parts, axis=1) if parts else np.empty((len(frame), 0))

    def transform(self, frame: pd.DataFrame, source: str = "data") -> np.ndarray:
        """The standardised float32 matrix for any rows (missing values and unseen levels allowed)."""
        return ((self.encode(frame, source) - np.asarray(self.mean)) / np.asarray(self.scale)).astype(np.float32)

    def to_dict(self) -> dict:
        return {
            "numeric": list(self.numeric), "medians": list(self.medians), "indicators": list(self.indicators),
            "categorical": list(self.categorical), "levels": [list(v) for v in self.levels],
            "has_other": list(self.has_other), "mean": list(self.mean), "scale": list(self.scale),
            "dropped": dict(self.dropped), "grouped": dict(self.grouped), "output_names": list(self.output_names),
        }

    @classmethod
    def from_dict(cls, stored: dict) -> Preprocessor:
        return cls(
            tuple(stored["numeric"]), tuple(stored["medians"]), tuple(stored["indicators"]), tuple(stored["categorical"]),
            tuple(tuple(v) for v in stored["levels"]), tuple(stored["has_other"]), tuple(stored["mean"]),
            tuple(stored["scale"]), dict(stored.get("dropped", {})), dict(stored.get("grouped", {})),
        )
