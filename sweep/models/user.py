"""A user's own Keras model behind the seam (`--model PATH.py:FUNCTION`): built by the user's builder with the
trial's params, trained through Keras' fit (sweep.models.keras_fit) one fold model after another."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from sweep.models.network import TrainSettings
from sweep.models.seam import ModelKind, Practice, TrainedFolds, check_scores
from sweep.space import TrialParams, fixed_params, suggest, suggest_model_space

if TYPE_CHECKING:
    import optuna

    from sweep.data.folds import Validation


class UserModel(ModelKind):
    """The user's builder, called with the trial's own params (its space's searched and fixed values)."""

    def check(self, dataset) -> None:
        """The builder loads, takes typical params and returns a usable model for the data's input shape."""
        from sweep.models.builder import check_builder
        from sweep.space import typical_params

        config = self.config
        rate = self.sized(dataset).learning_rate
        rate = rate[0] if isinstance(rate, tuple) else rate
        check_builder(config.model, typical_params(config), dataset.input_shape, rate, self.classes)

    def suggest(self, trial: optuna.Trial) -> TrialParams:
        params = suggest(trial, self.config, suggest_model_space, self.class_counts)
        rate = {} if params.learning_rate is None else {"learning_rate": params.learning_rate}
        return dataclasses.replace(params, model_params=params.model_params | rate | fixed_params(self.config))

    def params(self, trial) -> TrialParams:
        return TrialParams.from_dict(trial.params, fixed_params(self.config), True, self.class_counts)

    def sequential_folds(self, plan: Validation) -> int:
        return len(plan.folds)

    def start_trial(self) -> None:
        import keras

        keras.backend.clear_session(free_memory=False)  # Keras' global state of earlier trials' models

    def train_folds(self, dataset, params, settings, hooks=None, clock=None) -> TrainedFolds:
        """The fold models through Keras fit one after another; `hooks.one_fold` hears each fold model's epochs
        (it may raise to prune), and fit stops at the first batch past the clock's limit (TrialTimedOut)."""
        from sweep.models.keras_fit import train_user_models

        plan = dataset.validation
        on_epoch = None if hooks is None else (lambda fold, epoch, _loss, scores: hooks.one_fold(fold, epoch, scores))
        models, fold_scores, result, compiled_by = train_user_models(
            self.config.model,
            params.model_params,
            params.class_weight,
            settings,
            plan.X_fit,
            plan.y_fit,
            list(plan.folds),
            on_epoch,
            clock,
        )
        pooled = plan.pool(fold_scores, rows_first=self.classes > 1)
        check_scores(pooled)
        return TrainedFolds(models, pooled, fold_scores, result.seconds, result.epochs_run, compiled_by)

    def retrain(self, dataset, trials, trial_of=None) -> dict[int, TrainedFolds]:
        return {
            t.number: self.train_folds(dataset, self.params(t), TrainSettings(**t.user_attrs["train_settings"]))
            for t in trials
        }

    def fit(self, X, y, params, class_weight, settings):
        from sweep.data.folds import Fold
        from sweep.models.builder import load_builder
        from sweep.models.keras_fit import fit_user_model

        spec = self.config.model
        everything = Fold.everything(len(y), X)
        return fit_user_model(load_builder(spec), spec, params.model_params, class_weight, settings, X, y, everything)[
            0
        ]

    def practice(self, params, settings, y) -> list[Practice]:
        """The tutorial's practice applied to the user's model: the best trial's params, epochs and batch size,
        unweighted and with scikit-learn's balanced weights."""
        from sweep.metrics import balanced_class_weight

        return [
            Practice("your model: no weights", params, settings, {0: 1.0, 1: 1.0}),
            Practice("your model: balanced weights", params, settings, balanced_class_weight(y)),
        ]

    def keras_model(self, model):
        return model

    def describe(self, model, compiled_by):
        return {
            "kind": "user",
            "builder": self.config.model,
            "compiled_by": compiled_by,
            "keras_class": type(model).__name__,
        }

    def refusal(self, model) -> str | None:
        from sweep.models.builder import lambda_layers, lambda_refusal

        names = lambda_layers(model)
        return lambda_refusal(self.config.model, names, "refusing to write") if names else None
