"""One frozen config object, resolved from defaults < TOML file < SWEEP_* environment < command line."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweep.errors import ConfigError
from sweep.metrics import parse_goal

DEFAULT_STORAGE = "sqlite:///studies/sweeps.db"
PRUNER_SYNTAX = "none | median | percentile:P | hyperband | successive_halving"
ENV_PREFIX = "SWEEP_"
CLUSTER_SYNTAX = "tcp://HOST:PORT (a running Dask scheduler) or local:N (start N local Dask worker processes, 1 to 64)"


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs; every field is a TOML key, a SWEEP_<KEY> variable and a --flag."""

    study: str = "minority-weight"
    storage: str = DEFAULT_STORAGE
    data: str = "seed"
    target: str | None = None
    positive_label: str | None = None
    trials: int = 30
    timeout: float | None = None
    epochs: int = 50
    batch_size: int = 100
    learning_rate: float | tuple[float, float] = 0.001  # a range LOW:HIGH is searched (log scale)
    objective: str = "f1"
    seed: int = 0
    minority_weight: tuple[float, float] = (1.0, 1000.0)
    hidden_width: tuple[int, int] = (1, 64)
    threshold: tuple[float, float] = (0.01, 0.99)
    hidden_layers: int = 1
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    pruner: str = "median"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    workers: int = 1
    population: int = 0
    device: str = "auto"
    heartbeat_interval: int = 10
    grace_period: int = 30
    cv: int | None = None  # folds per trial; 0 = one validation split; None = automatic (data.choose_folds)
    cv_repeats: int = 1
    features: tuple[str, ...] = ()  # input columns to use (empty = every column but the target)
    drop: tuple[str, ...] = ()
    min_level_count: int = 5
    max_levels: int = 50
    cluster: str | None = None  # Dask scheduler address or local:N (sweep.cluster); None: no Dask at all

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (ranges as lists), e.g. for the study's user attributes."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


KEYS = tuple(f.name for f in dataclasses.fields(SweepConfig))


def _expect(cond: bool, key: str, value: Any, source: str, expected: str) -> None:
    if not cond:
        raise ConfigError(f"{key} = {value!r} (from {source}) is invalid: expected {expected}; fix it in {source}")


def _as_int(key: str, value: Any, source: str) -> int:
    if isinstance(value, bool):
        _expect(False, key, value, source, "an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{key} = {value!r} (from {source}) is invalid: expected an integer; fix it in {source}") from None


def _as_float(key: str, value: Any, source: str) -> float:
    if isinstance(value, bool):
        _expect(False, key, value, source, "a number")
    try:
        return float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        raise ConfigError(f"{key} = {value!r} (from {source}) is invalid: expected a number; fix it in {source}") from None


def _as_range(key: str, value: Any, source: str, cast) -> tuple:
    """Accept [low, high] (TOML) or "low:high" (flag or environment)."""
    parts = value.split(":") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or len(parts) != 2:
        raise ConfigError(
            f"{key} = {value!r} (from {source}) is invalid: expected a range LOW:HIGH (or [low, high] in TOML); "
            f"fix it in {source}"
        )
    return (cast(key, parts[0], source), cast(key, parts[1], source))


def _as_columns(key: str, value: Any, source: str) -> tuple[str, ...]:
    """Accept ["a", "b"] (TOML) or "a,b" (flag or environment)."""
    parts = value.split(",") if isinstance(value, str) else value
    if not isinstance(parts, (list, tuple)) or not all(isinstance(p, str) for p in parts):
        raise ConfigError(f"{key} = {value!r} (from {source}) is invalid: expected column names COL,COL (or a TOML list); fix it in {source}")
    return tuple(p.strip() for p in parts if p.strip())


