"""Helpers shared by the benchmark scripts: machine description, resident memory, markdown rows."""

from __future__ import annotations

import platform
import statistics
from datetime import date
from importlib import metadata


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


def mean_sd(values) -> str:
    values = list(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"
