"""Turn a table's feature columns into the standardised float matrix a network trains on.

Fitted on training rows only, with scikit-learn's own rules (SimpleImputer's medians and missing indicators,
computed with np.nanmedian; OneHotEncoder for levels with its rare/unseen "infrequent" rule; StandardScaler's
mean and scale, computed to the bit over blocks of rows so that no float64 copy of a table is made). What they
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
# Rows encoded at a time by fit and transform: their float64 temporaries stay a block's size (a few MB) however
# long the table is, and the float32 output is the only array of every row (docs/benchmarks/memory.md#section-15).
CHUNK_ROWS = 65_536


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


def column_rows(frame: pd.DataFrame, column: str, rows: np.ndarray | None) -> pd.Series:
    """One column at `rows` (positions, in their order; None: every row)."""
    return frame[column] if rows is None else frame[column].iloc[rows]


def is_constant(series: pd.Series) -> bool:
    """One value only, a missing value counting as a value (what nunique(dropna=False) <= 1 says). A numeric
    column is compared with its first value, not hashed: N distinct floats would cost a table of N entries."""
    if is_numeric(series):
        return not series.isna().any() and bool((series == series.iloc[0]).all())
    return series.nunique(dropna=False) <= 1


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
    def fit(
        cls,
        frame: pd.DataFrame,
        columns,
        source: str,
        min_level_count: int = 5,
        max_levels: int = 50,
        rows: np.ndarray | None = None,
    ) -> Preprocessor:
        """Learn the encoding from the training rows: `rows` of `frame` (positions, in order; None: every row);
        drops entirely-missing and constant columns (named in `dropped`); a column with more than max_levels
        frequent levels keeps the max_levels most frequent ones and groups the rest with the rare levels in
        OTHER_LEVEL (named in `grouped`), as OneHotEncoder(max_categories=) does.

        Each scikit-learn component learns every column on its own, so each is fitted one column at a time, and
        the scaling is StandardScaler's, computed over blocks of rows (`scaling`): no float64 copy of the table."""
        from sklearn.preprocessing import OneHotEncoder

        dropped: dict[str, str] = {}
        grouped: dict[str, str] = {}
        numeric, categorical = [], []
        for column in columns:
            series = column_rows(frame, column, rows)
            if series.isna().all():
                dropped[column] = "entirely missing in the training rows"
            elif is_constant(series):
                value = series.iloc[0]
                dropped[column] = (
                    f"constant ({(value.item() if hasattr(value, 'item') else value)!r}) in the training rows"
                )
            else:
                (numeric if is_numeric(series) else categorical).append(column)
            del series
        if not numeric and not categorical:
            reasons = "; ".join(f"{c}: {why}" for c, why in dropped.items()) or "none given"
            raise DataError(
                f"no usable feature column in {source!r} ({reasons}); expected at least one column that varies"
            )
        medians, indicators = [], []
        for column in numeric:
            values = as_numbers(column_rows(frame, column, rows), column, source)
            # SimpleImputer(strategy="median", add_indicator=True)'s median and indicator (a test compares them),
            # by np.nanmedian: SimpleImputer sorts a masked array, a large share of a big table's export, where
            # np.nanmedian's partition takes a fraction of that time (docs/benchmarks/memory.md).
            medians.append(float(np.nanmedian(values)))
            if np.isnan(values).any():
                indicators.append(column)
        levels, has_other = [], []
        for column in categorical:
            text = as_levels(column_rows(frame, column, rows))
            # max_categories counts the infrequent (other) category too: max_levels frequent levels + (other).
            encoder = OneHotEncoder(
                handle_unknown="infrequent_if_exist", min_frequency=min_level_count, max_categories=max_levels + 1
            )
            encoder.fit(text.to_numpy()[:, None])
            seen, rare = encoder.categories_[0], encoder.infrequent_categories_[0]
            rare = set() if rare is None else set(rare)
            kept = tuple(str(level) for level in seen if level not in rare)
            frequent = int((text.value_counts() >= min_level_count).sum())
            if frequent > max_levels:
                grouped[column] = (
                    f"{frequent} levels seen at least {min_level_count} times; the {max_levels} most frequent are kept "
                    f"and the other {frequent - max_levels} go to {OTHER_LEVEL!r} (raise --max-levels to keep more)"
                )
            levels.append(kept)
            has_other.append(bool(rare))
        parts = (tuple(numeric), tuple(medians), tuple(indicators), tuple(categorical), tuple(levels), tuple(has_other))
        mean, scale = cls(*parts, (), (), dropped, grouped).scaling(frame, rows, source)
        return cls(*parts, tuple(float(m) for m in mean), tuple(float(s) for s in scale), dropped, grouped)

    def scaling(self, frame: pd.DataFrame, rows: np.ndarray | None, source: str) -> tuple[np.ndarray, np.ndarray]:
        """StandardScaler().fit(encoded rows)'s mean_ and scale_, to the bit, from blocks of CHUNK_ROWS encoded rows.

        Its two passes (column sums; then sums of the centred values and of their squares) run block by block.
        numpy sums a 2-D block's columns row after row, so a block's sums continue the previous blocks' when
        those are stacked on as its first row; a single column it sums pairwise, which only the whole column
        reproduces, so one output column is one block (a one-column table is small). The encoded rows hold no
        NaN (medians fill the gaps), StandardScaler's case without its NaN handling."""
        count = len(frame) if rows is None else len(rows)
        width = len(self.output_names)
        chunk = max(count, 1) if width == 1 else CHUNK_ROWS

        def summed(totals, block):
            return np.sum(block if totals is None else np.concatenate([totals[None, :], block]), axis=0)

        sums = None
        for _, block in self._blocks(frame, rows, source, chunk):
            sums = summed(sums, block)
        n = np.float64(count)
        mean = (np.zeros(width) + sums) / n  # StandardScaler: (last_sum + new_sum) / count, from zero
        centre = sums / n
        correction = squares = None
        for _, block in self._blocks(frame, rows, source, chunk):
            block -= centre
            correction = summed(correction, block)
            block **= 2
            squares = summed(squares, block)
        variance = (squares - correction**2 / n) / n
        eps = np.finfo(np.float64).eps
        constant = variance <= n * eps * variance + (n * mean * eps) ** 2  # sklearn's near-constant rule
        scale = np.sqrt(variance)
        scale[constant] = 1.0
        return mean, scale

    def _check_columns(self, frame: pd.DataFrame, source: str) -> None:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{source!r} lacks feature column {missing[0]!r} the model was trained on; expected columns: "
                f"{', '.join(self.columns)}"
            )

    def _blocks(self, frame: pd.DataFrame, rows: np.ndarray | None, source: str, chunk: int | None = None):
        """(first row, encoded float64 block) for `rows` of `frame` (None: every row), `chunk` (CHUNK_ROWS) rows at a
        time."""
        chunk = chunk or CHUNK_ROWS
        self._check_columns(frame, source)
        frame = frame[list(self.columns)]  # no copy (copy-on-write); a block copies its rows of these columns only
        count = len(frame) if rows is None else len(rows)
        for start in range(0, count, chunk):
            part = frame.iloc[start : start + chunk] if rows is None else frame.iloc[rows[start : start + chunk]]
            yield start, self.encode(part, source)

    def encode(self, frame: pd.DataFrame, source: str) -> np.ndarray:
        """The unscaled matrix: medians filled in, indicators, one-hot levels (float64; transform encodes blocks of
        rows)."""
        self._check_columns(frame, source)
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

    def transform(self, frame: pd.DataFrame, source: str = "data", rows: np.ndarray | None = None) -> np.ndarray:
        """The standardised float32 matrix for any rows (missing values and unseen levels allowed): of `rows` of
        `frame` (positions, in order) when given. Blocks of rows are encoded and scaled in float64 straight into
        the float32 output, which is all that holds every row."""
        count = len(frame) if rows is None else len(rows)
        out = np.empty((count, len(self.output_names)), dtype=np.float32)
        mean, scale = np.asarray(self.mean), np.asarray(self.scale)
        for start, block in self._blocks(frame, rows, source):
            block -= mean
            block /= scale
            out[start : start + len(block)] = block
        return out

    def to_dict(self) -> dict:
        return {
            "numeric": list(self.numeric),
            "medians": list(self.medians),
            "indicators": list(self.indicators),
            "categorical": list(self.categorical),
            "levels": [list(v) for v in self.levels],
            "has_other": list(self.has_other),
            "mean": list(self.mean),
            "scale": list(self.scale),
            "dropped": dict(self.dropped),
            "grouped": dict(self.grouped),
            "output_names": list(self.output_names),
        }

    @classmethod
    def from_dict(cls, stored: dict) -> Preprocessor:
        return cls(
            tuple(stored["numeric"]),
            tuple(stored["medians"]),
            tuple(stored["indicators"]),
            tuple(stored["categorical"]),
            tuple(tuple(v) for v in stored["levels"]),
            tuple(stored["has_other"]),
            tuple(stored["mean"]),
            tuple(stored["scale"]),
            dict(stored.get("dropped", {})),
            dict(stored.get("grouped", {})),
        )
