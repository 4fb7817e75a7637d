"""What a trial costs as the user runs it: the tutorial-style `fit` against whole `sweep run`s, and where the
rest of a trial's time goes in a small study and in a study of 20,000 trials.

    python benchmarks/lean_trials.py [--repeats 3] [--epochs 10 50] [--big 20000]

1. Seconds per trial on the reference case (64,000 training rows, batch 100, pruner none so every trial
   runs all its epochs), at each `--epochs`, in one process and interleaved `--repeats` times: one
   tutorial-style `model.fit` (training only; it pays nothing for Optuna), then `run_sweep` on a fresh
   SQLite study with single trials (population 1) and with one population round of 64. Each sweep is
   timed whole: loading the data, creating the study, asking, training, per-epoch reports, metrics,
   figures, tell. The ratio is the tutorial's median over the sweep's median.
2. Where a trial's time goes, in a study that already holds 20 trials and one that holds `--big`
   (pre-filled through Optuna's add_trials): per trial once the run has started (single trials from the
   second on, populations over their second round), the compiled epochs, the sampler's own time (TPE's
   calls), Optuna's own ask and tell, and the rest, which is our bookkeeping (storage writes, budget
   checks, validation scoring and metrics, per-epoch reports, figures). Ours must not grow with the study. The run's
   start (opening the study and Optuna's one read of its trials into its cache) is printed apart.
Prints markdown tables (paste them into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import optuna  # noqa: E402
import optuna.study._optimize  # noqa: E402  (the Clock times Optuna's tell)
import optuna.study._tell  # noqa: E402
from common import machine, sqlite_storage, study_config, timed_sweep, tutorial_fit  # noqa: E402

import sweep.models.network  # noqa: E402
import sweep.models.population  # noqa: E402
from sweep.config import SweepConfig, resolve_config  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.metrics import balanced_class_weight  # noqa: E402
from sweep.runtime import tensorflow  # noqa: E402
from sweep.study.runner import run_sweep  # noqa: E402  (prefill's one untimed trial)

SINGLE_TRIALS = {10: 8, 50: 4}  # trials per single-trial run, by epochs (enough to spread the study's creation)
POPULATION = 64


class Clock:
    """Seconds spent in the compiled epochs, in the sampler and in Optuna's ask and tell, added up while a sweep
    runs. Each part counts its own time only: TPE's before_trial inside ask counts as the sampler's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._inner: list[float] = []  # time spent in timed parts nested inside each open one

    def timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            self._inner.append(0.0)
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                self.seconds[part] += elapsed - self._inner.pop()
                if self._inner:
                    self._inner[-1] += elapsed

        return wrapper

    def install(self) -> None:
        """Time every compiled epoch (single trials and populations), every call into TPE, and Optuna's ask and
        tell (private names of Optuna's modules: this is a benchmark, not the package)."""
        original = sweep.models.network.compiled_epoch

        def timed_compiled_epoch(*args, **kwargs):
            return self.timed("epochs", original(*args, **kwargs))

        sweep.models.network.compiled_epoch = sweep.models.population.compiled_epoch = timed_compiled_epoch
        for name in (
            "infer_relative_search_space",
            "sample_relative",
            "sample_independent",
            "before_trial",
            "after_trial",
        ):
            setattr(optuna.samplers.TPESampler, name, self.timed("sampler", getattr(optuna.samplers.TPESampler, name)))
        optuna.study.Study.ask = self.timed("ask/tell", optuna.study.Study.ask)
        tell = self.timed("ask/tell", optuna.study._tell._tell_with_warning)
        optuna.study._optimize._tell_with_warning = optuna.study.study._tell_with_warning = tell

    def reset(self) -> None:
        self.seconds.clear()


def sweep_config(folder: str, name: str, trials: int, epochs: int, population: int) -> SweepConfig:
    values = {"trials": trials, "epochs": epochs, "population": population, "pruner": "none", "batch_size": 100}
    return study_config(sqlite_storage(folder, name), name, values)


def speed(epoch_counts: list[int], repeats: int, clock: Clock) -> None:
    dataset = load_dataset(SweepConfig())
    weights = balanced_class_weight(dataset.train.y)
    for epochs in epoch_counts:
        runs: dict[str, list[float]] = defaultdict(list)
        for repeat in range(repeats):  # interleaved, so every path sees the same machine
            with tempfile.TemporaryDirectory() as folder:
                baseline = tutorial_fit(dataset.train.X, dataset.train.y, weights, seed=repeat, epochs=epochs)
                runs["tutorial-style model.fit"].append(baseline.seconds)
                for label, trials, population in (
                    ("sweep run, single trials", SINGLE_TRIALS[epochs], 1),
                    (f"sweep run, population of {POPULATION}", POPULATION, POPULATION),
                ):
                    config = sweep_config(folder, f"p{population}-r{repeat}", trials, epochs, population)
                    clock.reset()
                    runs[label].append(timed_sweep(config).per_trial)
        fit = statistics.median(runs["tutorial-style model.fit"])
        print(f"\n### {epochs} epochs: seconds per trial ({repeats} interleaved repeats)\n")
        print("| path | trials per run | s/trial median | min-max | vs tutorial fit |")
        print("|---|---|---|---|---|")
        sizes = {"tutorial-style model.fit": 1, "sweep run, single trials": SINGLE_TRIALS[epochs]}
        for label, seconds in runs.items():
            median = statistics.median(seconds)
            print(
                f"| {label} | {sizes.get(label, POPULATION)} | {median:.3f} | {min(seconds):.3f}-{max(seconds):.3f} | "
                f"{fit / median:.1f}x |"
            )


