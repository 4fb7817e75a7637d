"""Load the seed recipe, a CSV/Parquet table or .npz arrays (or the same in memory, from the Python API), check
its labels, choose its columns, split off the test rows, and lay out how trials are validated (one validation
split, or stratified folds of all non-test rows)."""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweep.data.preprocess import Preprocessor, check_identifiers
from sweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from sweep.config import SweepConfig

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
SEED_TEST_SIZE = 0.2
SEED_SPLIT_STATE = 42
# A stratified three-way split needs a few minority rows in every part.
MIN_MINORITY_ROWS = 10
# Automatic --cv: cross-validate with AUTO_FOLDS folds when one validation part would hold fewer than
# AUTO_CV_BELOW positives (docs/concepts/protocol.md, "One split or cross-validated trials", says why).
AUTO_FOLDS = 5
AUTO_CV_BELOW = 100
TABLE_SUFFIXES = {".csv": "CSV", ".parquet": "Parquet", ".pq": "Parquet"}
ARRAY_SUFFIX = ".npz"


@dataclass(frozen=True)
class Split:
    """One part of the data: standardised float32 features and 0/1 labels (1 = the minority/positive class)."""

    X: np.ndarray
    y: np.ndarray

    def counts(self) -> dict[str, int]:
        return label_counts(self.y)


def label_counts(y: np.ndarray) -> dict[str, int]:
    positives = int(y.sum())
    return {"rows": int(len(y)), "negatives": int(len(y) - positives), "positives": positives}


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

    def pool(self, fold_scores) -> np.ndarray:
        """Place each fold model's validation scores at its rows: (..., n_pooled) from [(..., n_fold_rows)]."""
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


@dataclass
class TableRows:
    """A table's raw feature rows, its labels and where its non-test (`rest`, in the split's order) and test rows
    lie: what the development and test parts are encoded from when first asked for.

    `release` drops the frame while trials run (they need only the encoded search parts); asked for again, it
    is read again by `reread` (which checks the data's fingerprint), or `frame` stays where there is none."""

    frame: pd.DataFrame | None
    y: np.ndarray  # 0/1 labels of every row (int8)
    rest: np.ndarray
    test: np.ndarray
    reread: Callable[[], pd.DataFrame] | None = None

    def table(self) -> pd.DataFrame:
        if self.frame is None:
            self.frame = self.reread()
        return self.frame

    def release(self) -> None:
        if self.reread is not None:
            self.frame = None
            _release_arrow_memory()


