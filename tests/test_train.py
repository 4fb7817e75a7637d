"""Tests for sweep.models.network: learning, determinism, weighting and non-finite losses."""

import numpy as np
import pytest

from sweep.errors import TrialFailed
from sweep.models.network import TrainSettings, score, train_model
from tests.conftest import make_table


@pytest.fixture(scope="module")
def problem():
    table = make_table(rows=1200)
    X = ((table[["f0", "f1"]] - table[["f0", "f1"]].mean()) / table[["f0", "f1"]].std()).to_numpy("float32")
    return X, table["label"].to_numpy()


def settings(**kw):
    values = dict(epochs=6, batch_size=50, learning_rate=0.01, hidden_layers=1, seed=3)
    values.update(kw)
    return TrainSettings(**values)


def test_loss_goes_down_and_epochs_are_reported(problem):
    """Check that the weighted loss falls over the epochs and on_epoch sees every epoch in order."""
    losses = []
    _, result = train_model(
        *problem, 4, {0: 1.0, 1: 5.0}, settings(), on_epoch=lambda e, loss, _model: losses.append((e, loss))
    )
    assert [e for e, _ in losses] == list(range(1, 7))
    assert losses[-1][1] < losses[0][1]
    assert result.epochs_run == 6 and result.device.endswith("CPU:0") and result.seconds > 0


def test_same_seed_same_model_other_seed_other_model(problem):
    """Check that training is deterministic for a seed and differs across seeds."""
    X = problem[0]
    first = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], X)
    again = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], X)
    other = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings(seed=4))[0], X)
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)


def test_minority_weight_raises_the_flag_rate(problem):
    """Check that a larger minority weight pushes scores of the whole table up (more rows flagged at 0.5)."""
    X = problem[0]
    light = score(train_model(*problem, 4, {0: 1.0, 1: 1.0}, settings())[0], X)
    heavy = score(train_model(*problem, 4, {0: 1.0, 1: 50.0}, settings())[0], X)
    assert (heavy >= 0.5).mean() > (light >= 0.5).mean()


def test_non_finite_loss_fails_the_trial(problem):
    """Check that an overflowing loss raises TrialFailed naming the epoch."""
    with pytest.raises(TrialFailed, match=r"loss became (inf|nan) at epoch 1"):
        train_model(*problem, 2, {0: 1.0, 1: 1e38}, settings(learning_rate=1.0))


@pytest.mark.parametrize("hidden_layers, class_weight", [(1, {0: 1.0, 1: 5.0}), (2, {0: 0.5, 1: 40.0})])
def test_epoch_program_is_keras_fit(problem, hidden_layers, class_weight):
    """Check that the compiled epoch's weights after 3 epochs equal Keras fit(class_weight=...) with Adam from the same
    start.

    One batch of all rows makes the shuffle order irrelevant, so the two must agree to float32 round-off.
    """
    import keras

    from sweep.models.network import build_model, epoch_program

    X, y = problem
    keras.utils.set_random_seed(0)
    theirs = build_model(2, 3, hidden_layers)
    start = theirs.get_weights()
    weights = np.where(y == 1, class_weight[1], class_weight[0])
    program = epoch_program("/CPU:0", 2, hidden_layers, batch=len(y))
    program.load(X, y, weights, list(zip(start[::2], start[1::2])), learning_rate=0.01)
    our_losses = [float(program(np.array([0, e], dtype=np.int64))) for e in range(3)]
    theirs.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    history = theirs.fit(X, y, batch_size=len(y), epochs=3, class_weight=class_weight, shuffle=False, verbose=0)
    mine = [array for pair in program.network().layers for array in pair]
    for ours, reference in zip(mine, theirs.get_weights()):
        assert np.allclose(ours, reference, atol=1e-5)
    assert np.allclose(our_losses, history.history["loss"], rtol=1e-4)


def test_later_trials_reuse_the_compiled_epoch(problem):
    """Check that trials of other widths, seeds, weights and learning rates reuse one traced epoch, and that a
    trial trained after others equals the same trial trained first in a fresh program (no state leaks)."""
    from sweep.models.network import epoch_program

    program = epoch_program("/CPU:0", 2, 1, 50)
    first = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], problem[0])
    traces = program.run_epoch.experimental_get_tracing_count()
    for width, weight, rate in ((1, 2.0, 0.1), (17, 30.0, 0.001), (64, 1.0, 0.01)):
        train_model(*problem, width, {0: 1.0, 1: weight}, settings(learning_rate=rate, seed=width))
    again = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], problem[0])
    assert program.run_epoch.experimental_get_tracing_count() == traces == 1
    assert np.array_equal(first, again)


def test_network_matches_its_keras_model(problem):
    """Check that a trained Network scores rows as the Keras model it exports does."""
    network, _ = train_model(*problem, 5, {0: 1.0, 1: 5.0}, settings(hidden_layers=2))
    keras_scores = network.to_keras()(problem[0], training=False).numpy().ravel()
    assert np.allclose(score(network, problem[0]), keras_scores, atol=1e-6)


def test_fold_models_learn_nothing_from_held_out_rows(problem):
    """Check that fold models trained side by side ignore the labels of the rows held out from them: flipping those
    labels leaves the fold model unchanged and changes the model that trains on every row."""
    from sweep.models.network import train_models

    X, y = problem
    keep = np.ones(len(y), dtype=np.float32)
    keep[: len(y) // 2] = 0
    flipped = y.copy()
    flipped[: len(y) // 2] = 1 - flipped[: len(y) // 2]
    runs = [train_models(X, labels, 4, {0: 1.0, 1: 5.0}, settings(), keeps=(keep, None))[0] for labels in (y, flipped)]
    assert np.allclose(score(runs[0][0], X), score(runs[1][0], X), atol=1e-6)
    assert not np.allclose(score(runs[0][1], X), score(runs[1][1], X), atol=1e-3)