def prefill(config: SweepConfig, extra: int) -> None:
    """Create the study with one real trial, then add `extra` finished trials of its space through Optuna."""
    import numpy as np

    first = resolve_config(config.to_dict() | {"trials": 1, "population": 1}, env={})
    run_sweep(first)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    template = study.trials[0]
    rng = np.random.default_rng(0)
    made = []
    for _ in range(extra):
        params = {}
        for name, distribution in template.distributions.items():
            if isinstance(distribution, optuna.distributions.IntDistribution):
                params[name] = int(rng.integers(distribution.low, distribution.high + 1))
            else:
                params[name] = float(rng.uniform(distribution.low, distribution.high))
        made.append(
            optuna.trial.create_trial(
                params=params,
                distributions=template.distributions,
                value=float(rng.uniform(0, 0.2)),
                user_attrs={key: template.user_attrs[key] for key in ("train_settings", "val_f1", "val_flag_rate")},
            )
        )
    study.add_trials(made)


def copy_sqlite(source: str, target: str) -> None:
    """Copy a SQLite study with what its write-ahead log still holds (a file copy would lose it)."""
    import sqlite3

    with sqlite3.connect(source) as reading, sqlite3.connect(target) as writing:
        reading.backup(writing)


def steady_state(config: SweepConfig, clock: Clock, start_trials: int) -> tuple[float, dict, int, float]:
    """Run the sweep, stamping the time and the clock at each finished trial; returns (seconds, clock parts,
    trials) after the first `start_trials` trials were told, and the seconds until then (the run's start:
    opening the study, Optuna's first read of its trials into its cache, the first trial or round)."""
    stamps = []
    clock.reset()
    timing = timed_sweep(
        config, callbacks=[lambda _study, _trial: stamps.append((time.perf_counter(), dict(clock.seconds)))]
    )
    (first, at_first), (last, at_last) = stamps[start_trials - 1], stamps[-1]
    parts = {name: at_last.get(name, 0.0) - at_first.get(name, 0.0) for name in at_last}
    return last - first, parts, len(stamps) - start_trials, first - timing.started


def bookkeeping(big: int, epochs: int, clock: Clock) -> None:
    """Per-trial costs after the run's start: single trials from the second trial on, populations over their
    second round of 64 (a round's trials are all told at its end)."""
    print(f"\n### Where a trial's time goes, by the size of the study ({epochs} epochs)\n")
    print(
        "| study holds | path | trials timed | s/trial | epochs | sampler (TPE) | Optuna's ask + tell | ours (the "
        "rest) | run start (s, once) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for held in (20, big):
            base = sweep_config(folder, f"held{held}", 1 + held, epochs, 1)
            prefill(base, held)
            for label, trials, population in (
                ("single trials", 9, 1),
                (f"population of {POPULATION}", 2 * POPULATION, POPULATION),
            ):
                copy = f"held{held}-p{population}"
                copy_sqlite(f"{folder}/held{held}.db", f"{folder}/{copy}.db")
                config = resolve_config(
                    base.to_dict()
                    | {
                        "storage": f"sqlite:///{folder}/{copy}.db",
                        "trials": 1 + held + trials,
                        "population": population,
                    },
                    env={},
                )
                seconds, parts, timed, start = steady_state(config, clock, population)
                train, sampler, optuna_own = (parts.get(name, 0.0) for name in ("epochs", "sampler", "ask/tell"))
                rest = seconds - train - sampler - optuna_own
                print(
                    f"| {held + 1:,} | {label} | {timed} | {seconds / timed:.3f} | {train / timed:.3f} | "
                    f"{sampler / timed:.3f} | {optuna_own / timed:.3f} | {rest / timed:.3f} | {start:.1f} |"
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--big", type=int, default=20_000, help="trials in the big study of part 2")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-bookkeeping", action="store_true")
    args = parser.parse_args()
    tensorflow()
    print(f"Machine: {machine()}")
    clock = Clock()
    clock.install()
    if not args.skip_speed:
        speed(args.epochs, args.repeats, clock)
    if not args.skip_bookkeeping:
        bookkeeping(args.big, 10, clock)


if __name__ == "__main__":
    main()
