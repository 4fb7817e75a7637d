"""Tests for sweep.models.population and population rounds: members train independently, are told as single trials,
are pruned one by one, export as plain Keras models, and never stay RUNNING after their worker dies."""

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweep.data import load_dataset
from sweep.data.folds import Fold, Validation
from sweep.handover.export import export_best
from sweep.metrics import parse_goal
from sweep.models.network import TrainSettings, initial_layers, train_models
from sweep.models.population import (
    Member,
    Population,
    automatic_population,
    described_member,
    fold_subnets,
    member_network,
    population_scores,
    retrain_population_members,
    train_population,
)
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


@pytest.mark.parametrize("decay", [0.0, 0.01], ids=["adam", "weight decay"])
def test_members_with_their_own_learning_rates_learn_as_alone(tiny_dataset, decay):
    """Check that members with their own learning rates in one population (one shared Adam rate, scaled weights)
    learn what each learns alone at its rate (and shrink as alone under weight decay), and slice out as plain models
    that predict the same. Adam's epsilon is not scale-free: a heavy decay (0.3 at rate 0.02) shrinks the gradients
    until it shows, 1e-3 apart after 3 epochs."""
    X, y = tiny_dataset.train.X, tiny_dataset.train.y
    members = [Member(5, 10.0, 1, 0.02), Member(5, 10.0, 2, 0.0003), Member(7, 3.0, 3, 0.001)]
    together, _, _, _ = train_population(X, y, members, 3, 64, 0.001, 7, weight_decay=decay)
    scores = together.scores(tiny_dataset.holdout.X)
    for k, member in enumerate(members):
        alone, _, _, _ = train_population(
            X, y, [Member(member.hidden_width, member.minority_weight, member.seed)], 3, 64, member.learning_rate, 7,
            weight_decay=decay,
        )  # fmt: skip
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


