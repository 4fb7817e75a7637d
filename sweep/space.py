"""The search space: the only caller of trial.suggest_*. Parameter names are part of the stored study.

Sweep owns minority_weight and threshold; the builtin network adds hidden_width (and learning_rate when the
config gives a range). A user's own model (config.model) adds the parameters of its [space] / --param specs,
parsed here into ParamSpec values; with a user model hidden_width is searched only when the space names it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sweep.errors import ConfigError

if TYPE_CHECKING:
    import optuna

# sweep.config imports this module, so SweepConfig is named in annotations only, never imported (hence noqa: F821).

PARAM_NAMES = ("minority_weight", "hidden_width", "threshold")
# Searched too when the config gives learning_rate as a range.
OPTIONAL_PARAM_NAMES = ("learning_rate",)
# Names a user's [space] may not use: sweep searches them itself (learning_rate: give a range to the config key).
RESERVED_NAMES = ("minority_weight", "threshold", "learning_rate")
PARAM_SYNTAX = (
    "NAME=LOW:HIGH (a float range; an int range when both ends are integers), NAME=LOW:HIGH:log (log scale), "
    "NAME=A,B,C (choices) or NAME=VALUE (fixed)"
)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a user's space: a float or int range (log scale or not), choices, or a fixed value."""

    name: str
    kind: str  # float | int | choice | fixed
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()  # choice: the values; fixed: the one value
    text: str = field(default="", compare=False)  # canonical spec text, as stored on the study (round-trips)

    def suggest(self, trial: optuna.Trial):
        """This parameter's value for the trial (a fixed value is passed to the builder, not searched)."""
        if self.kind == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        return self.choices[0]

    def typical(self):
        """A value for the check before any trial (sweep.models.builder.check_builder): the range's (geometric) middle,
        the first choice, the fixed value."""
        if self.kind in ("float", "int"):
            middle = math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2
            return round(middle) if self.kind == "int" else middle
        return self.choices[0]


