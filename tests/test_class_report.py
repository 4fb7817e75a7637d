"""Tests for sweep.reading.class_report: `sweep report` on a study of several classes."""

from __future__ import annotations

from sweep.reading.report import write_report


def test_report_of_several_classes_compares_on_the_same_rows(swept_classes, tmp_path):
    """Check that the report of a study of several classes puts the exported model beside the same model at argmax,
    the same network with balanced weights and unweighted, and a balanced logistic regression, with paired intervals,
    each class's recall and a confusion-matrix figure."""
    _, _, storage, _, classes, *_ = swept_classes
    folder = write_report(storage, ["classes"], tmp_path / "report", seeds=(0,))
    text = (folder / "report.md").read_text()
    for row in (
        "its decision rule",
        "the same model read at argmax",
        "balanced weights, argmax",
        "unweighted, argmax",
        "logistic regression, balanced weights",
    ):
        assert row in text
    assert text.count("| macro_f1 |") == 4 and text.count("| balanced_accuracy |") == 4
    for name in classes:
        assert f"| {name} | " in text
    assert (folder / "classes_confusion.png").stat().st_size > 1000
    assert "data:image/png;base64," in (folder / "report.html").read_text()


def test_report_of_the_reference_data_of_several_classes_has_a_ceiling(tmp_path):
    """Check that a study of `--data seed-classes` gets the Bayes-optimal ceiling row, which an untrained sweep (one
    epoch) does not reach."""
    from typer.testing import CliRunner

    from sweep.cli import app

    storage = f"sqlite:///{tmp_path / 's.db'}"
    options = ["--data", "seed-classes", "--trials", "1", "--epochs", "1", "--cv", "0", "--min-steps", "0"]
    ran = CliRunner().invoke(app, ["run", "--storage", storage, "--study", "reference-classes", *options])
    assert ran.exit_code == 0, ran.output
    folder = write_report(storage, ["reference-classes"], tmp_path / "report", seeds=(0,))
    lines = (folder / "report.md").read_text().splitlines()

    def macro_f1(row: str) -> float:
        return float(next(line for line in lines if line.startswith(f"| {row} |")).split("|")[2].split("±")[0])

    assert macro_f1("Bayes-optimal ceiling") > macro_f1("sweep: trial #0, its decision rule")