def labelled(classes: int, rows: int = 240, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three features of `classes` overlapping blobs (the last class rarest): 0/1 labels for two classes."""
    rng = np.random.default_rng(seed)
    shares = 0.5 ** np.arange(classes)
    y = rng.choice(classes, size=rows, p=shares / shares.sum())
    X = rng.normal(size=(rows, 3)) + np.eye(3)[y % 3] * (1 + y // 3)[:, None]
    return X.astype(np.float32), y


def members_of(classes: int, seed: int) -> list[Member]:
    """Two members of other widths and class weights (one seed, so that the rows' shuffle is each one's own)."""
    if classes == 2:
        return [Member(3, 4.0, seed), Member(6, 20.0, seed)]
    return [Member(3, 4.0, seed, class_weights=(1.0, 2.0, 4.0)), Member(6, 20.0, seed, class_weights=(1.0, 3.0, 20.0))]


def class_weight_of(member: Member) -> dict[int, float]:
    """The single network's class_weight for a member."""
    if member.class_weights is None:
        return {0: 1.0, 1: member.minority_weight}
    return dict(enumerate(member.class_weights))


def two_folds(X: np.ndarray, y: np.ndarray) -> Validation:
    """A cross-validation plan of two interleaved folds of every row (fold f judges rows whose index is f mod 2)."""
    index = np.arange(len(y))
    folds = tuple(Fold((index % 2 != f).astype(np.float32), X[index % 2 == f], index[index % 2 == f]) for f in (0, 1))
    return Validation("cv", X, y, folds, y, n_splits=2)


@pytest.mark.parametrize("decay", [0.0, 0.3], ids=["adam", "weight decay"])
@pytest.mark.parametrize("classes", [2, 3], ids=["binary", "three classes"])
@pytest.mark.parametrize("folds", [False, True], ids=["all rows", "fold models"])
def test_a_member_trains_like_the_single_network(classes, folds, decay):
    """Check that each member of a population (sigmoid or softmax, with fold models' keep matrix or not, with weight
    decay or not) starts from and learns what sweep.models.network trains alone for its width, class weights and seed,
    and slices out as that network."""
    X, y = labelled(classes)
    members = members_of(classes, 21)
    plan = two_folds(X, y)
    subnets, keep, member_fold = fold_subnets(members, plan) if folds else (members, None, None)
    keeps = [fold.keep for fold in plan.folds] if folds else [None]
    population, _, _, _ = train_population(
        X, y, subnets, 3, 32, 0.01, 21, keep=keep, member_fold=member_fold, weight_decay=decay
    )
    scores = population.scores(X)
    assert scores.shape == (len(subnets), len(y)) + ((classes,) if classes > 2 else ())
    settings = TrainSettings(epochs=3, batch_size=32, learning_rate=0.01, hidden_layers=1, seed=21, weight_decay=decay)
    for k, member in enumerate(members):
        alone, _ = train_models(X, y, member.hidden_width, class_weight_of(member), settings, keeps)
        for f, network in enumerate(alone):
            index = f * len(members) + k
            assert np.allclose(scores[index], network.scores(X), atol=1e-5)
            sliced = member_network(population, index)
            assert sliced.outputs == network.outputs and np.allclose(sliced.scores(X), scores[index], atol=1e-5)


def test_softmax_members_start_as_single_networks_and_score_like_keras():
    """Check that a softmax member's start is initial_layers(..., outputs=C) of its seed, that its rows of
    scores are class probabilities (block_scores a block of them) and that member_model predicts them."""
    X, y = labelled(4)
    members = [Member(2, 1.0, 5, class_weights=(1.0, 1.0, 2.0, 3.0)), Member(7, 1.0, 6, class_weights=(1.0,) * 4)]
    start = Population(X.shape[1], members)
    for k, member in enumerate(members):
        (kernel_1, _), (kernel_2, _) = initial_layers(X.shape[1], member.hidden_width, 1, member.seed, outputs=4)
        units = slice(start.offsets[k], start.offsets[k + 1])
        assert np.array_equal(start.stored["W1"][:, units], kernel_1)
        assert np.array_equal(start.stored["w2"][units], kernel_2)
    assert start.stored["b2"].shape == (2, 4)
    population, _, _, _ = train_population(X, y, members, 2, 64, 0.01, 3)
    scores = population.scores(X)
    assert scores.shape == (2, len(y), 4) and np.allclose(scores.sum(axis=2), 1.0, atol=1e-5)
    assert np.allclose(population.block_scores(X, 1, 1), scores[1:], atol=1e-6)
    assert population.block_scores(X[:0], 0, 2).shape == (2, 0, 4)
    for k, member in enumerate(members):
        model = population.member_model(k)
        assert model.layers[0].units == member.hidden_width and model.layers[-1].units == 4
        assert np.allclose(model(X).numpy(), scores[k], atol=1e-5)


def test_softmax_members_with_their_own_learning_rates_learn_as_alone():
    """Check that softmax members with their own rates (w2 scaled per unit, b2 per member) learn what each learns
    alone at its rate."""
    X, y = labelled(3)
    weights = (1.0, 2.0, 6.0)
    members = [Member(5, 1.0, 1, 0.02, weights), Member(4, 1.0, 2, 0.0003, weights), Member(7, 1.0, 3, 0.001, weights)]
    together, _, _, _ = train_population(X, y, members, 3, 64, 0.001, 7)
    scores = together.scores(X)
    for k, member in enumerate(members):
        own = Member(member.hidden_width, 1.0, member.seed, None, weights)
        alone, _, _, _ = train_population(X, y, [own], 3, 64, member.learning_rate, 7)
        assert np.allclose(scores[k], alone.scores(X)[0], atol=1e-4)
        assert np.allclose(together.member_model(k)(X).numpy(), scores[k], atol=1e-5)


def test_softmax_populations_of_any_class_count_share_one_trace():
    """Check that softmax populations of 3 and 5 classes and of other sizes reuse one traced epoch and one scorer,
    none of them the binary population's."""
    from sweep.models.population import _block_scorer, population_program

    for classes, size in ((3, 2), (5, 1), (3, 4)):
        X, y = labelled(classes, seed=classes)
        members = [Member(2 + k, 1.0, k, class_weights=(1.0,) * classes) for k in range(size)]
        train_population(X, y, members, 1, 64, 0.01, 1)[0].scores(X)
    program = population_program("/CPU:0", 64, False, False, softmax=True)
    assert program is not population_program("/CPU:0", 64, False, False)
    assert program.run_epoch.experimental_get_tracing_count() == 1
    assert _block_scorer(softmax=True).experimental_get_tracing_count() == 1


def test_population_scores_pools_each_class_at_its_rows():
    """Check that a softmax population's pooled validation scores are (size, rows, C), each member's what
    Validation.pool makes of its (rows, C) fold blocks; and that a binary population's stay (size, rows)."""
    X, y = labelled(3)
    plan = two_folds(X, y)
    members = members_of(3, 4)
    subnets, keep, member_fold = fold_subnets(members, plan)
    population, _, _, _ = train_population(X, y, subnets, 1, 64, 0.01, 4, keep=keep, member_fold=member_fold)
    pooled, blocks = population_scores(population, plan, len(members))
    assert pooled.shape == (2, len(y), 3) and [block.shape[1:] for block in blocks] == [(120, 3), (120, 3)]
    for k in range(len(members)):
        assert np.array_equal(pooled[k], plan.pool([block[k] for block in blocks], rows_first=True))
    binary = members_of(2, 4)
    subnets, keep, member_fold = fold_subnets(binary, plan)
    population, _, _, _ = train_population(X, y == 2, subnets, 1, 64, 0.01, 4, keep=keep, member_fold=member_fold)
    assert population_scores(population, plan, len(binary))[0].shape == (2, len(y))


def test_retraining_passes_each_members_class_weights_through():
    """Check that retraining a population from its stored description (class_weights as a list) gives each trial
    softmax fold networks and the pooled scores the population trained directly has."""
    X, y = labelled(3)
    plan = two_folds(X, y)
    members = members_of(3, 8)
    subnets, keep, member_fold = fold_subnets(members, plan)
    trained, _, _, _ = train_population(X, y, subnets, 2, 64, 0.01, 9, keep=keep, member_fold=member_fold)
    expected = population_scores(trained, plan, len(members))[0]
    described = [
        {"trial": 10 + k, "learning_rate": None, "class_weights": list(m.class_weights)}
        | {name: getattr(m, name) for name in ("hidden_width", "minority_weight", "seed")}
        for k, m in enumerate(members)
    ]
    settings = {"epochs": 2, "batch_size": 64, "learning_rate": 0.01, "hidden_layers": 1, "seed": 8}
    population = {"members": described, "shuffle_seed": 9, "learning_rate": 0.01, "member": 0}
    trial = SimpleNamespace(number=10, user_attrs={"train_settings": settings, "population": population})
    retrained = retrain_population_members(SimpleNamespace(validation=plan), trial)
    assert sorted(retrained) == [10, 11]
    for k, number in enumerate((10, 11)):
        networks, pooled = retrained[number]
        assert [network.outputs for network in networks] == [3, 3]
        assert np.array_equal(pooled, expected[k])
    assert described_member(described[1]) == members[1]


def test_a_population_is_all_binary_or_all_of_one_class_count():
    """Check that mixing sigmoid and softmax members, or softmax members of other class counts, is refused, and that
    class_weights of fewer than 3 classes are (two classes are a sigmoid member)."""
    three, four = Member(2, 1.0, 1, class_weights=(1.0, 2.0, 3.0)), Member(2, 1.0, 1, class_weights=(1.0,) * 4)
    for mixed in ([MEMBERS[0], three], [three, four]):
        with pytest.raises(ValueError, match="all be two-class or all of the same number of classes"):
            Population(3, mixed)
    with pytest.raises(ValueError, match="class_weights of 2 classes"):
        Member(2, 1.0, 1, class_weights=(1.0, 2.0))


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
        (10_000, (1, 64), 0, False, 1, 1),  # nor linear ones
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


def test_a_long_population_reports_as_a_single_trial_does(tiny_config, tiny_dataset):
    """Check that members of a population of more than REPORTS_PER_TRIAL epochs report every report_every-th epoch and
    the last, as a single trial does."""
    config = tiny_config(epochs=103, pruner="none")
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize")
    population_round(study, config, tiny_dataset, parse_goal("f1"), 2)
    for trial in study.trials:
        assert trial.state == TrialState.COMPLETE and trial.user_attrs["epochs_run"] == 103
        assert sorted(trial.intermediate_values) == [*range(3, 103, 3), 103]


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