@dataclass(frozen=True)
class Dataset:
    """The non-test rows (searched on) and the test rows (for export and report only, never the search).

    `validation` says how trials are judged. `train`/`holdout` are the single split's parts (holdout only),
    encoded by the search's `preprocessor`; `development` (all non-test rows) and `test` are encoded by
    `final_preprocessor`, fitted on all non-test rows, which the exported model uses.

    A table's `development` (with one validation split) and `test` parts are encoded from its raw `rows` when
    first used (export, report), not while trials run; arrays are given all their parts (`parts`).
    """

    source: str
    feature_names: tuple[str, ...]  # the input columns used (what `predict` needs)
    positive_label: str
    fingerprint: str
    preprocessor: Preprocessor
    validation: Validation
    final_preprocessor: Preprocessor
    rows: TableRows | None  # a table's raw rows (None for arrays)
    train: Split | None = None
    holdout: Split | None = None
    kind: str = "table"  # "table" (encoded by the preprocessors) or "arrays" (rows as given, any shape)
    parts: dict = field(default_factory=dict, compare=False, repr=False)  # "development"/"test" Splits, once made

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One row's shape as the search's models take it (no batch axis)."""
        return tuple(int(n) for n in self.validation.X_fit.shape[1:])

    @property
    def development(self) -> Split:
        """All non-test rows, encoded by final_preprocessor."""
        if "development" not in self.parts:
            rows = self.rows
            self.parts["development"] = Split(
                self.final_preprocessor.transform(rows.table(), self.source, rows.rest), rows.y[rows.rest]
            )
        return self.parts["development"]

    @property
    def test(self) -> Split:
        """The test rows, encoded by final_preprocessor."""
        if "test" not in self.parts:
            self.parts["test"] = self._encoded_test(self.final_preprocessor)
        return self.parts["test"]

    @property
    def test_frame(self) -> pd.DataFrame | None:
        """The raw test rows (a copy; None for arrays), for a model encoded by another preprocessor."""
        return None if self.rows is None else self.rows.table().iloc[self.rows.test]

    def release_rows(self) -> None:
        """Drop the raw table while trials run: they need only the encoded search parts (see TableRows)."""
        if self.rows is not None:
            self.rows.release()

    def _part_labels(self, part: str) -> np.ndarray:
        if part in self.parts:
            return self.parts[part].y
        return self.rows.y[self.rows.rest if part == "development" else self.rows.test]

    def summary(self) -> dict:
        """Split sizes and class counts, stored on the study and in the export bundle (no part is encoded for it)."""
        parts = {name: label_counts(self._part_labels(name)) for name in ("development", "test")}
        if self.train is not None:
            parts = {"train": self.train.counts(), "validation": self.holdout.counts(), **parts}
        if self.kind == "arrays":
            columns = {"kind": "arrays", "input_shape": list(self.input_shape)}
        else:
            columns = {
                "kind": "table",
                "features": list(self.feature_names),
                "encoded_features": list(self.preprocessor.output_names),
                "dropped_columns": dict(self.final_preprocessor.dropped | self.preprocessor.dropped),
                "grouped_columns": dict(self.final_preprocessor.grouped | self.preprocessor.grouped),
            }
        return {
            "source": self.source,
            "fingerprint": self.fingerprint,
            **columns,
            "positive_label": self.positive_label,
            "validation": self.validation.describe(),
            "splits": parts,
        }

    def test_split(self, preprocessor: Preprocessor) -> Split:
        """The test rows encoded by `preprocessor` (the one the scored model was trained with)."""
        if preprocessor is self.final_preprocessor or preprocessor is None:
            return self.test
        return self._encoded_test(preprocessor)

    def _encoded_test(self, preprocessor: Preprocessor) -> Split:
        rows = self.rows
        return Split(preprocessor.transform(rows.table(), self.source, rows.test), rows.y[rows.test])


def fingerprint(frame: pd.DataFrame, y: np.ndarray, positive_label: str) -> str:
    """Short content hash of the feature columns (names and values) and labels: a resumed study must see the same data."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([list(map(str, frame.columns)), positive_label]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


def load_dataset(config: SweepConfig, frame: pd.DataFrame | None = None, arrays: tuple | None = None) -> Dataset:
    """Load the data named by config.data ("seed", a table or an .npz path), choose its columns, split and encode
    it. With config.data "memory" (the Python API), `frame` (a table with config.target) or `arrays` (x, y) are
    the data instead of a file."""
    from sklearn.model_selection import train_test_split

    if config.data == "memory" and frame is None and arrays is None:
        raise DataError(
            "this study's data was handed to the Python API in memory; pass the same data again "
            "(sweep.api.Sweep(..., x=..., y=...) or data=frame) to resume, export or report it"
        )
    if arrays is not None or Path(config.data).suffix.lower() == ARRAY_SUFFIX:
        source = "arrays in memory" if arrays is not None else config.data
        x, raw_labels = arrays if arrays is not None else read_arrays(config.data)
        x, y, positive = check_arrays(x, raw_labels, config.positive_label, source)
        if config.arrays_as_given:
            return _assemble_arrays(config, source, x, y, positive)
        if x.ndim != 2:
            raise DataError(
                f"{source!r} holds x of shape {x.shape}, but the builtin network takes rows of features (N x F); pass "
                "--model PATH.py:FUNCTION with a Keras model for that shape"
            )
        table = pd_frame(x)  # the builtin network's rows go through the table encoding (standardised)
        features = list(table.columns)
        given = arrays[0] if arrays is not None else None
        read = functools.partial(_arrays_frame, given, config.data, source)
    elif config.data == "seed":
        frame, y = seed_frame()
        # The tutorial's exact (unstratified) test split, so our test rows are its test rows.
        rest, test = train_test_split(_row_numbers(len(y)), test_size=SEED_TEST_SIZE, random_state=SEED_SPLIT_STATE)
        return _assemble(config, "seed", frame, y, "1", list(SEED_FEATURES), rest, test, lambda: seed_frame()[0])
    else:
        table = frame if frame is not None else read_table(config.data)
        source = "a table in memory" if frame is not None else config.data
        y, positive = _labels(table, config.target, config.positive_label, source)
        features = select_columns(table, config.target, config.features, config.drop, source)
        check_identifiers(table, features, source)
        read = functools.partial(_table_frame, frame, config.data, features)
    _check_minority(y, source)
    rest, test = stratified_split(y, config.test_fraction, config.seed)
    return _assemble(config, source, table[features], y, positive, features, rest, test, read)


