"""One frozen config object, resolved from defaults < TOML file < SWEEP_* environment < command line.

Every key has one rule (RULES) that turns its raw value into the field's value and checks it; the objective,
pruner and device specs are parsed there, once, into the values the rest of the code takes (config.goal,
config.pruner_spec, config.device_spec), while the fields keep the spec text that is stored on a study.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sweep.errors import ConfigError
from sweep.metrics import Goal, parse_goal
from sweep.space import ParamSpec, merge_spaces, parse_space, space_to_dict

# Seconds every process waits for an unreachable storage (sweep.study.outage); a managed Postgres restarts or fails over
# in 30-60 s.
DEFAULT_OUTAGE_LIMIT = 180.0

DEFAULT_STORAGE = "sqlite:///studies/sweeps.db"
PRUNER_SYNTAX = "none | median | percentile:P | hyperband | successive_halving"
DEVICE_SYNTAX = "auto | cpu | gpu | gpu:N"
ENV_PREFIX = "SWEEP_"
# learning_rate = auto: the builtin network's rate is sized to its training steps within these bounds
# (sweep.models.builtin.sized_learning_rate); a user's model trains at the lower one, Keras' Adam default.
AUTO_RATE = "auto"
AUTO_RATE_BOUNDS = (0.001, 0.01)
# hidden_layers = auto: the builtin network is linear (0) unless one hidden layer ranks the validation rows better
# beyond noise (sweep.models.builtin.choose_depth).
AUTO_DEPTH = "auto"
MODEL_SYNTAX = "builtin, PATH.py:FUNCTION or package.module:FUNCTION (a function (params, input_shape) -> keras.Model)"
CLUSTER_SYNTAX = "tcp://HOST:PORT (a running Dask scheduler) or local:N (start N local Dask worker processes, 1 to 64)"
THRESHOLD_SEARCHES = (
    "sampled",
    "tuned",
)  # how a trial's threshold is found: drawn by the sampler, or tuned on its scores


@dataclass(frozen=True)
class PrunerSpec:
    """A parsed --pruner: Optuna's pruner by name, and P for percentile:P."""

    name: str  # none | median | percentile | hyperband | successive_halving
    argument: float | None = None
    text: str = field(default="", compare=False)  # the --pruner text it was parsed from, as stored


