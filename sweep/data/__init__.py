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

from sweep.data.folds import (
    Fold,
    Validation,
    choose_folds,
    row_numbers,
    row_positions,
    stratified_split,
)
from sweep.data.preprocess import Preprocessor, check_identifiers
from sweep.data.readers import (
    ARRAY_SUFFIX,
    SEED_CLASSES_FEATURES,
    SEED_FEATURES,
    check_arrays,
    check_inputs,
    check_minority,
    label_counts,
    labels_of,
    pd_frame,
    read_arrays,
    read_table,
    release_arrow_memory,
    seed_classes_frame,
    seed_frame,
    select_columns,
)
from sweep.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

    from sweep.config import SweepConfig

SEED_CLASSES = "seed-classes"  # --data of the reference data of several classes (readers.SEED_CLASSES_RECIPE)
SEED_TEST_SIZE = 0.2
SEED_SPLIT_STATE = 42


@dataclass(frozen=True)
class Split:
    """One part of the data: standardised float32 features and 0/1 labels (1 = the minority/positive class)."""

    X: np.ndarray
    y: np.ndarray

    def counts(self) -> dict[str, int]:
        return label_counts(self.y)


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
            release_arrow_memory()


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
    classes: tuple[str, ...] = ()  # three or more classes: their names, by class number; () for a binary target

    @property
    def class_counts(self) -> tuple[int, ...]:
        """Rows of each class among the non-test rows, by class number; () for a binary target."""
        if not self.classes:
            return ()
        counts = np.bincount(np.asarray(self._part_labels("development"), dtype=np.int64), minlength=len(self.classes))
        return tuple(int(n) for n in counts)

    def counts(self, y: np.ndarray) -> dict:
        """Rows and class counts of labels `y` of this dataset (by class name for three or more classes)."""
        return label_counts(y, self.classes)

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
        parts = {name: self.counts(self._part_labels(name)) for name in ("development", "test")}
        if self.train is not None:
            parts = {"train": self.counts(self.train.y), "validation": self.counts(self.holdout.y), **parts}
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
            **({"classes": list(self.classes)} if self.classes else {}),
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


def fingerprint(frame: pd.DataFrame, y: np.ndarray, positive_label: str, classes: tuple[str, ...] = ()) -> str:
    """Short content hash of the feature columns (names and values) and labels: a resumed study must see the same
    data."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(json.dumps([list(map(str, frame.columns)), positive_label or list(classes)]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


def load_dataset(config: SweepConfig, frame: pd.DataFrame | None = None, arrays: tuple | None = None) -> Dataset:
    """Load the data named by config.data ("seed", "seed-classes", a table or an .npz path), choose its columns, split
    and encode
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
        x, y, positive, classes = check_arrays(x, raw_labels, config.positive_label, source)
        if config.arrays_as_given:
            return _assemble_arrays(config, source, x, y, positive, classes)
        if x.ndim != 2:
            raise DataError(
                f"{source!r} holds x of shape {x.shape}, but the builtin network takes rows of features (N x F); pass "
                "--model PATH.py:FUNCTION with a Keras model for that shape"
            )
        table = pd_frame(x)  # the builtin network's rows go through the table encoding (standardised)
        features = list(table.columns)
        given = arrays[0] if arrays is not None else None
        read = functools.partial(_arrays_frame, given, config.data, source)
    elif config.data == SEED_CLASSES:
        frame, y = seed_classes_frame()
        classes = tuple(str(c) for c in range(int(y.max()) + 1))
        rest, test = stratified_split(y, config.test_fraction, config.seed)
        features = list(SEED_CLASSES_FEATURES)
        read = lambda: seed_classes_frame()[0]  # noqa: E731
        return _assemble(config, SEED_CLASSES, frame, y, "", features, rest, test, read, classes)
    elif config.data == "seed":
        frame, y = seed_frame()
        # The tutorial's exact (unstratified) test split, so our test rows are its test rows.
        rest, test = train_test_split(row_numbers(len(y)), test_size=SEED_TEST_SIZE, random_state=SEED_SPLIT_STATE)
        return _assemble(config, "seed", frame, y, "1", list(SEED_FEATURES), rest, test, lambda: seed_frame()[0])
    else:
        table = frame if frame is not None else read_table(config.data)
        source = "a table in memory" if frame is not None else config.data
        y, positive, classes = labels_of(table, config.target, config.positive_label, source)
        features = select_columns(table, config.target, config.features, config.drop, source)
        check_identifiers(table, features, source)
        read = functools.partial(_table_frame, frame, config.data, features)
    check_minority(y, source, classes)
    rest, test = stratified_split(y, config.test_fraction, config.seed)
    return _assemble(config, source, table[features], y, positive, features, rest, test, read, classes)


