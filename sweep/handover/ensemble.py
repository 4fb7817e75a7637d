"""What an export bundle holds (`--ensemble`): one refit, K refit seeds, a cross-validated trial's own fold models,
or a greedy ensemble of the study's best trials (Caruana et al. 2004); trained here, averaged, and saved as one
Keras model of standard layers (the input fed to each member, their outputs combined by keras.layers.Average),
so a bundle stays free of pickles and custom objects and `predict` averages the members."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sweep.errors import ExportError
from sweep.metrics import choose_threshold
from sweep.models import Refit
from sweep.models.network import TrainSettings

ENSEMBLE_SYNTAX = "auto | single | seeds:K (K >= 2) | folds | greedy:N (N >= 2)"
UNSIZED_KINDS = ("auto", "single", "folds")  # written without a ":N"
# What `sweep export` ships when --ensemble is not given: `auto` (automatic_ensemble), one refit, by measurement on real
# tables held apart from the choice (docs/benchmarks/export.md).
DEFAULT_ENSEMBLE = "auto"
# Rounds of greedy selection with replacement: AutoGluon's default ensemble size.
GREEDY_STEPS = 25


@dataclass(frozen=True)
class EnsembleChoice:
    """A parsed --ensemble: its kind and its size (K seeds, or the N best trials greedy selection draws from)."""

    kind: str
    size: int = 1

    def __str__(self) -> str:
        return self.kind if self.kind in UNSIZED_KINDS else f"{self.kind}:{self.size}"


def parse_ensemble(text) -> EnsembleChoice:
    """--ensemble's syntax (ENSEMBLE_SYNTAX); one line saying what was received and what is expected otherwise."""
    if isinstance(text, EnsembleChoice):
        return text
    given = str(text).strip().lower()
    kind, colon, argument = given.partition(":")
    problem = None
    if kind in UNSIZED_KINDS:
        if not colon:
            return EnsembleChoice(kind)
        problem = f"{kind} takes no number"
    elif kind in ("seeds", "greedy"):
        try:
            size = int(argument)
        except ValueError:
            problem = f"{kind} needs a whole number after ':', got {argument!r}"
        else:
            if size >= 2:
                return EnsembleChoice(kind, size)
            problem = f"{kind}:{size} needs at least 2" + (
                " (one seed is --ensemble single)" if kind == "seeds" else ""
            )
    else:
        problem = "unknown kind"
    raise ExportError(
        f"--ensemble {str(text)!r} is invalid: {problem}; expected {ENSEMBLE_SYNTAX}, e.g. --ensemble seeds:5"
    )


def automatic_ensemble(choice: EnsembleChoice) -> EnsembleChoice:
    """What `auto` ships: one refit of the best trial. Greedy ensembles of the best trials decided no better on tables
    they were not chosen on and were the kind that collapsed (their members and threshold chosen on the same few
    positives); they stay a named choice."""
    return EnsembleChoice("single") if choice.kind == "auto" else choice


def member_seeds(seed: int, count: int) -> list[int]:
    """`count` training seeds derived from a trial's seed: the trial's own first (so member 0 starts where the
    single refit does), then distinct ones drawn deterministically from it."""
    from sweep.space import trial_seed

    return [seed] + [trial_seed(seed, k) for k in range(1, count)]


