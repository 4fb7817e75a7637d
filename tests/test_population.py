"""Tests for sweep.models.population and population rounds: members train independently, are told as single trials,
are pruned one by one, export as plain Keras models, and never stay RUNNING after their worker dies."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweep.data import load_dataset
from sweep.handover.export import export_best
from sweep.metrics import parse_goal
from sweep.models.population import Member, automatic_population, train_population
from sweep.space import PARAM_NAMES
from sweep.study.rounds import population_round
from sweep.study.runner import run_sweep
from sweep.study.storage import open_storage

SWEEP = str(Path(sys.executable).with_name("sweep"))
MEMBERS = [Member(2, 1.0, 11), Member(5, 20.0, 12), Member(9, 300.0, 13)]


@pytest.fixture(scope="module")
def tiny_dataset(tiny_csv):
    from sweep.config import resolve_config

    return load_dataset(resolve_config({"data": tiny_csv, "target": "label", "cv": 0}, env={}))


def test_a_member_learns_the_same_alone_and_in_a_population(tiny_dataset):
    """Check that a member's predictions do not depend on the other members trained beside it."""
    X, y = tiny_dataset.train.X, tiny_dataset.train.y
    together, _, _, _ = train_population(X, y, MEMBERS, 3, 64, 0.01, 7)
    alone, _, _, _ = train_population(X, y, [MEMBERS[1]], 3, 64, 0.01, 7)
    assert np.allclose(together.scores(tiny_dataset.holdout.X)[1], alone.scores(tiny_dataset.holdout.X)[0], atol=1e-5)


def test_later_populations_reuse_the_compiled_epoch_and_match_a_fresh_start(tiny_dataset):
    """Check that populations of other sizes, widths and rates reuse one traced epoch and one scorer, and that a
    population trained after others learns what it learned first (nothing of the earlier ones leaks)."""
    from sweep.models.population import _block_scorer, population_program

    X, y = tiny_dataset.train.X, tiny_dataset.train.y
    first, _, _, _ = train_population(X, y, MEMBERS, 3, 64, 0.01, 7)
    first_scores = first.scores(tiny_dataset.holdout.X)
    program = population_program("/CPU:0", 64, False, False)
    traces = (program.run_epoch.experimental_get_tracing_count(), _block_scorer().experimental_get_tracing_count())
    for size in (1, 7):
        others = [Member(1 + 3 * k, 2.0 + k, 100 + k) for k in range(size)]
        train_population(X, y, others, 2, 64, 0.003, 9)[0].scores(tiny_dataset.holdout.X)
    again, _, _, _ = train_population(X, y, MEMBERS, 3, 64, 0.01, 7)
    assert (
        (program.run_epoch.experimental_get_tracing_count(), _block_scorer().experimental_get_tracing_count())
        == traces
        == (1, 1)
    )
    assert np.array_equal(first_scores, again.scores(tiny_dataset.holdout.X))


def test_member_model_reproduces_the_member(tiny_dataset):
    """Check that a member sliced out as a plain Keras model of its own width predicts what the member predicts."""
    population, epochs_run, _, _ = train_population(tiny_dataset.train.X, tiny_dataset.train.y, MEMBERS, 2, 64, 0.01, 3)
    assert list(epochs_run) == [2, 2, 2]
    scores = population.scores(tiny_dataset.holdout.X)
    for k, member in enumerate(MEMBERS):
        model = population.member_model(k)
        assert model.layers[0].units == member.hidden_width
        assert np.allclose(model(tiny_dataset.holdout.X).numpy().ravel(), scores[k], atol=1e-5)


def test_members_with_their_own_learning_rates_learn_as_alone(tiny_dataset):
    """Check that members with their own learning rates in one population (one shared Adam rate, scaled weights)
    learn what each learns alone at its rate, and slice out as plain models that predict the same."""
    X, y = tiny_dataset.train.X, tiny_dataset.train.y
    members = [Member(5, 10.0, 1, 0.02), Member(5, 10.0, 2, 0.0003), Member(7, 3.0, 3, 0.001)]
    together, _, _, _ = train_population(X, y, members, 3, 64, 0.001, 7)
    scores = together.scores(tiny_dataset.holdout.X)
    for k, member in enumerate(members):
        alone, _, _, _ = train_population(
            X, y, [Member(member.hidden_width, member.minority_weight, member.seed)], 3, 64, member.learning_rate, 7
        )
        assert np.allclose(scores[k], alone.scores(tiny_dataset.holdout.X)[0], atol=1e-4)
        assert np.allclose(together.member_model(k)(tiny_dataset.holdout.X).numpy().ravel(), scores[k], atol=1e-5)


