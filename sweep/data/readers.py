"""Read what a study learns from: the seed recipe, a CSV/Parquet table or .npz arrays; check their labels (two classes
and which is positive, or three or more classes), inputs and columns."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

# A stratified three-way split needs a few minority rows in every part.
MIN_MINORITY_ROWS = 10
# Labels are stored as int8 class numbers; past this many classes a target is more likely an identifier.
MAX_CLASSES = 100


# The tutorial's recipe (see DESIGN.md): 100,000 rows, ~1% positives, test = its exact 20,000 rows.
SEED_RECIPE = dict(
    n_samples=100_000,
    n_features=2,
    n_informative=2,
    n_redundant=0,
    n_repeated=0,
    n_classes=2,
    n_clusters_per_class=1,
    weights=[0.995, 0.005],
    class_sep=0.5,
    random_state=0,
)


SEED_FEATURES = ("feature1", "feature2")  # the tutorial's DataFrame column names; its label column is "target"

# The reference data of several classes (`--data seed-classes`): four Gaussian classes, 80/13/5.5/1.5%, one cluster
# each, so its Bayes-optimal posterior is known exactly (sweep.reading.bayes) and the report can show a ceiling.
SEED_CLASSES_RECIPE = dict(
    n_samples=20_000,
    n_features=4,
    n_informative=3,
    n_redundant=0,
    n_repeated=0,
    n_classes=4,
    n_clusters_per_class=1,
    weights=[0.8, 0.13, 0.055, 0.015],
    class_sep=0.6,
    flip_y=0.01,
    random_state=0,
)
SEED_CLASSES_FEATURES = ("feature1", "feature2", "feature3", "feature4")


TABLE_SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}


ARRAY_SUFFIX = ".npz"


def label_counts(y: np.ndarray, names: tuple[str, ...] = ()) -> dict:
    """Rows, negatives and positives of 0/1 labels; of class numbers (`names` given), rows and each class's rows."""
    if names:
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(names))
        return {"rows": int(len(y)), "classes": {name: int(n) for name, n in zip(names, counts)}}
    positives = int(y.sum())
    return {"rows": int(len(y)), "negatives": int(len(y) - positives), "positives": positives}


def class_order(classes) -> list[str]:
    """Class names in their stored order (class number = position): by value when all are numbers, else as text."""
    try:
        return sorted(classes, key=float)
    except ValueError:
        return sorted(classes)