@dataclass(frozen=True)
class Ensemble:
    """The models a bundle holds and how many times each counts in the average (greedy selection draws with
    replacement; every other kind counts each once), with what best.json says of each member."""

    kind: str
    models: tuple  # sweep.models.network.Network or keras.Model each, all taking the same rows
    counts: tuple[int, ...]
    members: tuple[dict, ...]  # {"trial", "seed", "fitted_on", ...} per model
    how_chosen: str

    @property
    def weights(self) -> np.ndarray:
        counts = np.asarray(self.counts, dtype=np.float64)
        return counts / counts.sum()

    def scores(self, X: np.ndarray) -> np.ndarray:
        """The members' scores of each row averaged with their weights (a single model's own scores, as they are)."""
        from sweep.models.network import score

        if len(self.models) == 1:
            return score(self.models[0], X)
        return np.sum([w * score(m, X).astype(np.float64) for w, m in zip(self.weights, self.models)], axis=0).astype(
            np.float32
        )

    def record(self) -> dict:
        """best.json's "ensemble": the kind, each member with its weight, and how they were chosen."""
        members = [m | {"weight": round(float(w), 6)} for m, w in zip(self.members, self.weights)]
        return {"kind": self.kind, "size": int(sum(self.counts)), "members": members, "how_chosen": self.how_chosen}

    def keras_model(self, input_shape, kind):
        """The whole ensemble as one Keras model of standard layers: a single member as `kind` saves it; several as
        a functional model feeding the input to each member (a nested model named member_K) and averaging their
        outputs (a member counted c times enters the Average c times)."""
        import keras

        built = [kind.keras_model(m) for m in self.models]
        if len(built) == 1:
            return built[0]
        inputs = keras.Input(shape=tuple(input_shape), name="rows")
        outputs = []
        for index, (model, count) in enumerate(zip(built, self.counts)):
            model.name = f"member_{index}"  # unique names: a builder may name every model it builds the same
            outputs += [model(inputs)] * count
        return keras.Model(inputs, keras.layers.Average(name="average")(outputs), name=f"ensemble_{self.kind}")


def single_model(model, trial: int, seed: int, fitted_on: str) -> Ensemble:
    """Today's export: one model."""
    return Ensemble(
        "single",
        (model,),
        (1,),
        ({"trial": trial, "seed": seed, "fitted_on": fitted_on},),
        "the study's best trial, refit once with its own seed",
    )


def fold_ensemble(models, plan, trial: int, seed: int) -> Ensemble:
    """A cross-validated trial's own fold models, averaged: the models whose pooled out-of-fold scores judged it."""
    members = []
    rows = len(plan.y_fit)
    for index, fold in enumerate(plan.folds):
        repeat, number = divmod(index, plan.n_splits)
        where = f"repeat {repeat + 1}, fold {number + 1}" if plan.repeats > 1 else f"fold {number + 1}"
        trained_on = rows - len(fold.slots)
        members.append(
            {
                "trial": trial,
                "seed": seed,
                "fold": index,
                "fitted_on": f"the non-test rows outside {where}'s validation rows ({trained_on} rows)",
            }
        )
    how = (
        f"trial #{trial}'s {len(models)} fold models ({plan.n_splits} folds"
        + (f" x {plan.repeats} repeats" if plan.repeats > 1 else "")
        + "), averaged: the models its pooled out-of-fold scores, and so its threshold, were chosen on"
    )
    return Ensemble("folds", tuple(models), (1,) * len(models), tuple(members), how)


def seed_ensemble(dataset, kind, trial: int, params, settings, count: int) -> Ensemble:
    """The chosen configuration refit on all non-test rows with `count` seeds (member_seeds), averaged: the share
    of the result that is one seed's luck shrinks."""
    seeds = member_seeds(settings.seed, count)
    refits = [Refit(trial, params, dataclasses.replace(settings, seed=s)) for s in seeds]
    models = kind.refit(dataset, refits)
    rows = len(dataset.development.y)
    how = kind.refit_words(settings)
    members = tuple({"trial": trial, "seed": s, "fitted_on": f"all non-test rows ({rows} rows)"} for s in seeds)
    return Ensemble(
        "seeds",
        tuple(models),
        (1,) * count,
        members,
        f"trial #{trial}'s configuration refit on all non-test rows with {count} seeds "
        "(its own first, then derived from it), "
        f"trained {how}, averaged",
    )


