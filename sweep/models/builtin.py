"""The builtin network behind the seam: Dense(width, relu) x layers -> Dense(1, sigmoid), trained by compiled epochs
(sweep.models.network) with a trial's fold models side by side, or in populations of several trials
(sweep.study.rounds), which are this kind's own business."""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING

import numpy as np

from sweep.config import AUTO_DEPTH, AUTO_RATE, AUTO_RATE_BOUNDS
from sweep.models.network import TrainSettings, score, train_model, train_models
from sweep.models.seam import ModelKind, Practice, Refit, TrainedFolds, check_scores
from sweep.space import TrialParams, no_width, suggest, suggest_width

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    import optuna

    from sweep.config import SweepConfig
    from sweep.data import Dataset

# The tutorial's three fixed networks (DESIGN.md): name, hidden width, hidden layers, class weights.
TUTORIAL_NETWORKS = (
    ("tutorial: no weights", 2, 2, {0: 1.0, 1: 1.0}),
    ("tutorial: balanced weights", 2, 1, "balanced"),
    ("tutorial: manual 1:200", 2, 1, {0: 1.0, 1: 200.0}),
)
TUTORIAL_FIT = {"epochs": 50, "batch_size": 100, "learning_rate": 0.001}
# learning_rate = auto: Adam moves each weight by about the rate per step, so a fold model's steps x rate is how far
# its weights can travel. The rate gives at least this travel, within AUTO_RATE_BOUNDS: 0.01 up to 2,000 steps, 0.001
# from 20,000 (docs/benchmarks/real-tables.md#learning-rate).
RATE_TRAVEL = 20.0
# A linear network (hidden_layers = 0) fits a convex loss: with learning_rate = auto it trains at LINEAR_RATE for at
# least LINEAR_STEPS Adam steps per fold model, where on the small tables it ranks as well as scikit-learn's logistic
# regression; hidden_layers = auto compares it with one hidden layer of PROBE_WIDTH units
# (docs/benchmarks/real-tables.md#depth).
LINEAR_RATE = 0.05
LINEAR_STEPS = 1000
PROBE_WIDTH = 16
# The probe's bootstrap of the pooled validation rows, for the standard error of the two candidates' AP gap.
PROBE_RESAMPLES = 200


def sized_learning_rate(steps: int) -> float:
    """The auto learning rate of a fold model that takes `steps` Adam steps: RATE_TRAVEL / steps within
    AUTO_RATE_BOUNDS, to three significant digits."""
    low, high = AUTO_RATE_BOUNDS
    return float(f"{min(high, max(low, RATE_TRAVEL / max(1, steps))):.3g}")


