"""Tests for sweep.metrics: objective syntax and metrics that agree with scikit-learn."""

import re

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    f1_score,
    fbeta_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from sweep.errors import ConfigError
from sweep.metrics import Goal, metrics, metrics_at_thresholds, parse_goal, ranking_metrics, threshold_metrics


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.9, 0.999])
def test_metrics_agree_with_sklearn(threshold):
    """Check that precision, recall, F1, AP, confusion counts and flag rate match scikit-learn's."""
    rng = np.random.default_rng(1)
    y = (rng.random(2000) < 0.05).astype(int)
    scores = np.clip(rng.random(2000) * 0.7 + 0.3 * y, 0, 1)
    flagged = (scores >= threshold).astype(int)
    found = metrics(y, scores, threshold)
    assert found["precision"] == pytest.approx(precision_score(y, flagged, zero_division=0))
    assert found["recall"] == pytest.approx(recall_score(y, flagged, zero_division=0))
    assert found["f1"] == pytest.approx(f1_score(y, flagged, zero_division=0))
    assert found["average_precision"] == pytest.approx(average_precision_score(y, scores))
    tn, fp, fn, tp = confusion_matrix(y, flagged, labels=[0, 1]).ravel()
    assert (found["tn"], found["fp"], found["fn"], found["tp"]) == (tn, fp, fn, tp)
    assert found["flag_rate"] == pytest.approx(flagged.mean())


@pytest.mark.parametrize("dtype, levels", [(np.float64, None), (np.float32, None), (np.float32, 9), (np.float64, 2)])
def test_metrics_at_thresholds_equal_threshold_metrics_at_each(dtype, levels):
    """Check that the sort-once metrics at many thresholds are exactly threshold_metrics at each one, with ties, cuts
    on a score, below every score and above every score, for float32 and float64 scores."""
    rng = np.random.default_rng(3)
    y = (rng.random(1500) < 0.06).astype(int)
    scores = np.clip(rng.random(1500) * 0.7 + 0.3 * y, 0, 1)
    scores = (np.round(scores * levels) / levels if levels else scores).astype(dtype)
    cuts = np.concatenate([[-1.0, 0.0, 2.0], np.unique(scores.astype(np.float64))[::7], np.linspace(0, 1, 101)])
    assert metrics_at_thresholds(y, scores, cuts) == [threshold_metrics(y, scores, cut) for cut in cuts]


