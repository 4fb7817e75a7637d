"""Per-trial cost and learning quality of tutorial-style `fit` against sweep.models.network; memory over many trials.

    python benchmarks/trial_speed.py [--seeds 5] [--memory-trials 200]

1. Seconds per trial on the reference case (64,000 training rows, width 2, batch 100, 50 epochs, the
   tutorial's "balanced" class weights), both paths run side by side, once per seed: median, spread, ratio.
2. Quality from the same runs: validation average precision and F1 at the best threshold (max over the
   precision-recall curve), mean ± sd over seeds.
3. Resident memory of one process running `--memory-trials` short trials (2 epochs) through run_sweep.
Prints markdown tables (paste them into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, mean_sd, resident_mb, sqlite_storage, study_config, timed_sweep, tutorial_fit  # noqa: E402

from sweep.config import SweepConfig  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.metrics import balanced_class_weight  # noqa: E402
from sweep.models.network import TrainSettings, score, train_model  # noqa: E402
from sweep.runtime import tensorflow  # noqa: E402


def best_f1(y, scores) -> float:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(y, scores)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    return float(f1.max())


def quality(dataset, scores) -> tuple[float, float]:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(dataset.holdout.y, scores)), best_f1(dataset.holdout.y, scores)


def tutorial_fit_trial(dataset, class_weight, seed: int):
    """common.tutorial_fit on the reference case (width 2, batch 100, 50 epochs), then its validation quality."""
    fit = tutorial_fit(dataset.train.X, dataset.train.y, class_weight, seed=seed)
    return fit.seconds, quality(dataset, fit.model.predict(dataset.holdout.X, verbose=0).ravel())


def sweep_trial(dataset, class_weight, seed: int):
    started = time.perf_counter()
    model, _ = train_model(dataset.train.X, dataset.train.y, 2, class_weight, TrainSettings(50, 100, 0.001, 1, seed))
    seconds = time.perf_counter() - started
    return seconds, quality(dataset, score(model, dataset.holdout.X))


def speed_and_quality(seeds: int) -> None:
    dataset = load_dataset(SweepConfig())
    weights = balanced_class_weight(dataset.train.y)
    runs = {"tutorial-style model.fit": [], "sweep.models.network": []}
    for seed in range(seeds):  # interleaved, so both paths see the same machine
        runs["tutorial-style model.fit"].append(tutorial_fit_trial(dataset, weights, seed))
        runs["sweep.models.network"].append(sweep_trial(dataset, weights, seed))
    fit_median = statistics.median(s for s, _ in runs["tutorial-style model.fit"])
    print(
        f"\n### Seconds per trial and quality ({seeds} seeds, class weight {{0: {weights[0]:.4f}, 1: "
        f"{weights[1]:.2f}}})\n"
    )
    print("| path | s/trial median | min-max | speed-up | val average precision | val F1 at best threshold |")
    print("|---|---|---|---|---|---|")
    for name, results in runs.items():
        seconds = [s for s, _ in results]
        median = statistics.median(seconds)
        print(
            f"| {name} | {median:.2f} | {min(seconds):.2f}-{max(seconds):.2f} | {fit_median / median:.1f}x | "
            f"{mean_sd(q[0] for _, q in results)} | {mean_sd(q[1] for _, q in results)} |"
        )


def memory(trials: int) -> None:
    marks = {}

    def record(study, trial) -> None:
        done = len(study.trials)
        if done in (1, 10, 25, 50, 100, 150, 200) or done == trials:
            marks[done] = resident_mb()

    with tempfile.TemporaryDirectory() as folder:
        config = study_config(
            sqlite_storage(folder, "memory"), "memory", {"trials": trials, "epochs": 2, "pruner": "none"}
        )
        seconds = timed_sweep(config, callbacks=[record]).seconds
    print(f"\n### Resident memory over {trials} trials (2 epochs each, reference data, {seconds:.0f} s)\n")
    print("| trials done | RSS (MB) | growth since trial 10 (MB) |")
    print("|---|---|---|")
    for done, rss in sorted(marks.items()):
        print(f"| {done} | {rss:.0f} | {rss - marks.get(10, rss):+.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--memory-trials", type=int, default=200)
    args = parser.parse_args()
    tensorflow()
    print(f"Machine: {machine()}")
    speed_and_quality(args.seeds)
    memory(args.memory_trials)


if __name__ == "__main__":
    main()
