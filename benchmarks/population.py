"""Population training: finished trials per hour against the tutorial-style fit, and equal learning.

    python benchmarks/population.py [--repeats 2] [--seeds 3]

1. Finished trials per hour on the reference case (64,000 training rows, batch 100, 50 epochs, no pruning
   so every trial runs all its epochs), measured in one run and interleaved `--repeats` times: the
   tutorial-style `fit` (training and validation scoring only, no storage: the baseline pays nothing for
   Optuna), our single-trial trainer and populations of 8, 32 and 64 through `run_sweep` on a SQLite file
   (ask, train, per-epoch reports to every trial, final metrics and tell all included).
2. Equal learning: 8 fixed (width, minority weight) members, trained as one population and each alone
   with the single-trial trainer, once per seed; validation average precision mean ± sd over seeds.
3. Cost per member-epoch against K (training only, widths drawn log-uniform from the default 1-64 range):
   where a bigger population stops paying, which sets sweep.models.population.UNITS_PER_POPULATION.
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
from common import machine, mean_sd, sqlite_storage, study_config, timed_sweep, tutorial_fit  # noqa: E402

from sweep.config import SweepConfig  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.metrics import (
    average_precision,  # noqa: E402
    balanced_class_weight,  # noqa: E402
)
from sweep.models.network import TrainSettings, score, train_model  # noqa: E402
from sweep.models.population import Member, train_population  # noqa: E402
from sweep.runtime import configure_threads, tensorflow  # noqa: E402

POPULATIONS = (8, 32, 64)
# Members of the equal-learning table: narrow to wide, mild to extreme minority weights.
EQUAL_LEARNING_MEMBERS = [(1, 3.0), (2, 30.0), (4, 100.0), (8, 10.0), (8, 300.0), (16, 50.0), (32, 5.0), (64, 200.0)]


def sweep_seconds(folder: str, trials: int, population: int, repeat: int) -> float:
    """Wall time of a fresh SQLite study run to `trials` finished trials (study creation included)."""
    values = {"trials": trials, "population": population, "pruner": "none", "seed": repeat}
    timing = timed_sweep(study_config(sqlite_storage(folder, f"p{population}-{repeat}"), "speed", values))
    assert timing.result.finished == trials, f"{timing.result.finished} of {trials} trials finished"
    return timing.seconds


def trials_per_hour(repeats: int, single_trials: int, tutorial_trials: int) -> None:
    dataset = load_dataset(SweepConfig())
    weights = balanced_class_weight(dataset.train.y)
    per_trial: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(repeats):  # interleaved, so every path sees the same machine
            runs = [(tutorial_trials, None), (single_trials, 1), *((k, k) for k in POPULATIONS)]
            for trials, population in runs:
                if population is None:
                    name = "tutorial-style model.fit"
                    X, y = dataset.train.X, dataset.train.y
                    seconds = sum(tutorial_fit(X, y, weights, seed=repeat * 10 + i).seconds for i in range(trials))
                else:
                    name = "sweep, single trials" if population == 1 else f"sweep, population of {population}"
                    seconds = sweep_seconds(folder, trials, population, repeat)
                per_trial.setdefault(name, []).append(seconds / trials)
                print(f"  {name}: {trials} trials in {seconds:.1f} s", file=sys.stderr)
    baseline = statistics.median(per_trial["tutorial-style model.fit"])
    print(f"\n### Finished trials per hour, reference case, 50 epochs, batch 100 ({repeats} interleaved repeats)\n")
    print("| path | trials per run | s/trial median | min-max | trials/hour | vs tutorial fit |")
    print("|---|---|---|---|---|---|")
    sizes = {"tutorial-style model.fit": tutorial_trials, "sweep, single trials": single_trials}
    for name, seconds in per_trial.items():
        median = statistics.median(seconds)
        trials = sizes.get(name) or int(name.rsplit(" ", 1)[1])
        print(
            f"| {name} | {trials} | {median:.3f} | {min(seconds):.3f}-{max(seconds):.3f} | {3600 / median:,.0f} | "
            f"{baseline / median:.1f}x |"
        )


def equal_learning(seeds: int) -> None:
    dataset = load_dataset(SweepConfig())
    X, y, Xv, yv = dataset.train.X, dataset.train.y, dataset.holdout.X, dataset.holdout.y
    alone: dict[int, list[float]] = {i: [] for i in range(len(EQUAL_LEARNING_MEMBERS))}
    together: dict[int, list[float]] = {i: [] for i in range(len(EQUAL_LEARNING_MEMBERS))}
    for seed in range(seeds):
        members = [Member(width, weight, seed) for width, weight in EQUAL_LEARNING_MEMBERS]
        population, _, _, _ = train_population(X, y, members, 50, 100, 0.001, shuffle_seed=seed)
        scores = population.scores(Xv)
        for i, (width, weight) in enumerate(EQUAL_LEARNING_MEMBERS):
            together[i].append(average_precision(yv, scores[i]))
            model, _ = train_model(X, y, width, {0: 1.0, 1: weight}, TrainSettings(50, 100, 0.001, 1, seed))
            alone[i].append(average_precision(yv, score(model, Xv)))
        print(f"  equal learning: seed {seed} done", file=sys.stderr)
    print(f"\n### Equal learning: validation average precision, alone and in one population of 8 ({seeds} seeds)\n")
    print("| width | minority weight | single trial | population member | difference | within spread |")
    print("|---|---|---|---|---|---|")
    for i, (width, weight) in enumerate(EQUAL_LEARNING_MEMBERS):
        difference = statistics.mean(together[i]) - statistics.mean(alone[i])
        spread = max(statistics.stdev(alone[i]), statistics.stdev(together[i])) if seeds > 1 else float("nan")
        verdict = "yes" if abs(difference) <= spread else "no"
        print(
            f"| {width} | {weight:g} | {mean_sd(alone[i])} | {mean_sd(together[i])} | {difference:+.4f} | {verdict} |"
        )
    all_alone = np.mean([v for values in alone.values() for v in values])
    all_together = np.mean([v for values in together.values() for v in values])
    print(f"\nMean over all members and seeds: single {all_alone:.4f}, population {all_together:.4f}.")


def cost_per_member_epoch(sizes: tuple[int, ...] = (1, 8, 16, 32, 64, 128, 256), epochs: int = 4) -> None:
    dataset = load_dataset(SweepConfig())
    rng = np.random.default_rng(0)
    print(f"\n### Cost per member-epoch against population size (training only, median of epochs 2-{epochs})\n")
    print("| K | hidden units (sum of widths) | s/epoch | ms per member-epoch | ms per unit-epoch |")
    print("|---|---|---|---|---|")
    for size in sizes:
        widths = np.round(np.exp(rng.uniform(np.log(0.5), np.log(64.5), size))).clip(1, 64).astype(int)
        members = [Member(int(w), 50.0, i) for i, w in enumerate(widths)]
        stamps: list[float] = []

        def stamp(_epoch, _losses, _population, active, stamps=stamps):
            stamps.append(time.perf_counter())
            return active

        started = time.perf_counter()
        train_population(dataset.train.X, dataset.train.y, members, epochs, 100, 0.001, 0, stamp)
        epoch = statistics.median(np.diff([started, *stamps])[1:])
        print(
            f"| {size} | {widths.sum()} | {epoch:.3f} | {1000 * epoch / size:.1f} | {1000 * epoch / widths.sum():.2f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--single-trials", type=int, default=8)
    parser.add_argument("--tutorial-trials", type=int, default=2)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-learning", action="store_true")
    parser.add_argument("--skip-cost", action="store_true")
    args = parser.parse_args()
    configure_threads()
    tensorflow()
    print(f"Machine: {machine()}")
    if not args.skip_speed:
        trials_per_hour(args.repeats, args.single_trials, args.tutorial_trials)
    if not args.skip_learning:
        equal_learning(args.seeds)
    if not args.skip_cost:
        cost_per_member_epoch()


if __name__ == "__main__":
    main()
