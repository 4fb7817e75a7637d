"""Tests for sweep.runner: study creation, resume semantics of --trials and compatibility checks."""

import optuna
import pytest
from optuna.trial import TrialState

from sweep.errors import StorageError
from sweep.runner import make_pruner, run_sweep
from sweep.space import PARAM_NAMES
from tests.conftest import make_table


def test_trials_is_a_total_and_a_rerun_resumes(tiny_config):
    """Check that --trials N leaves N finished trials in total: a rerun adds the missing ones, or none."""
    first = run_sweep(tiny_config(trials=2))
    assert (first.finished, first.ran_now) == (2, 2)
    second = run_sweep(tiny_config(trials=4))
    assert (second.finished, second.ran_now) == (4, 2)
    third = run_sweep(tiny_config(trials=3))
    assert (third.finished, third.ran_now) == (4, 0)
    study = optuna.load_study(study_name="tiny", storage=tiny_config().storage)
    params = [tuple(t.params[name] for name in PARAM_NAMES) for t in study.trials]
    assert len(set(params)) == 4, "a resumed run must not replay the first run's draws"


def test_study_bookkeeping(tiny_config):
    """Check that the study stores its resolved config, data fingerprint, split sizes, class counts and metric name."""
    config = tiny_config(trials=1, objective="fbeta:2")
    result = run_sweep(config)
    study = optuna.load_study(study_name="tiny", storage=config.storage)
    attrs = study.user_attrs
    assert attrs["config"]["objective"] == "fbeta:2" and attrs["config"]["hidden_width"] == [1, 8]
    assert len(attrs["data"]["fingerprint"]) == 16
    splits = attrs["data"]["splits"]
    assert sum(part["rows"] for part in splits.values()) == 3000
    assert all(part["positives"] + part["negatives"] == part["rows"] for part in splits.values())
    assert study.metric_names == ["val_f2"] == [result.metric_name]
    assert result.best is not None and result.best.state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "key, match",
    [
        ("objective", r"optimises objective 'f1', not 'ap'"),
        ("data", r"created on other data"),
        ("seed", r"split with seed = 0, not 3"),
        ("validation_fraction", r"split with validation_fraction = 0.2, not 0.3"),
    ],
)
def test_resume_refuses_an_incompatible_study(tiny_config, tmp_path, key, match):
    """Check that resuming with another objective, other data or another split is an error that leaves the study untouched."""
    run_sweep(tiny_config(trials=1))
    other_table = tmp_path / "other.csv"
    make_table(seed=5).to_csv(other_table, index=False)
    change = {"objective": "ap", "data": str(other_table), "seed": 3, "validation_fraction": 0.3}[key]
    with pytest.raises(StorageError, match=match):
        run_sweep(tiny_config(trials=3, **{key: change}))
    assert len(optuna.load_study(study_name="tiny", storage=tiny_config().storage).trials) == 1


def test_pruned_trials_count_towards_the_budget(tiny_config):
    """Check that a strict pruner prunes trials after its start-up trials and that pruned trials count in --trials."""
    result = run_sweep(tiny_config(trials=8, epochs=5, pruner="percentile:99"))
    study = optuna.load_study(study_name="tiny", storage=tiny_config().storage)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert result.finished == 8 and len(pruned) >= 1
    assert all(t.user_attrs["pruned_at_epoch"] < 5 for t in pruned)


@pytest.mark.parametrize(
    "spec, kind",
    [("none", "NopPruner"), ("median", "MedianPruner"), ("hyperband", "HyperbandPruner"),
     ("successive_halving", "SuccessiveHalvingPruner"), ("percentile:25", "PercentilePruner")],
)
def test_pruner_specs(spec, kind):
    """Check that each --pruner spec builds the matching Optuna pruner."""
    assert type(make_pruner(spec, epochs=50)).__name__ == kind


def test_timeout_stops_early(tiny_config):
    """Check that --timeout stops a sweep before its trial budget."""
    result = run_sweep(tiny_config(trials=500, timeout=3))
    assert 1 <= result.finished < 500


def test_postgres_sweep(tiny_config, postgres_url, unique_name):
    """Check that the same sweep runs against a real Postgres storage and resumes there."""
    try:
        assert run_sweep(tiny_config(storage=postgres_url, study=unique_name, trials=2)).finished == 2
        assert run_sweep(tiny_config(storage=postgres_url, study=unique_name, trials=3)).ran_now == 1
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)
