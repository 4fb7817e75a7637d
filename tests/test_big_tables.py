"""Tests for big tables in bounded memory: block-wise encoding equal to the whole-table one, parts encoded on first
use, the raw table released while trials run and read again, labels without per-row text, bootstrap draws in
blocks, and a bound on what loading a table allocates (docs/benchmarks/memory.md#section-15)."""

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import sweep.data.preprocess as preprocess
import sweep.metrics as metrics
from sweep.config import resolve_config
from sweep.data import load_dataset
from sweep.data.preprocess import Preprocessor
from sweep.data.readers import labels_of
from sweep.errors import DataError


def mixed_table(rows: int = 3000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "amount": rng.normal(100, 20, rows),
            "count": rng.integers(0, 10, rows),
            "small": rng.normal(0, 1, rows).astype(np.float32),
            "color": rng.choice(["red", "blue", "green"], rows).astype(object),
            "plan": pd.Categorical(rng.choice(["basic", "pro"], rows)),
            "same": np.full(rows, 2.0),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "amount"] = np.nan
    frame.loc[rng.random(rows) < 0.02, "small"] = np.inf
    frame.loc[rng.random(rows) < 0.1, "color"] = None
    frame["label"] = (rng.random(rows) < 0.08).astype(int)
    return frame


@pytest.mark.parametrize(
    "columns", [["amount", "count", "small", "color", "plan", "same"], ["small"], ["amount", "small"]]
)
def test_blockwise_scaling_is_standard_scalers_to_the_bit(monkeypatch, columns):
    """Check that mean and scale fitted block by block (7 rows a block) are StandardScaler's on the whole encoded
    matrix, bit for bit, and that transforming rows by position equals transforming those rows' frame."""
    from sklearn.preprocessing import StandardScaler

    monkeypatch.setattr(preprocess, "CHUNK_ROWS", 7)
    frame = mixed_table()
    rows = np.random.default_rng(1).permutation(len(frame))[:2000]
    fitted = Preprocessor.fit(frame, columns, "t.csv", rows=rows)
    encoded = fitted.encode(frame.iloc[rows], "t.csv")
    scaler = StandardScaler().fit(encoded)
    assert np.array_equal(fitted.mean, scaler.mean_) and np.array_equal(fitted.scale, scaler.scale_)
    assert fitted == Preprocessor.fit(frame.iloc[rows].reset_index(drop=True), columns, "t.csv")
    expected = ((encoded - scaler.mean_) / scaler.scale_).astype(np.float32)
    assert np.array_equal(fitted.transform(frame, "t.csv", rows), expected)
    assert np.array_equal(fitted.transform(frame.iloc[rows], "t.csv"), expected)


def test_transform_of_no_rows_still_checks_the_columns():
    fitted = Preprocessor.fit(mixed_table(), ["amount", "color"], "t.csv")
    assert fitted.transform(mixed_table().iloc[:0], "t.csv").shape == (0, len(fitted.output_names))
    with pytest.raises(DataError, match="lacks feature column 'color'"):
        fitted.transform(mixed_table().iloc[:0].drop(columns="color"), "t.csv")


@pytest.fixture
def parquet_table(tmp_path):
    path = tmp_path / "big.parquet"
    mixed_table().to_parquet(path)
    return path


def test_parts_are_encoded_on_first_use_and_read_again_after_release(parquet_table):
    """Check that loading encodes only the search's parts, that the summary needs no other, and that after
    release_rows (what a sweep does) the development and test parts are read again and equal the ones encoded
    before; a file changed meanwhile is refused."""
    config = resolve_config({"data": str(parquet_table), "target": "label", "cv": 0}, env={})
    kept = load_dataset(config)
    expected = {name: getattr(kept, name) for name in ("development", "test")}
    dataset = load_dataset(config)
    assert dataset.parts == {} and dataset.rows.frame is not None
    summary = dataset.summary()
    assert dataset.parts == {} and summary == kept.summary()
    assert summary["splits"]["test"] == expected["test"].counts()
    dataset.release_rows()
    assert dataset.rows.frame is None
    for name, part in expected.items():
        again = getattr(dataset, name)
        assert np.array_equal(again.X, part.X) and np.array_equal(again.y, part.y)
    assert dataset.test_frame.equals(kept.test_frame)
    assert np.array_equal(dataset.test_split(dataset.preprocessor).X, kept.test_split(kept.preprocessor).X)

    changed = load_dataset(config)
    changed.release_rows()
    table = mixed_table()
    table.loc[0, "count"] += 1
    table.to_parquet(parquet_table)
    with pytest.raises(DataError, match="changed while it was in use"):
        _ = changed.test


