"""Seconds per epoch of the reference trial (64,000 rows, width 2, batch 100) for four training loops.

    python benchmarks/epoch_loops.py [--epochs 5] [--repeats 3] [--intra-op-threads N] [--inter-op-threads M]

Rows: the tutorial-style `model.fit`; `fit` with `steps_per_execution` covering the epoch; the Keras model
and optimizer called inside one tf.function per epoch; and sweep.models.network's fused loop (raw ops, one
ResourceApplyAdam per variable). Prints a markdown table: median and spread over repeats of seconds per
epoch, excluding the first (tracing) call of each loop.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import tutorial_fit  # noqa: E402

from sweep.config import SweepConfig  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.models.network import TrainSettings, train_model  # noqa: E402
from sweep.runtime import configure_threads, tensorflow, thread_settings  # noqa: E402

CLASS_WEIGHT = {0: 1.0, 1: 50.0}


def keras_fit(dataset, epochs: int, steps_per_execution: int) -> float:
    """common.tutorial_fit after one untimed (tracing) epoch: seconds per epoch of the timed fit."""
    fit = tutorial_fit(
        dataset.train.X,
        dataset.train.y,
        CLASS_WEIGHT,
        seed=0,
        epochs=epochs,
        steps_per_execution=steps_per_execution,
        warm_up_epochs=1,
    )
    return fit.seconds / epochs


def keras_in_function(dataset, epochs: int) -> float:
    """The first loop this project had: Keras model call, Keras loss and Keras Adam inside one tf.function."""
    import keras

    from sweep.models.network import build_model

    tf = tensorflow()
    keras.utils.set_random_seed(0)
    model = build_model(2, 2, 1)
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    X, y = tf.constant(dataset.train.X), tf.constant(dataset.train.y.astype("float32").reshape(-1, 1))
    w = tf.constant(np.where(dataset.train.y == 1, 50.0, 1.0).astype("float32"))
    n, batch = len(dataset.train.y), 100

    @tf.function
    def run_epoch(seed):
        order = tf.argsort(tf.random.stateless_uniform([n], seed=seed))
        xs, ys, ws = tf.gather(X, order), tf.gather(y, order), tf.gather(w, order)
        for step in tf.range(n // batch):
            s = step * batch
            with tf.GradientTape() as tape:
                per_row = keras.losses.binary_crossentropy(ys[s : s + batch], model(xs[s : s + batch], training=True))
                loss = tf.reduce_sum(per_row * ws[s : s + batch]) / batch
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))

    run_epoch(tf.constant([0, 0], dtype=tf.int64))
    started = time.perf_counter()
    for epoch in range(epochs):
        run_epoch(tf.constant([0, epoch + 1], dtype=tf.int64))
    return (time.perf_counter() - started) / epochs


def fused(dataset, epochs: int) -> float:
    stamps = []
    settings = TrainSettings(epochs + 1, 100, 0.001, 1, 0)
    train_model(
        dataset.train.X,
        dataset.train.y,
        2,
        CLASS_WEIGHT,
        settings,
        on_epoch=lambda *_: stamps.append(time.perf_counter()),
    )
    return (stamps[-1] - stamps[0]) / epochs  # from the end of the first (tracing) epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--intra-op-threads", type=int, default=0)
    parser.add_argument("--inter-op-threads", type=int, default=0)
    parser.add_argument(
        "--only-fused", action="store_true", help="time only sweep.models.network (for thread comparisons)"
    )
    args = parser.parse_args()
    configure_threads(args.intra_op_threads, args.inter_op_threads)
    tf = tensorflow()
    dataset = load_dataset(SweepConfig())
    loops = {
        "model.fit (tutorial style)": lambda: keras_fit(dataset, args.epochs, 1),
        "model.fit, steps_per_execution=640": lambda: keras_fit(dataset, args.epochs, 640),
        "Keras model + optimizer in one tf.function": lambda: keras_in_function(dataset, args.epochs),
        "sweep.models.network fused loop (raw ops, ResourceApplyAdam)": lambda: fused(dataset, args.epochs),
    }
    if args.only_fused:
        loops = {name: run for name, run in loops.items() if name.startswith("sweep.models.network")}
    # Interleave the loops over repeats so a slow patch of the machine hits all of them alike.
    results = {name: [] for name in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            results[name].append(run())
    baseline = (
        statistics.median(results["model.fit (tutorial style)"]) if "model.fit (tutorial style)" in results else None
    )
    print(
        f"{platform.machine()}, tensorflow {tf.__version__}, threads {thread_settings()}, {args.repeats} repeats x "
        f"{args.epochs} epochs"
    )
    print("| loop | s/epoch (median) | spread (min-max) | speed-up vs fit |")
    print("|---|---|---|---|")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        ratio = f"{baseline / median:.1f}x" if baseline else "-"
        print(f"| {name} | {median:.3f} | {min(seconds):.3f}-{max(seconds):.3f} | {ratio} |")


if __name__ == "__main__":
    main()
