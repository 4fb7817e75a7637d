"""Tests for sweep.models.network: learning, determinism, weighting and non-finite losses, with a sigmoid head for two
classes and a softmax head for three or more."""

import numpy as np
import pytest

from sweep.errors import TrialFailed
from sweep.models.network import TrainSettings, on_cadence, score, train_model
from tests.conftest import make_table


def labelled_classes(classes: int, rows: int = 400, seed: int = 0):
    """Two features of `classes` overlapping blobs round a circle, each class half as common as the one before (the
    last rarest); the binary `problem` for two classes."""
    if classes == 2:
        table = make_table(rows=1200)
        X = ((table[["f0", "f1"]] - table[["f0", "f1"]].mean()) / table[["f0", "f1"]].std()).to_numpy("float32")
        return X, table["label"].to_numpy()
    rng = np.random.default_rng(seed)
    shares = 0.5 ** np.arange(classes)
    y = rng.choice(classes, size=rows, p=shares / shares.sum())
    angles = 2 * np.pi * y / classes
    X = np.stack([np.cos(angles), np.sin(angles)], axis=1) + rng.normal(scale=0.8, size=(rows, 2))
    return X.astype(np.float32), y


def share_predicted(scores: np.ndarray, label: int) -> float:
    """The share of rows predicted as `label`: positive at 0.5 for 1-D binary scores, else the argmax class."""
    predicted = (scores >= 0.5).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
    return float((predicted == label).mean())


@pytest.fixture(scope="module")
def problem():
    return labelled_classes(2)


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


@pytest.mark.parametrize("classes", [2, 3])
def test_minority_weight_raises_the_flag_rate(classes):
    """Check that a larger weight on the rarest class predicts more rows as that class (at 0.5, or by argmax)."""
    X, y = labelled_classes(classes)
    light = score(train_model(X, y, 4, dict.fromkeys(range(classes), 1.0), settings())[0], X)
    heavy = score(train_model(X, y, 4, dict.fromkeys(range(classes), 1.0) | {classes - 1: 50.0}, settings())[0], X)
    assert share_predicted(heavy, classes - 1) > share_predicted(light, classes - 1)


def test_non_finite_loss_fails_the_trial(problem):
    """Check that an overflowing loss raises TrialFailed naming the epoch."""
    with pytest.raises(TrialFailed, match=r"loss became (inf|nan) at epoch 1"):
        train_model(*problem, 2, {0: 1.0, 1: 1e38}, settings(learning_rate=1.0))


@pytest.mark.parametrize(
    "hidden_layers, class_weight, weight_decay",
    [
        (1, {0: 1.0, 1: 5.0}, 0.0),
        (0, {0: 1.0, 1: 5.0}, 0.0),
        (2, {0: 0.5, 1: 40.0}, 0.0),
        (1, {0: 1.0, 1: 2.0, 2: 8.0}, 0.0),
        (2, {0: 0.5, 1: 1.0, 2: 3.0, 3: 20.0}, 0.0),
        (2, {0: 1.0, 1: 5.0}, 0.5),
        (1, {0: 1.0, 1: 2.0, 2: 8.0}, 0.5),
    ],
)
def test_epoch_program_is_keras_fit(hidden_layers, class_weight, weight_decay):
    """Check that the compiled epoch's weights after 3 epochs equal Keras fit(class_weight=...) with Adam from the same
    start (AdamW on the kernels with a weight decay): binary cross-entropy on a sigmoid for two classes, sparse
    categorical cross-entropy on a softmax for more.

    One batch of all rows makes the shuffle order irrelevant, so the two must agree to float32 round-off.
    """
    import keras

    from sweep.models.network import build_model, epoch_program, label_weights, output_units

    X, y = labelled_classes(len(class_weight))
    outputs = output_units(class_weight)
    keras.utils.set_random_seed(0)
    theirs = build_model(2, 3, hidden_layers, outputs)
    start = theirs.get_weights()
    program = epoch_program("/CPU:0", 2, hidden_layers, batch=len(y), outputs=outputs, decay=weight_decay > 0)
    start = list(zip(start[::2], start[1::2]))
    program.load(X, y, label_weights(y, class_weight), start, learning_rate=0.01, weight_decay=weight_decay)
    our_losses = [float(program(np.array([0, e], dtype=np.int64))) for e in range(3)]
    loss = "binary_crossentropy" if outputs == 1 else "sparse_categorical_crossentropy"
    optimizer = keras.optimizers.Adam(learning_rate=0.01)
    if weight_decay:
        optimizer = keras.optimizers.AdamW(learning_rate=0.01, weight_decay=weight_decay)
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    theirs.compile(optimizer=optimizer, loss=loss)
    history = theirs.fit(X, y, batch_size=len(y), epochs=3, class_weight=class_weight, shuffle=False, verbose=0)
    mine = [array for pair in program.network().layers for array in pair]
    for ours, reference in zip(mine, theirs.get_weights()):
        assert np.allclose(ours, reference, atol=1e-5)
    assert np.allclose(our_losses, history.history["loss"], rtol=1e-4)


