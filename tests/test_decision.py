"""Tests for sweep.handover.decision: the judged threshold carried over to the shipped models, and the check that they
flag what the judged models flagged."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.errors import ExportError
from sweep.handover.bundle import load_bundle
from sweep.handover.decision import (
    FLAG_RATE_TOLERANCE,
    FOLD_CUT_MIN_POSITIVES,
    check_decision,
    check_threshold_rule,
    flag_rate,
    shipped_threshold,
)
from sweep.metrics import parse_goal
from tests.conftest import tiny_values

SCORES = np.random.default_rng(0).uniform(size=1000)


@pytest.mark.parametrize(
    "threshold, shipped, passed",
    [
        (0.9, SCORES, True),  # the same models: the same flags
        (0.9, SCORES * 0.8, False),  # a refit that lost its range flags nothing at 0.9
        (0.9, SCORES**0.5, False),  # a refit whose scale rose flags three times as many rows
        (0.9, np.clip(SCORES * 1.05, 0, 1), True),  # a small shift of scale stays within the tolerance
        (0.999, SCORES * 0.99, True),  # one judged flag and none shipped: within the slack of a few rows
    ],
)
def test_check_compares_flag_rates_at_the_threshold(threshold, shipped, passed):
    """Check that the decision check passes when the shipped flag rate is within the tolerance of the judged one
    and fails when the shipped models flag nothing or far more."""
    check = check_decision(SCORES, shipped, threshold, "the non-test rows")
    assert check.passed is passed and check.record()["passed"] is passed
    assert check.judged_flag_rate == flag_rate(SCORES, threshold) and check.shipped_flag_rate == flag_rate(
        shipped, threshold
    )
    assert check.shipped_max_score == pytest.approx(np.max(shipped))


def _plan(positives: int, repeats: int = 1, rows: int = 2000, folds: int = 5):
    """A cross-validated plan's pooled labels and folds (what shipped_threshold reads; each repeat scores every row
    once), with its scores."""
    from sweep.data.folds import Fold, Validation

    rng = np.random.default_rng(positives)
    y = np.zeros(rows, dtype=int)
    y[rng.choice(rows, positives, replace=False)] = 1
    slots = [rows * r + s for r in range(repeats) for s in np.array_split(rng.permutation(rows), folds)]
    pooled = np.tile(y, repeats)
    folded = tuple(Fold(None, None, s) for s in slots)
    plan = Validation("cv", np.empty((0, 1)), y, folded, pooled, n_splits=folds, repeats=repeats)
    return plan, np.clip(0.25 * pooled + rng.normal(0.4, 0.15, size=rows * repeats), 0.001, 0.999)


@pytest.mark.parametrize(
    "rule, objective, positives, repeats, expected",
    [
        ("auto", "f1", FOLD_CUT_MIN_POSITIVES - 1, 1, "trial"),  # few positives: the trial's own cut decided better
        ("auto", "f1", FOLD_CUT_MIN_POSITIVES - 1, 2, "trial"),  # a repeat scores the same positives again
        ("auto", "f1", FOLD_CUT_MIN_POSITIVES, 1, "folds"),
        ("auto", "fbeta:2", FOLD_CUT_MIN_POSITIVES, 2, "folds"),
        ("auto", "pareto:precision,recall", FOLD_CUT_MIN_POSITIVES, 1, "trial"),  # the picked point is the trial's
        ("auto", "ap", FOLD_CUT_MIN_POSITIVES, 1, "trial"),  # an objective without a threshold
        ("trial", "f1", FOLD_CUT_MIN_POSITIVES, 1, "trial"),
        ("folds", "f1", 20, 1, "folds"),
    ],
)
def test_shipped_threshold_follows_its_rule(rule, objective, positives, repeats, expected):
    """Check that the shipped threshold is the trial's own or the best mean over the folds as the rule says, auto
    re-choosing only with FOLD_CUT_MIN_POSITIVES validation positives (each counted once, however many repeats score
    it) and an objective with one threshold, and that
    the record states both thresholds with their validation values."""
    from sweep.metrics import fold_mean_threshold

    goal, (plan, scores) = parse_goal(objective), _plan(positives, repeats)
    cut = shipped_threshold(rule, goal, plan, scores, 0.9, (0.01, 0.99))
    record = cut.record()
    assert (cut.rule, record["rule"], record["asked"], record["validation_positives"]) == (
        expected,
        expected,
        rule,
        positives,
    )
    assert record["trial_threshold"] == 0.9
    if expected == "trial":
        assert cut.threshold == 0.9 and record["how"].startswith("the best trial's own (")
    else:
        folds = [fold.slots for fold in plan.folds]
        assert cut.threshold == fold_mean_threshold(goal, plan.y, scores, folds, (0.01, 0.99))[0] != 0.9
        assert record["validation_value"] > record["trial_validation_value"]  # 0.9 flags almost nothing
        assert "re-chosen on the best trial's validation scores" in record["how"]


@pytest.mark.parametrize(
    "rule, objective, greedy, classes, match",
    [
        ("median", "f1", False, False, "--threshold-rule 'median' is not known; expected one of: auto, trial, folds"),
        ("folds", "f1", True, False, "a greedy ensemble chooses its own threshold"),
        ("folds", "f1", False, True, "three or more classes"),
        ("folds", "pareto:precision,recall", False, False, "has several values; use --threshold-rule trial"),
        ("folds", "ap", False, False, "has no threshold; use --threshold-rule trial"),
    ],
)
def test_a_threshold_rule_that_cannot_apply_is_refused(rule, objective, greedy, classes, match):
    """Check that an unknown threshold rule, or folds where there is no single threshold to re-choose, is refused
    in one line that says why and what to use."""
    with pytest.raises(ExportError, match=re.escape(match)):
        check_threshold_rule(rule, parse_goal(objective), greedy, classes)
    check_threshold_rule("auto", parse_goal(objective), greedy, classes)  # auto always applies


@pytest.fixture(scope="module")
def greedy_study(tiny_csv, tmp_path_factory):
    """A 4-trial study with one validation split on the tiny table (its default export is a greedy ensemble)."""
    from sweep.study.runner import run_sweep

    folder = tmp_path_factory.mktemp("decision")
    config = tiny_values(tiny_csv, f"sqlite:///{folder / 'd.db'}", study="decision", trials=4, epochs=4)
    run_sweep(config)
    return config


@pytest.mark.parametrize("ensemble", ["greedy:3", "single"])
def test_a_refit_that_loses_its_range_gives_way_to_the_judged_models(greedy_study, ensemble, tmp_path, monkeypatch):
    """Check the collapse the check exists for: a refit (a greedy ensemble's member, or the one refit) that loses its
    range (its output pushed towards 0) never reaches the judged threshold; export ships the judged models instead,
    whose flag rate on held-out rows is within the tolerance of the judged one, and names the fallback in best.json
    and its printout."""
    from sweep.data import load_dataset
    from sweep.models.builtin import BuiltinNetwork
    from sweep.models.network import Network

    def lose_range(network):
        *hidden, (kernel, bias) = network.layers
        return Network((*hidden, (kernel, bias - 12.0)))

    refit = BuiltinNetwork.refit
    monkeypatch.setattr(BuiltinNetwork, "refit", lambda *a: [lose_range(m) for m in refit(*a)])
    config = greedy_study
    result = CliRunner().invoke(
        app,
        ["export", config.study, "--out", str(tmp_path / "b"), "--storage", config.storage, "--ensemble", ensemble],
        env={"SWEEP_STORAGE": None},
    )
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "b" / "best.json").read_text())
    decision = best["decision"]
    assert decision["passed"] and decision["rows"] == "their own validation rows"
    assert not decision["failed_check"]["passed"] and decision["failed_check"]["shipped_flag_rate"] == 0.0
    assert "shipping the judged models themselves instead (--refit judged)" in decision["fallback"]
    assert "fallback: the refit models do not decide as the judged ones did" in " ".join(result.output.split())
    assert best["refit"]["choice"] == "judged" and "training part" in best["refit"]["rows"]
    assert best["ensemble"]["kind"] == ensemble.partition(":")[0]
    dataset = load_dataset(config)
    bundle = load_bundle(tmp_path / "b")
    held_out = flag_rate(bundle.score(dataset.test_frame), best["threshold"])
    judged = decision["judged_flag_rate"]
    assert judged / FLAG_RATE_TOLERANCE <= held_out <= judged * FLAG_RATE_TOLERANCE
    assert best["test"]["metrics"]["flag_rate"] == pytest.approx(
        held_out, abs=3 / len(dataset.test.y)
    )  # Keras' float32 sigmoid


def test_judged_greedy_ships_the_models_its_threshold_was_chosen_on(greedy_study, tmp_path):
    """Check that --refit judged with a greedy ensemble ships each chosen trial's own model, whose averaged
    validation scores reproduce the ensemble's validation value at its threshold exactly."""
    from sweep.handover.export import export_best

    best = export_best(
        greedy_study.storage, greedy_study.study, tmp_path / "j", refit="judged", ensemble="greedy:3"
    ).best
    assert best["ensemble"]["kind"] == "greedy" and best["refit"]["choice"] == "judged"
    assert all(m["fitted_on"] == "its training part" for m in best["ensemble"]["members"])
    assert best["decision"]["passed"] and best["decision"]["fallback"] is None
    assert (
        best["decision"]["shipped_flag_rate"]
        == best["decision"]["judged_flag_rate"]
        == pytest.approx(best["validation"]["ensemble_metrics"]["flag_rate"])
    )


def test_judged_greedy_of_a_cross_validated_study_ships_every_chosen_fold_model(cross_validated, tmp_path):
    """Check that --refit judged with a greedy ensemble of a cross-validated study ships each chosen trial's fold
    models (each counted as often as its trial was chosen), with a threshold that passes its check."""
    from sweep.handover.export import export_best

    config, _ = cross_validated
    best = export_best(config.storage, config.study, tmp_path / "j", refit="judged", ensemble="greedy:3").best
    members = best["ensemble"]["members"]
    assert len(members) % 5 == 0 and {m["fold"] for m in members} == set(range(5))
    assert all("outside fold" in m["fitted_on"] for m in members) and best["refit"]["rows"].startswith(
        "each fold model"
    )
    assert best["decision"]["passed"] and best["test"]["metrics"]["flag_rate"] > 0


@pytest.mark.parametrize("rule", ["auto", "trial"])
def test_export_ships_and_records_the_threshold_its_rule_chose(greedy_study, rule, tmp_path, monkeypatch):
    """Check that `sweep export` ships the threshold its --threshold-rule chose, re-chosen on the best trial's
    validation scores where auto's positive floor is met (lowered here to the tiny table's), with the decision check
    and the test metrics at that threshold, and best.json and the printout saying how it was found."""
    monkeypatch.setattr("sweep.handover.decision.FOLD_CUT_MIN_POSITIVES", 1)
    config = greedy_study
    args = ["export", config.study, "--out", str(tmp_path / "b"), "--storage", config.storage]
    result = CliRunner().invoke(
        app, args + ["--ensemble", "single", "--threshold-rule", rule], env={"SWEEP_STORAGE": None}
    )
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "b" / "best.json").read_text())
    recorded = best["threshold_rule"]
    assert recorded["asked"] == rule and recorded["trial_threshold"] == best["params"]["threshold"]
    assert best["threshold"] == recorded["threshold"] == best["decision"]["threshold"]
    if rule == "trial":
        assert recorded["rule"] == "trial" and best["threshold"] == best["params"]["threshold"]
    else:  # one validation split: the re-chosen cut is the best there, at least the trial's own
        assert recorded["rule"] == "folds" and recorded["validation_value"] >= recorded["trial_validation_value"]
    assert f"threshold: {recorded['how']}" in " ".join(result.output.split())
    bundle = load_bundle(tmp_path / "b")
    assert bundle.threshold == best["threshold"]


def test_greedy_export_refuses_folds_in_one_line(greedy_study, tmp_path):
    """Check that asking a greedy ensemble to re-choose its threshold across folds exits non-zero with one line and
    writes nothing."""
    config = greedy_study
    result = CliRunner().invoke(
        app,
        ["export", config.study, "--out", str(tmp_path / "b"), "--storage", config.storage]
        + ["--ensemble", "greedy:3", "--threshold-rule", "folds"],
        env={"SWEEP_STORAGE": None},
    )
    assert result.exit_code != 0 and "--threshold-rule folds cannot apply here" in result.output
    assert not (tmp_path / "b").exists()
