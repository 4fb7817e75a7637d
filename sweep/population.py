"""Population training: K trials' networks stacked into one compiled model and trained together.

Member k has its own minority weight, width (narrower members are masked to their width inside a
shared maximum width) and initial weights; the loss is the sum of the members' weighted losses, so each
member's gradient is its own and Adam (element-wise) keeps the members independent. Per-step overhead is
paid once for all K members, which is where the time of these tiny networks goes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweep.runtime import detect_device, tensorflow
from sweep.train import FusedAdam


@dataclass(frozen=True)
class Member:
    """One trial inside a population: its width, class weights and initialisation seed."""

    hidden_width: int
    minority_weight: float
    seed: int


class Population:
    """Stacked weights of K one-hidden-layer networks: W1 (K, d, W), b1 (K, W), W2 (K, W, 1), b2 (K, 1)."""

    def __init__(self, n_features: int, members: list[Member]) -> None:
        tf = tensorflow()
        self.members = members
        width = max(m.hidden_width for m in members)
        shapes = {"W1": (n_features, width), "b1": (width,), "W2": (width, 1), "b2": (1,)}
        stacked = {name: np.zeros((len(members), *shape), dtype=np.float32) for name, shape in shapes.items()}
        mask = np.zeros((len(members), width), dtype=np.float32)
        for k, member in enumerate(members):
            # Keras' Dense default initialisation (Glorot uniform kernels, zero biases) for the member's own width.
            rng = np.random.default_rng(member.seed)
            w = member.hidden_width
            limit_1, limit_2 = np.sqrt(6 / (n_features + w)), np.sqrt(6 / (w + 1))
            stacked["W1"][k, :, :w] = rng.uniform(-limit_1, limit_1, size=(n_features, w))
            stacked["W2"][k, :w, :] = rng.uniform(-limit_2, limit_2, size=(w, 1))
            mask[k, :w] = 1.0
        self.variables = {name: tf.Variable(value) for name, value in stacked.items()}
        self.mask = tf.constant(mask)

    def logits(self, x):
        """(K, rows) logits of every member for rows x (rows, d)."""
        tf = tensorflow()
        v = self.variables
        hidden = tf.nn.relu(tf.einsum("bd,kdw->kbw", x, v["W1"]) + v["b1"][:, None, :]) * self.mask[:, None, :]
        return tf.squeeze(tf.einsum("kbw,kwo->kbo", hidden, v["W2"]) + v["b2"][:, None, :], axis=-1)

    def scores(self, X: np.ndarray, chunk: int = 32_768) -> np.ndarray:
        """(K, rows) predicted probabilities of the positive class."""
        tf = tensorflow()
        parts = [tf.sigmoid(self.logits(tf.constant(X[i : i + chunk], dtype=tf.float32))).numpy() for i in range(0, len(X), chunk)]
        return np.concatenate(parts, axis=1)

    def member_model(self, k: int):
        """Member k as a plain Keras model of its own width (weights sliced out of the population)."""
        from sweep.model import build_model

        width = self.members[k].hidden_width
        v = {name: variable.numpy() for name, variable in self.variables.items()}
        model = build_model(v["W1"].shape[1], width, 1)
        model.set_weights([v["W1"][k][:, :width], v["b1"][k][:width], v["W2"][k][:width], v["b2"][k]])
        return model


def train_population(
    X: np.ndarray,
    y: np.ndarray,
    members: list[Member],
    epochs: int,
    batch: int,
    learning_rate: float,
    shuffle_seed: int,
    on_epoch: Callable[[int, np.ndarray, Population, np.ndarray], np.ndarray] | None = None,
):
    """Train the population; returns (population, epochs run per member, seconds, device).

    on_epoch(epoch, member_losses, population, active) returns which members stay active; an inactive
    member's loss leaves the sum, so it gets no gradient from then on. A member's trajectory does not
    depend on the others (no sum across members reaches its gradient), so retraining reproduces it.
    """
    tf = tensorflow()
    device = detect_device()
    started = time.perf_counter()
    with tf.device(device):
        population = Population(X.shape[1], members)
        variables = list(population.variables.values())
        adam = FusedAdam(variables, learning_rate)
        features = tf.constant(X, dtype=tf.float32)
        labels = tf.constant(np.asarray(y, dtype=np.float32))
        positive = tf.constant([[m.minority_weight] for m in members], dtype=tf.float32)
        active = tf.Variable(np.ones(len(members), dtype=np.float32))
        n_rows, size = len(y), len(members)
        n_batches = -(-n_rows // batch)

        @tf.function
        def run_epoch(seed):
            order = tf.argsort(tf.random.stateless_uniform([n_rows], seed=seed))
            xs, ys = tf.gather(features, order), tf.gather(labels, order)
            totals = tf.zeros(size)
            for step in tf.range(n_batches):
                start = step * batch
                xb, yb = xs[start : start + batch], ys[start : start + batch]
                rows = tf.cast(tf.shape(xb)[0], tf.float32)
                with tf.GradientTape() as tape:
                    targets = tf.broadcast_to(yb[None, :], [size, tf.shape(yb)[0]])
                    per_row = tf.nn.sigmoid_cross_entropy_with_logits(labels=targets, logits=population.logits(xb))
                    weights = yb[None, :] * positive + (1.0 - yb[None, :])  # {0: 1.0, 1: minority_weight}
                    member_loss = tf.reduce_sum(per_row * weights, axis=1) / rows
                    loss = tf.reduce_sum(member_loss * active)
                adam.apply(tape.gradient(loss, variables))
                totals += member_loss
            return totals / tf.cast(n_batches, tf.float32)

        epochs_run = np.zeros(size, dtype=int)
        for epoch in range(epochs):
            still = active.numpy() > 0
            if not still.any():
                break
            losses = run_epoch(tf.constant([shuffle_seed, epoch], dtype=tf.int64)).numpy()
            epochs_run[still] = epoch + 1
            if on_epoch is not None:
                active.assign(np.asarray(on_epoch(epoch + 1, losses, population, still), dtype=np.float32))
    return population, epochs_run, time.perf_counter() - started, device