def class_numbers(
    texts: np.ndarray, codes: np.ndarray, positive_label: str | None, target: str, source: str
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Labels of three or more classes as int8 class numbers (codes index the distinct label `texts`) and the class
    names in number order, or one DataError."""
    names = class_order(set(texts))
    if len(names) > MAX_CLASSES:
        raise DataError(
            f"{target} in {source!r} has {len(names)} classes ({', '.join(names[:5])}, ...); expected at most "
            f"{MAX_CLASSES}: pass the label column as --target, not an identifier"
        )
    if positive_label is not None:
        raise DataError(
            f"--positive-label {positive_label!r} picks the positive of two classes, but {target} in {source!r} has "
            f"{len(names)} ({', '.join(names[:5])}); drop --positive-label, every class is learned"
        )
    number = {name: index for index, name in enumerate(names)}
    return np.array([number[t] for t in texts], dtype=np.int8)[codes], tuple(names)


def pd_frame(x: np.ndarray) -> pd.DataFrame:
    """A 2-D array as a table of numeric columns x0, x1, ... (what the builtin network's encoding takes)."""
    import pandas as pd

    return pd.DataFrame(x, columns=[f"x{i}" for i in range(x.shape[1])])


def read_arrays(path: str | Path, need_labels: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """x and y of an .npz file, without running code from it (no pickled objects); every failure is a DataError.
    Without `need_labels` (rows to score) y may be absent (None)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {str(path)!r} does not exist; pass an existing .npz file with arrays x and y")
    try:
        with np.load(path, allow_pickle=False) as stored:
            names = list(stored.files)
            missing = [name for name in (("x", "y") if need_labels else ("x",)) if name not in names]
            if missing:
                raise DataError(
                    f"{str(path)!r} has no array {missing[0]!r} (it holds: {', '.join(names) or 'nothing'}); "
                    "expected x (N rows "
                    "of any shape) and y (N labels); save with np.savez(path, x=x, y=y)"
                )
            return stored["x"], stored["y"] if "y" in names else None
    except DataError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise DataError(
                f"{str(path)!r} holds Python objects (pickled); expected numeric arrays x and y (no object dtype)"
            ) from None
        raise DataError(f"could not read {str(path)!r} as .npz ({exc}); check the file") from None
    except Exception as exc:
        raise DataError(f"could not read {str(path)!r} as .npz ({type(exc).__name__}: {exc}); check the file") from None


def check_arrays(
    x, raw_labels, positive_label: str | None, source: str
) -> tuple[np.ndarray, np.ndarray, str, tuple[str, ...]]:
    """Float32 inputs and labels of arrays x and y: 0/1 (1 = the positive class) with the positive label's text, or
    class numbers with the class names (three or more classes); or one DataError saying what is wrong."""
    import pandas as pd

    x, raw_labels = check_inputs(x, source), np.asarray(raw_labels)
    if raw_labels.ndim != 1 and not (raw_labels.ndim == 2 and raw_labels.shape[1] == 1):
        raise DataError(f"y in {source!r} has shape {raw_labels.shape}; expected one label per row, shape ({len(x)},)")
    raw_labels = raw_labels.reshape(-1)
    if len(raw_labels) != len(x):
        raise DataError(
            f"{source!r} has {len(x)} rows in x but {len(raw_labels)} labels in y; expected one label per row of x"
        )
    labels = pd.Series(raw_labels).astype(str)
    if pd.Series(raw_labels).isna().any():
        raise DataError(f"y in {source!r} has missing labels; fill or drop those rows")
    classes = sorted(labels.unique())
    if len(classes) < 2:
        raise DataError(f"y in {source!r} has 1 class ({classes[0]}); expected two or more")
    if len(classes) > 2:
        codes, texts = pd.factorize(labels)
        y, names = class_numbers(np.asarray(texts, dtype=object), codes, positive_label, "y", source)
        check_minority(y, source, names)
        return x, y, "", names
    positive = _positive_label(labels.value_counts, classes, positive_label, "y", source)
    y = (labels == positive).to_numpy(dtype=np.int8)
    check_minority(y, source)
    return x, y, positive, ()


def check_inputs(x, source: str) -> np.ndarray:
    """Rows of numbers, at least one value each, all finite, as float32 (copied only when not float32 already)."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"x in {source!r} has shape {x.shape}; expected N rows of at least one value each "
            "(N x F, N x T x F, N x H x W x C)"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"x in {source!r} has dtype {x.dtype}; expected numbers (float or int)")
    x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"x in {source!r} has NaN or infinite values in {len(bad)} rows (first: row {bad[0]}); "
            "fill or drop those rows"
        )
    return x


def seed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The tutorial's table: make_classification's rows with its column names feature1, feature2."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(**SEED_RECIPE)
    return pd.DataFrame(X, columns=list(SEED_FEATURES)), y


def seed_classes_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The reference data of several classes: SEED_CLASSES_RECIPE's rows and its class numbers 0-3."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(**SEED_CLASSES_RECIPE)
    return pd.DataFrame(X, columns=list(SEED_CLASSES_FEATURES)), y.astype(np.int8)


def select_columns(table: pd.DataFrame, target: str, features, drop, source: str) -> list[str]:
    """Feature columns: --features (all but the target when empty), minus --drop; unknown names are errors."""
    columns = [str(c) for c in table.columns]
    for option, names in (("--features", features), ("--drop", drop)):
        unknown = [n for n in names if n not in columns]
        if unknown:
            raise DataError(
                f"{option} names column {unknown[0]!r}, which {source!r} does not have; columns: {', '.join(columns)}"
            )
    if target in features:
        raise DataError(f"--features includes the target column {target!r}; list only input columns")
    chosen = [c for c in (features or columns) if c != target and c not in drop]
    if not chosen:
        raise DataError(
            f"no feature columns left in {source!r} after --features/--drop; keep at least one input column"
        )
    return chosen


def check_minority(y: np.ndarray, source: str, names: tuple[str, ...] = ()) -> None:
    """Refuse labels whose rarest class has too few rows to appear in every part of the split."""
    if names:
        counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(names))
        rarest = int(np.argmin(counts))
        if counts[rarest] < MIN_MINORITY_ROWS:
            raise DataError(
                f"class {names[rarest]!r} has {counts[rarest]} rows in {source!r}; the train/validation/test split "
                f"needs at least {MIN_MINORITY_ROWS} of every class; add rows of that class or merge it into another"
            )
        return
    minority = int(min(y.sum(), len(y) - y.sum()))
    if minority < MIN_MINORITY_ROWS:
        raise DataError(
            f"the minority class has {minority} rows in {source!r}; the train/validation/test split needs at least "
            f"{MIN_MINORITY_ROWS}; add rows of that class"
        )


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
        frame = pd.read_csv(path) if kind == "CSV" else read_parquet(path)
    except pd.errors.EmptyDataError:
        raise DataError(f"data file {str(path)!r} is empty; expected a header row and data rows") from None
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"could not read data file {str(path)!r} as {kind} ({reason}); check the file") from None
    if frame.empty:
        raise DataError(f"data file {str(path)!r} has no data rows; expected at least one row per class")
    return frame


