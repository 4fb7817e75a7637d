"""Tests for sweep.report: the tutorial's fixed-weight rows, the sweep's row and the markdown table."""

import numpy as np
import pytest

from sweep.data import load_dataset
from sweep.export import export_best
from sweep.report import REPORTED, balanced_class_weight, bundle_row, logistic_reference_row, markdown_table, tutorial_rows
from sweep.runner import run_sweep


def test_balanced_weights_are_sklearns_formula():
    """Check that balanced weights are n / (2 * class count), as in the tutorial ({0: 0.5052, 1: 48.96})."""
    y = np.array([0] * 990 + [1] * 10)
    assert balanced_class_weight(y) == pytest.approx({0: 1000 / 1980, 1: 1000 / 20})


def test_rows_are_scored_on_the_test_part(tiny_config, tmp_path):
    """Check that the tutorial rows, the logistic reference and the sweep's row are test metrics in a table."""
    config = tiny_config(trials=1)
    run_sweep(config)
    export_best(config.storage, config.study, tmp_path / "b")
    dataset = load_dataset(config)
    rows = tutorial_rows(dataset, seeds=(0, 1), epochs=1, batch_size=64)
    rows += [logistic_reference_row(dataset), bundle_row(tmp_path / "b", dataset)]
    assert [r.name.split(":")[0] for r in rows[:3]] == ["tutorial"] * 3
    for row in rows:
        assert set(row.values) == set(REPORTED)
        assert all(0 <= row.values[k] <= 1 for k in REPORTED)
    # The manual 1:200 network flags far more rows than the unweighted one: the point of reporting flag rate.
    assert rows[2].values["flag_rate"] > rows[0].values["flag_rate"]
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "flag rate" in table.splitlines()[0]