def fold_steps_per_epoch(config: SweepConfig, plan) -> int:
    """Adam steps one epoch takes for the smallest fold model of the validation plan."""
    rows = min(len(fold.training_rows(len(plan.y_fit))) for fold in plan.folds)
    return max(1, -(-rows // config.batch_size))


def gap_error(y, linear, hidden, seed: int) -> float:
    """The standard error of `hidden`'s average precision minus `linear`'s on the same rows, from a paired bootstrap
    of the rows (scipy's; PROBE_RESAMPLES resamples): how far apart a different draw of those rows could put two
    rankings of them."""
    from scipy.stats import bootstrap
    from sklearn.metrics import average_precision_score

    def gap(y, linear, hidden):
        return average_precision_score(y, hidden) - average_precision_score(y, linear)

    spread = bootstrap(
        tuple(np.asarray(a, dtype=float) for a in (y, linear, hidden)),
        gap,
        paired=True,
        vectorized=False,
        n_resamples=PROBE_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(spread.standard_error)


def choose_depth(config: SweepConfig, dataset: Dataset, classes: int = 1) -> dict:
    """hidden_layers = auto: trained with balanced class weights on the trials' own validation plan, a linear network
    and one of one hidden layer of PROBE_WIDTH units rank the pooled validation rows; one hidden layer only where its
    average precision is higher by more than one standard error of the gap (gap_error), else 0, the linear network.
    This is the one-standard-error rule (Hastie et al., Elements of Statistical Learning, 7.10): the simpler model
    unless the richer one is better beyond the noise of a few validation positives. Only the validation plan's rows
    are read, never the test rows. One hidden layer without a probe for three or more classes and for population > 1
    (populations hold one hidden layer). Returns {"hidden_layers", "why"} and, when probed, each candidate's validation
    average precision and the gap's standard error."""
    if classes > 1 or config.population > 1:
        why = "three or more classes" if classes > 1 else f"population = {config.population}"
        return {"hidden_layers": 1, "why": f"hidden_layers = auto: one hidden layer ({why})"}
    from sklearn.metrics import average_precision_score

    from sweep.metrics import balanced_class_weight

    plan = dataset.validation
    weights = balanced_class_weight(plan.y_fit)
    width = min(max(PROBE_WIDTH, config.hidden_width[0]), config.hidden_width[1])
    pooled = {}
    for layers in (1, 0):
        probe = BuiltinNetwork(dataclasses.replace(config, hidden_layers=layers)).sized(dataset)
        settings = TrainSettings(probe.epochs, probe.batch_size, float(probe.learning_rate), layers, config.seed)
        models, _ = train_models(plan.X_fit, plan.y_fit, width, weights, settings, [f.keep for f in plan.folds])
        pooled[layers] = plan.pool(_fold_scores(plan, models))
    ranked = {layers: float(average_precision_score(plan.y, scores)) for layers, scores in pooled.items()}
    error = gap_error(plan.y, pooled[0], pooled[1], config.seed)
    chosen = 1 if ranked[1] - ranked[0] > error else 0
    why = (
        f"hidden_layers = auto: {'a linear network' if chosen == 0 else 'one hidden layer'} (validation average "
        f"precision with balanced weights: linear {ranked[0]:.3f}, one hidden layer of {width} units {ranked[1]:.3f}; "
        f"one hidden layer only if ahead by more than the gap's standard error, {error:.3f})"
    )
    logger.info(why)
    return {
        "hidden_layers": chosen,
        "why": why,
        "linear_ap": ranked[0],
        "hidden_ap": ranked[1],
        "gap_error": error,
        "probe_width": width,
    }


class BuiltinNetwork(ModelKind):
    """sweep's own network: its width and the minority weight are searched; trials may train in populations."""

    network_words = "same network"
    populations = True

    def __init__(self, config: SweepConfig, class_counts: tuple[int, ...] = ()) -> None:
        super().__init__(config, class_counts)
        self._populations: dict = {}  # population id -> every member retrained at once (an ensemble reads several)

    def suggest(self, trial: optuna.Trial) -> TrialParams:
        return suggest(trial, self.config, suggest_width if self.config.hidden_layers else no_width, self.class_counts)

    def params(self, trial) -> TrialParams:
        return TrialParams.from_dict(trial.params, class_counts=self.class_counts)

    def sized(self, dataset: Dataset) -> SweepConfig:
        """The config as the trials train on `dataset`: hidden_layers = auto resolved (choose_depth); epochs raised so
        each fold model takes at least `min_steps` Adam steps (a linear network at least LINEAR_STEPS), and
        learning_rate = auto sized to the steps (sized_learning_rate; LINEAR_RATE for a linear network). 50 epochs of
        batch 100 are 150 steps on 300 training rows, too few to fit a network at Adam's default rate. A resolved
        study stores the sized config, and each trial its own settings, so every worker, the export's retrain and its
        refit train as the trials did."""
        config = self.config
        if config.hidden_layers == AUTO_DEPTH:
            self.depth = choose_depth(config, dataset, self.classes)
            config = dataclasses.replace(config, hidden_layers=self.depth["hidden_layers"])
        steps_per_epoch = fold_steps_per_epoch(config, dataset.validation)
        least = max(config.min_steps, LINEAR_STEPS if config.hidden_layers == 0 else 0)
        epochs = max(config.epochs, -(-least // steps_per_epoch))
        rate = config.learning_rate
        if rate == AUTO_RATE:
            rate = LINEAR_RATE if config.hidden_layers == 0 else sized_learning_rate(epochs * steps_per_epoch)
        return dataclasses.replace(config, epochs=epochs, learning_rate=rate)

    def train_folds(self, dataset, params, settings, hooks=None, clock=None) -> TrainedFolds:
        """The fold models trained side by side from the trial's start; `hooks.side_by_side` hears every
        `hooks.every`-th epoch with the pooled validation scores (the clock is the hooks' to check: an epoch is one
        compiled call)."""
        plan = dataset.validation
        rows_first = self.classes > 1

        def report(epoch: int, _loss: float, models) -> None:
            hooks.side_by_side(epoch, plan.pool(_fold_scores(plan, models), rows_first))

        keeps = [fold.keep for fold in plan.folds]
        models, result = train_models(
            plan.X_fit,
            plan.y_fit,
            params.hidden_width,
            params.class_weight,
            settings,
            keeps,
            hooks and report,
            every=hooks.every if hooks else 1,
        )
        fold_scores = _fold_scores(plan, models)
        pooled = plan.pool(fold_scores, rows_first)
        check_scores(pooled)
        return TrainedFolds(models, pooled, fold_scores, result.seconds, result.epochs_run)

    def retrain(self, dataset, trials, trial_of=None) -> dict[int, TrainedFolds]:
        """A trial trained alone is trained again alone; one trained in a population is sliced out of its
        population trained again (once per population, for every member asked for)."""
        from sweep.models.population import retrain_population_members

        found = {}
        for trial in trials:
            if "population" not in trial.user_attrs:
                settings = TrainSettings(**trial.user_attrs["train_settings"])
                found[trial.number] = self.train_folds(dataset, self.params(trial), settings)
                continue
            key = trial.user_attrs["population"]["id"]
            if key not in self._populations:
                self._populations[key] = retrain_population_members(dataset, trial, trial_of)
            models, pooled = self._populations[key][trial.number]
            found[trial.number] = TrainedFolds(models, pooled)
        return found

    def fit(self, X, y, params, class_weight, settings):
        return train_model(X, y, params.hidden_width, class_weight, settings)[0]

    def refit(self, dataset: Dataset, refits: list[Refit]) -> list:
        """One-hidden-layer networks side by side as one population (the first refit's seed shuffles the rows);
        linear and deeper ones one after another."""
        if refits[0].settings.hidden_layers != 1:
            return super().refit(dataset, refits)
        from sweep.models.population import Member, member_network, train_population

        X, y = dataset.development.X, dataset.development.y
        first = refits[0].settings
        members = [
            Member(
                r.params.hidden_width, r.params.minority_weight, r.settings.seed, r.settings.learning_rate,
                r.params.class_weights,
            )
            for r in refits
        ]  # fmt: skip
        population, _, _, _ = train_population(
            X, y, members, first.epochs, first.batch_size, first.learning_rate, first.seed,
            weight_decay=first.weight_decay,
        )  # fmt: skip
        return [member_network(population, index) for index in range(len(refits))]

    def refit_words(self, settings: TrainSettings) -> str:
        return "side by side as one population" if settings.hidden_layers == 1 else "one after another"

    def practice(self, params, settings, y) -> list[Practice]:
        """The tutorial's three fixed networks, its epochs and batch size (not the trial's)."""
        from sweep.metrics import balanced_class_weight

        rows = []
        for name, width, layers, weights in TUTORIAL_NETWORKS:
            fixed = TrialParams(1.0, width, 0.5)
            tutorial = TrainSettings(**TUTORIAL_FIT, hidden_layers=layers, seed=settings.seed)
            rows.append(Practice(name, fixed, tutorial, balanced_class_weight(y) if weights == "balanced" else weights))
        return rows

    def describe(self, model, compiled_by):
        return {"kind": "builtin"}

    def hidden_layers(self, settings: TrainSettings) -> int:
        return settings.hidden_layers

    def keras_model(self, model):
        return model.to_keras()


def _fold_scores(plan, models) -> list[np.ndarray]:
    """Each fold model's scores on its own validation rows."""
    return [score(model, fold.X_val) for model, fold in zip(models, plan.folds)]
