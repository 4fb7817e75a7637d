"""Create or resume a study and run trials until it holds the requested number of finished trials."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import FrozenTrial, TrialState

from sweep.config import SweepConfig
from sweep.data import Dataset, load_dataset
from sweep.errors import StorageError, TrialFailed
from sweep.metrics import parse_objective
from sweep.objective import make_objective
from sweep.runtime import configure_threads
from sweep.storage import mask_url, open_storage

# Trials that count towards --trials: finished with a value, or stopped early by a pruner.
BUDGET_STATES = (TrialState.COMPLETE, TrialState.PRUNED)
# A run stops (and says so) after this many failed trials in a row: something is wrong beyond one trial.
MAX_CONSECUTIVE_FAILURES = 10
# Keys that decide which rows are train/validation/test: a resumed study must keep them.
SPLIT_KEYS = ("seed", "validation_fraction", "test_fraction", "target", "positive_label")

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


@dataclass(frozen=True)
class SweepResult:
    """What a finished run has to tell: where the study is and how good its best trial is."""

    study_name: str
    storage: str  # masked
    metric_name: str
    direction: str
    finished: int
    failed: int
    ran_now: int
    best: FrozenTrial | None
    stop_reason: str | None = None


def count_trials(study: optuna.Study, states: Sequence[TrialState]) -> int:
    return len(study.get_trials(deepcopy=False, states=tuple(states)))


def make_pruner(spec: str, epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruner for a --pruner spec (checked by config). Epochs are the pruning steps."""
    name, _, argument = spec.partition(":")
    # The first epochs of a weighted network are noisy at a fixed threshold: let a fifth of them pass.
    warmup = max(1, epochs // 5)
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if name == "percentile":
        return optuna.pruners.PercentilePruner(float(argument), n_startup_trials=5, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=epochs)
    if name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    return optuna.pruners.NopPruner()


def prepare_study(config: SweepConfig, dataset: Dataset) -> optuna.Study:
    """Create the study or resume it; a resumed study must have the same data and objective."""
    objective = parse_objective(config.objective)
    storage = open_storage(config.storage)
    existing = config.study in optuna.get_all_study_names(storage)
    # Offset the sampler's seed by the trials already stored, so a resumed run does not replay the same draws.
    already = len(optuna.load_study(study_name=config.study, storage=storage).trials) if existing else 0
    # multivariate: the best threshold depends on the weight, so model them jointly rather than one by one.
    sampler = optuna.samplers.TPESampler(seed=config.seed + already, multivariate=True)
    study = optuna.create_study(
        storage=storage, study_name=config.study, sampler=sampler, pruner=make_pruner(config.pruner, config.epochs),
        direction=objective.direction, load_if_exists=True,
    )
    if existing:
        _check_compatible(study, config, dataset)
        return study
    stored_config = config.to_dict() | {"storage": mask_url(config.storage)}
    study.set_user_attr("config", stored_config)
    study.set_user_attr("data", dataset.summary())
    study.set_user_attr("objective", {"spec": config.objective, "name": objective.name, "direction": objective.direction})
    with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna 5 but it is what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([objective.name])
    return study


def _check_compatible(study: optuna.Study, config: SweepConfig, dataset: Dataset) -> None:
    stored = study.user_attrs
    data = stored.get("data", {})
    if data.get("fingerprint") not in (None, dataset.fingerprint):
        raise StorageError(
            f"study {config.study!r} was created on other data (fingerprint {data['fingerprint']}, now "
            f"{dataset.fingerprint}); use a new --study name for new data"
        )
    stored_config = stored.get("config", {})
    for key in SPLIT_KEYS:
        if key in stored_config and stored_config[key] != getattr(config, key):
            raise StorageError(
                f"study {config.study!r} was split with {key} = {stored_config[key]!r}, not {getattr(config, key)!r}; "
                f"resume it with the same {key} (it decides the validation rows) or use a new --study name"
            )
    spec = stored.get("objective", {}).get("spec")
    if spec is not None and parse_objective(spec) != parse_objective(config.objective):
        raise StorageError(
            f"study {config.study!r} optimises objective {spec!r}, not {config.objective!r}; "
            "use the same --objective to resume it or a new --study name"
        )


class _StopAfterFailures:
    """Stop the study after MAX_CONSECUTIVE_FAILURES failed trials in a row in this process."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.last_reason: str | None = None

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state == TrialState.FAIL:
            self.in_a_row += 1
            self.last_reason = trial.user_attrs.get("fail_reason", "see the log")
            if self.in_a_row >= MAX_CONSECUTIVE_FAILURES:
                study.stop()
        else:
            self.in_a_row = 0


def run_sweep(
    config: SweepConfig,
    callbacks: Sequence[TrialCallback] = (),
    dataset: Dataset | None = None,
    on_start: Callable[[optuna.Study], None] | None = None,
) -> SweepResult:
    """Run the sweep of `config` to `config.trials` finished trials in total (resuming the study if it exists).

    Data, config and storage are checked before any trial starts (then `on_start` is called); a failing trial
    is recorded as FAIL with user attr fail_reason and the sweep goes on.
    """
    objective = parse_objective(config.objective)
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    dataset = dataset if dataset is not None else load_dataset(config)
    study = prepare_study(config, dataset)
    before = len(study.get_trials(deepcopy=False))
    failures = _StopAfterFailures()
    if on_start is not None:
        on_start(study)
    if count_trials(study, BUDGET_STATES) < config.trials:
        study.optimize(
            make_objective(config, dataset, objective),
            timeout=config.timeout,
            catch=(TrialFailed,),
            callbacks=[MaxTrialsCallback(config.trials, states=BUDGET_STATES), failures, *callbacks],
            gc_after_trial=True,
        )
    stop_reason = None
    if failures.in_a_row >= MAX_CONSECUTIVE_FAILURES:
        stop_reason = f"stopped after {failures.in_a_row} failed trials in a row; last reason: {failures.last_reason}"
    return summarize(study, config.storage, ran_now=len(study.get_trials(deepcopy=False)) - before, stop_reason=stop_reason)


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The best complete trial, or None when the study has none yet."""
    if count_trials(study, (TrialState.COMPLETE,)) == 0:
        return None
    return study.best_trial


def summarize(study: optuna.Study, storage_url: str, ran_now: int = 0, stop_reason: str | None = None) -> SweepResult:
    objective = study.user_attrs.get("objective", {})
    return SweepResult(
        study_name=study.study_name,
        storage=mask_url(storage_url),
        metric_name=(study.metric_names or [objective.get("name", "value")])[0],
        direction=study.direction.name.lower(),
        finished=count_trials(study, BUDGET_STATES),
        failed=count_trials(study, (TrialState.FAIL,)),
        ran_now=ran_now,
        best=best_trial(study),
        stop_reason=stop_reason,
    )