def test_held_out_rows_teach_a_fold_model_nothing(tiny_dataset):
    """Check that a fold network's predictions do not change when the labels of the rows held out from it change,
    while the other fold's network (which trains on those rows) does change."""
    X, y = tiny_dataset.train.X, tiny_dataset.train.y
    keep = np.ones((len(y), 2), dtype=np.float32)
    keep[: len(y) // 2, 0] = 0  # fold 0 holds out the first half, fold 1 nothing
    members = [MEMBERS[1], MEMBERS[1]]
    flipped = y.copy()
    flipped[: len(y) // 2] = 1 - flipped[: len(y) // 2]
    runs = [
        train_population(X, labels, members, 2, 64, 0.01, 5, keep=keep, member_fold=np.array([0, 1]))[0]
        for labels in (y, flipped)
    ]
    before, after = (run.scores(tiny_dataset.holdout.X) for run in runs)
    assert np.allclose(before[0], after[0], atol=1e-6)
    assert not np.allclose(before[1], after[1], atol=1e-3)


def test_block_scores_are_the_members_scores(tiny_dataset):
    """Check that scoring a block of consecutive members (one fold's) gives those members' rows of scores()."""
    population, _, _, _ = train_population(tiny_dataset.train.X, tiny_dataset.train.y, MEMBERS, 1, 64, 0.01, 3)
    everyone = population.scores(tiny_dataset.holdout.X)
    assert np.allclose(population.block_scores(tiny_dataset.holdout.X, 1, 2), everyone[1:3], atol=1e-6)


@pytest.mark.parametrize(
    "trials, hidden_width, hidden_layers, on_gpu, workers, expected",
    [
        (50, (1, 64), 1, False, 1, 12),  # the reference sweep: a quarter of the budget per round
        (10_000, (1, 64), 1, False, 1, 67),  # a big budget: as many mean-width-15 members as fit 1024 units
        (10_000, (1, 64), 1, True, 1, 512),  # a GPU holds more units; capped at the largest population
        (10_000, (32, 32), 1, False, 1, 32),  # a fixed width: 1024 // 32
        (10_000, (1, 64), 1, False, 4, 67),
        (100, (1, 64), 1, False, 4, 6),  # each of 4 workers keeps 4 rounds of its share
        (7, (1, 64), 1, False, 1, 1),  # too few trials for 4 rounds of 2: single trials
        (10_000, (1, 64), 2, False, 1, 1),  # deeper networks are never stacked
    ],
)
def test_automatic_population(trials, hidden_width, hidden_layers, on_gpu, workers, expected):
    """Check that population = 0 picks K from the mean width, the device, the budget per worker and the depth."""
    assert automatic_population(trials, hidden_width, hidden_layers, on_gpu, workers) == expected


def test_default_config_trains_automatic_populations(tiny_config):
    """Check that without --population a sweep with room for 4 rounds trains populations, and records their size."""
    config = tiny_config(trials=8, epochs=2, pruner="none")
    assert config.population == 0
    run_sweep(config)
    trials = optuna.load_study(study_name=config.study, storage=config.storage).trials
    # The first 8 trials come from 4 rounds of 2 even if one fails (its replacement comes in a later round).
    assert [t.user_attrs["population"]["size"] for t in trials[:8]] == [2] * 8


def test_population_of_three_is_three_ordinary_trials(tiny_config, tmp_path):
    """Check that a population of 3 gives each trial its own params, value and user attributes in SQLite, and exports
    like a single trial."""
    config = tiny_config(trials=3, population=3, epochs=3, pruner="none")
    result = run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    assert result.finished == 3 and [t.state for t in study.trials] == [TrialState.COMPLETE] * 3
    assert len({tuple(t.params[name] for name in PARAM_NAMES) for t in study.trials}) == 3
    populations = [t.user_attrs["population"] for t in study.trials]
    assert {p["id"] for p in populations} == {populations[0]["id"]} and sorted(p["member"] for p in populations) == [
        0,
        1,
        2,
    ]
    for trial in study.trials:
        assert {"val_f1", "val_flag_rate", "val_tp", "train_seconds", "device", "threads"} <= set(trial.user_attrs)
        assert sorted(trial.intermediate_values) == [1, 2, 3] and trial.user_attrs["epochs_run"] == 3
    bundle = export_best(config.storage, config.study, tmp_path / "bundle").best
    assert bundle["validation"]["reproduced"] and bundle["hidden_width"] == study.best_trial.params["hidden_width"]


class PruneOneTrial(optuna.pruners.BasePruner):
    """A pruner that stops one chosen trial at one chosen step, so the test knows who must stop."""

    def __init__(self, number: int, step: int) -> None:
        self.number, self.step = number, step

    def prune(self, study, trial) -> bool:
        return trial.number == self.number and trial.last_step is not None and trial.last_step >= self.step


def test_pruning_one_member_leaves_the_others_running(tiny_config, tiny_dataset):
    """Check that a pruned member ends PRUNED at its epoch while the other members train to the end."""
    config = tiny_config(epochs=4)
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize", pruner=PruneOneTrial(1, 2))
    told = population_round(study, config, tiny_dataset, parse_goal("f1"), 3)
    states = {t.number: t for t in study.trials}
    assert len(told) == 3 and states[1].state == TrialState.PRUNED and states[1].user_attrs["pruned_at_epoch"] == 2
    for number in (0, 2):
        assert states[number].state == TrialState.COMPLETE and states[number].user_attrs["epochs_run"] == 4
        assert sorted(states[number].intermediate_values) == [1, 2, 3, 4]


def test_killed_population_worker_leaves_no_trial_running(tiny_csv, tmp_path):
    """Check that SIGKILL mid-population leaves no trial RUNNING once the grace period has passed and the next run
    completes the study."""
    storage = f"sqlite:///{tmp_path / 'population.db'}"
    command = [
        SWEEP,
        "worker",
        "--data",
        tiny_csv,
        "--target",
        "label",
        "--storage",
        storage,
        "--study",
        "pop",
        "--trials",
        "6",
        "--population",
        "3",
        "--epochs",
        "2000",
        "--batch-size",
        "32",
        "--pruner",
        "none",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
        "--cv",
        "0",
    ]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                running = optuna.load_study(study_name="pop", storage=storage).get_trials(states=(TrialState.RUNNING,))
            except KeyError:
                running = []
            if len(running) == 3 and all(t.user_attrs.get("population") for t in running):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the population never started")
        killed = {t.number for t in running}
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
    quick = [*command[: command.index("--epochs")], "--epochs", "3", *command[command.index("--epochs") + 2 :]]
    rerun = subprocess.run(quick, capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="pop", storage=storage)
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert all(t.state == TrialState.FAIL for t in study.trials if t.number in killed)
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 6
