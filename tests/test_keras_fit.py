"""Tests for sweep.models.keras_fit and the user-model trial: real Keras fit of the example models on tiny data, the
params stored on every trial, pooled out-of-fold values, the pruner and a stop request in the middle of fit."""

import threading

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweep import stopping
from sweep.data import load_dataset
from sweep.metrics import metrics
from sweep.study.runner import prepare_study, run_sweep
from sweep.study.trial import trial_function
from tests.conftest import user_model_values


@pytest.mark.parametrize(
    "name, searched, fixed",
    [
        ("digits", {"minority_weight", "filters", "threshold"}, {"dropout": 0.1}),
        ("sequences", {"minority_weight", "filters", "activation", "threshold"}, {}),
        ("tabular", {"minority_weight", "dropout", "threshold"}, {"units": 4, "depth": 2}),
    ],
)
def test_every_trial_stores_its_params_device_and_builder(user_studies, name, searched, fixed):
    """Check that each trial of a user model has sweep's and the space's params as Optuna params, the fixed values
    and the builder in its attributes, no hidden_width it did not search, and its device."""
    config, _ = user_studies[name]
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == config.trials
    for trial in trials:
        assert set(trial.params) == searched
        assert trial.user_attrs["model"] == config.model and trial.user_attrs["device"] == "cpu"
        assert (
            trial.user_attrs["model_params"]
            == {k: v for k, v in trial.params.items() if k not in ("minority_weight", "threshold")} | fixed
        )
        assert trial.user_attrs["compiled_by"] == "sweep" and trial.user_attrs["epochs_run"] == config.epochs


def test_cross_validated_user_model_is_judged_on_pooled_out_of_fold_scores(user_studies):
    """Check that a --cv 3 user-model trial's value is the objective of its three fold models' pooled out-of-fold
    scores: retrained, the pooled scores give the stored value and every non-test row is scored once."""
    from sweep.models import model_kind

    config, _ = user_studies["sequences"]
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    dataset = load_dataset(config)
    assert dataset.validation.kind == "cv" and len(dataset.validation.folds) == 3
    slots = np.sort(np.concatenate([fold.slots for fold in dataset.validation.folds]))
    assert np.array_equal(slots, np.arange(len(dataset.development.y)))
    best = study.best_trial
    assert len(best.user_attrs["cv_folds"]["f1"]) == 3
    pooled = model_kind(config).retrain(dataset, [best])[best.number].pooled
    assert pooled.shape == (len(dataset.development.y),)
    assert metrics(dataset.validation.y, pooled, best.params["threshold"])["f1"] == pytest.approx(best.value, abs=1e-9)


def test_resumed_user_study_keeps_its_trials_and_refuses_another_space(user_studies, tmp_path):
    """Check that resuming a user-model study adds trials to it, and a resume with another space is one line naming
    the space, with no stored trial lost."""
    from sweep.errors import StorageError

    config, _ = user_studies["digits"]
    import dataclasses
    import sqlite3

    copy = tmp_path / "copy.db"  # SQLite's backup: the shared study's file is in WAL mode, so a file copy misses rows
    with sqlite3.connect(config.storage.removeprefix("sqlite:///")) as source, sqlite3.connect(copy) as target:
        source.backup(target)
    more = dataclasses.replace(config, storage=f"sqlite:///{copy}", trials=config.trials + 1)
    result = run_sweep(more)
    assert result.finished == config.trials + 1 and result.ran_now == 1
    other = user_model_values(
        config.data, more.storage, "digits_cnn", {"filters": "2:8", "dropout": "0.1"}, study="digits", trials=9
    )
    with pytest.raises(StorageError, match=r"was swept with space = .*'filters': '2:4'.*not .*'filters': '2:8'"):
        run_sweep(other)
    assert len(optuna.load_study(study_name="digits", storage=more.storage).trials) == config.trials + 1


