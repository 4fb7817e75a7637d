"""The search space: the only caller of trial.suggest_*. Parameter names are part of the stored study."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import optuna

    from sweep.config import SweepConfig

PARAM_NAMES = ("minority_weight", "hidden_width", "threshold")
# Searched too when the config gives learning_rate as a range.
OPTIONAL_PARAM_NAMES = ("learning_rate",)


@dataclass(frozen=True)
class TrialParams:
    """One point of the search: the minority class weight (majority = 1.0), hidden width and threshold."""

    minority_weight: float
    hidden_width: int
    threshold: float
    learning_rate: float | None = None  # None when the rate is fixed by the config

    @property
    def class_weight(self) -> dict[int, float]:
        """As Keras' fit(class_weight=...) expects it."""
        return {0: 1.0, 1: float(self.minority_weight)}

    @classmethod
    def from_dict(cls, params: dict) -> TrialParams:
        rate = params.get("learning_rate")
        return cls(
            float(params["minority_weight"]), int(params["hidden_width"]), float(params["threshold"]),
            None if rate is None else float(rate),
        )


def suggest(trial: optuna.Trial, config: SweepConfig) -> TrialParams:
    """Draw one point: log-scale weight and width, linear threshold, within the configured ranges, and a
    log-scale learning rate when the config gives a range for it."""
    searched_rate = isinstance(config.learning_rate, tuple)
    return TrialParams(
        minority_weight=trial.suggest_float("minority_weight", *config.minority_weight, log=True),
        hidden_width=trial.suggest_int("hidden_width", *config.hidden_width, log=True),
        threshold=trial.suggest_float("threshold", *config.threshold),
        learning_rate=trial.suggest_float("learning_rate", *config.learning_rate, log=True) if searched_rate else None,
    )