@pytest.mark.parametrize(
    "rows, share, levels",
    [(2000, 0.05, None), (2000, 0.05, 7), (500, 0.3, 3), (40, 0.1, 2), (3, 0.34, None)],
    ids=["continuous", "many ties", "few levels", "small", "three rows"],
)
def test_ranking_metrics_agree_with_sklearn(rows, share, levels):
    """Check that the one-sort average precision and ROC AUC equal scikit-learn's, with tied scores too, and are
    NaN when one class is missing."""
    rng = np.random.default_rng(rows)
    y = (rng.random(rows) < share).astype(int)
    y[0], y[-1] = 1, 0
    scores = rng.random(rows) * 0.7 + 0.3 * y
    if levels:
        scores = np.round(scores * levels) / levels
    found = ranking_metrics(y, scores)
    assert found["average_precision"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert found["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert all(np.isnan(value) for value in ranking_metrics(np.zeros(rows, int), scores).values())


@pytest.mark.parametrize(
    "spec, kind, direction, name",
    [
        ("f1", "f1", "maximize", "val_f1"),
        ("F1", "f1", "maximize", "val_f1"),
        ("fbeta:2", "fbeta", "maximize", "val_f2"),
        ("ap", "ap", "maximize", "val_average_precision"),
        ("average_precision", "ap", "maximize", "val_average_precision"),
        ("recall_at_precision:0.2", "recall_at_precision", "maximize", "val_recall_at_precision_0.2"),
        ("cost:miss=50,false_alarm=1", "cost", "minimize", "val_cost_per_row(miss=50,false_alarm=1)"),
        ("pareto", "pareto", "maximize", "pareto(precision,recall)"),
    ],
)
def test_parse_goal(spec, kind, direction, name):
    """Check that each documented objective spec parses to its kind, direction and dashboard metric name."""
    goal = parse_goal(spec)
    assert (goal.kind, goal.direction, goal.name) == (kind, direction, name)


@pytest.mark.parametrize(
    "spec, match",
    [
        ("accuracy", "unknown objective"),
        ("fbeta", "beta '' is not a number"),
        ("fbeta:-1", "beta must be a positive number"),
        ("recall_at_precision:1.5", "below 1"),
        ("cost:miss=5", "both miss= and false_alarm="),
        ("cost:miss=5,alarm=1", "unknown cost 'alarm'"),
        ("macro_f1:3", "unknown objective"),
        ("f1:3,min_recall=2", "min_recall must be between 0 and 1"),
        ("pareto:recall", "two or more different metrics"),
        ("pareto:recall,speed", "two or more different metrics"),
    ],
)
def test_bad_objectives(spec, match):
    """Check that a malformed objective is a ConfigError that quotes it and shows the syntax."""
    with pytest.raises(ConfigError, match=match) as raised:
        parse_goal(spec)
    assert re.search(r"expected (f1 \| fbeta:BETA|macro_f1 \| balanced_accuracy)", str(raised.value))


def test_objective_values():
    """Check that fbeta, cost and recall-at-precision price misses and false alarms as documented."""
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.1).astype(int)
    scores = rng.random(500) * 0.6 + 0.4 * y
    found = metrics(y, scores, 0.5)
    flagged = (scores >= 0.5).astype(int)
    assert parse_goal("fbeta:2").value(found) == pytest.approx(fbeta_score(y, flagged, beta=2))
    cost = parse_goal("cost:miss=10,false_alarm=1").value(found)
    assert cost == pytest.approx((10 * found["fn"] + found["fp"]) / 500)
    strict = Goal("recall_at_precision", min_precision=found["precision"] + 0.1)
    loose = Goal("recall_at_precision", min_precision=max(found["precision"] - 0.1, 0.01))
    assert strict.value(found) == pytest.approx(-0.1)
    assert loose.value(found) == pytest.approx(found["recall"])


def test_flagging_everything_is_not_a_win():
    """Check that a model that flags every row gets recall 1 but a flag rate of 1 and a poor F1 and cost."""
    y = np.array([1] * 10 + [0] * 990)
    found = metrics(y, np.ones(1000), 0.5)
    assert found["recall"] == 1.0 and found["flag_rate"] == 1.0
    assert found["f1"] < 0.02
    assert parse_goal("cost:miss=10,false_alarm=1").value(found) > parse_goal("cost:miss=10,false_alarm=1").value(
        metrics(y, np.zeros(1000), 0.5)
    )


@pytest.mark.parametrize(
    "spec, names, directions",
    [
        ("pareto", ["val_precision", "val_recall"], ["maximize", "maximize"]),
        ("pareto:recall,flag_rate", ["val_recall", "val_flag_rate"], ["maximize", "minimize"]),
    ],
)
def test_pareto_objectives(spec, names, directions):
    """Check that a pareto objective names one metric per objective, minimises the flag rate and returns a tuple."""
    goal = parse_goal(spec)
    assert goal.is_multi and goal.names == names and goal.directions == directions
    found = {"precision": 0.3, "recall": 0.6, "flag_rate": 0.02, "f1": 0.4}
    assert goal.value(found) == tuple(found[n.removeprefix("val_")] for n in names)


@pytest.mark.parametrize(
    "spec, allowed, not_allowed, better, worse",
    [
        (None, {}, None, {"f1": 0.5}, {"f1": 0.4}),
        ("recall:precision>=0.2", {"precision": 0.2}, {"precision": 0.19}, {"recall": 0.9}, {"recall": 0.8}),
        ("recall:flag_rate<=0.01", {"flag_rate": 0.01}, {"flag_rate": 0.02}, {"recall": 0.9}, {"recall": 0.1}),
        ("flag_rate", {}, None, {"flag_rate": 0.01}, {"flag_rate": 0.5}),
    ],
)
def test_pick_rules(spec, allowed, not_allowed, better, worse):
    """Check that a --pick rule admits trials by its bound and ranks them by its metric (flag rate: lower is better)."""
    from sweep.metrics import parse_pick

    rule = parse_pick(spec)
    assert rule.allows(allowed)
    if not_allowed is not None:
        assert not rule.allows(not_allowed)
    assert rule.key(better) > rule.key(worse)


@pytest.mark.parametrize("spec", ["speed", "recall:precision>0.2", "recall:precision>=high", "recall:speed<=1"])
def test_bad_pick_rules(spec):
    """Check that a malformed --pick rule is a ConfigError showing the syntax."""
    from sweep.metrics import parse_pick

    with pytest.raises(ConfigError, match="expected METRIC"):
        parse_pick(spec)


def _scored(rows: int, positives: int, seed: int = 0, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = np.zeros(rows, dtype=int)
    y[rng.choice(rows, positives, replace=False)] = 1
    scores = rng.random(rows) * 0.6 + y * 0.3
    return y, (np.round(scores, 1) if ties else scores)


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_metrics_with_unit_weights_equal_sklearn(ties):
    """Check that the bootstrap's vectorised metrics, with every row counted once, equal sklearn's (ties included)."""
    from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

    from sweep.metrics import _weighted_metrics

    y, scores = _scored(3000, 60, ties=ties)
    found = _weighted_metrics(y.astype(float), scores, 0.5, np.ones((1, len(y))))
    flagged = scores >= 0.5
    assert found["average_precision"][0] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert found["f1"][0] == pytest.approx(f1_score(y, flagged))
    assert found["precision"][0] == pytest.approx(precision_score(y, flagged))
    assert found["recall"][0] == pytest.approx(recall_score(y, flagged))
    assert found["flag_rate"][0] == pytest.approx(flagged.mean())


def test_bootstrap_is_stratified_seeded_and_brackets_the_point():
    """Check that every resample keeps the class counts, the same seed gives the same intervals, and each interval
    holds the metric's value on the rows themselves."""
    from sweep.metrics import _stratified_counts, bootstrap_intervals, metrics

    y, scores = _scored(2000, 80)
    counts = _stratified_counts(y, 200, seed=1)
    assert np.all(counts[:, y == 1].sum(axis=1) == 80) and np.all(counts.sum(axis=1) == 2000)
    # Drawn with replacement: a row's multiplicity is Binomial(n, 1/n) within its class, mean 1, variance 1 - 1/n.
    positives = counts[:, y == 1]
    assert positives.mean() == pytest.approx(1.0) and positives.var() == pytest.approx(1 - 1 / 80, rel=0.05)
    assert not np.array_equal(counts[0], counts[1])
    intervals = bootstrap_intervals(y, scores, 0.5, seed=3)
    assert intervals == bootstrap_intervals(y, scores, 0.5, seed=3)
    point = metrics(y, scores, 0.5)
    for name, (low, high) in intervals.items():
        assert low <= point[name] <= high and low < high, name


def test_fewer_positives_give_wider_intervals():
    """Check that the F1 interval on 10 positives is wider than on 200 (what the interval is for)."""
    from sweep.metrics import bootstrap_intervals

    def width(positives):
        y, scores = _scored(20 * positives, positives)
        low, high = bootstrap_intervals(y, scores, 0.5)["f1"]
        return high - low

    assert width(10) > 2 * width(200)


@pytest.mark.parametrize("shift, sign", [(0.0, 0), (0.3, 1), (-0.3, -1)])
def test_paired_difference(shift, sign):
    """Check that the paired F1 difference is zero for the same model, and clearly signed for a better or worse one."""
    from sweep.metrics import paired_f1_difference

    y, scores = _scored(4000, 100)
    other = np.clip(scores + shift * (y - 0.5), 0, 1) if shift else scores
    found = paired_f1_difference(y, other, 0.5, scores, 0.5)
    if sign == 0:
        assert found == {"difference": 0.0, "low": 0.0, "high": 0.0}
    else:
        assert np.sign(found["difference"]) == sign and np.sign(found["low"]) == np.sign(found["high"]) == sign


@pytest.mark.parametrize("spec", ["f1", "fbeta:2", "cost:miss=5,false_alarm=1"])
@pytest.mark.parametrize("n_folds", [1, 5])
def test_fold_mean_threshold_is_the_best_mean_of_the_folds_values(spec, n_folds):
    """Check that fold_mean_threshold returns the candidate cut whose objective averaged over the folds' own rows is
    best, by a brute force over sklearn's confusion matrix per fold, and that one fold is choose_threshold."""
    from sklearn.metrics import confusion_matrix

    from sweep.metrics import candidate_cuts, choose_threshold, fold_mean_threshold

    rng = np.random.default_rng(3)
    y = (rng.uniform(size=600) < 0.15).astype(int)
    scores = np.clip(0.3 * y + rng.normal(0.35, 0.2, size=600), 0.001, 0.999)
    folds = np.array_split(rng.permutation(600), n_folds)
    goal, bounds = parse_goal(spec), (0.01, 0.99)

    def value(rows, cut):
        tn, fp, fn, tp = confusion_matrix(y[rows], scores[rows] >= cut, labels=[0, 1]).ravel()
        precision, recall = (tp / (tp + fp) if tp + fp else 0.0), tp / (tp + fn)
        found = {"precision": precision, "recall": recall, "tp": tp, "fp": fp, "tn": tn, "fn": fn}
        return goal.value(found | {"f1": 2 * tp / (2 * tp + fp + fn)})

    cuts = candidate_cuts(scores, bounds)
    means = np.array([np.mean([value(rows, cut) for rows in folds]) for cut in cuts])
    best = int(np.argmin(means) if goal.direction == "minimize" else np.argmax(means))
    threshold, mean = fold_mean_threshold(goal, y, scores, folds, bounds)
    assert threshold == cuts[best] and mean == pytest.approx(means[best])
    if n_folds == 1:
        assert (threshold, mean) == pytest.approx(choose_threshold(goal, y, scores, bounds))