@dataclass(frozen=True)
class DeviceSpec:
    """A parsed --device: auto, cpu or gpu, and N for gpu:N (runtime.choose_device says what each means)."""

    kind: str  # auto | cpu | gpu
    index: int | None = None
    text: str = field(default="", compare=False)  # the --device text it was parsed from, as stored


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep needs; every field is a TOML key, a SWEEP_<KEY> variable and a --flag.

    The objective, pruner and device fields hold their spec text; goal, pruner_spec and device_spec hold the
    same specs parsed (see __post_init__).
    """

    if TYPE_CHECKING:  # set by __post_init__; not fields, so not keys, flags or stored
        goal: Goal
        pruner_spec: PrunerSpec
        device_spec: DeviceSpec

    study: str = "minority-weight"
    storage: str = DEFAULT_STORAGE
    data: str = "seed"
    target: str | None = None
    positive_label: str | None = None
    trials: int = 30
    timeout: float | None = None
    trial_timeout: float | None = (
        None  # seconds of wall time one trial may take (sweep.study.watchdog.TrialClock); None: no limit
    )
    epochs: int = 50
    min_steps: int = (
        0  # the builtin network trains at least this many Adam steps per fold model (more epochs on small tables)
    )
    batch_size: int = 100
    learning_rate: float | tuple[float, float] | str = (
        "auto"  # sized to the training steps (ModelKind.sized); a range LOW:HIGH is searched (log scale)
    )
    objective: str = "f1"  # parsed: goal
    seed: int = 0
    minority_weight: tuple[float, float] = (1.0, 1000.0)
    hidden_width: tuple[int, int] = (1, 64)
    threshold: tuple[float, float] = (0.01, 0.99)
    threshold_search: str = (
        "sampled"  # "tuned": each trial's threshold chosen on its own validation scores (sweep.study.trial)
    )
    hidden_layers: int | str = "auto"  # auto: 0 or 1, chosen on the validation rows (ModelKind.sized)
    weight_decay: float = 0.0  # the builtin network's decoupled weight decay on its kernels (AdamW); 0: plain Adam
    validation_fraction: float = 0.2
    test_fraction: float = 0.2
    pruner: str = "median"  # parsed: pruner_spec
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    workers: int = 1
    population: int = 0
    device: str = "auto"  # parsed: device_spec
    heartbeat_interval: int = 10
    grace_period: int = 30
    outage_limit: float = (
        DEFAULT_OUTAGE_LIMIT  # seconds every process waits for an unreachable storage (sweep.study.outage)
    )
    cv: int | None = None  # folds per trial; 0 = one validation split; None = automatic (data.choose_folds)
    cv_repeats: int = 1
    features: tuple[str, ...] = ()  # input columns to use (empty = every column but the target)
    drop: tuple[str, ...] = ()
    min_level_count: int = 5
    max_levels: int = 50
    cluster: str | None = None  # Dask scheduler address or local:N (sweep.study.cluster); None: no Dask at all
    model: str = "builtin"  # or a user's builder (sweep.models.builder.load_builder)
    space: tuple[ParamSpec, ...] = ()  # a user model's own searched parameters ([space], --param)

    @property
    def user_model(self) -> bool:
        """Whether trials train the user's own Keras model (through Keras fit) rather than the builtin network. Read
        by this module's checks of which keys apply, and by sweep.models.model_kind: nothing else asks."""
        return self.model != "builtin"

    @property
    def arrays_as_given(self) -> bool:
        """Whether .npz arrays reach the model as they are (any shape) rather than encoded as a table of features."""
        return self.user_model

    def __post_init__(self) -> None:
        """Keep each spec parsed, parsing it only once: resolve_config and config_from_dict pass the value their
        rule parsed (whose errors name the source); a spec given as text (SweepConfig(...) in code,
        dataclasses.replace) is parsed here. The field then holds the parsed value's text."""
        for key, (attribute, parse) in SPECS.items():
            given = getattr(self, key)
            parsed = given if isinstance(given, (Goal, PrunerSpec, DeviceSpec)) else parse(given, key)
            object.__setattr__(self, attribute, parsed)
            object.__setattr__(self, key, parsed.text)
        object.__setattr__(self, "space", parse_space(self.space, "space"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (ranges as lists, the space as name -> spec text), e.g. for the study's user
        attributes."""
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items() if k != "space"}
        return plain | {"space": space_to_dict(self.space)}


KEYS = tuple(f.name for f in dataclasses.fields(SweepConfig))

# A key's rule: (key, raw value, source) -> the field's value, or a ConfigError naming the key and source.
Rule = Callable[[str, Any, str], Any]


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
        raise ConfigError(
            f"{key} = {value!r} (from {source}) is invalid: expected an integer; fix it in {source}"
        ) from None


def _as_float(key: str, value: Any, source: str) -> float:
    if isinstance(value, bool):
        _expect(False, key, value, source, "a number")
    try:
        return float(value if isinstance(value, (int, float)) else str(value).strip())
    except ValueError:
        raise ConfigError(
            f"{key} = {value!r} (from {source}) is invalid: expected a number; fix it in {source}"
        ) from None


def _weight_decay(key: str, value: Any, source: str) -> float:
    number = _as_float(key, value, source)
    _expect(0 <= number <= 100, key, value, source, "a decay 0 <= DECAY <= 100 per unit of learning rate (0: none)")
    return number


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
        raise ConfigError(
            f"{key} = {value!r} (from {source}) is invalid: expected column names COL,COL (or a TOML list); "
            f"fix it in {source}"
        )
    return tuple(p.strip() for p in parts if p.strip())


def _is_none(value: Any, *words: str) -> bool:
    """Whether a raw value means "not set": None, or one of `words` as text."""
    return value is None or (isinstance(value, str) and value.strip().lower() in words)


def parse_pruner(value: Any, source: str = "pruner") -> PrunerSpec:
    """Parse a --pruner spec (PRUNER_SYNTAX); errors name the key and source."""
    text = str(value).strip().lower()
    name, _, argument = text.partition(":")
    if name == "percentile":
        share = _as_float("pruner", argument, source)
        _expect(0 < share < 100, "pruner", value, source, "percentile:P with 0 < P < 100")
        return PrunerSpec(name, share, text)
    _expect(
        name in ("none", "median", "hyperband", "successive_halving") and not argument,
        "pruner",
        value,
        source,
        PRUNER_SYNTAX,
    )
    return PrunerSpec(name, None, text)


def parse_device(value: Any, source: str = "device") -> DeviceSpec:
    """Parse a --device spec (DEVICE_SYNTAX); errors name the key and source."""
    text = str(value).strip().lower()
    kind, _, index = text.partition(":")
    valid = text in ("auto", "cpu", "gpu") or (kind == "gpu" and index.isdigit())
    _expect(valid, "device", value, source, DEVICE_SYNTAX)
    return DeviceSpec(kind, int(index) if index else None, text)


# Settings given as spec text and used parsed: field -> (attribute holding the parsed value, its parser).
SPECS: dict[str, tuple[str, Callable[[Any, str], Any]]] = {
    "objective": ("goal", parse_goal),
    "pruner": ("pruner_spec", parse_pruner),
    "device": ("device_spec", parse_device),
}


def _text(key: str, value: Any, source: str) -> str:
    text = str(value).strip()
    _expect(text != "", key, value, source, "a non-empty string")
    return text


def _optional_text(key: str, value: Any, source: str) -> str | None:
    return None if value is None else _text(key, value, source)


def _objective(key: str, value: Any, source: str) -> Goal:
    return parse_goal(_text(key, value, source), source=source)


def _integer(low: int, high: int | None = None, expected_high: str = "") -> Rule:
    """An integer >= low, and (with `high`) <= high, which `expected_high` describes."""

    def rule(key: str, value: Any, source: str) -> int:
        number = _as_int(key, value, source)
        _expect(number >= low, key, value, source, f"an integer >= {low}")
        if high is not None:
            _expect(number <= high, key, value, source, expected_high)
        return number

    return rule


def _folds(key: str, value: Any, source: str) -> int | None:
    if _is_none(value, "", "auto", "none"):
        return None
    folds = _as_int(key, value, source)
    _expect(folds == 0 or 2 <= folds <= 20, key, value, source, "auto, 0 (one validation split) or 2 to 20 folds")
    return folds


def _seconds(key: str, value: Any, source: str) -> float | None:
    if _is_none(value, "", "none"):
        return None
    seconds = _as_float(key, value, source)
    _expect(seconds > 0, key, value, source, "a positive number of seconds")
    return seconds


def _outage_limit(key: str, value: Any, source: str) -> float:
    seconds = _as_float(key, value, source)
    _expect(seconds >= 0, key, value, source, "a number of seconds >= 0 (0: give up at the first lost call)")
    return seconds


def _learning_rate(key: str, value: Any, source: str) -> float | tuple[float, float] | str:
    if isinstance(value, str) and value.strip().lower() == AUTO_RATE:
        return AUTO_RATE
    if isinstance(value, (list, tuple)) or (isinstance(value, str) and ":" in value):
        low, high = _as_range(key, value, source, _as_float)
        _expect(0 < low <= high < 10, key, value, source, "a rate or a range LOW:HIGH with 0 < LOW <= HIGH < 10")
        return (low, high)
    rate = _as_float(key, value, source)
    _expect(
        0 < rate < 10, key, value, source, "auto, a number between 0 and 10 (exclusive), or a range LOW:HIGH to search"
    )
    return rate


def _hidden_layers(key: str, value: Any, source: str) -> int | str:
    expected = "auto, or an integer from 0 (a linear network) to 8 hidden layers"
    text = str(value).strip().lower()
    if text == AUTO_DEPTH:
        return AUTO_DEPTH
    _expect(not isinstance(value, bool) and text.isdigit(), key, value, source, expected)
    return _integer(0, 8, expected)(key, value, source)


def _one_of(choices: tuple[str, ...]) -> Rule:
    def rule(key: str, value: Any, source: str) -> str:
        text = str(value).strip().lower()
        _expect(text in choices, key, value, source, f"one of: {', '.join(choices)}")
        return text

    return rule


def _fraction(key: str, value: Any, source: str) -> float:
    share = _as_float(key, value, source)
    _expect(0 < share < 0.9, key, value, source, "a fraction between 0 and 0.9 (exclusive)")
    return share


def _range(cast, within: Callable[[Any, Any], bool], expected: str) -> Rule:
    """A range LOW:HIGH of `cast` values for which within(low, high) holds, which `expected` describes."""

    def rule(key: str, value: Any, source: str) -> tuple:
        low, high = _as_range(key, value, source, cast)
        _expect(within(low, high), key, value, source, expected)
        return (low, high)

    return rule


def _cluster(key: str, value: Any, source: str) -> str | None:
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    text = str(value).strip()
    scheme, _, rest = text.partition("://")
    host, _, port = rest.rpartition(":")
    local = text.startswith("local:") and text[6:].isdigit() and 1 <= int(text[6:]) <= 64
    remote = scheme in ("tcp", "tls") and host != "" and port.isdigit() and 0 < int(port) < 65536
    _expect(local or remote, key, value, source, CLUSTER_SYNTAX)
    return text


def _model(key: str, value: Any, source: str) -> str:
    text = _text(key, value, source)
    if text == "builtin":
        return text
    target, _, function = text.rpartition(":")
    module_like = target.replace(".", "").replace("_", "").isalnum() and not target.endswith(".py")
    _expect(
        function.isidentifier() and (target.endswith(".py") or target.startswith("memory") or module_like),
        key,
        value,
        source,
        MODEL_SYNTAX,
    )
    return text


RULES: dict[str, Rule] = {
    "study": _text,
    "storage": _text,
    "data": _text,
    "target": _optional_text,
    "positive_label": _optional_text,
    "trials": _integer(1),
    "timeout": _seconds,
    "trial_timeout": _seconds,
    "epochs": _integer(1),
    "min_steps": _integer(0),
    "batch_size": _integer(1),
    "learning_rate": _learning_rate,
    "objective": _objective,
    "seed": _integer(0),
    "minority_weight": _range(
        _as_float, lambda low, high: 0 < low <= high, "0 < LOW <= HIGH (a weight relative to the majority's 1.0)"
    ),
    "hidden_width": _range(_as_int, lambda low, high: 1 <= low <= high <= 4096, "1 <= LOW <= HIGH <= 4096 units"),
    "threshold": _range(_as_float, lambda low, high: 0 < low <= high < 1, "0 < LOW <= HIGH < 1"),
    "threshold_search": _one_of(THRESHOLD_SEARCHES),
    "hidden_layers": _hidden_layers,
    "weight_decay": _weight_decay,
    "validation_fraction": _fraction,
    "test_fraction": _fraction,
    "pruner": lambda _key, value, source: parse_pruner(value, source),
    "intra_op_threads": _integer(0),
    "inter_op_threads": _integer(0),
    "workers": _integer(1, 64, "between 1 and 64 worker processes"),
    "population": _integer(0, 512, "0 (automatic) or 1 to 512 trials trained together"),
    "device": lambda _key, value, source: parse_device(value, source),
    "heartbeat_interval": _integer(1),
    "grace_period": _integer(1),
    "outage_limit": _outage_limit,
    "cv": _folds,
    "cv_repeats": _integer(1, 10, "between 1 and 10 repeats of the folds"),
    "features": _as_columns,
    "drop": _as_columns,
    "min_level_count": _integer(1),
    "max_levels": _integer(1),
    "cluster": _cluster,
    "model": _model,
    "space": lambda _key, value, source: parse_space(value, source),
}


def _coerce(key: str, value: Any, source: str) -> Any:
    """Turn one raw value into the field's value (a spec into its parsed value) by its key's rule; the message
    names key and source."""
    rule = RULES.get(key)
    if rule is None:
        raise ConfigError(f"unknown config key {key!r} (from {source}); known keys: {', '.join(KEYS)}")
    return rule(key, value, source)


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file; unknown keys are errors that name the key."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist; pass an existing TOML file to --config") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"config file {str(path)!r} is not valid TOML ({exc}); fix the file or drop --config"
        ) from None
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"config file {str(path)!r} has unknown key {unknown[0]!r}; known keys: {', '.join(KEYS)}")
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
            if key == "space":  # a space merges by name: --param dropout=... overrides the file's dropout only
                flag_source = "--param" if source == "command line" else flag_source
                values[key] = merge_spaces(values.get(key, ()), _coerce(key, raw, flag_source))
                continue
            values[key] = _coerce(key, raw, flag_source)
    config = SweepConfig(**values)  # the parsed specs in `values` are taken as they are
    _check_model_keys(config, values)
    if config.population > 1 and config.hidden_layers not in (1, AUTO_DEPTH):
        raise ConfigError(
            f"population = {config.population} trains one-hidden-layer networks, "
            f"but hidden_layers = {config.hidden_layers}; "
            "use population = 1 for linear or deeper networks"
        )
    if config.threshold_search == "tuned" and config.goal.is_multi:
        raise ConfigError(
            "threshold_search = tuned chooses each trial's threshold for one objective, "
            f"but objective = {config.objective!r} "
            "has several; use threshold_search = sampled"
        )
    _check_weight_decay(config)
    if config.cv == 0 and config.cv_repeats > 1:
        raise ConfigError(
            f"cv_repeats = {config.cv_repeats} repeats cross-validation folds, but cv = 0 (one validation split); "
            "set --cv K or drop --cv-repeats"
        )
    if config.grace_period <= config.heartbeat_interval:
        raise ConfigError(
            f"grace_period = {config.grace_period} must be longer than "
            f"heartbeat_interval = {config.heartbeat_interval} "
            "(a live worker would be declared dead); raise grace_period"
        )
    if config.data not in ("seed", "seed-classes", "memory"):
        # Resolve the data path now so the stored config still finds it from another working directory.
        values |= {"data": str(Path(config.data).expanduser().resolve())}
    target, _, function = config.model.rpartition(":")
    if target.endswith(".py"):  # the same for a builder's file (export and other workers load it again)
        values |= {"model": f"{Path(target).expanduser().resolve()}:{function}"}
    return SweepConfig(**values)


def highest_learning_rate(rate: float | tuple[float, float] | str) -> float:
    """The highest rate a trial may train at: the fixed rate, a searched range's top, or auto's upper bound."""
    if rate == AUTO_RATE:
        return AUTO_RATE_BOUNDS[1]
    return max(rate) if isinstance(rate, tuple) else float(rate)


def _check_weight_decay(config: SweepConfig) -> None:
    """A decay that would shrink a kernel by half or more in one step (at the highest learning rate) is refused."""
    highest_rate = highest_learning_rate(config.learning_rate)
    if config.weight_decay * highest_rate >= 0.5:
        raise ConfigError(
            f"weight_decay = {config.weight_decay:g} shrinks each kernel by learning_rate x weight_decay = "
            f"{config.weight_decay * highest_rate:g} per step (at the highest learning rate); keep it below 0.5"
        )


def _check_model_keys(config: SweepConfig, given: Mapping[str, Any]) -> None:
    """Keys of the builtin network are refused with a user model, and a user space without one."""
    if not config.user_model:
        if config.space:
            raise ConfigError(
                f"param {config.space[0].name} (a [space] / --param entry) is a parameter of your own model, "
                "but model = builtin; "
                "pass --model PATH.py:FUNCTION, or drop the [space] / --param entries"
            )
        return
    if config.population > 1:
        raise ConfigError(
            f"population = {config.population} trains builtin networks side by side, but model = {config.model!r} "
            "trains your model through Keras fit, one trial at a time; drop --population"
        )
    for key, hint in (
        ("hidden_layers", "build the layers you want in your model"),
        ("weight_decay", "give your model's optimizer a weight decay (keras.optimizers.AdamW) and compile it yourself"),
        ("hidden_width", "search it with --param hidden_width=LOW:HIGH:log ([space] hidden_width in TOML)"),
    ):
        if key in given:
            raise ConfigError(f"{key} is a setting of the builtin network, but model = {config.model!r}; {hint}")


def config_from_dict(stored: Mapping[str, Any]) -> SweepConfig:
    """Rebuild a config stored on a study (lists back to tuples), checking it like any other source."""
    return SweepConfig(**{k: _coerce(k, v, "stored study config") for k, v in stored.items() if k in KEYS})