def greedy_selection(
    goal, y_true: np.ndarray, pooled: dict, bounds: tuple[float, float], steps: int = GREEDY_STEPS
) -> tuple[dict, float, float]:
    """Caruana's ensemble selection with replacement: start from the best single trial, then `steps` - 1 times
    add the trial whose inclusion makes the average of the pooled scores best by `goal` (at the threshold
    re-chosen on that average), and keep the best ensemble seen. `pooled` maps trial number -> pooled scores,
    best trial first. Returns ({trial: count}, threshold, value)."""
    better = (lambda a, b: a < b) if goal.direction == "minimize" else (lambda a, b: a > b)
    numbers = list(pooled)
    total = np.zeros(len(y_true), dtype=np.float64)
    counts: dict[int, int] = {}
    best = None
    for step in range(steps):
        trial_scores = []
        for number in numbers:
            threshold, value = choose_threshold(goal, y_true, (total + pooled[number]) / (step + 1), bounds)
            trial_scores.append((value, threshold, number))
        value, threshold, number = trial_scores[0]
        for candidate in trial_scores[1:]:
            if better(candidate[0], value):
                value, threshold, number = candidate
        total += pooled[number]
        counts[number] = counts.get(number, 0) + 1
        if best is None or better(value, best[2]):
            best = (dict(counts), threshold, value)
    return best


def greedy_candidates(study, goal, size: int) -> list:
    """The `size` best complete trials of a single-objective study, best first (ties: the earlier trial)."""
    import optuna

    complete = [
        t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.value is not None
    ]
    sign = 1.0 if goal.direction == "minimize" else -1.0
    return sorted(complete, key=lambda t: (sign * t.value, t.number))[:size]


def greedy_ensemble(
    dataset, kind, goal, chosen: dict, trials: dict, threshold: float, value: float, size: int
) -> Ensemble:
    """The configurations greedy selection chose, each refit on all non-test rows with its trial's seed, counted
    as often as it was chosen."""
    numbers = list(chosen)
    refits = [
        Refit(n, kind.params(trials[n]), TrainSettings(**trials[n].user_attrs["train_settings"])) for n in numbers
    ]
    models = kind.refit(dataset, refits)
    rows = len(dataset.development.y)
    members = tuple(
        {
            "trial": r.trial,
            "seed": r.settings.seed,
            "fitted_on": f"all non-test rows ({rows} rows)",
            "params": dict(trials[r.trial].params) | r.params.model_params,
        }
        for r in refits
    )
    how = (
        f"greedy ensemble selection with replacement (Caruana et al. 2004), {GREEDY_STEPS} rounds "
        f"over the {size} best complete trials' pooled validation scores, by {goal.name} "
        "at a threshold re-chosen on the ensemble's own pooled scores "
        f"({threshold:.4g}, value {value:.4g}); "
        "each chosen configuration refit on all non-test rows with its trial's seed"
    )
    return Ensemble("greedy", tuple(models), tuple(chosen[n] for n in numbers), members, how)


def judged_greedy_ensemble(
    dataset, kind, goal, chosen: dict, trials: dict, fold_models: dict, threshold: float, value: float, size: int
) -> Ensemble:
    """The configurations greedy selection chose, shipped as the models their pooled validation scores came from
    (a holdout trial's own model, a cross-validated trial's fold models), no refit: the ensemble's threshold was
    chosen on exactly these models' scores. Each fold model of a trial chosen c times counts c times."""
    plan = dataset.validation
    models, counts, members = [], [], []
    for number, count in chosen.items():
        params = kind.params(trials[number])
        for index, model in enumerate(fold_models[number]):
            where = (
                "its training part"
                if plan.kind == "holdout"
                else f"the non-test rows outside fold {index + 1}'s validation rows"
            )
            models.append(model)
            counts.append(count)
            members.append(
                {
                    "trial": number,
                    "seed": trials[number].user_attrs["train_settings"]["seed"],
                    "fold": index,
                    "fitted_on": where,
                    "params": dict(trials[number].params) | params.model_params,
                }
            )
    folds = "its own model" if plan.kind == "holdout" else f"its {len(plan.folds)} fold models"
    how = (
        f"greedy ensemble selection with replacement (Caruana et al. 2004), {GREEDY_STEPS} rounds "
        f"over the {size} best complete trials' pooled validation scores, by {goal.name} "
        "at a threshold re-chosen on the ensemble's own pooled scores "
        f"({threshold:.4g}, value {value:.4g}); "
        f"each chosen trial shipped as {folds}, the models that threshold was chosen on"
    )
    return Ensemble("greedy", tuple(models), tuple(counts), tuple(members), how)