def test_later_trials_reuse_the_compiled_epoch(problem):
    """Check that trials of other widths, seeds, weights and learning rates reuse one traced epoch, that softmax
    trials of any class count share another, and that a trial trained after others equals the same trial trained
    first in a fresh program (no state leaks)."""
    from sweep.models.network import epoch_program

    program, softmax = epoch_program("/CPU:0", 2, 1, 50), epoch_program("/CPU:0", 2, 1, 50, outputs=3)
    first = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], problem[0])
    traces = program.run_epoch.experimental_get_tracing_count()
    for width, weight, rate in ((1, 2.0, 0.1), (17, 30.0, 0.001), (64, 1.0, 0.01)):
        train_model(*problem, width, {0: 1.0, 1: weight}, settings(learning_rate=rate, seed=width))
    for classes in (3, 4):
        train_model(*labelled_classes(classes), 5, dict.fromkeys(range(classes), 2.0), settings())
    again = score(train_model(*problem, 4, {0: 1.0, 1: 5.0}, settings())[0], problem[0])
    assert program.run_epoch.experimental_get_tracing_count() == traces == 1
    assert softmax.run_epoch.experimental_get_tracing_count() == 1 and softmax is not program
    assert np.array_equal(first, again)


@pytest.mark.parametrize("classes", [2, 4])
def test_network_matches_its_keras_model(classes):
    """Check that a trained Network scores rows as the Keras model it exports does: 1-D positive-class probabilities
    for two classes, (rows, K) probabilities summing to 1 for K."""
    X, y = labelled_classes(classes)
    network, _ = train_model(
        X, y, 5, {0: 1.0, 1: 5.0} | dict.fromkeys(range(2, classes), 3.0), settings(hidden_layers=2)
    )
    ours = score(network, X)
    assert ours.shape == ((len(y),) if classes == 2 else (len(y), classes)) and ours.dtype == np.float32
    assert classes == 2 or np.allclose(ours.sum(axis=1), 1, atol=1e-6)
    assert np.allclose(ours, score(network.to_keras(), X), atol=1e-6)


@pytest.mark.parametrize("classes", [2, 3])
def test_fold_models_learn_nothing_from_held_out_rows(classes):
    """Check that fold models trained side by side ignore the labels of the rows held out from them: changing those
    labels leaves the fold model unchanged and changes the model that trains on every row."""
    from sweep.models.network import train_models

    X, y = labelled_classes(classes)
    keep = np.ones(len(y), dtype=np.float32)
    keep[: len(y) // 2] = 0
    flipped = y.copy()
    flipped[: len(y) // 2] = (flipped[: len(y) // 2] + 1) % classes
    weights = {0: 1.0, 1: 5.0} | dict.fromkeys(range(2, classes), 2.0)
    runs = [train_models(X, labels, 4, weights, settings(), keeps=(keep, None))[0] for labels in (y, flipped)]
    assert np.allclose(score(runs[0][0], X), score(runs[1][0], X), atol=1e-6)
    assert not np.allclose(score(runs[0][1], X), score(runs[1][1], X), atol=1e-3)


def test_linear_fold_models_trained_stacked_equal_each_trained_alone(problem):
    """Check that linear fold models, trained as the columns of one program, end where each trained alone ends: same
    start, same batches, and each column's gradient its own."""
    from sweep.models.network import train_models

    X, y = problem
    keeps = [(np.arange(len(y)) % 3 != fold).astype(np.float32) for fold in range(3)]
    linear = settings(hidden_layers=0, learning_rate=0.05)
    stacked, _ = train_models(X, y, 1, {0: 1.0, 1: 5.0}, linear, keeps)
    alone = [train_models(X, y, 1, {0: 1.0, 1: 5.0}, linear, (keep,))[0][0] for keep in keeps]
    assert [model.hidden_width for model in stacked] == [None] * 3
    for together, single in zip(stacked, alone):
        assert np.allclose(score(together, X), score(single, X), atol=1e-5)
    assert not np.allclose(score(stacked[0], X), score(stacked[1], X), atol=1e-3)


@pytest.mark.parametrize(
    "every, epochs, reported",
    [(1, 4, [1, 2, 3, 4]), (3, 10, [3, 6, 9, 10]), (3, 9, [3, 6, 9]), (5, 3, [3])],
)
def test_the_report_cadence_is_every_kth_epoch_and_the_last(every, epochs, reported):
    """Check that on_cadence picks every `every`-th epoch and the last, once each."""
    assert [epoch for epoch in range(1, epochs + 1) if on_cadence(epoch, every, epochs)] == reported
