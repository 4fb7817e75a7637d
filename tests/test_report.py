"""Tests for sweep.report: the tutorial's fixed-weight rows, the sweep's row and the markdown table."""

import re

import numpy as np
import pytest

from sweep.data import load_dataset
from sweep.report import REPORTED, balanced_class_weight, logistic_reference_row, markdown_table, tutorial_rows
from sweep.runner import run_sweep


def test_balanced_weights_are_sklearns_formula():
    """Check that balanced weights are n / (2 * class count), as in the tutorial ({0: 0.5052, 1: 48.96})."""
    y = np.array([0] * 990 + [1] * 10)
    assert balanced_class_weight(y) == pytest.approx({0: 1000 / 1980, 1: 1000 / 20})


def test_rows_are_scored_on_the_test_part(tiny_config):
    """Check that the tutorial rows and the logistic reference are test metrics in a table."""
    dataset = load_dataset(tiny_config())
    rows = tutorial_rows(dataset, seeds=(0, 1), epochs=1, batch_size=64)
    rows += [logistic_reference_row(dataset)]
    assert [r.name.split(":")[0] for r in rows[:3]] == ["tutorial"] * 3
    for row in rows:
        assert set(row.values) == set(REPORTED)
        assert all(0 <= row.values[k] <= 1 for k in REPORTED)
    # The manual 1:200 network flags far more rows than the unweighted one: the point of reporting flag rate.
    assert rows[2].values["flag_rate"] > rows[0].values["flag_rate"]
    table = markdown_table(rows)
    assert table.count("\n") == len(rows) + 1 and "flag rate" in table.splitlines()[0]


def test_report_on_two_studies_puts_them_side_by_side(tiny_config, tmp_path):
    """Check that `write_report` on two studies writes report.md/html with a side-by-side table, each study's rows and non-empty figures."""
    from sweep.report import write_report

    for name, objective in (("f1-study", "f1"), ("cost-study", "cost:miss=20,false_alarm=1")):
        run_sweep(tiny_config(study=name, objective=objective, trials=3))
    out = write_report(tiny_config().storage, ["f1-study", "cost-study"], tmp_path / "report", seeds=(0,))
    md = (out / "report.md").read_text()
    assert "## Studies side by side" in md and "f1-study (f1)" in md and "cost-study (cost:miss=20,false_alarm=1)" in md
    for variant in ("| tutorial: no weights |", "| tutorial: balanced weights |", "| tutorial: manual 1:200 |", "| logistic regression"):
        assert md.count(variant) == 4  # each study's table and its paired comparisons
    assert md.count("| sweep best (trial #") == 2
    assert md.count("Sweep model, 95% stratified bootstrap intervals on the test rows: precision [") == 2
    assert re.search(r"\| [+-][0-9.]+ \| \[[+-][0-9.]+, [+-][0-9.]+\] \| (sweep better|sweep worse|no difference) beyond sampling noise \|", md)
    figures = sorted(out.glob("*.png"))
    assert len(figures) == 12 and all(f.stat().st_size > 5000 for f in figures)
    assert len(list(out.glob("*-test-reliability.png"))) == 2
    assert md.count("### Is `probability` a probability? (test rows; lower is better)") == 2
    assert re.search(r"\| calibrated probability \| [0-9.]+ \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \|", md)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 12 and "<table>" in html and 'src="' not in html.replace('src="data:', "")


def test_seed_report_has_the_ceiling_and_opens_in_chromium(tmp_path, chromium):
    """Check that a seed-data report has the four comparison rows plus the Bayes ceiling, and its HTML renders in Chromium without errors."""
    from sweep.config import resolve_config
    from sweep.report import write_report

    config = resolve_config({"storage": f"sqlite:///{tmp_path / 's.db'}", "trials": 2, "epochs": 2, "study": "seed"}, env={})
    run_sweep(config)
    out = write_report(config.storage, ["seed"], tmp_path / "report", seeds=(0,))
    md = (out / "report.md").read_text()
    assert "Bayes-optimal ceiling" in md and "logistic regression" in md
    page = chromium((out / "report.html").as_uri(), "--dump-dom")
    assert page.returncode == 0
    # header + 3 tutorial rows, sweep best, logistic reference, ceiling; then the paired table: header + 5 comparisons;
    # then Brier and log loss: header + raw score, calibrated probability, constant
    assert page.stdout.count("<tr>") == (1 + 6) + (1 + 5) + (1 + 3)
    assert "Uncaught" not in page.stderr and "Failed to load resource" not in page.stderr


def test_report_of_a_user_model_compares_it_with_itself_unweighted_and_balanced(user_studies, tmp_path):
    """Check that a user model's report puts the exported model beside the same model trained unweighted and with
    balanced weights read at 0.5 and the logistic reference on flattened rows, all on the same test rows."""
    from sweep.report import write_report

    config, _ = user_studies["digits"]
    folder = write_report(config.storage, [config.study], tmp_path / "report", seeds=(0,))
    text = (folder / "report.md").read_text()
    for name in ("your model: no weights", "your model: balanced weights", "sweep best (trial #", "filters",
                 "logistic regression, balanced, CV-tuned threshold"):
        assert name in text, name
    assert "tutorial: manual 1:200" not in text