def test_cross_validated_tables_encode_development_at_once(parquet_table):
    dataset = load_dataset(resolve_config({"data": str(parquet_table), "target": "label", "cv": 3}, env={}))
    assert set(dataset.parts) == {"development"} and dataset.validation.X_fit is dataset.development.X


def test_read_parquet_gives_pandas_frame(parquet_table):
    """Check that the frame read with a block per column is pd.read_parquet's (values, dtypes, order)."""
    from sweep.data.readers import read_parquet

    got, expected = read_parquet(parquet_table), pd.read_parquet(parquet_table)
    assert got.equals(expected) and list(got.dtypes) == list(expected.dtypes)


@pytest.mark.parametrize(
    "values, positive",
    [
        ([0, 1, 1, 0, 0], None),
        ([0.0, 1.0, 0.0, 0.0, 0.0], None),
        ([True, False, False, False, False], None),
        (["no", "yes", "no", "no", "no"], None),
        (["no", "yes", "no", "no", "no"], "no"),
        ([3, 7, 7, 7, 3, 7], None),
        (pd.Categorical(["a", "b", "b", "b", "a", "b"]), None),
        ([1, "1", 2, 2, 2], None),
    ],
)
def test_labels_equal_their_text_rule(values, positive):
    """Check that labels read through their distinct values equal the per-row text rule (astype(str))."""
    frame = pd.DataFrame({"label": values, "x": np.arange(len(values))})
    y, chosen, _ = labels_of(frame, "label", positive, "t.csv")
    text = frame["label"].astype(str)
    classes = sorted(text.unique())
    if positive is None:
        rare = text.value_counts().idxmin()
        positive = max(classes) if set(classes) in ({"0", "1"}, {"False", "True"}, {"0.0", "1.0"}) else rare
    assert chosen == positive and np.array_equal(y, (text == positive).to_numpy(dtype=np.int8)) and y.dtype == np.int8


@pytest.mark.parametrize("positives", [0.05, 0.0, 1.0])
@pytest.mark.parametrize("cells", [7_000, 200_000])
def test_bootstrap_blocks_draw_the_same_multiplicities(monkeypatch, positives, cells):
    """Check that the bootstrap drawn block by block (for test parts of millions of rows) gives every resample the
    multiplicities of the one (resamples x rows) draw, whatever the block size."""
    monkeypatch.setattr(metrics, "_BOOTSTRAP_CELLS", cells)
    y = (np.random.default_rng(0).random(3000) < positives).astype(float)
    expected = metrics._stratified_counts(y, 1000, seed=3)
    for _ in range(2):
        blocks = list(metrics._count_blocks(y, 1000, seed=3))
        assert max(len(block) for block in blocks) <= max(1, cells // len(y))
        assert np.array_equal(np.concatenate(blocks), expected)


def test_loading_a_table_allocates_less_than_two_float32_matrices(monkeypatch):
    """Check that loading a numeric table in memory (200,000 rows, 10 float32 columns, blocks of 8,192 rows as a
    big table's are small beside it) allocates at its peak less than twice its float32 feature matrix beyond the
    table itself (the train and validation parts alone are 0.8 of it): no float64 copy of the table, no
    copy of its rows per part (numpy's allocations, as tracemalloc sees them)."""
    monkeypatch.setattr(preprocess, "CHUNK_ROWS", 8192)
    rows, width = 200_000, 10
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({f"f{i}": rng.standard_normal(rows, dtype=np.float32) for i in range(width)})
    frame["label"] = (rng.random(rows) < 0.05).astype(np.int8)
    config = resolve_config({"data": "memory", "target": "label", "cv": 0}, env={})
    load_dataset(config, frame=frame.iloc[:2000])  # imports and first-use caches
    matrix = rows * width * 4
    tracemalloc.start()
    try:
        dataset = load_dataset(config, frame=frame)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dataset.train.X.dtype == np.float32 and dataset.parts == {}
    assert peak < 2 * matrix, f"peak {peak / matrix:.2f} x the float32 matrix"
