"""Tests for targets of three or more classes end to end (sweep.handover.classes and the path to it): run, resume,
export and predict on a 3-class table and on 4-class arrays with a user's model, and each bad input's one line."""

from __future__ import annotations

import json
import re

import numpy as np
import optuna
import optuna.artifacts
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from sweep.cli import app
from sweep.handover.classes import ClassCheck, bootstrap_class_metrics, confusion_matrix
from sweep.multiclass import DecisionRule, prior_corrected, with_temperature
from tests.conftest import class_arrays, class_table, write_class_model


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"SWEEP_STORAGE": None})


def test_a_target_of_several_classes_runs_and_resumes(swept_classes):
    """Check that a 3-class table and 4-class arrays sweep, resume to the budget, and store every class's weight, the
    decision rule and each class's recall and flag rate on every trial, with the best trial's confusion matrix for the
    dashboard."""
    _, _, storage, _, classes, runs, *_ = swept_classes
    for run in runs:
        assert run.exit_code == 0, run.output
    assert "recall (flag rate)" in runs[-1].output
    study = optuna.load_study(study_name="classes", storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 5
    assert study.metric_names == ["val_macro_f1"]
    for trial in complete:
        weights = trial.user_attrs["class_weight"]
        assert sorted(weights) == [str(c) for c in range(len(classes))]
        assert max(weights.values()) == pytest.approx(trial.params["minority_weight"])
        assert "threshold" not in trial.params
        assert trial.user_attrs["decision_rule"]["kind"] in ("argmax", "logit_adjusted")
        for name in classes:
            assert 0 <= trial.user_attrs[f"val_recall:{name}"] <= 1
            assert 0 <= trial.user_attrs[f"val_flag_rate:{name}"] <= 1
        assert trial.value == pytest.approx(trial.user_attrs["val_macro_f1"])
    best = study.best_trial
    attached = optuna.artifacts.get_all_artifact_meta(best, storage=study._storage)
    assert [meta.filename for meta in attached] == ["confusion.png"]  # what the dashboard shows of the best trial
    shown = invoke("show", "classes", "--storage", storage)
    assert shown.exit_code == 0 and "rule tau" in shown.output and "worst recall" in shown.output


def test_export_ships_every_class_weight_and_the_rule(swept_classes):
    """Check that export reproduces the trial's value and writes every class's weight, the decision rule, per-class
    test metrics with intervals, the confusion matrix and the rule's gain over argmax, and how hidden_layers = auto was
    resolved (the builtin network's depth_choice); an ensemble of seeds is refused in one line."""
    _, _, _, _, classes, _, exported, bundle, *_ = swept_classes
    assert exported.exit_code == 0, exported.output
    assert "the rule's gain over argmax" in exported.output
    best = json.loads((bundle / "best.json").read_text())
    assert best["classes"] == classes
    assert len(best["class_weight"]) == len(classes)
    assert best["validation"]["reproduced"]
    assert best["decision"]["passed"] or best["decision"]["fallback"]
    builtin = best["model"]["kind"] == "builtin"
    assert (best["depth_choice"] or {}).get("why", "") == (
        "hidden_layers = auto: one hidden layer (three or more classes)" if builtin else ""
    )
    test = best["test"]
    assert np.asarray(test["confusion"]).shape == (len(classes), len(classes))
    assert np.asarray(test["confusion"]).sum() == best["data"]["splits"]["test"]["rows"]
    for name in classes:
        low, high = test["intervals"][f"recall:{name}"]
        assert low <= test["metrics"][f"recall:{name}"] <= high
    low, high = test["rule_gain"]["interval"]
    assert low <= test["rule_gain"]["macro_f1"] <= high
    storage = swept_classes[2]
    refused = invoke(
        "export", "classes", "--out", str(bundle.parent / "seeds"), "--storage", storage, "--ensemble", "seeds:2"
    )
    assert refused.exit_code == 2 and "is not offered for a target of several classes" in refused.output


def test_predict_applies_the_exported_rule_exactly(swept_classes):
    """Check that predict writes each class's probability and score and that its decision is the exported rule applied
    to the scores, with calibrated probabilities (prior correction, then the fitted temperature) that sum to 1 in every
    row."""
    _, _, _, data, classes, _, _, bundle, scored, predicted = swept_classes
    assert scored.exit_code == 0, scored.output
    rows = pd.read_csv(predicted, dtype={"decision": str})
    best = json.loads((bundle / "best.json").read_text())
    scores = rows[[f"score_{name}" for name in classes]].to_numpy()
    probabilities = rows[[f"probability_{name}" for name in classes]].to_numpy()
    rule = DecisionRule.from_record(best["decision_rule"])
    assert list(rows["decision"]) == [classes[c] for c in rule.decide(scores)]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-9)
    calibration = best["calibration"]
    weights = {int(c): w for c, w in calibration["class_weight"].items()}
    expected = with_temperature(prior_corrected(scores, weights), calibration["temperature"])
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    expected = len(pd.read_csv(data)) if str(data).endswith(".csv") else len(np.load(data)["y"])
    assert len(rows) == expected