class PruneFromStep(optuna.pruners.BasePruner):
    """Prunes every trial once it has reported `step` steps (a pruner whose verdict is known in advance)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def prune(self, study, trial) -> bool:
        return trial.last_step is not None and trial.last_step >= self.step


def _one_trial(config, pruner=None):
    dataset = load_dataset(config)
    study = prepare_study(config, dataset)
    if pruner is not None:
        study.pruner = pruner
    return study, trial_function(config, dataset, config.goal)


@pytest.mark.parametrize("cv, step", [(0, 2), (2, 5)])
def test_pruner_stops_a_user_model_in_the_middle_of_fit(example_files, sqlite_url, cv, step):
    """Check that the pruner's verdict after an epoch (given on the report thread) ends fit by the next epoch: the
    trial is PRUNED at that step (fold by fold when cross-validated: step = fold * epochs + epoch), with its per-epoch
    values reported before and none after."""
    config = user_model_values(example_files["digits.npz"], sqlite_url, "digits_cnn", {"filters": "2"}, epochs=4, cv=cv)
    study, objective = _one_trial(config, PruneFromStep(step))
    study.optimize(objective, n_trials=1, catch=())
    trial = study.trials[0]
    assert trial.state == TrialState.PRUNED
    assert sorted(trial.intermediate_values) == list(range(1, step + 1))
    assert trial.user_attrs["pruned_at_epoch"] == step


def test_stop_request_ends_fit_at_the_next_batch_and_fails_the_trial(example_files, sqlite_url):
    """Check that a stop request (SIGTERM's flag) in the middle of a long fit ends it before its epochs are done and
    leaves the trial FAIL with the reason, never RUNNING."""
    config = user_model_values(
        example_files["digits.npz"], sqlite_url, "digits_cnn", {"filters": "2"}, epochs=200, batch_size=16
    )
    study, objective = _one_trial(config)
    timer = threading.Timer(2.0, stopping.request, args=("SIGTERM",))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            study.optimize(objective, n_trials=1, catch=())
    finally:
        timer.cancel()
        stopping.clear()
    trial = study.trials[0]
    assert trial.state == TrialState.FAIL and trial.user_attrs["fail_reason"] == "interrupted by SIGTERM"
    assert len(trial.intermediate_values) < config.epochs


def test_a_builder_that_fails_for_some_params_fails_those_trials_only(example_files, tmp_path):
    """Check that a builder raising for some params (too many filters) ends those trials FAIL with its message
    while the sweep reaches its budget of finished trials."""
    builder = tmp_path / "picky.py"
    builder.write_text(
        "import keras\n\n"
        "def build(params, input_shape):\n"
        "    if params['filters'] > 4:\n"
        "        raise ValueError(f\"{params['filters']} filters are too many for 8 x 8 images\")\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(params['filters'], 3), "
        "keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(1, activation='sigmoid')])\n"
    )
    config = user_model_values(
        example_files["digits.npz"],
        f"sqlite:///{tmp_path / 's.db'}",
        f"{builder}:build",
        {"filters": "2,8"},
        trials=3,
        epochs=1,
    )
    result = run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    failed = study.get_trials(states=(TrialState.FAIL,))
    assert result.finished == 3 and failed
    assert all("8 filters are too many for 8 x 8 images" in t.user_attrs["fail_reason"] for t in failed)
    assert all(t.params["filters"] == 8 for t in failed)


def test_same_seed_gives_the_same_user_model_trial(example_files, tmp_path):
    """Check that two sweeps of the same config and seed store the same params and values (seeded builds, dropout
    and batches)."""
    values = []
    for run in range(2):
        config = user_model_values(
            example_files["digits.npz"],
            f"sqlite:///{tmp_path / f'{run}.db'}",
            "digits_cnn",
            {"filters": "2:3", "dropout": "0.0:0.5"},
            trials=2,
            epochs=1,
        )
        run_sweep(config)
        study = optuna.load_study(study_name=config.study, storage=config.storage)
        values.append([(t.params, t.value, t.user_attrs["val_average_precision"]) for t in study.trials])
    assert values[0] == values[1]


def _slow_batches(monkeypatch, tmp_path, seconds: float) -> str:
    """The digits model, whose first trial's batches each end `seconds` late (a sleep before the trial callback's
    per-batch check); returns its model spec."""
    import time

    import sweep.models.keras_fit
    from tests.conftest import MODELS_FILE

    real, fits = sweep.models.keras_fit._fit_callback, []

    def fit_callback(on_epoch, state, over=None):
        fits.append(1)
        callback, first = real(on_epoch, state, over), len(fits) == 1
        checked = callback.on_train_batch_end

        def on_train_batch_end(batch, logs=None):
            if first:
                time.sleep(seconds)
            checked(batch, logs)

        callback.on_train_batch_end = on_train_batch_end
        return callback

    monkeypatch.setattr(sweep.models.keras_fit, "_fit_callback", fit_callback)
    return f"{MODELS_FILE}:digits_cnn"


def _stuck_builder(monkeypatch, tmp_path, seconds: float) -> str:
    """A builder that sleeps `seconds` when it builds the first trial's model (its first call is the check before
    any trial); returns its model spec."""
    builder = tmp_path / "stuck.py"
    builder.write_text(
        "import pathlib\nimport time\n\nimport keras\n\nCALLS = pathlib.Path(__file__).with_suffix('.calls')\n\n\n"
        "def build(params, input_shape):\n"
        "    calls = int(CALLS.read_text()) + 1 if CALLS.exists() else 1\n"
        "    CALLS.write_text(str(calls))\n"
        f"    if calls == 2:\n        time.sleep({seconds})\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Conv2D(params['filters'], 3), "
        "keras.layers.Flatten(),\n"
        "                             keras.layers.Dense(1, activation='sigmoid')])\n"
    )
    return f"{builder}:build"


@pytest.mark.parametrize(
    "make_model, reason",
    [
        (
            lambda monkeypatch, tmp_path: _slow_batches(monkeypatch, tmp_path, 0.5),
            r"^stopped after \d+\.\d s: longer than --trial-timeout 3 \(epoch 1 of 1\)$",
        ),
        # Stuck in the builder: the watchdog fails the trial grace_period (2 s) past the limit and SIGALRM ends the
        # sleep.
        (
            lambda monkeypatch, tmp_path: _stuck_builder(monkeypatch, tmp_path, 120),
            r"^stopped after \d+\.\d s: longer than --trial-timeout 3 and stuck in one call for more than its "
            r"grace_period of 2 s \(before its first epoch\); failed by the watchdog$",
        ),
    ],
    ids=["slow-batches", "stuck-builder"],
)
def test_a_user_model_past_trial_timeout_fails_and_the_sweep_reaches_its_budget(
    example_files, tmp_path, monkeypatch, make_model, reason
):
    """Check that a user-model trial running past --trial-timeout (slow batches, or a builder stuck in a sleep) ends
    FAIL with the reason, stopped in the middle of fit or of its builder, and the sweep reaches its budget."""
    import re
    import time

    model = make_model(monkeypatch, tmp_path)
    config = user_model_values(
        example_files["digits.npz"],
        f"sqlite:///{tmp_path / 's.db'}",
        model,
        {"filters": "2"},
        trials=2,
        epochs=1,
        trial_timeout=3,
        heartbeat_interval=1,
        grace_period=2,
    )
    started = time.monotonic()
    result = run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    first = study.trials[0]
    assert first.state == TrialState.FAIL
    assert re.match(reason, first.user_attrs["fail_reason"]), first.user_attrs["fail_reason"]
    assert result.finished == 2 and result.stop_reason is None
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 2
    assert time.monotonic() - started < 60, "the stuck builder was not interrupted"


def test_user_model_trials_leave_no_train_step_in_tensorflows_gradient_registry(example_files, sqlite_url):
    """Check that a sweep of user-model trials leaves TensorFlow's global gradient registry as it found it (each fit's
    train step registers a custom gradient holding its graph, kept for ever: docs/benchmarks/user-model.md#memory)."""
    from sweep.runtime import custom_gradient_names

    before = custom_gradient_names()
    run_sweep(
        user_model_values(example_files["digits.npz"], sqlite_url, "digits_cnn", {"filters": "2"}, trials=2, epochs=1)
    )
    assert custom_gradient_names() == before
