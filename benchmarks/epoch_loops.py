"""Seconds per epoch of the reference trial (64,000 rows, width 2, batch 100) for three training loops.

    python benchmarks/epoch_loops.py [--epochs 3] [--repeats 3]

Rows: the tutorial-style `model.fit`, `fit` with `steps_per_execution` covering the epoch, and
sweep.train.train_model (each epoch one tf.function). Prints a markdown table: median and spread over
repeats of seconds per epoch, excluding the first (tracing) call of each loop.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from sweep.config import SweepConfig
from sweep.data import load_dataset
from sweep.runtime import tensorflow
from sweep.train import TrainSettings, train_model

CLASS_WEIGHT = {0: 1.0, 1: 50.0}


def keras_fit(dataset, epochs: int, steps_per_execution: int) -> float:
    import keras

    from sweep.model import build_model

    keras.utils.set_random_seed(0)
    model = build_model(2, 2, 1)
    model.compile(optimizer="adam", loss="binary_crossentropy", steps_per_execution=steps_per_execution)
    model.fit(dataset.train.X, dataset.train.y, epochs=1, batch_size=100, class_weight=CLASS_WEIGHT, verbose=0)
    started = time.perf_counter()
    model.fit(dataset.train.X, dataset.train.y, epochs=epochs, batch_size=100, class_weight=CLASS_WEIGHT, verbose=0)
    return (time.perf_counter() - started) / epochs


def compiled_epochs(dataset, epochs: int) -> float:
    stamps = []
    settings = TrainSettings(epochs + 1, 100, 0.001, 1, 0)
    train_model(dataset.train.X, dataset.train.y, 2, CLASS_WEIGHT, settings, on_epoch=lambda *_: stamps.append(time.perf_counter()))
    return (stamps[-1] - stamps[0]) / epochs  # from the end of the first (tracing) epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tf = tensorflow()
    dataset = load_dataset(SweepConfig())
    loops = {
        "model.fit (tutorial style)": lambda: keras_fit(dataset, args.epochs, 1),
        "model.fit, steps_per_execution=640": lambda: keras_fit(dataset, args.epochs, 640),
        "sweep.train (epoch = one tf.function)": lambda: compiled_epochs(dataset, args.epochs),
    }
    results = {name: [run() for _ in range(args.repeats)] for name, run in loops.items()}
    baseline = statistics.median(results["model.fit (tutorial style)"])
    print(f"{platform.processor() or platform.machine()}, tensorflow {tf.__version__}, {args.repeats} repeats x {args.epochs} epochs")
    print("| loop | s/epoch (median) | spread (min-max) | speed-up vs fit |")
    print("|---|---|---|---|")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"| {name} | {median:.3f} | {min(seconds):.3f}-{max(seconds):.3f} | {baseline / median:.1f}x |")


if __name__ == "__main__":
    main()
