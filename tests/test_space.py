"""Tests for sweep.space: parameter names, ranges and scales in a real Optuna study."""

import optuna
import pytest

from sweep.config import resolve_config
from sweep.space import PARAM_NAMES, TrialParams, suggest, suggest_width


@pytest.mark.parametrize("weights, widths, thresholds", [("1:1000", "1:64", "0.01:0.99"), ("5:5", "3:7", "0.4:0.6")])
def test_suggest_stays_in_range_with_log_scales(weights, widths, thresholds):
    """Check that every trial gets minority_weight (log), hidden_width (log int) and threshold within the ranges."""
    config = resolve_config({"minority_weight": weights, "hidden_width": widths, "threshold": thresholds}, env={})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        trial = study.ask()
        params = suggest(trial, config, suggest_width)
        assert config.minority_weight[0] <= params.minority_weight <= config.minority_weight[1]
        assert config.hidden_width[0] <= params.hidden_width <= config.hidden_width[1]
        assert config.threshold[0] <= params.threshold <= config.threshold[1]
        study.tell(trial, 0.0)
    distributions = study.trials[0].distributions
    assert tuple(distributions) == PARAM_NAMES
    assert distributions["minority_weight"].log and distributions["hidden_width"].log
    assert not distributions["threshold"].log


def test_class_weight_is_what_keras_expects():
    """Check that class_weight maps 0 to 1.0 and 1 to the minority weight."""
    params = TrialParams.from_dict({"minority_weight": 37.5, "hidden_width": 4, "threshold": 0.3})
    assert params.class_weight == {0: 1.0, 1: 37.5}


@pytest.mark.parametrize("rate, searched", [("0.0003:0.03", True), ("0.002", False)])
def test_learning_rate_is_searched_only_when_given_a_range(rate, searched):
    """Check that a learning-rate range adds a log-scale learning_rate parameter within it, and a number adds none."""
    config = resolve_config({"learning_rate": rate}, env={})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    params = suggest(trial, config, suggest_width)
    if searched:
        assert 0.0003 <= params.learning_rate <= 0.03 and trial.distributions["learning_rate"].log
    else:
        assert params.learning_rate is None and "learning_rate" not in trial.distributions
        assert config.learning_rate == 0.002
    assert TrialParams.from_dict(trial.params) == params