def _table_frame(frame, path: str, features: list[str]) -> pd.DataFrame:
    """A table's feature columns again: the frame given in memory, or the file read again."""
    return (frame if frame is not None else read_table(path))[features]


def _arrays_frame(x, path: str, source: str) -> pd.DataFrame:
    """Arrays' rows as a table again (see pd_frame): the array given in memory, or the .npz file read again."""
    return pd_frame(check_inputs(x if x is not None else read_arrays(path)[0], source))


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
                    f"{str(path)!r} has no array {missing[0]!r} (it holds: {', '.join(names) or 'nothing'}); expected x (N rows "
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


def check_arrays(x, raw_labels, positive_label: str | None, source: str) -> tuple[np.ndarray, np.ndarray, str]:
    """Float32 inputs and 0/1 labels (1 = the positive class) of arrays x and y, or one DataError saying what is wrong."""
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
    if len(classes) != 2:
        raise DataError(
            f"y in {source!r} has {len(classes)} class{'' if len(classes) == 1 else 'es'} ({', '.join(classes[:5])}); "
            "expected exactly two (binary classification)"
        )
    positive = _positive_label(labels.value_counts, classes, positive_label, "y", source)
    y = (labels == positive).to_numpy(dtype=np.int8)
    _check_minority(y, source)
    return x, y, positive