def _table_frame(frame, path: str, features: list[str]) -> pd.DataFrame:
    """A table's feature columns again: the frame given in memory, or the file read again."""
    return (frame if frame is not None else read_table(path))[features]


def _arrays_frame(x, path: str, source: str) -> pd.DataFrame:
    """Arrays' rows as a table again (see pd_frame): the array given in memory, or the .npz file read again."""
    return pd_frame(check_inputs(x if x is not None else read_arrays(path)[0], source))


def array_fingerprint(x: np.ndarray, y: np.ndarray, positive_label: str, classes: tuple[str, ...] = ()) -> str:
    """Short content hash of arrays (shape and values) and labels: a resumed study must see the same data."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(x.shape), positive_label or list(classes)]).encode())
    digest.update(np.ascontiguousarray(x).data)
    digest.update(np.ascontiguousarray(y, dtype=np.int8).tobytes())
    return digest.hexdigest()[:16]


def _assemble_arrays(
    config: SweepConfig, source: str, x: np.ndarray, y: np.ndarray, positive: str, classes: tuple[str, ...] = ()
) -> Dataset:
    """Arrays for a user model: the rows reordered once (non-test first), so the non-test and test parts are views
    of one array and every fold names its rows (Fold.fit_rows / val_rows) instead of copying them. The rows go to
    the model as they are (scale them in the model, e.g. keras.layers.Rescaling or Normalization)."""
    from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

    digest = array_fingerprint(x, y, positive, classes)
    rest, test = train_test_split(
        np.arange(len(y)), test_size=config.test_fraction, stratify=y, random_state=config.seed
    )
    order = np.concatenate([rest, test])
    x, y = x[order], y[order]
    n_dev = len(rest)
    development, test_part = Split(x[:n_dev], y[:n_dev]), Split(x[n_dev:], y[n_dev:])
    dev_y = development.y
    folds = choose_folds(config, *rarest_class(dev_y, classes))
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
        classes=classes,
    )


def rarest_class(y: np.ndarray, classes: tuple[str, ...]) -> tuple[int, str | None]:
    """The rows of the class that limits the folds, and its name: the positives of a binary target (None), else the
    rarest class."""
    if not classes:
        return int(y.sum()), None
    counts = np.bincount(np.asarray(y, dtype=np.int64), minlength=len(classes))
    return int(counts.min()), classes[int(np.argmin(counts))]


def _assemble(config, source, frame, y, positive, features, rest, test, read=None, classes=()) -> Dataset:
    """Fit the encodings and build the validation plan (holdout or folds). Only what the search trains and is
    judged on is encoded here; the development part (one validation split) and the test part are encoded from
    the raw rows when first used (Dataset.rows), and `read()` gives those rows again once released."""
    from sklearn.model_selection import RepeatedStratifiedKFold

    y = np.asarray(y, dtype=np.int8)
    rest, test = row_positions(rest), row_positions(test)
    dev_y = y[rest]
    folds = choose_folds(config, *rarest_class(dev_y, classes))
    fit = functools.partial(Preprocessor.fit, frame, features, source, config.min_level_count, config.max_levels)
    final = fit(rows=rest)
    digest = fingerprint(frame, y, positive, classes)
    rows = TableRows(
        frame, y, rest, test, None if read is None else _checked(read, digest, y, positive, source, classes)
    )
    if folds == 0:
        train_rows, val_rows = (rest[part] for part in stratified_split(dev_y, config.validation_fraction, config.seed))
        search = fit(rows=train_rows)
        train = Split(search.transform(frame, source, train_rows), y[train_rows])
        holdout = Split(search.transform(frame, source, val_rows), y[val_rows])
        del train_rows, val_rows
        plan = Validation("holdout", train.X, train.y, (Fold(None, holdout.X, np.arange(len(holdout.y))),), holdout.y)
        return Dataset(
            source, tuple(features), positive, digest, search, plan, final, rows, train, holdout, classes=classes
        )
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
        source,
        tuple(features),
        positive,
        digest,
        final,
        plan,
        final,
        rows,
        parts={"development": development},
        classes=classes,
    )


def _checked(
    read: Callable[[], pd.DataFrame], digest: str, y: np.ndarray, positive: str, source: str, classes=()
) -> Callable[[], pd.DataFrame]:
    """`read`, refusing rows that are not the ones the dataset was made from (another fingerprint)."""

    def reread() -> pd.DataFrame:
        frame = read()
        found = fingerprint(frame, y, positive, classes)
        if found != digest:
            raise DataError(
                f"{source!r} changed while it was in use (fingerprint {found}, loaded as {digest}); "
                "restore the data and run again"
            )
        return frame

    return reread
