"""Tests for sweep.data: the seed recipe's splits, table loading, label rules, column choice and folds."""

import numpy as np
import pandas as pd
import pytest

from sweep.config import resolve_config
from sweep.data import load_dataset
from sweep.data.folds import AUTO_CV_BELOW, AUTO_FOLDS, choose_folds
from sweep.errors import DataError
from tests.conftest import make_table


def config_for(path, **extra):
    return resolve_config({"data": str(path), "cv": 0, **extra}, env={})


@pytest.fixture(scope="module")
def seed_dataset():
    return load_dataset(resolve_config({}, env={}))


def test_seed_test_split_is_the_tutorials(seed_dataset):
    """Check that the seed test part is the tutorial's 20,000 rows (19,787 / 213) and train+validation its 80,000."""
    assert seed_dataset.test.counts() == {"rows": 20000, "negatives": 19787, "positives": 213}
    assert seed_dataset.feature_names == ("feature1", "feature2")
    train, validation = seed_dataset.train.counts(), seed_dataset.holdout.counts()
    assert train["rows"] + validation["rows"] == 80000
    assert train["positives"] + validation["positives"] == 817
    assert validation["rows"] == 16000
    # Stratified: the validation part keeps the training part's positive share.
    assert validation["positives"] / validation["rows"] == pytest.approx(817 / 80000, abs=5e-4)


