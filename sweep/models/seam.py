"""The seam between the study and the models (DESIGN.md): one interface, `ModelKind`, that the builtin network and a
user's Keras model both implement. Above it the trial, export, ensembles and the report never ask which kind they
hold; `model_kind` is the one place that reads it from the config. No TensorFlow here: it is imported where a
model is built or trained."""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    import optuna

    from sweep.config import SweepConfig
    from sweep.data import Dataset
    from sweep.data.folds import Validation
    from sweep.models.network import TrainSettings
    from sweep.space import TrialParams


@dataclass(frozen=True)
class TrainedFolds:
    """A trial's fold models (one per fold of the validation plan, in its order; one for a single split) and the
    scores they were judged by."""

    models: list
    pooled: np.ndarray  # validation scores, pooled over the folds (out-of-fold when cross-validated)
    fold_scores: list[np.ndarray] = field(default_factory=list)  # each fold model's scores on its own rows
    seconds: float = 0.0
    epochs_run: int = 0
    compiled_by: str | None = None  # a user's model: who compiled it, "sweep" or "user"


@dataclass(frozen=True)
class Refit:
    """One configuration to train on all non-test rows: its params, settings (seed included) and trial number."""

    trial: int
    params: TrialParams
    settings: TrainSettings


class EpochHooks(Protocol):
    """What a trial does after each epoch (reports to the pruner, its clock, a stop request). Fold models trained
    side by side end their epochs together; fold models trained one after another end them one fold at a time. Fold
    models side by side are heard every `every`-th epoch and at the last (sweep.study.reports.report_every)."""

    every: int

    def side_by_side(self, epoch: int, pooled: np.ndarray) -> None: ...

    def one_fold(self, fold: int, epoch: int, scores: np.ndarray) -> None: ...


class ModelKind(ABC):
    """What every kind of model does for a study. `name` is stored on trials and in best.json ("builtin", or the
    user's builder PATH.py:FUNCTION)."""

    def __init__(self, config: SweepConfig, class_counts: tuple[int, ...] = ()) -> None:
        self.config = config
        self.class_counts = class_counts  # three or more classes: each one's non-test rows (their weights); () binary
        self.depth: dict | None = None  # what sized() made of hidden_layers = auto, and why (stored on the study)

    @property
    def classes(self) -> int:
        """Output units of this study's models: 1 (a sigmoid) for a binary target, else one per class (a softmax)."""
        return len(self.class_counts) or 1

    populations = False  # whether several trials may train together as one population (sweep.study.rounds)
    network_words = "your model"  # how the report names this kind's network in its comparison rows

    @property
    def name(self) -> str:
        return self.config.model

    @abstractmethod
    def suggest(self, trial: optuna.Trial) -> TrialParams:
        """Draw a new trial's params (every value the model is built with, fixed ones included)."""

    @abstractmethod
    def params(self, trial) -> TrialParams:
        """A finished trial's params, as they were trained."""

    def check(self, dataset: Dataset) -> None:
        """Before the first trial: refuse in one line a model that cannot train on `dataset`."""
        return None

    def sized(self, dataset: Dataset) -> SweepConfig:
        """The config as this kind trains on `dataset`: learning_rate = auto becomes Keras' Adam default (the builtin
        network sizes its epochs and rate to the table instead), and hidden_layers = auto 1, a setting your model's
        builder decides for itself."""
        from sweep.config import AUTO_DEPTH, AUTO_RATE, AUTO_RATE_BOUNDS

        config = self.config
        if config.hidden_layers == AUTO_DEPTH:
            config = dataclasses.replace(config, hidden_layers=1)
        if config.learning_rate != AUTO_RATE:
            return config
        return dataclasses.replace(config, learning_rate=AUTO_RATE_BOUNDS[0])

    def sequential_folds(self, plan: Validation) -> int:
        """How many fold models a trial trains one after another (1: side by side)."""
        return 1

    def pruning_steps(self, plan: Validation) -> int:
        """Steps a trial reports: its epochs, times the fold models trained one after another."""
        return self.config.epochs * self.sequential_folds(plan)

    def start_trial(self) -> None:
        """Before a trial trains: forget what earlier trials left behind."""
        return None

    @abstractmethod
    def train_folds(
        self,
        dataset: Dataset,
        params: TrialParams,
        settings: TrainSettings,
        hooks: EpochHooks | None = None,
        clock=None,
    ) -> TrainedFolds:
        """Train a trial's fold models from the start and score their validation rows. `hooks` hears every epoch; a
        `clock` (sweep.study.watchdog.TrialClock) stops training past --trial-timeout where the kind can stop
        mid-epoch."""

    @abstractmethod
    def retrain(self, dataset: Dataset, trials: list, trial_of=None) -> dict[int, TrainedFolds]:
        """Stored trials trained again from their stored settings: {trial number: its fold models and scores}.
        `trial_of(number)` reads another trial of the study (a population is described on its first member)."""

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, params: TrialParams, class_weight: dict, settings: TrainSettings):
        """One model of `params` trained on every row of (X, y) with `class_weight`."""

    def refit(self, dataset: Dataset, refits: list[Refit]) -> list:
        """Each configuration trained on all non-test rows with its own settings and seed, in order."""
        development = dataset.development
        return [self.fit(development.X, development.y, r.params, r.params.class_weight, r.settings) for r in refits]

    def refit_words(self, settings: TrainSettings) -> str:
        """How `refit` trains several configurations, in words for best.json."""
        return "one after another"

    @abstractmethod
    def practice(self, params: TrialParams, settings: TrainSettings, y: np.ndarray) -> list[Practice]:
        """The report's rows of common practice without sweep, read at 0.5: what each trains and with which weights."""

    def score(self, model, X: np.ndarray) -> np.ndarray:
        """The positive class's score of each row of X, in order; (rows, classes) class probabilities for three or
        more classes."""
        from sweep.models.network import score

        return score(model, X)

    @abstractmethod
    def keras_model(self, model):
        """The Keras model that export saves for one trained model."""

    @abstractmethod
    def describe(self, model, compiled_by: str | None) -> dict:
        """best.json's words on the model beyond its input: the kind, and for a user's model its builder."""

    def hidden_layers(self, settings: TrainSettings) -> int | None:
        """best.json's hidden layers: the builtin network's; None for a model whose layers its builder chose."""
        return None

    def refusal(self, model) -> str | None:
        """Why a trained model cannot be saved in a bundle, or None."""
        return None


@dataclass(frozen=True)
class Practice:
    """A row of common practice in the report: a model of `params` trained on all non-test rows with `class_weight`
    ("balanced": scikit-learn's balanced weights of the labels) and `settings` (its seed replaced per run)."""

    name: str
    params: Any
    settings: Any
    class_weight: dict


def check_scores(scores: np.ndarray) -> None:
    """A model that gives every validation row the same probability ranks nothing: fail its trial."""
    from sweep.errors import TrialFailed

    if np.ptp(scores) < 1e-7:
        raise TrialFailed(f"model predicts the same probability ({scores.flat[0]:.4g}) for every validation row")
