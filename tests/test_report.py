"""Tests for sweep.reading.report: the tutorial's fixed-weight rows, the balanced network with a tuned threshold, the
sweep's row and the markdown table."""

import re

import numpy as np
import pytest

from sweep.data import Split, load_dataset
from sweep.metrics import balanced_class_weight, parse_goal
from sweep.models import model_kind
from sweep.models.network import TrainSettings
from sweep.reading.report import (
    REPORTED,
    logistic_reference_row,
    markdown_table,
    network_balanced_tuned,
    practice_rows,
)
from sweep.space import TrialParams
from sweep.study.runner import run_sweep
from tests.conftest import user_model_values


def test_balanced_weights_are_sklearns_formula():
    """Check that balanced weights are n / (2 * class count), as in the tutorial ({0: 0.5052, 1: 48.96})."""
    y = np.array([0] * 990 + [1] * 10)
    assert balanced_class_weight(y) == pytest.approx({0: 1000 / 1980, 1: 1000 / 20})


def test_rows_are_scored_on_the_test_part(tiny_config):
    """Check that the tutorial rows and the logistic reference are test metrics in a table."""
    config = tiny_config()
    dataset = load_dataset(config)
    rows = practice_rows(
        model_kind(config), dataset, TrialParams(3.0, 4, 0.5), TrainSettings(1, 64, 0.01, 1, 0), (0, 1)
    )
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
    """Check that `write_report` on two studies writes report.md/html with a side-by-side table, each study's rows and
    non-empty figures."""
    from sweep.reading.report import write_report

    for name, objective in (("f1-study", "f1"), ("cost-study", "cost:miss=20,false_alarm=1")):
        run_sweep(tiny_config(study=name, objective=objective, trials=3))
    out = write_report(tiny_config().storage, ["f1-study", "cost-study"], tmp_path / "report", seeds=(0,))
    md = (out / "report.md").read_text()
    assert "## Studies side by side" in md and "f1-study (f1)" in md and "cost-study (cost:miss=20,false_alarm=1)" in md
    for variant in (
        "| tutorial: no weights |",
        "| tutorial: balanced weights |",
        "| tutorial: manual 1:200 |",
        "| logistic regression",
        "| same network, balanced weights, threshold tuned on validation (",
    ):
        assert md.count(variant) == 4  # each study's table and its paired comparisons
    assert md.count("| sweep best (trial #") == 2
    assert md.count("Sweep model, 95% stratified bootstrap intervals on the test rows: precision [") == 2
    assert re.search(
        r"\| [+-][0-9.]+ \| \[[+-][0-9.]+, [+-][0-9.]+\] \| (sweep better|sweep worse|no difference) beyond sampling "
        r"noise \|",
        md,
    )
    figures = sorted(out.glob("*.png"))
    assert len(figures) == 12 and all(f.stat().st_size > 5000 for f in figures)
    assert len(list(out.glob("*-test-reliability.png"))) == 2
    assert md.count("### Is `probability` a probability? (test rows; lower is better)") == 2
    assert re.search(
        r"\| calibrated probability \| [0-9.]+ \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \| [0-9.]+ \[[0-9.]+, [0-9.]+\] \|", md
    )
    html = (out / "report.html").read_text()
    assert (
        html.count("data:image/png;base64,") == 12
        and "<table>" in html
        and 'src="' not in html.replace('src="data:', "")
    )


def test_seed_report_has_the_ceiling_and_opens_in_chromium(tmp_path, chromium):
    """Check that a seed-data report has the four comparison rows plus the Bayes ceiling, and its HTML renders in
    Chromium without errors."""
    from sweep.config import resolve_config
    from sweep.reading.report import write_report

    config = resolve_config(
        {"storage": f"sqlite:///{tmp_path / 's.db'}", "trials": 2, "epochs": 2, "study": "seed"}, env={}
    )
    run_sweep(config)
    out = write_report(config.storage, ["seed"], tmp_path / "report", seeds=(0,))
    md = (out / "report.md").read_text()
    assert "Bayes-optimal ceiling" in md and "logistic regression" in md
    page = chromium((out / "report.html").as_uri(), "--dump-dom")
    assert page.returncode == 0
    # header + 3 tutorial rows, sweep best, balanced network with a tuned threshold, logistic reference, ceiling; then
    # the paired table: header + 6 comparisons; then Brier and log loss: header + raw score, calibrated probability,
    # constant
    assert page.stdout.count("<tr>") == (1 + 7) + (1 + 6) + (1 + 3)
    assert "Uncaught" not in page.stderr and "Failed to load resource" not in page.stderr