def _scalar(text: str):
    """A value of a choice or fixed spec: int, float, true/false, or the text itself."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text.strip())
        except ValueError:
            pass
    return text.strip()


def _bad(name: str, value: Any, source: str, why: str) -> ConfigError:
    return ConfigError(f"param {name}={value} (from {source}) is invalid: {why}; expected {PARAM_SYNTAX}")


def _number(name: str, text: str, value: Any, source: str) -> int | float:
    parsed = _scalar(str(text))
    if isinstance(parsed, bool) or not isinstance(parsed, (int, float)):
        raise _bad(name, value, source, f"{text!r} is not a number")
    return parsed


def _range(name: str, low, high, log: bool, value: Any, source: str) -> ParamSpec:
    low, high = _number(name, low, value, source), _number(name, high, value, source)
    if low > high:
        raise _bad(name, value, source, f"its low {low} exceeds its high {high}; write LOW:HIGH")
    if log and low <= 0:
        raise _bad(name, value, source, f"a log scale needs a positive low, got {low}")
    kind = "int" if isinstance(low, int) and isinstance(high, int) else "float"
    low, high = (int(low), int(high)) if kind == "int" else (float(low), float(high))
    return ParamSpec(name, kind, low, high, log, (), f"{low}:{high}" + (":log" if log else ""))


def _choices(name: str, values: list, value: Any, source: str) -> ParamSpec:
    values = [_scalar(v) if isinstance(v, str) else v for v in values]
    if not values or any(v == "" for v in values):
        raise _bad(name, value, source, "an empty choice")
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise _bad(name, value, source, "choices must be numbers, true/false or text")
    if len(set(map(repr, values))) != len(values):
        raise _bad(name, value, source, "a choice is listed twice")
    return ParamSpec(name, "choice", choices=tuple(values), text=",".join(map(_text_of, values)))


def _text_of(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def parse_param(name: str, value: Any, source: str) -> ParamSpec:
    """One user parameter from text (PARAM_SYNTAX, as --param and SWEEP_SPACE give it) or TOML: [low, high],
    [low, high, "log"], a table {low, high, log} or {choices = [...]}, a list of other values (choices),
    or one value (fixed)."""
    name = str(name).strip()
    if not name.isidentifier():
        raise _bad(name, value, source, f"{name!r} is not a parameter name (letters, digits, _)")
    if name in RESERVED_NAMES:
        raise ConfigError(
            f"param {name} (from {source}) is searched by sweep itself; "
            + (
                "give the learning_rate key a range LOW:HIGH instead"
                if name == "learning_rate"
                else f"set its range with --{name.replace('_', '-')}"
            )
        )
    if isinstance(value, dict):
        if "choices" in value:
            return _choices(name, list(value["choices"]), value, source)
        if not {"low", "high"} <= set(value) or set(value) - {"low", "high", "log"}:
            raise _bad(name, value, source, "a table needs low and high (and optionally log), or choices")
        return _range(name, value["low"], value["high"], bool(value.get("log", False)), value, source)
    if isinstance(value, (list, tuple)):
        numbers = [v for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(value) == 2 and len(numbers) == 2:
            return _range(name, value[0], value[1], False, value, source)
        if len(value) == 3 and len(numbers) == 2 and value[2] == "log":
            return _range(name, value[0], value[1], True, value, source)
        return _choices(name, list(value), value, source)
    if isinstance(value, str):
        text = value.strip()
        if text == "":
            raise _bad(name, value, source, "no value after '='")
        if ":" in text:
            parts = text.split(":")
            if len(parts) == 3 and parts[2].strip().lower() == "log":
                return _range(name, parts[0], parts[1], True, value, source)
            if len(parts) != 2:
                raise _bad(name, value, source, "a range has the form LOW:HIGH or LOW:HIGH:log")
            return _range(name, parts[0], parts[1], False, value, source)
        if "," in text:
            return _choices(name, text.split(","), value, source)
        value = _scalar(text)
    if isinstance(value, (str, int, float, bool)):
        return ParamSpec(name, "fixed", choices=(value,), text=_text_of(value))
    raise _bad(name, value, source, f"a {type(value).__name__} is not a parameter spec")


def parse_space(value: Any, source: str) -> tuple[ParamSpec, ...]:
    """A whole space: a TOML table {name: spec}, ["NAME=SPEC", ...] (repeated --param) or "NAME=SPEC;NAME=SPEC"
    (SWEEP_SPACE). A name given twice keeps its last spec."""
    if isinstance(value, tuple) and all(isinstance(v, ParamSpec) for v in value):
        return value
    if isinstance(value, dict):
        items = list(value.items())
    else:
        entries = value.split(";") if isinstance(value, str) else value
        if not isinstance(entries, (list, tuple)):
            raise ConfigError(
                f"space = {value!r} (from {source}) is invalid: expected {PARAM_SYNTAX}, or a TOML [space] table"
            )
        items = []
        for entry in entries:
            if not isinstance(entry, str) or "=" not in entry:
                raise ConfigError(f"param {entry!r} (from {source}) is invalid: no '='; expected {PARAM_SYNTAX}")
            name, _, spec = entry.partition("=")
            items.append((name, spec))
    return merge_spaces((), tuple(parse_param(name, spec, source) for name, spec in items if str(name).strip() or spec))


def merge_spaces(base: tuple[ParamSpec, ...], override: tuple[ParamSpec, ...]) -> tuple[ParamSpec, ...]:
    """Specs of `base` replaced by those of `override` with the same name (new names appended)."""
    merged = {spec.name: spec for spec in base}
    merged.update({spec.name: spec for spec in override})
    return tuple(merged.values())


def space_to_dict(space: tuple[ParamSpec, ...]) -> dict[str, str]:
    """The space as stored on a study (and in best.json): name -> canonical spec text."""
    return {spec.name: spec.text for spec in space}


@dataclass(frozen=True)
class TrialParams:
    """One point of the search: the minority class weight (majority = 1.0), hidden width and threshold, and a
    user model's own parameters (`model_params`: what its builder is called with)."""

    minority_weight: float
    hidden_width: int | None
    threshold: float | None  # None until a tuned threshold is chosen on the trial's scores (threshold_search "tuned")
    learning_rate: float | None = None  # None when the rate is fixed by the config
    model_params: dict = field(default_factory=dict, hash=False, compare=True)
    class_counts: tuple[int, ...] = ()  # three or more classes: each class's non-test rows (what weighs them)

    @property
    def class_weight(self) -> dict[int, float]:
        """As Keras' fit(class_weight=...) expects it: the majority 1.0 and the minority minority_weight; for three or
        more classes, the rarest class minority_weight and the others on a power law of their counts
        (sweep.multiclass.rarest_weighted)."""
        if self.class_counts:
            from sweep.multiclass import rarest_weighted

            return rarest_weighted(self.class_counts, self.minority_weight)
        return {0: 1.0, 1: float(self.minority_weight)}

    @property
    def class_weights(self) -> tuple[float, ...] | None:
        """Every class's weight by class number for three or more classes (a softmax population member's); None for
        two."""
        weights = self.class_weight
        return tuple(weights[c] for c in range(len(self.class_counts))) if self.class_counts else None

    @classmethod
    def from_dict(
        cls, params: dict, fixed: dict | None = None, user_model: bool = False, class_counts: tuple[int, ...] = ()
    ) -> TrialParams:
        """From a trial's Optuna params; `fixed` adds a user space's fixed values; with a user model every param
        but sweep's own goes to model_params (hidden_width too, when its space searched it). A trial of several
        classes has no threshold (its decision rule is chosen on its scores)."""
        rate = params.get("learning_rate")
        width = params.get("hidden_width")
        own = {"minority_weight", "threshold"}
        model_params = {k: v for k, v in params.items() if k not in own} | dict(fixed or {}) if user_model else {}
        threshold = params.get("threshold")
        return cls(
            float(params["minority_weight"]),
            None if width is None else int(width),
            None if threshold is None else float(threshold),
            None if rate is None else float(rate),
            model_params,
            tuple(class_counts),
        )