@pytest.mark.parametrize(
    "case, expected",
    [
        ("rare class", r"class 'rare' has 6 rows in .*needs at least 10 of every class"),
        ("folds", r"--cv 20 needs at least 20 rows of every class outside the test part; class 'high' has 10;"),
        ("unknown class", r"names class 'nope', which the target does not have"),
        ("binary objective", r"objective 'ap' is for a binary target, but the target has 3 classes"),
        ("class objective on two classes", r"objective 'macro_f1' is for a target of three or more classes"),
        ("positive label", r"--positive-label 'mid' picks the positive of two classes"),
    ],
)
def test_bad_input_of_several_classes_is_one_line(tmp_path, case, expected):
    """Check that each bad input of a target of several classes is one line and exit 2, before any trial."""
    frame = class_table()
    options = []
    if case == "rare class":
        frame.loc[frame.index[:6], "label"] = "rare"
    elif case == "folds":
        frame.loc[frame.index[frame["label"] == "high"][12:], "label"] = "low"
        options = ["--cv", "20"]
    elif case == "unknown class":
        options = ["--objective", "f1:nope"]
    elif case == "binary objective":
        options = ["--objective", "ap"]
    elif case == "class objective on two classes":
        frame["label"] = (frame["label"] == "high").astype(int)
        options = ["--objective", "macro_f1"]
    else:
        options = ["--positive-label", "mid"]
    data = tmp_path / "t.csv"
    frame.to_csv(data, index=False)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = invoke("run", "--data", str(data), "--target", "label", "--storage", storage, "--trials", "1", *options)
    assert result.exit_code == 2, result.output
    assert re.search(expected, " ".join(result.output.split())), result.output
    assert "Traceback" not in result.output


def test_a_user_model_with_the_wrong_units_is_one_line(tmp_path):
    """Check that a user's model whose output units do not match the classes of the arrays is one line and exit 2,
    saying the shape expected."""
    x, y = class_arrays(rows=300)
    np.savez(tmp_path / "four.npz", x=x, y=y)
    model = write_class_model(tmp_path, 3)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    result = invoke(
        "run", "--data", str(tmp_path / "four.npz"), "--model", model, "--storage", storage, "--trials", "1"
    )
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "outputs shape (None, 3) per batch; expected (None, 4)" in text and "Dense(4, activation='softmax')" in text


@pytest.mark.parametrize("first_binary", [True, False])
def test_a_resumed_study_refuses_a_target_of_another_kind(tmp_path, first_binary):
    """Check that resuming a binary study on a target of three classes (or the reverse) is one line and exit 2, and
    that the study keeps every stored trial."""
    several = class_table(rows=600)
    two = several.assign(label=(several["label"] == "high").astype(int))
    first, second = (two, several) if first_binary else (several, two)
    data = tmp_path / "t.csv"
    storage = f"sqlite:///{tmp_path / 's.db'}"
    common = ["run", "--data", str(data), "--target", "label", "--storage", storage, "--epochs", "2", "--trials"]
    first.to_csv(data, index=False)
    assert invoke(*common, "2").exit_code == 0
    second.to_csv(data, index=False)
    result = invoke(*common, "3")
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert ("was swept on a binary target" if first_binary else "was swept on 3 classes") in text
    study = optuna.load_study(study_name="minority-weight", storage=storage)
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2


@pytest.mark.parametrize(
    "judged, shipped, passed",
    [
        ({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.52, "b": 0.28, "c": 0.2}, True),
        ({"a": 0.5, "b": 0.3, "c": 0.2}, {"a": 0.78, "b": 0.2, "c": 0.02}, False),  # class c nearly never decided
        ({"a": 0.98, "b": 0.01, "c": 0.01}, {"a": 0.99, "b": 0.01, "c": 0.0}, True),  # within 3 rows of 200
    ],
)
def test_class_check_compares_each_class_share(judged, shipped, passed):
    """Check that the decision check passes when every class's share of decisions stays within the tolerance of the
    judged one (or a few rows of it), and names the class that strays when it does not."""
    check = ClassCheck(judged, 200, shipped, 200, "the non-test rows")
    assert check.passed is passed
    if not passed:
        assert "class 'c'" in check.describe()


def test_bootstrap_of_several_decisions_is_paired():
    """Check that the bootstrap scores every set of decisions on the same resamples: identical decisions give zero
    difference in every resample, and the confusion matrix counts every row once."""
    rng = np.random.default_rng(0)
    y = rng.choice(3, size=300, p=[0.6, 0.3, 0.1])
    guess = np.where(rng.random(300) < 0.7, y, rng.choice(3, size=300))
    found = bootstrap_class_metrics(y, {"one": guess, "same": guess.copy(), "argmax": np.zeros(300, int)}, 3, 0, 200)
    np.testing.assert_array_equal(found["one"]["macro_f1"], found["same"]["macro_f1"])
    assert np.all(found["one"]["balanced_accuracy"] > found["argmax"]["balanced_accuracy"])
    np.testing.assert_allclose(found["argmax"]["balanced_accuracy"], 1 / 3)
    matrix = confusion_matrix(y, guess, 3)
    assert matrix.sum() == 300 and list(matrix.sum(axis=1)) == list(np.bincount(y, minlength=3))


def test_a_population_of_several_classes_trains_and_reproduces_at_export(tmp_path):
    """Check that trials of a 3-class table trained together as one population store every class's weight, and that
    export retrains the best member from its population to the value stored."""
    data = tmp_path / "three.csv"
    class_table().to_csv(data, index=False)
    storage = f"sqlite:///{tmp_path / 'p.db'}"
    common = ["--data", str(data), "--target", "label", "--storage", storage, "--study", "together"]
    ran = invoke("run", *common, "--trials", "3", "--population", "3", "--epochs", "3")
    assert ran.exit_code == 0, ran.output
    study = optuna.load_study(study_name="together", storage=storage)
    members = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(members) == 3 and {t.user_attrs["population"]["size"] for t in members} == {3}
    described = members[0].user_attrs["population"]["members"]
    assert all(len(m["class_weights"]) == 3 for m in described)
    exported = invoke("export", "together", "--out", str(tmp_path / "b"), "--storage", storage)
    assert exported.exit_code == 0, exported.output
    assert json.loads((tmp_path / "b" / "best.json").read_text())["validation"]["reproduced"]
