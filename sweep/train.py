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
    on_epoch: Callable[[int, float, object], None] | None = None,
):
    """Build and train one model on every row; returns (model, TrainResult). See train_models."""
    adapted = None if on_epoch is None else (lambda epoch, loss, models: on_epoch(epoch, loss, models[0]))
    models, result = train_models(X, y, hidden_width, class_weight, settings, (None,), adapted)
    return models[0], result


def train_models(
    X: np.ndarray,
    y: np.ndarray,
    hidden_width: int,
    class_weight: dict[int, float],
    settings: TrainSettings,
    keeps=(None,),
    on_epoch: Callable[[int, float, list], None] | None = None,
):
    """Build one model per entry of `keeps` and train them epoch by epoch side by side (fold models of one
    trial); returns (models, TrainResult). Raises TrialFailed on a NaN/infinite loss.

    keeps[k] weights model k's rows (0 = held out, None = every row): a held-out row contributes no loss, so
    model k learns from the others only, with the batches (and Adam steps) of training on all rows.
    on_epoch(epoch, mean_loss, models) runs after every epoch (1-based); it may raise to stop training
    (optuna.TrialPruned does).

    Same mathematics as model.fit(X, y, class_weight=..., batch_size=..., epochs=..., shuffle=True) with
    binary cross-entropy and Adam (see fused_epoch); what differs is that each epoch is one tf.function
    with no Python per step, which makes a trial cost seconds instead of a minute.
    """
    tf = tensorflow()
    import keras

    from sweep.model import build_model

    keras.backend.clear_session()  # drop graphs of earlier trials so memory stays flat
    keras.utils.set_random_seed(settings.seed)
    device = detect_device()
    started = time.perf_counter()
    with tf.device(device):
        weights = np.where(np.asarray(y) == 1, class_weight[1], class_weight[0])
        models, epochs = [], []
        for keep in keeps:
            model = build_model(X.shape[1], hidden_width, settings.hidden_layers)
            models.append(model)
            row_weights = weights if keep is None else weights * keep
            epochs.append(fused_epoch(model, X, y, row_weights, settings.batch_size, settings.learning_rate))
        loss = float("nan")
        epochs_run = 0
        for epoch in range(settings.epochs):
            seed = tf.constant([settings.seed, epoch], dtype=tf.int64)
            loss = float(np.mean([float(run_epoch(seed)) for run_epoch in epochs]))
            epochs_run = epoch + 1
            if not np.isfinite(loss):
                raise TrialFailed(f"training loss became {loss} at epoch {epochs_run}")
            if on_epoch is not None:
                on_epoch(epochs_run, loss, models)
    return models, TrainResult(epochs_run, time.perf_counter() - started, loss, device)


class FusedAdam:
    """Keras' Adam (beta_1 0.9, beta_2 0.999, epsilon 1e-7) as one ResourceApplyAdam op per variable:
    the update keras.optimizers.Adam.update_step computes, in a fraction of its ops."""

    def __init__(self, variables: list, learning_rate: float) -> None:
        tf = tensorflow()
        self.variables = variables
        self.learning_rate = learning_rate
        self.moments = [(tf.Variable(tf.zeros(v.shape)), tf.Variable(tf.zeros(v.shape))) for v in variables]
        self.iterations = tf.Variable(0.0)

    def apply(self, gradients) -> None:
        """One step; call inside a tf.function."""
        tf = tensorflow()
        self.iterations.assign_add(1.0)
        beta_1_power, beta_2_power = tf.pow(0.9, self.iterations), tf.pow(0.999, self.iterations)
        for variable, gradient, (m, v) in zip(self.variables, gradients, self.moments):
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle, m=m.handle, v=v.handle, beta1_power=beta_1_power, beta2_power=beta_2_power,
                lr=self.learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-7, grad=gradient,
            )


def fused_epoch(model, X: np.ndarray, y: np.ndarray, row_weights: np.ndarray, batch: int, learning_rate: float):
    """A tf.function that trains `model` (Dense layers) for one epoch and returns the mean batch loss.

    The maths of Keras' fit with class_weight and Adam, written with raw ops because per-op overhead, not
    arithmetic, is the cost of these tiny networks (docs/benchmarks.md):
    - rows shuffled every epoch (stateless, seeded by the epoch), consecutive mini-batches of `batch`;
    - Dense = matmul + bias, relu between, the loss from the last layer's logits with
      sigmoid_cross_entropy_with_logits: what keras.losses.binary_crossentropy computes for a sigmoid
      output (it recovers the logits);
    - the batch loss is sum(weight * loss) / rows in the batch, Keras' "sum_over_batch_size";
    - Adam with Keras' defaults (beta_1 0.9, beta_2 0.999, epsilon 1e-7) as one fused
      ResourceApplyAdam per variable, whose update is the one keras.optimizers.Adam.update_step does.
    """
    tf = tensorflow()
    layers = [(layer.kernel.value, layer.bias.value) for layer in model.layers]
    variables = [variable for pair in layers for variable in pair]
    features = tf.constant(X, dtype=tf.float32)
    labels = tf.constant(np.asarray(y, dtype=np.float32).reshape(-1, 1))
    weights = tf.constant(np.asarray(row_weights, dtype=np.float32).reshape(-1, 1))

    def logits(x):
        for kernel, bias in layers[:-1]:
            x = tf.nn.relu(tf.matmul(x, kernel) + bias)
        kernel, bias = layers[-1]
        return tf.matmul(x, kernel) + bias

    def batch_loss(xb, yb, wb):
        per_row = tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=logits(xb))
        loss = tf.reduce_sum(per_row * wb) / tf.cast(tf.shape(xb)[0], tf.float32)
        return loss, loss

    return compiled_epoch([features, labels, weights], batch, variables, FusedAdam(variables, learning_rate), batch_loss)


def compiled_epoch(rows: list, batch: int, variables: list, adam: FusedAdam, batch_loss, tracked_shape=()):
    """A tf.function(shuffle_seed) that runs one epoch of mini-batch Adam and returns the mean of what
    batch_loss tracks over the epoch's batches.

    The tensors in `rows` (one entry per training row each) are shuffled together, stateless and seeded by
    the epoch, and cut into consecutive batches of `batch`; batch_loss(*batch_rows) returns (the loss to
    minimise, the value to track, of shape tracked_shape). Shared by single trials and populations.
    """
    tf = tensorflow()
    n_rows = int(rows[0].shape[0])
    n_batches = -(-n_rows // batch)

    @tf.function
    def run_epoch(shuffle_seed):
        order = tf.argsort(tf.random.stateless_uniform([n_rows], seed=shuffle_seed))
        shuffled = [tf.gather(row, order) for row in rows]
        total = tf.zeros(tracked_shape)
        for step in tf.range(n_batches):
            start = step * batch
            batch_rows = [row[start : start + batch] for row in shuffled]
            with tf.GradientTape() as tape:
                loss, tracked = batch_loss(*batch_rows)
            adam.apply(tape.gradient(loss, variables))
            total += tracked
        return total / tf.cast(n_batches, tf.float32)

    return run_epoch


def score(model, X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Predicted probability of the positive class for each row, in row order."""
    parts = [model(X[i : i + chunk], training=False).numpy().ravel() for i in range(0, len(X), chunk)]
    return np.concatenate(parts) if parts else np.empty(0)