def test_seed_scaling_uses_fitting_rows_only(seed_dataset):
    """Check that the search's features are standardised with training-part statistics and the exported model's
    with all non-test rows': each is exactly centred on its own rows, the test part is not."""
    for part in (seed_dataset.train, seed_dataset.development):
        assert np.allclose(part.X.mean(axis=0), 0, atol=1e-5)
        assert np.allclose(part.X.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(seed_dataset.test.X.mean(axis=0), 0, atol=1e-5)
    assert seed_dataset.validation.kind == "holdout"  # 163 validation positives: no cross-validation by default


def test_splits_are_disjoint_and_cover_the_table(tmp_path):
    """Check that a table's train, validation and test parts are disjoint, stratified and cover every row."""
    table = make_table(rows=1000)
    table["row_id"] = np.arange(1000.0)
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    dataset = load_dataset(config_for(path, target="label"))
    ids = [
        np.round(part.X[:, 2] * dataset.preprocessor.scale[2] + dataset.preprocessor.mean[2]).astype(int)
        for part in (dataset.train, dataset.holdout)
    ]
    ids.append(dataset.test_frame["row_id"].to_numpy(dtype=int))
    assert sum(len(i) for i in ids) == 1000 and len(np.unique(np.concatenate(ids))) == 1000
    shares = [part.y.mean() for part in (dataset.train, dataset.holdout, dataset.test)]
    assert max(shares) - min(shares) < 0.02


@pytest.mark.parametrize("folds, repeats", [(5, 1), (3, 2)])
def test_folds_validate_every_non_test_row_once_per_repeat(tmp_path, folds, repeats):
    """Check that cross-validation folds hold out each non-test row exactly once per repeat, stratified, and that
    a fold model's held-out rows are exactly its validation rows."""
    make_table(rows=1000).to_csv(tmp_path / "t.csv", index=False)
    dataset = load_dataset(config_for(tmp_path / "t.csv", target="label", cv=folds, cv_repeats=repeats))
    plan, n = dataset.validation, len(dataset.development.y)
    assert (
        plan.kind == "cv" and len(plan.folds) == folds * repeats and np.array_equal(plan.X_fit, dataset.development.X)
    )
    slots = np.concatenate([fold.slots for fold in plan.folds])
    assert np.array_equal(np.sort(slots), np.arange(n * repeats))
    for fold in plan.folds:
        rows = fold.slots % n
        assert np.array_equal(np.flatnonzero(fold.keep == 0), np.sort(rows))
        assert np.array_equal(fold.X_val, dataset.development.X[rows])
        assert abs(plan.y[fold.slots].mean() - dataset.development.y.mean()) < 0.02
    assert dataset.summary()["validation"] == {"kind": "cv", "folds": folds, "repeats": repeats}


@pytest.mark.parametrize(
    "cv, positives, validation_fraction, expected",
    [
        (None, 100, 0.2, AUTO_FOLDS),  # 20 validation positives: cross-validate
        (None, 5 * AUTO_CV_BELOW, 0.2, 0),  # exactly the bound: one split
        (None, 817, 0.2, 0),  # the reference data: 163 validation positives
        (3, 817, 0.2, 3),  # an explicit choice wins
        (0, 50, 0.2, 0),
    ],
)
def test_fold_choice(cv, positives, validation_fraction, expected):
    """Check that folds are automatic from the validation positives unless --cv says otherwise."""
    config = resolve_config({"cv": cv, "validation_fraction": validation_fraction}, env={})
    assert choose_folds(config, positives) == expected


def test_more_folds_than_positives_is_refused():
    """Check that --cv K with fewer than K non-test positives is a DataError that says what to do."""
    with pytest.raises(DataError, match=r"--cv 9 needs at least 9 positive rows.*found 8"):
        choose_folds(resolve_config({"cv": 9}, env={}), 8)


@pytest.mark.parametrize(
    "options, expected, error",
    [
        ({}, ("f0", "f1", "city", "row_id"), None),
        ({"drop": "row_id"}, ("f0", "f1", "city"), None),
        ({"features": "f1,city"}, ("f1", "city"), None),
        ({"features": "f0,f1,row_id", "drop": "row_id"}, ("f0", "f1"), None),
        ({"drop": "nope"}, None, r"--drop names column 'nope', which .* does not have"),
        ({"features": "f0,label"}, None, r"--features includes the target column 'label'"),
        ({"drop": "f0,f1,city,row_id"}, None, r"no feature columns left"),
    ],
)
def test_column_choice(tmp_path, options, expected, error):
    """Check that --features picks columns, --drop removes them, and unknown names or none left are errors."""
    table = make_table(rows=300)
    table["city"] = np.where(np.arange(300) % 3 == 0, "north", "south")
    table["row_id"] = np.arange(300.0)
    table.to_csv(tmp_path / "t.csv", index=False)
    config = config_for(tmp_path / "t.csv", target="label", **options)
    if error:
        with pytest.raises(DataError, match=error):
            load_dataset(config)
    else:
        assert load_dataset(config).feature_names == expected


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_reads_csv_and_parquet(tmp_path, suffix):
    """Check that CSV and Parquet tables load to the same data and fingerprint."""
    table = make_table(rows=500)
    path = tmp_path / f"t{suffix}"
    table.to_csv(path, index=False) if suffix == ".csv" else table.to_parquet(path)
    dataset = load_dataset(config_for(path, target="label"))
    assert dataset.feature_names == ("f0", "f1")
    assert dataset.summary()["splits"]["test"]["rows"] == 100
    csv_path = tmp_path / "same.csv"
    table.to_csv(csv_path, index=False)
    assert dataset.fingerprint == load_dataset(config_for(csv_path, target="label")).fingerprint


@pytest.mark.parametrize(
    "labels, requested, expected_positive",
    [
        ((0, 1), None, "1"),
        (("ok", "fraud"), None, "fraud"),
        (("big", "small"), "big", "big"),
        ((False, True), None, "True"),
    ],
)
def test_positive_label_rules(tmp_path, labels, requested, expected_positive):
    """Check that 1 is positive for 0/1 labels, the rarer class otherwise, and --positive-label wins."""
    table = make_table(rows=400)
    table["label"] = np.where(table["label"] == 1, labels[1], labels[0])
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    dataset = load_dataset(config_for(path, target="label", positive_label=requested))
    assert dataset.positive_label == expected_positive
    expected_share = (table["label"].astype(str) == expected_positive).mean()
    total = sum(part.y.sum() for part in (dataset.development, dataset.test))
    assert total == pytest.approx(expected_share * 400)


def test_tied_labels_need_positive_label(tmp_path):
    """Check that two equally common non-0/1 labels ask for --positive-label."""
    pd.DataFrame({"f0": np.arange(40.0), "label": ["a", "b"] * 20}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="pass --positive-label"):
        load_dataset(config_for(tmp_path / "t.csv", target="label"))
