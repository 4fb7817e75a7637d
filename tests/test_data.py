"""Tests for sweep.data: the seed recipe's splits, table loading, label rules and scaling."""

import numpy as np
import pandas as pd
import pytest

from sweep.config import resolve_config
from sweep.data import load_dataset
from sweep.errors import DataError
from tests.conftest import make_table


def config_for(path, **extra):
    return resolve_config({"data": str(path), **extra}, env={})


@pytest.fixture(scope="module")
def seed_dataset():
    return load_dataset(resolve_config({}, env={}))


def test_seed_test_split_is_the_tutorials(seed_dataset):
    """Check that the seed test part is the tutorial's 20,000 rows (19,787 / 213) and train+validation its 80,000."""
    assert seed_dataset.test.counts() == {"rows": 20000, "negatives": 19787, "positives": 213}
    train, validation = seed_dataset.train.counts(), seed_dataset.validation.counts()
    assert train["rows"] + validation["rows"] == 80000
    assert train["positives"] + validation["positives"] == 817
    assert validation["rows"] == 16000
    # Stratified: the validation part keeps the training part's positive share.
    assert validation["positives"] / validation["rows"] == pytest.approx(817 / 80000, abs=5e-4)


def test_seed_scaling_uses_training_rows_only(seed_dataset):
    """Check that features are standardised with training statistics: train is exactly centred, test is not."""
    assert np.allclose(seed_dataset.train.X.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(seed_dataset.train.X.std(axis=0), 1, atol=1e-4)
    assert not np.allclose(seed_dataset.test.X.mean(axis=0), 0, atol=1e-5)


def test_splits_are_disjoint_and_cover_the_table(tmp_path):
    """Check that a table's train, validation and test parts are disjoint, stratified and cover every row."""
    table = make_table(rows=1000)
    table["row_id"] = np.arange(1000.0)
    path = tmp_path / "t.csv"
    table.to_csv(path, index=False)
    dataset = load_dataset(config_for(path, target="label"))
    ids = [np.round(part.X[:, 2] * dataset.scaler.scale[2] + dataset.scaler.mean[2]).astype(int) for part in (dataset.train, dataset.validation, dataset.test)]
    assert sum(len(i) for i in ids) == 1000 and len(np.unique(np.concatenate(ids))) == 1000
    shares = [part.y.mean() for part in (dataset.train, dataset.validation, dataset.test)]
    assert max(shares) - min(shares) < 0.02


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
    total = sum(part.y.sum() for part in (dataset.train, dataset.validation, dataset.test))
    assert total == pytest.approx(expected_share * 400)


def test_tied_labels_need_positive_label(tmp_path):
    """Check that two equally common non-0/1 labels ask for --positive-label."""
    pd.DataFrame({"f0": np.arange(40.0), "label": ["a", "b"] * 20}).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(DataError, match="pass --positive-label"):
        load_dataset(config_for(tmp_path / "t.csv", target="label"))