def _coerce(key: str, value: Any, source: str) -> Any:
    """Turn one raw value into the field's type and check its range; the message names key and source."""
    if key in ("features", "drop"):
        return _as_columns(key, value, source)
    if key == "cv":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto", "none")):
            return None
        folds = _as_int(key, value, source)
        _expect(folds == 0 or 2 <= folds <= 20, key, value, source, "auto, 0 (one validation split) or 2 to 20 folds")
        return folds
    if key in ("study", "storage", "data", "objective", "target", "positive_label"):
        if value is None and key in ("target", "positive_label"):
            return None
        text = str(value).strip()
        _expect(text != "", key, value, source, "a non-empty string")
        if key == "objective":
            parse_goal(text, source=source)
        return text
    if key == "pruner":
        text = str(value).strip().lower()
        name, _, argument = text.partition(":")
        if name == "percentile":
            share = _as_float(key, argument, source)
            _expect(0 < share < 100, key, value, source, "percentile:P with 0 < P < 100")
        else:
            _expect(name in ("none", "median", "hyperband", "successive_halving") and not argument, key, value, source, PRUNER_SYNTAX)
        return text
    if key == "device":
        text = str(value).strip().lower()
        name, _, index = text.partition(":")
        valid = text in ("auto", "cpu", "gpu") or (name == "gpu" and index.isdigit())
        _expect(valid, key, value, source, "auto | cpu | gpu | gpu:N")
        return text
    if key == "cluster":
        if value is None or str(value).strip().lower() in ("", "none"):
            return None
        text = str(value).strip()
        scheme, _, rest = text.partition("://")
        host, _, port = rest.rpartition(":")
        local = text.startswith("local:") and text[6:].isdigit() and 1 <= int(text[6:]) <= 64
        remote = scheme in ("tcp", "tls") and host != "" and port.isdigit() and 0 < int(port) < 65536
        _expect(local or remote, key, value, source, CLUSTER_SYNTAX)
        return text
    if key in ("trials", "epochs", "batch_size", "hidden_layers", "seed", "intra_op_threads", "inter_op_threads",
               "workers", "heartbeat_interval", "grace_period", "population", "cv_repeats", "min_level_count", "max_levels"):
        number = _as_int(key, value, source)
        low = 0 if key in ("seed", "intra_op_threads", "inter_op_threads", "population") else 1
        _expect(number >= low, key, value, source, f"an integer >= {low}")
        if key == "hidden_layers":
            _expect(number <= 8, key, value, source, "between 1 and 8 hidden layers")
        if key == "workers":
            _expect(number <= 64, key, value, source, "between 1 and 64 worker processes")
        if key == "population":
            _expect(number <= 512, key, value, source, "0 (automatic) or 1 to 512 trials trained together")
        if key == "cv_repeats":
            _expect(number <= 10, key, value, source, "between 1 and 10 repeats of the folds")
        return number
    if key == "timeout":
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        seconds = _as_float(key, value, source)
        _expect(seconds > 0, key, value, source, "a positive number of seconds")
        return seconds
    if key == "learning_rate":
        if isinstance(value, (list, tuple)) or (isinstance(value, str) and ":" in value):
            low, high = _as_range(key, value, source, _as_float)
            _expect(0 < low <= high < 10, key, value, source, "a rate or a range LOW:HIGH with 0 < LOW <= HIGH < 10")
            return (low, high)
        rate = _as_float(key, value, source)
        _expect(0 < rate < 10, key, value, source, "a number between 0 and 10 (exclusive), or a range LOW:HIGH to search")
        return rate
    if key in ("validation_fraction", "test_fraction"):
        share = _as_float(key, value, source)
        _expect(0 < share < 0.9, key, value, source, "a fraction between 0 and 0.9 (exclusive)")
        return share
    if key == "minority_weight":
        low, high = _as_range(key, value, source, _as_float)
        _expect(0 < low <= high, key, value, source, "0 < LOW <= HIGH (a weight relative to the majority's 1.0)")
        return (low, high)
    if key == "hidden_width":
        low, high = _as_range(key, value, source, _as_int)
        _expect(1 <= low <= high <= 4096, key, value, source, "1 <= LOW <= HIGH <= 4096 units")
        return (low, high)
    if key == "threshold":
        low, high = _as_range(key, value, source, _as_float)
        _expect(0 < low <= high < 1, key, value, source, "0 < LOW <= HIGH < 1")
        return (low, high)
    raise ConfigError(f"unknown config key {key!r} (from {source}); known keys: {', '.join(KEYS)}")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are errors that name the key."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing TOML file to --config") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML ({exc}); fix the file or drop --config") from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(
            f"config file {str(path)!r} has unknown key {unknown[0]!r}; known keys: {', '.join(KEYS)}"
        )
    return raw


def read_environment(env: Mapping[str, str]) -> dict[str, str]:
    """SWEEP_<KEY> variables (e.g. SWEEP_STORAGE, SWEEP_TRIALS) that name a config key."""
    return {key: env[ENV_PREFIX + key.upper()] for key in KEYS if ENV_PREFIX + key.upper() in env}


def resolve_config(
    cli: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
) -> SweepConfig:
    """Merge defaults < file < environment < flags (None means "not given") into one checked config."""
    env = os.environ if env is None else env
    layers: list[tuple[str, Mapping[str, Any]]] = []
    if config_file is not None:
        layers.append((f"config file {config_file}", read_config_file(config_file)))
    layers.append(("environment", read_environment(env)))
    layers.append(("command line", {k: v for k, v in (cli or {}).items() if v is not None}))

    values: dict[str, Any] = {}
    for source, layer in layers:
        for key, raw in layer.items():
            flag_source = f"--{key.replace('_', '-')}" if source == "command line" else source
            if source == "environment":
                flag_source = f"environment variable {ENV_PREFIX}{key.upper()}"
            values[key] = _coerce(key, raw, flag_source)
    config = SweepConfig(**values)
    if config.population > 1 and config.hidden_layers > 1:
        raise ConfigError(
            f"population = {config.population} trains one-hidden-layer networks, but hidden_layers = {config.hidden_layers}; "
            "use population = 1 for deeper networks"
        )
    if config.cv == 0 and config.cv_repeats > 1:
        raise ConfigError(
            f"cv_repeats = {config.cv_repeats} repeats cross-validation folds, but cv = 0 (one validation split); "
            "set --cv K or drop --cv-repeats"
        )
    if config.grace_period <= config.heartbeat_interval:
        raise ConfigError(
            f"grace_period = {config.grace_period} must be longer than heartbeat_interval = {config.heartbeat_interval} "
            "(a live worker would be declared dead); raise grace_period"
        )
    if config.data != "seed":
        # Resolve the data path now so the stored config still finds it from another working directory.
        config = dataclasses.replace(config, data=str(Path(config.data).expanduser().resolve()))
    return config


def config_from_dict(stored: Mapping[str, Any]) -> SweepConfig:
    """Rebuild a config stored on a study (lists back to tuples), checking it like any other source."""
    return SweepConfig(**{k: _coerce(k, v, "stored study config") for k, v in stored.items() if k in KEYS})
