"""Helpers shared by the benchmark scripts: machine description, resident memory, t intervals, the tutorial-style
fit every timing is compared with, and timed sweeps on fresh studies."""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.study.summary import SweepResult


def machine() -> str:
    """One line: date, CPU model, cores, Python and the versions that matter for timings (and quiets Optuna)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    from sweep.runtime import available_cores

    versions = ", ".join(f"{name} {metadata.version(name)}" for name in ("tensorflow", "keras", "optuna"))
    return (
        f"{date.today().isoformat()}, {model}, {available_cores()} cores, Python {platform.python_version()}, "
        f"{versions}"
    )


def resident_mb() -> float:
    """Resident set size of this process in MB (Linux /proc)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def t_interval(values) -> tuple[float, float, float]:
    """Mean and 95% t interval of paired differences over repeats (Student's t, n - 1 degrees of freedom)."""
    import math

    from scipy import stats

    values = [v for v in values if not math.isnan(v)]
    mean = statistics.mean(values)
    if len(values) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def interval_text(values, digits: int = 3) -> str:
    """A mean and its 95% t interval (t_interval) as every benchmark table prints them: +0.012 [-0.003, +0.027]."""
    mean, low, high = t_interval(values)
    return f"{mean:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def mean_sd(values) -> str:
    values = list(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


@dataclass
class FitTime:
    """What tutorial_fit measured: the fitted model, seconds to compile it, and the timed region's wall and CPU s."""

    model: Any
    built: float  # seed, build, compile (and optimizer.build): from the start to the compiled model
    seconds: float  # wall seconds of the timed region
    cpu: float  # CPU seconds of this process over the timed region


def tutorial_fit(
    X,
    y,
    class_weight: dict,
    *,
    seed: int = 0,
    epochs: int = 50,
    batch_size: int = 100,
    build: Callable[[], Any] | None = None,
    width: int = 2,
    learning_rate: float | None = None,
    build_optimizer: bool = False,
    steps_per_execution: int = 1,
    warm_up_epochs: int = 0,
    validation: tuple | None = None,
) -> FitTime:
    """The baseline every sweep timing is compared with, timed: the tutorial's way (seed, build, compile with Adam and
    binary cross-entropy, `model.fit` on numpy rows with class weights, nothing of Optuna's).

    The model is `build()`, or the tutorial's Dense layers (sweep.models.network.build_model, `width` hidden units);
    Adam is Keras's "adam" (rate 0.001) unless `learning_rate` is given. With `build_optimizer` the optimizer's
    variables are made before fit, as sweep.models.keras_fit does (no second trace). The timed region runs from the
    seed to the end of fit; with `warm_up_epochs`, an untimed first fit of that many epochs traces the step first and
    only the second fit is timed. With `validation` (X_val, y_val), fit scores those rows after every epoch, in one
    batch, as Keras' validation_data does (the counterpart of a sweep trial's per-epoch scoring).
    """
    import keras

    from sweep.models.network import build_model

    started, cpu = time.perf_counter(), time.process_time()
    keras.utils.set_random_seed(seed)
    model = build() if build is not None else build_model(X.shape[1], width, 1)
    optimizer = "adam" if learning_rate is None else keras.optimizers.Adam(learning_rate=learning_rate)
    model.compile(optimizer=optimizer, loss="binary_crossentropy", steps_per_execution=steps_per_execution)
    if build_optimizer:
        model.optimizer.build(model.trainable_variables)
    built = time.perf_counter() - started
    if warm_up_epochs:
        model.fit(X, y, epochs=warm_up_epochs, batch_size=batch_size, class_weight=class_weight, verbose=0)
        started, cpu = time.perf_counter(), time.process_time()
    validating = {} if validation is None else {"validation_data": validation, "validation_batch_size": 1024}
    model.fit(X, y, epochs=epochs, batch_size=batch_size, class_weight=class_weight, verbose=0, **validating)
    return FitTime(model, built, time.perf_counter() - started, time.process_time() - cpu)


def sqlite_storage(folder, name: str) -> str:
    """The URL of SQLite file `name`.db in `folder` (a temporary folder, so every timed sweep starts a fresh study)."""
    return f"sqlite:///{folder}/{name}.db"


def study_config(storage: str, study: str, values: dict, config_file=None) -> SweepConfig:
    """The checked config of `study` in `storage` with `values` as flags, ignoring the environment (timings must not
    depend on the shell's SWEEP_ variables)."""
    from sweep.config import resolve_config

    return resolve_config({"storage": storage, "study": study, **values}, config_file=config_file, env={})


@dataclass
class SweepTime:
    """What timed_sweep measured: the run's result, its wall and CPU seconds, and when it started (to place stamps)."""

    result: SweepResult
    seconds: float  # wall seconds of the whole run
    cpu: float  # CPU seconds of this process (worker processes' own are not counted)
    started: float  # time.perf_counter() at the start, for callbacks' stamps
    started_wall: float  # time.time() at the start, for trials' datetime_start

    @property
    def per_trial(self) -> float:
        """Wall seconds of the whole run over the trials it ran."""
        return self.seconds / self.result.ran_now


def timed_sweep(config: SweepConfig, callbacks: Sequence = (), workers: bool = False) -> SweepTime:
    """Time one whole run as the user runs it (data, study creation, every trial, tells): run_sweep, or run_workers
    for `config.workers` processes; nothing but the run is inside the timed region."""
    from sweep.study.runner import run_sweep, run_workers

    assert not (workers and callbacks), "run_workers takes no trial callbacks"
    started_wall, started, cpu = time.time(), time.perf_counter(), time.process_time()
    result = run_workers(config) if workers else run_sweep(config, callbacks=callbacks)
    return SweepTime(result, time.perf_counter() - started, time.process_time() - cpu, started, started_wall)