def check_inputs(x, source: str) -> np.ndarray:
    """Rows of numbers, at least one value each, all finite, as float32 (copied only when not float32 already)."""
    x = np.asarray(x)
    if x.ndim < 2 or len(x) == 0:
        raise DataError(
            f"x in {source!r} has shape {x.shape}; expected N rows of at least one value each (N x F, N x T x F, N x H x W x C)"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise DataError(f"x in {source!r} has dtype {x.dtype}; expected numbers (float or int)")
    x = x.astype(np.float32, copy=False)
    finite = np.isfinite(x).reshape(len(x), -1).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise DataError(
            f"x in {source!r} has NaN or infinite values in {len(bad)} rows (first: row {bad[0]}); fill or drop those rows"
        )
    return x


def array_fingerprint(x: np.ndarray, y: np.ndarray, positive_label: str) -> str:
    """Short content hash of arrays (shape and values) and labels: a resumed study must see the same data."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(x.shape), positive_label]).encode())
    digest.update(np.ascontiguousarray(x).data)
    digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


def _assemble_arrays(config: SweepConfig, source: str, x: np.ndarray, y: np.ndarray, positive: str) -> Dataset:
    """Arrays for a user model: the rows reordered once (non-test first), so the non-test and test parts are views
    of one array and every fold names its rows (Fold.fit_rows / val_rows) instead of copying them. The rows go to
    the model as they are (scale them in the model, e.g. keras.layers.Rescaling or Normalization)."""
    from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

    digest = array_fingerprint(x, y, positive)
    rest, test = train_test_split(
        np.arange(len(y)), test_size=config.test_fraction, stratify=y, random_state=config.seed
    )
    order = np.concatenate([rest, test])
    x, y = x[order], y[order]
    n_dev = len(rest)
    development, test_part = Split(x[:n_dev], y[:n_dev]), Split(x[n_dev:], y[n_dev:])
    dev_y = development.y
    folds = choose_folds(config, int(dev_y.sum()))
    if folds == 0:
        train_rows, val_rows = train_test_split(
            np.arange(n_dev), test_size=config.validation_fraction, stratify=dev_y, random_state=config.seed
        )
        fold_list = (Fold(None, None, np.arange(len(val_rows)), np.sort(train_rows), val_rows),)
        plan = Validation("holdout", development.X, dev_y, fold_list, dev_y[val_rows])
        train, holdout = Split(development.X[:0], dev_y[train_rows]), Split(development.X[:0], dev_y[val_rows])
    else:
        splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=config.cv_repeats, random_state=config.seed)
        fold_list = tuple(
            Fold(None, None, (index // folds) * n_dev + val_rows, train_rows, val_rows)
            for index, (train_rows, val_rows) in enumerate(splitter.split(np.zeros(n_dev), dev_y))
        )
        plan = Validation(
            "cv", development.X, dev_y, fold_list, np.tile(dev_y, config.cv_repeats), folds, config.cv_repeats
        )
        train = holdout = None
    return Dataset(
        source,
        (),
        positive,
        digest,
        None,
        plan,
        None,
        None,
        train,
        holdout,
        kind="arrays",
        parts={"development": development, "test": test_part},
    )


def _assemble(config, source, frame, y, positive, features, rest, test, read=None) -> Dataset:
    """Fit the encodings and build the validation plan (holdout or folds). Only what the search trains and is
    judged on is encoded here; the development part (one validation split) and the test part are encoded from
    the raw rows when first used (Dataset.rows), and `read()` gives those rows again once released."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.asarray(y, dtype=np.int8)
    rest, test = _positions(rest), _positions(test)
    dev_y = y[rest]
    folds = choose_folds(config, int(dev_y.sum()))
    fit = functools.partial(Preprocessor.fit, frame, features, source, config.min_level_count, config.max_levels)
    final = fit(rows=rest)
    digest = fingerprint(frame, y, positive)
    rows = TableRows(frame, y, rest, test, None if read is None else _checked(read, digest, y, positive, source))
    if folds == 0:
        train_rows, val_rows = (rest[part] for part in stratified_split(dev_y, config.validation_fraction, config.seed))
        search = fit(rows=train_rows)
        train = Split(search.transform(frame, source, train_rows), y[train_rows])
        holdout = Split(search.transform(frame, source, val_rows), y[val_rows])
        del train_rows, val_rows
        plan = Validation("holdout", train.X, train.y, (Fold(None, holdout.X, np.arange(len(holdout.y))),), holdout.y)
        return Dataset(source, tuple(features), positive, digest, search, plan, final, rows, train, holdout)
    # Cross-validation: the encoding is fitted once on all non-test rows. It learns no labels (medians, levels,
    # means), and one feature space lets every fold model of a population train in one compiled model.
    development = Split(final.transform(frame, source, rest), dev_y)
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=config.cv_repeats, random_state=config.seed)
    fold_list = []
    for index, (_, val_rows) in enumerate(splitter.split(np.zeros(len(dev_y)), dev_y)):
        keep = np.ones(len(dev_y), dtype=np.float32)
        keep[val_rows] = 0.0
        repeat = index // folds
        fold_list.append(Fold(keep, development.X[val_rows], repeat * len(dev_y) + val_rows))
    plan = Validation(
        "cv", development.X, dev_y, tuple(fold_list), np.tile(dev_y, config.cv_repeats), folds, config.cv_repeats
    )
    return Dataset(
        source, tuple(features), positive, digest, final, plan, final, rows, parts={"development": development}
    )


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed): the same rows
    in the same order (a test compares them), as int32 positions.

    StratifiedShuffleSplit's own steps with arrays where it gathers each part's rows in Python lists, whose
    objects cost 1.6 times a 10-column table's float32 features at 10 million rows. Anything unusual (a class
    of fewer than 2 rows, a part smaller than the number of classes) goes to scikit-learn itself."""
    from math import ceil

    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    try:  # scikit-learn's own helper (a private name): where a release drops it, scikit-learn splits itself
        from sklearn.utils.extmath import _approximate_mode
    except ImportError:
        return tuple(train_test_split(_row_numbers(len(y)), test_size=test_fraction, stratify=y, random_state=seed))
    n_test = ceil(test_fraction * len(y))
    n_train = len(y) - n_test
    classes, y_indices, class_counts = np.unique(y, return_inverse=True, return_counts=True)
    if not 0 < test_fraction < 1 or class_counts.min() < 2 or min(n_train, n_test) < len(classes):
        return tuple(train_test_split(_row_numbers(len(y)), test_size=test_fraction, stratify=y, random_state=seed))
    class_indices = np.split(_positions(np.argsort(y_indices, kind="stable")), np.cumsum(class_counts)[:-1])
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


def _row_numbers(count: int) -> np.ndarray:
    """0 .. count - 1 to split, as int32 when they fit: the parts' positions come out int32 too (the same rows)."""
    return np.arange(count, dtype=np.int32 if count < np.iinfo(np.int32).max else np.int64)


