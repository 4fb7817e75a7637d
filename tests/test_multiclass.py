"""Tests for sweep.multiclass: class weights, decision rules on class probabilities, and the objectives they are chosen
for, checked against scikit-learn and against a brute-force search."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.utils.class_weight import compute_class_weight

from sweep.errors import ConfigError
from sweep.multiclass import (
    DecisionRule,
    _best_offset,
    balanced_weights,
    choose_rule,
    class_counts,
    effective_number_weights,
    parse_class_goal,
    per_class_metrics,
    power_weights,
    prior_corrected,
)

NAMES = ["common", "rare", "rarest"]


def imbalanced_probabilities(rows: int = 3000, seed: int = 0):
    """Three classes at 80/15/5 %, and posterior probabilities that carry those priors, as a model trained on the
    imbalanced rows gives: argmax of them rarely predicts the rare classes, which a decision rule must correct."""
    rng = np.random.default_rng(seed)
    priors = np.array([0.80, 0.15, 0.05])
    y = rng.choice(3, size=rows, p=priors)
    logits = rng.normal(0, 1.0, size=(rows, 3))
    logits[np.arange(rows), y] += 1.6
    logits += np.log(priors)
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, probabilities, priors


@pytest.mark.parametrize(
    "weights, expected",
    [
        (lambda c: power_weights(c, 0.0), [1.0, 1.0, 1.0]),
        (lambda c: power_weights(c, 1.0), [1.0, 4.0, 10.0]),
        (lambda c: power_weights(c, 0.5), [1.0, 2.0, np.sqrt(10.0)]),
        (lambda c: effective_number_weights(c, 0.0), [1.0, 1.0, 1.0]),
        # Effective numbers (1 - 0.99 ** n) / 0.01 of 100, 25 and 10 rows: 63.40, 22.22 and 9.56.
        (lambda c: effective_number_weights(c, 0.99), [1.0, 2.85341, 6.63022]),
        (lambda c: effective_number_weights(c, 1 - 1e-9), [1.0, 4.0, 10.0]),
    ],
)
def test_class_weights_follow_their_formulas(weights, expected):
    """Check that the power and effective-number weights give the largest class 1 and reach inverse frequency at their
    extreme."""
    found = weights(np.array([100, 25, 10]))
    assert list(found) == [0, 1, 2]
    assert np.allclose(list(found.values()), expected, rtol=1e-5)


def test_balanced_weights_are_scikit_learns():
    """Check that balanced_weights equals compute_class_weight('balanced') on the same labels."""
    y = np.repeat([0, 1, 2], [100, 25, 10])
    assert np.allclose(
        list(balanced_weights(class_counts(y, 3)).values()),
        compute_class_weight("balanced", classes=np.arange(3), y=y),
    )


def test_prior_correction_undoes_weights_and_rows_sum_to_one():
    """Check that dividing by the weights and renormalising gives rows summing to 1, and that probabilities a model
    tilted by the weights come back to the untilted ones."""
    rng = np.random.default_rng(1)
    true = rng.dirichlet(np.ones(3), size=50)
    weights = {0: 1.0, 1: 4.0, 2: 10.0}
    tilted = true * np.array([1.0, 4.0, 10.0])
    tilted /= tilted.sum(axis=1, keepdims=True)
    corrected = prior_corrected(tilted, weights)
    assert np.allclose(corrected.sum(axis=1), 1.0) and np.allclose(corrected, true)


@pytest.mark.parametrize(
    "spec, reference",
    [
        ("macro_f1", lambda y, p: f1_score(y, p, average="macro")),
        ("balanced_accuracy", balanced_accuracy_score),
        ("f1:rare", lambda y, p: f1_score(y, p, labels=[1], average=None)[0]),
        ("f1:rarest", lambda y, p: f1_score(y, p, labels=[2], average=None)[0]),
    ],
)
def test_objectives_agree_with_scikit_learn(spec, reference):
    """Check that each objective's value equals scikit-learn's metric on the same predictions."""
    y, probabilities, _ = imbalanced_probabilities()
    predicted = probabilities.argmax(axis=1)
    assert parse_class_goal(spec, NAMES).value(y, predicted, 3) == pytest.approx(reference(y, predicted))


def test_constraints_score_below_zero_by_their_shortfall():
    """Check that recall at a minimum precision and a floor on every class's recall score how far they fall short
    when unmet, and the metric itself when met."""
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 1, 2, 0])  # rare: precision 2/3, recall 1; rarest: recall 1/2
    assert parse_class_goal("recall_at_precision:0.5:rare", NAMES).value(y, predicted, 3) == pytest.approx(1.0)
    assert parse_class_goal("recall_at_precision:0.9:rare", NAMES).value(y, predicted, 3) == pytest.approx(-0.9 + 2 / 3)
    assert parse_class_goal("balanced_accuracy,min_recall=0.4", NAMES).value(y, predicted, 3) == pytest.approx(
        (0.75 + 1 + 0.5) / 3
    )
    assert parse_class_goal("balanced_accuracy,min_recall=0.6", NAMES).value(y, predicted, 3) == pytest.approx(-0.1)


@pytest.mark.parametrize(
    "spec, says",
    [
        ("f1:fraud", "names class 'fraud', which the target does not have (its classes: 'common', 'rare', 'rarest')"),
        ("top_k", "unknown objective 'top_k'"),
        ("macro_f1,min_recall=1.5", "min_recall must be between 0 and 1, got 1.5"),
        ("macro_f1,floor=0.2", "unknown option 'floor=0.2'"),
        ("recall_at_precision:high:rare", "minimum precision 'high' is not a number"),
    ],
)
def test_bad_objectives_get_one_line(spec, says):
    """Check that a bad multi-class objective is one line naming what was received and what is expected."""
    with pytest.raises(ConfigError) as error:
        parse_class_goal(spec, NAMES)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_rule_record_round_trips_and_zero_offsets_are_argmax():
    """Check that a rule read back from its record decides the same, and plain argmax is np.argmax."""
    _, probabilities, priors = imbalanced_probabilities(200)
    rule = DecisionRule.logit_adjusted(priors, 1.0)
    again = DecisionRule.from_record(rule.record())
    assert again.kind == "logit_adjusted" and again.tau == 1.0
    assert np.array_equal(again.decide(probabilities), rule.decide(probabilities))
    plain = DecisionRule.logit_adjusted(priors, 0.0)
    assert plain.kind == "argmax" and np.array_equal(plain.decide(probabilities), probabilities.argmax(axis=1))


@pytest.mark.parametrize("spec", ["macro_f1", "balanced_accuracy", "f1:rarest"])
def test_best_offset_is_exact(spec):
    """Check that one class's offset found from the sorted cuts scores as its decisions do, and no offset on a fine
    grid does better."""
    y, probabilities, priors = imbalanced_probabilities(600, seed=2)
    goal = parse_class_goal(spec, NAMES)
    logp = np.log(probabilities)
    offsets = np.array(DecisionRule.logit_adjusted(priors, 0.5).offsets)
    offset, value = _best_offset(goal, y, logp, offsets, 2)
    tried = offsets.copy()
    tried[2] = offset
    assert goal.value(y, DecisionRule(tuple(tried)).decide(probabilities), 3) == pytest.approx(value)
    grid = []
    for candidate in np.linspace(-6, 6, 2001):
        tried[2] = candidate
        grid.append(goal.value(y, DecisionRule(tuple(tried)).decide(probabilities), 3))
    assert max(grid) <= value + 1e-12


def test_chosen_rules_beat_argmax_and_free_offsets_never_lose():
    """Check that on probabilities that carry the priors, the chosen logit adjustment lifts macro-F1 over argmax, free
    offsets score at least as well on the rows they were chosen on, and each value is what the rule decides."""
    y, probabilities, priors = imbalanced_probabilities()
    goal = parse_class_goal("macro_f1", NAMES)
    argmax_value = goal.value(y, probabilities.argmax(axis=1), 3)
    adjusted, adjusted_value = choose_rule(goal, y, probabilities, priors)
    free, free_value = choose_rule(goal, y, probabilities, priors, free=True)
    assert adjusted.kind == "logit_adjusted" and adjusted_value > argmax_value + 0.02
    assert free.kind == "offsets" and free_value >= adjusted_value
    for rule, value in ((adjusted, adjusted_value), (free, free_value)):
        assert goal.value(y, rule.decide(probabilities), 3) == pytest.approx(value)


def test_tied_adjustments_choose_the_one_nearest_tau_1():
    """Check that when every logit adjustment scores the same on the rows it is chosen on (probabilities that
    separate the classes perfectly), the rule chosen is tau = 1, not plain argmax."""
    y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2])
    probabilities = np.eye(3)[y] * 0.98 + 0.01
    rule, value = choose_rule(parse_class_goal("macro_f1", NAMES), y, probabilities, np.array([0.7, 0.2, 0.1]))
    assert value == pytest.approx(1.0) and rule.kind == "logit_adjusted" and rule.tau == 1.0


def test_per_class_metrics_name_each_class():
    """Check each class's recall, precision and flag rate, by name."""
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 1, 1, 2, 0])
    found = per_class_metrics(y, predicted, NAMES)
    assert found["rare"] == {"recall": 1.0, "precision": pytest.approx(2 / 3), "flag_rate": 3 / 8}
    assert found["rarest"] == {"recall": 0.5, "precision": 1.0, "flag_rate": 1 / 8}


@pytest.mark.parametrize("sharpen", [3.0, 0.4])
def test_fitted_temperature_undoes_a_known_distortion(sharpen):
    """Check that the temperature fitted on probabilities distorted by a known power (over- or under-confident) comes
    back near that power, lowers their log loss and keeps each row's order and sum."""
    from sweep.multiclass import fit_temperature, with_temperature

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 4)) * 1.5
    honest = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.array([rng.choice(4, p=row) for row in honest])
    distorted = with_temperature(honest, 1 / sharpen)
    temperature = fit_temperature(distorted, y)
    assert temperature == pytest.approx(sharpen, rel=0.15)
    mended = with_temperature(distorted, temperature)

    def log_loss(p):
        return -np.mean(np.log(p[np.arange(len(y)), y]))

    assert log_loss(mended) < log_loss(distorted)
    np.testing.assert_allclose(mended.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.argsort(mended, axis=1), np.argsort(distorted, axis=1))