def test_report_of_a_user_model_compares_it_with_itself_unweighted_and_balanced(user_studies, tmp_path):
    """Check that a user model's report puts the exported model beside the same model trained unweighted and with
    balanced weights read at 0.5 or at a threshold tuned on validation, and the logistic reference on flattened rows."""
    from sweep.reading.report import write_report

    config, _ = user_studies["digits"]
    folder = write_report(config.storage, [config.study], tmp_path / "report", seeds=(0,))
    text = (folder / "report.md").read_text()
    for name in (
        "your model: no weights",
        "your model: balanced weights",
        "sweep best (trial #",
        "filters",
        "logistic regression, balanced, CV-tuned threshold",
        "| your model, balanced weights, threshold tuned on validation (",
    ):
        assert name in text, name
    assert (
        text.count("| your model, balanced weights, threshold tuned on validation (") == 2
    )  # its row and its paired comparison
    assert "tutorial: manual 1:200" not in text


@pytest.fixture(params=["builtin-holdout", "builtin-cv", "user-holdout"])
def balanced_case(request, tiny_config, example_files, sqlite_url):
    """(dataset, config, params, settings) of a small study's network for network_balanced_tuned, without a sweep."""
    if request.param.startswith("user"):
        space = {"units": "4", "depth": "1", "dropout": "0.0"}
        config = user_model_values(example_files["tabular.csv"], sqlite_url, "tabular_mlp", space, target="label")
        params = TrialParams(3.0, None, 0.5, None, {"units": 4, "depth": 1, "dropout": 0.0})
    else:
        config = tiny_config(cv=5 if request.param.endswith("cv") else 0)
        params = TrialParams(3.0, 4, 0.5)
    return load_dataset(config), config, params, TrainSettings(2, 64, 0.01, 1, 0)


def test_balanced_tuned_network_trains_every_model_with_balanced_weights(balanced_case, monkeypatch):
    """Check that network_balanced_tuned trains its validation and refit models with sklearn's balanced weights of the
    non-test labels, not the trial's weight."""
    import sweep.models.builtin
    import sweep.models.keras_fit
    import sweep.models.network

    dataset, config, params, settings = balanced_case
    seen = []

    def spy(module, name, weight_at):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            seen.append(args[weight_at])
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    if config.model != "builtin":
        spy(sweep.models.keras_fit, "fit_user_model", 3)  # every fold model's fit and the refit
        expected_fits = len(dataset.validation.folds) + 1
    else:
        spy(sweep.models.builtin, "train_models", 3)  # the validation models (train_folds)
        spy(sweep.models.network, "train_models", 3)  # the refit (train_model)
        expected_fits = 2
    network_balanced_tuned(model_kind(config), dataset, params, settings, parse_goal("f1"))
    assert len(seen) == expected_fits
    assert all(weights == pytest.approx(balanced_class_weight(dataset.development.y)) for weights in seen)


def test_balanced_tuned_threshold_is_chosen_on_validation_scores_only(balanced_case, monkeypatch):
    """Check that network_balanced_tuned's threshold is chosen on the validation labels and its result does not change
    when the test labels are permuted."""
    import sweep.metrics

    dataset, config, params, settings = balanced_case
    goal = parse_goal("cost:miss=20,false_alarm=1")
    chosen_on = []
    real = sweep.metrics.choose_threshold
    monkeypatch.setattr(
        sweep.metrics, "choose_threshold", lambda goal, y, *rest: chosen_on.append(y) or real(goal, y, *rest)
    )
    scores, threshold = network_balanced_tuned(model_kind(config), dataset, params, settings, goal)
    test = dataset.test
    dataset.parts["test"] = Split(test.X, np.random.default_rng(1).permutation(test.y))
    permuted_scores, permuted_threshold = network_balanced_tuned(model_kind(config), dataset, params, settings, goal)
    assert [len(y) for y in chosen_on] == [len(dataset.validation.y)] * 2 and np.array_equal(
        chosen_on[0], dataset.validation.y
    )
    assert 0 < threshold < 1 and permuted_threshold == threshold
    np.testing.assert_array_equal(permuted_scores, scores)
    assert len(scores) == len(test.y)