def release_arrow_memory() -> None:
    """Hand memory Arrow freed back to the system (its allocator keeps it for later Arrow allocations)."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def read_parquet(path: Path) -> pd.DataFrame:
    """pd.read_parquet's frame, with a block per column: Arrow's column buffers then become the frame's without
    the copy that gathers same-typed columns into one block (which needed twice the table). The memory Arrow
    decoded the file in is handed back to the system afterwards, not kept for later Arrow reads."""
    import pandas as pd

    try:
        return pd.read_parquet(path, to_pandas_kwargs={"split_blocks": True})
    finally:
        release_arrow_memory()


def labels_of(
    frame, target: str | None, positive_label: str | None, source: str
) -> tuple[np.ndarray, str, tuple[str, ...]]:
    """Labels from the target column: 0/1 (1 = the positive class) with the positive label's text and no class names,
    or (three or more classes) class numbers with "" and the class names."""
    import pandas as pd

    if target is None:
        raise DataError(
            f"no target column given for data file {source!r}; pass --target COLUMN "
            f"(columns: {', '.join(map(str, frame.columns))})"
        )
    if target not in frame.columns:
        raise DataError(
            f"target column {target!r} not found in {source!r}; pass --target with one of: "
            f"{', '.join(map(str, frame.columns))}"
        )
    labels = frame[target]
    if labels.isna().any():
        raise DataError(
            f"target column {target!r} in {source!r} has {int(labels.isna().sum())} missing labels; fill or drop them"
        )
    # Each distinct value is turned into text once (as labels.astype(str) would), not each row: the text of
    # millions of labels cost more memory than the table's features.
    codes, distinct = pd.factorize(labels)
    texts = pd.Series(distinct).astype(str).to_numpy(dtype=object)
    classes = sorted(set(texts))
    if len(classes) < 2:
        raise DataError(
            f"target column {target!r} in {source!r} has 1 class ({classes[0]}); expected two or more: "
            "pass the label column as --target"
        )
    if len(frame.columns) == 1:
        raise DataError(f"data file {source!r} has only the target column {target!r}; expected feature columns too")
    if len(classes) > 2:
        y, names = class_numbers(texts, codes, positive_label, f"target column {target!r}", source)
        return y, "", names

    def counts():
        return pd.Series(np.bincount(codes, minlength=len(texts)), index=texts).groupby(level=0).sum()

    positive = _positive_label(counts, classes, positive_label, target, source)
    return (texts == positive).astype(np.int8)[codes], positive, ()


def _positive_label(label_counts, classes, requested, target, source) -> str:
    """The class called 1: --positive-label if given, else 1 for 0/1 labels, else the rarer class (by
    label_counts(): rows per label text)."""
    if requested is not None:
        if requested not in classes:
            raise DataError(
                f"--positive-label {requested!r} is not a label of {target!r} in {source!r}; "
                f"expected one of: {', '.join(classes)}"
            )
        return requested
    if set(classes) in ({"0", "1"}, {"False", "True"}, {"0.0", "1.0"}):
        return max(classes)  # "1", "True", "1.0"
    counts = label_counts()
    if counts[classes[0]] == counts[classes[1]]:
        raise DataError(
            f"target column {target!r} in {source!r} has two equally common labels ({', '.join(classes)}); "
            "pass --positive-label to say which is the minority"
        )
    return str(counts.idxmin())