def _positions(rows: np.ndarray) -> np.ndarray:
    """Row positions as int32 when they fit (half the memory of int64)."""
    rows = np.asarray(rows)
    return rows.astype(np.int32, copy=False) if len(rows) and rows.max() < np.iinfo(np.int32).max else rows


def _checked(
    read: Callable[[], pd.DataFrame], digest: str, y: np.ndarray, positive: str, source: str
) -> Callable[[], pd.DataFrame]:
    """`read`, refusing rows that are not the ones the dataset was made from (another fingerprint)."""

    def reread() -> pd.DataFrame:
        frame = read()
        found = fingerprint(frame, y, positive)
        if found != digest:
            raise DataError(
                f"{source!r} changed while it was in use (fingerprint {found}, loaded as {digest}); "
                "restore the data and run again"
            )
        return frame

    return reread


def choose_folds(config: SweepConfig, dev_positives: int) -> int:
    """Folds per trial: config.cv when set (0 = one validation split), else automatic: cross-validate
    (AUTO_FOLDS folds) when a single validation part would hold fewer than AUTO_CV_BELOW positives."""
    if config.cv is not None:
        if config.cv > dev_positives:
            raise DataError(
                f"--cv {config.cv} needs at least {config.cv} positive rows outside the test part, found {dev_positives}; "
                "use fewer folds or --cv 0"
            )
        return config.cv
    return AUTO_FOLDS if dev_positives * config.validation_fraction < AUTO_CV_BELOW else 0


def seed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    """The tutorial's table: make_classification's rows with its column names feature1, feature2."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(**SEED_RECIPE)
    return pd.DataFrame(X, columns=list(SEED_FEATURES)), y


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


def _check_minority(y: np.ndarray, source: str) -> None:
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


def _release_arrow_memory() -> None:
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
        _release_arrow_memory()


def _labels(frame, target: str | None, positive_label: str | None, source: str) -> tuple[np.ndarray, str]:
    """0/1 labels from the target column (1 = the positive class) and the positive label's text."""
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
    if len(classes) != 2:
        raise DataError(
            f"target column {target!r} in {source!r} has {len(classes)} class{'' if len(classes) == 1 else 'es'} ({', '.join(classes[:5])}); "
            "expected exactly two (binary classification)"
        )

    def counts():
        return pd.Series(np.bincount(codes, minlength=len(texts)), index=texts).groupby(level=0).sum()

    positive = _positive_label(counts, classes, positive_label, target, source)
    if len(frame.columns) == 1:
        raise DataError(f"data file {source!r} has only the target column {target!r}; expected feature columns too")
    return (texts == positive).astype(np.int8)[codes], positive


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
