"""Tests for sweep.trial: one trial's value and user attributes, and failures with reasons."""

import optuna
import pytest
from optuna.trial import TrialState

from sweep.data import load_dataset
from sweep.errors import TrialFailed
from sweep.metrics import parse_goal
from sweep.storage import open_storage
from sweep.trial import trial_function

VALIDATION_ATTRS = ("precision", "recall", "f1", "average_precision", "roc_auc", "flag_rate", "tp", "fp", "tn", "fn")


@pytest.mark.parametrize("spec", ["f1", "cost:miss=20,false_alarm=1", "ap"])
def test_trial_records_metrics_and_returns_the_objective(tiny_config, spec):
    """Check that a trial stores validation metrics, timing, epochs and device, and returns the objective's value."""
    config = tiny_config(objective=spec)
    dataset = load_dataset(config)
    goal = parse_goal(spec)
    study = optuna.create_study(storage=open_storage(config.storage), direction=goal.direction)
    study.optimize(trial_function(config, dataset, goal), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    for key in VALIDATION_ATTRS:
        assert f"val_{key}" in attrs
    assert attrs["val_tp"] + attrs["val_fp"] + attrs["val_tn"] + attrs["val_fn"] == len(dataset.validation.y)
    assert attrs["epochs_run"] == 2 and attrs["train_seconds"] > 0 and attrs["device"] == "cpu"
    assert attrs["class_weight"] == {"0": 1.0, "1": trial.params["minority_weight"]}
    metrics = {key: attrs[f"val_{key}"] for key in VALIDATION_ATTRS}
    assert trial.value == pytest.approx(goal.value(metrics))


def test_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(tiny_config):
    """Check that a trial whose loss overflows ends FAIL with fail_reason while the next trial completes."""
    config = tiny_config(minority_weight="1:1e38", learning_rate=1.0)
    dataset = load_dataset(config)
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize")
    study.enqueue_trial({"minority_weight": 1e38, "hidden_width": 2, "threshold": 0.5})
    study.enqueue_trial({"minority_weight": 3.0, "hidden_width": 2, "threshold": 0.5})
    study.optimize(trial_function(config, dataset, parse_goal("f1")), n_trials=2, catch=(TrialFailed,))
    failed, finished = study.trials
    assert failed.state == TrialState.FAIL
    assert "loss became" in failed.user_attrs["fail_reason"]
    assert finished.state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "pruner, state, epochs_reported",
    [
        (optuna.pruners.NopPruner(), TrialState.COMPLETE, [1, 2, 3]),
        # A real pruner told that no value is good enough: it stops the trial after its first report.
        (optuna.pruners.ThresholdPruner(lower=2.0), TrialState.PRUNED, [1]),
    ],
)
def test_epochs_are_reported_and_pruning_is_recorded(tiny_config, pruner, state, epochs_reported):
    """Check that every epoch's validation objective is reported, and a pruned trial ends PRUNED at its epoch."""
    config = tiny_config(epochs=3)
    dataset = load_dataset(config)
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize", pruner=pruner)
    study.optimize(trial_function(config, dataset, parse_goal("f1")), n_trials=1)
    trial = study.trials[0]
    assert trial.state == state
    assert sorted(trial.intermediate_values) == epochs_reported
    if state == TrialState.PRUNED:
        assert trial.user_attrs["pruned_at_epoch"] == 1 and trial.user_attrs["epochs_run"] == 1
    else:
        assert trial.intermediate_values[3] == pytest.approx(trial.value)
    assert set(trial.user_attrs["threads"]) == {"intra_op", "inter_op"}