def fixed_params(config: SweepConfig) -> dict:  # noqa: F821
    """The user space's fixed values (passed to the builder, not searched)."""
    return {spec.name: spec.choices[0] for spec in config.space if spec.kind == "fixed"}


def suggest(
    trial: optuna.Trial,
    config: SweepConfig,  # noqa: F821
    own_params,
    class_counts: tuple[int, ...] = (),
) -> TrialParams:
    """Draw one point: log-scale weight, the model's own params (`own_params(trial, config)` gives its width or None and
    what its builder is called with: suggest_width or suggest_model_space), linear threshold (unless it is tuned after
    training: sweep.study.trial.record_tuned_threshold, or the target has several classes, whose decision rule is
    chosen on the trial's scores), within the configured ranges, and a log-scale learning rate when the config gives a
    range for it. The order of the draws is the order of a seeded sampler's random numbers."""
    searched_rate = isinstance(config.learning_rate, tuple)
    weight = trial.suggest_float("minority_weight", *config.minority_weight, log=True)
    width, model_params = own_params(trial, config)
    sampled = config.threshold_search == "sampled" and not class_counts
    threshold = trial.suggest_float("threshold", *config.threshold) if sampled else None
    rate = trial.suggest_float("learning_rate", *config.learning_rate, log=True) if searched_rate else None
    return TrialParams(weight, width, threshold, rate, model_params, tuple(class_counts))


def suggest_width(trial: optuna.Trial, config: SweepConfig) -> tuple[int, dict]:  # noqa: F821
    """The builtin network's own param: its log-scale hidden width."""
    return trial.suggest_int("hidden_width", *config.hidden_width, log=True), {}


def no_width(trial: optuna.Trial, config: SweepConfig) -> tuple[None, dict]:  # noqa: F821
    """A linear network's own params (hidden_layers = 0): none, it has no hidden layer to widen."""
    return None, {}


def suggest_model_space(trial: optuna.Trial, config: SweepConfig) -> tuple[int | None, dict]:  # noqa: F821
    """A user model's own space: every value goes to its builder (a searched hidden_width is also its width)."""
    model_params = {spec.name: spec.suggest(trial) for spec in config.space}
    return (int(model_params["hidden_width"]) if "hidden_width" in model_params else None), model_params


def trial_seed(base_seed: int, trial_number: int) -> int:
    """A distinct, reproducible training seed per trial."""
    return (base_seed * 1_000_003 + trial_number) % (2**31 - 1)


def typical_params(config: SweepConfig) -> dict:  # noqa: F821
    """What a user model's builder is called with by the check before any trial (sweep.models.builder.check_builder)."""
    params = {spec.name: spec.typical() for spec in config.space}
    if isinstance(config.learning_rate, tuple):
        params["learning_rate"] = math.sqrt(config.learning_rate[0] * config.learning_rate[1])
    return params
