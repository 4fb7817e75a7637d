"""Train one trial's Keras model: the tutorial's fit (weighted BCE, Adam, shuffled mini-batches), compiled per epoch."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweep.errors import TrialFailed
from sweep.runtime import detect_device, tensorflow


@dataclass(frozen=True)
class TrainSettings:
    """What besides the params decides the trained weights; stored on each trial so export can retrain it."""

    epochs: int
    batch_size: int
    learning_rate: float
    hidden_layers: int
    seed: int


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    seconds: float
    final_loss: float
    device: str


def train_model(
    X: np.ndarray,
    y: np.ndarray,
    hidden_width: int,
    class_weight: dict[int, float],
    settings: TrainSettings,
    on_epoch: Callable[[int, float], None] | None = None,
):
    """Build and train a model; returns (model, TrainResult). Raises TrialFailed on a NaN/infinite loss.

    Same mathematics as model.fit(X, y, class_weight=..., batch_size=..., epochs=..., shuffle=True) with
    binary cross-entropy and Adam; the loop differs only in running each epoch as one tf.function
    (no Python per step), which is what makes a trial cost seconds instead of a minute.
    """
    tf = tensorflow()
    import keras

    from sweep.model import build_model

    keras.backend.clear_session()  # drop graphs of earlier trials so memory stays flat
    keras.utils.set_random_seed(settings.seed)
    device = detect_device()
    started = time.perf_counter()
    with tf.device(device):
        model = build_model(X.shape[1], hidden_width, settings.hidden_layers)
        optimizer = keras.optimizers.Adam(learning_rate=settings.learning_rate)
        optimizer.build(model.trainable_variables)
        features = tf.constant(X, dtype=tf.float32)
        labels = tf.constant(np.asarray(y, dtype=np.float32).reshape(-1, 1))
        weights = tf.constant(
            np.where(np.asarray(y) == 1, class_weight[1], class_weight[0]).astype(np.float32)
        )
        n_rows, batch = len(y), settings.batch_size
        n_batches = -(-n_rows // batch)

        @tf.function
        def run_epoch(shuffle_seed):
            order = tf.argsort(tf.random.stateless_uniform([n_rows], seed=shuffle_seed))
            xs, ys, ws = tf.gather(features, order), tf.gather(labels, order), tf.gather(weights, order)
            total = tf.constant(0.0)
            for step in tf.range(n_batches):
                start = step * batch
                xb, yb, wb = xs[start : start + batch], ys[start : start + batch], ws[start : start + batch]
                with tf.GradientTape() as tape:
                    per_row = keras.losses.binary_crossentropy(yb, model(xb, training=True))
                    # Keras' "sum_over_batch_size": weighted sum divided by the rows in the batch.
                    loss = tf.reduce_sum(per_row * wb) / tf.cast(tf.shape(xb)[0], tf.float32)
                gradients = tape.gradient(loss, model.trainable_variables)
                optimizer.apply_gradients(zip(gradients, model.trainable_variables))
                total += loss
            return total / tf.cast(n_batches, tf.float32)

        loss = float("nan")
        epochs_run = 0
        for epoch in range(settings.epochs):
            loss = float(run_epoch(tf.constant([settings.seed, epoch], dtype=tf.int64)))
            epochs_run = epoch + 1
            if not np.isfinite(loss):
                raise TrialFailed(f"training loss became {loss} at epoch {epochs_run}")
            if on_epoch is not None:
                on_epoch(epochs_run, loss)
    return model, TrainResult(epochs_run, time.perf_counter() - started, loss, device)


def score(model, X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Predicted probability of the positive class for each row, in row order."""
    parts = [model(X[i : i + chunk], training=False).numpy().ravel() for i in range(0, len(X), chunk)]
    return np.concatenate(parts) if parts else np.empty(0)
