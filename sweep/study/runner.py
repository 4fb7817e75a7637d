"""Create or resume a study and run trials until it holds the requested number of finished trials."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import time
import warnings
from collections.abc import Callable, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from sweep import stopping
from sweep.config import AUTO_DEPTH, PrunerSpec, SweepConfig
from sweep.data import Dataset, load_dataset
from sweep.errors import StorageError, StorageUnreachable, TrialFailed
from sweep.metrics import parse_goal
from sweep.models import model_kind
from sweep.multiclass import bind_class_goal
from sweep.runtime import configure_threads, select_device
from sweep.study import outage
from sweep.study.figures import FigureWorker, artifact_store, save_study_note
from sweep.study.optuna_private import set_attr_of_finished_trial, storage_of
from sweep.study.queries import TrialCounts, running_trials_never_stamped
from sweep.study.rounds import population_round
from sweep.study.storage import mask_url, may_hold_studies, open_storage
from sweep.study.summary import BUDGET_STATES, SweepResult, count_trials, summarize
from sweep.study.trial import trial_function
from sweep.study.watchdog import told_after_watchdog

# A run stops (and says so) after this many failed trials in a row: something is wrong beyond one trial.
MAX_CONSECUTIVE_FAILURES = 10
# Exit code of a worker process that gave up on an unreachable storage: silent, the driver says it once.
EXIT_UNREACHABLE = 75
# Keys that decide which rows are train/validation/test: a resumed study must keep them.
SPLIT_KEYS = (
    "seed",
    "validation_fraction",
    "test_fraction",
    "target",
    "positive_label",
    "features",
    "drop",
    "min_level_count",
    "max_levels",
)
# Keys that decide what a trial trains and searches: a resumed study must keep them too.
MODEL_KEYS = ("model", "space")

logger = logging.getLogger("sweep")

TrialCallback = Callable[[optuna.Study, FrozenTrial], None]


def make_pruner(spec: PrunerSpec, epochs: int) -> optuna.pruners.BasePruner:
    """Optuna's pruner for a parsed --pruner (config.pruner_spec). Epochs are the pruning steps."""
    # The first epochs of a weighted network are noisy at a fixed threshold: let a fifth of them pass.
    warmup = max(1, epochs // 5)
    if spec.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=warmup)
    if spec.name == "percentile":
        return optuna.pruners.PercentilePruner(spec.argument, n_startup_trials=5, n_warmup_steps=warmup)
    if spec.name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=warmup, max_resource=epochs)
    if spec.name == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=warmup)
    return optuna.pruners.NopPruner()


def sized_for(config: SweepConfig, dataset: Dataset) -> tuple[SweepConfig, dict | None]:
    """The config as the trials train on `dataset` (ModelKind.sized), and what it made of hidden_layers = auto
    (None when nothing was chosen). A study that exists keeps the network depth its config stored, so a resumed
    hidden_layers = auto goes on with the network its trials trained."""
    if config.hidden_layers == AUTO_DEPTH and not config.user_model and may_hold_studies(config.storage):
        storage = open_storage(config.storage, config.heartbeat_interval, config.grace_period)
        if config.study in optuna.get_all_study_names(storage):
            stored = optuna.load_study(study_name=config.study, storage=storage).user_attrs.get("config", {})
            if isinstance(stored.get("hidden_layers"), int):
                config = dataclasses.replace(config, hidden_layers=stored["hidden_layers"])
    kind = model_kind(config, dataset)
    return kind.sized(dataset), kind.depth


def prepare_study(
    config: SweepConfig, dataset: Dataset, worker_index: int = 0, depth: dict | None = None
) -> optuna.Study:
    """Create the study or resume it; a resumed study must have the same data and objective. A user's model
    builder is checked first (it loads, takes typical params, returns a usable model), before any trial. A new study
    stores `depth`, how hidden_layers = auto was resolved (sized_for)."""
    goal = config.goal
    class_goal = bind_class_goal(goal, dataset.classes)  # one that does not fit the target's classes: one line, exit 2
    names = goal.names if class_goal is None else [class_goal.name]
    kind = model_kind(config, dataset)
    kind.check(dataset)
    storage = open_storage(config.storage, config.heartbeat_interval, config.grace_period)
    existing = config.study in optuna.get_all_study_names(storage)
    # Offset the sampler's seed by the trials already stored, so a resumed run does not replay the same draws.
    already = (
        count_trials(optuna.load_study(study_name=config.study, storage=storage), tuple(TrialState)) if existing else 0
    )
    # multivariate: the best threshold depends on the weight, so model them jointly rather than one by one.
    sampler = optuna.samplers.TPESampler(seed=config.seed + already, multivariate=True)
    study = optuna.create_study(
        storage=storage,
        study_name=config.study,
        sampler=sampler,
        pruner=make_pruner(config.pruner_spec, kind.pruning_steps(dataset.validation)),
        directions=goal.directions,
        load_if_exists=True,
    )
    if existing:
        _check_compatible(study, config, dataset)
        return study
    stored_config = config.to_dict() | {"storage": mask_url(config.storage)}
    study.set_user_attr("config", stored_config)
    study.set_user_attr("data", dataset.summary())
    if depth is not None:
        study.set_user_attr("depth", depth)
    study.set_user_attr(
        "objective", {"spec": config.objective, "name": names[0], "direction": ",".join(goal.directions)}
    )
    with warnings.catch_warnings():  # set_metric_names is "experimental" in Optuna 5 but it is what the dashboard reads
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(names)
    return study


def _check_compatible(study: optuna.Study, config: SweepConfig, dataset: Dataset) -> None:
    """Refuse to resume with another split, column choice, validation plan, data or objective (the most
    specific reason first: other --drop also changes the data's fingerprint)."""
    stored = study.user_attrs
    data = stored.get("data", {})
    stored_config = stored.get("config", {})
    current = config.to_dict()
    stored_classes = data.get("classes", [])
    if "fingerprint" in data and stored_classes != list(dataset.classes):
        was = f"{len(stored_classes)} classes ({', '.join(stored_classes)})" if stored_classes else "a binary target"
        now = f"{len(dataset.classes)} classes ({', '.join(dataset.classes)})" if dataset.classes else "two classes"
        raise StorageError(
            f"study {config.study!r} was swept on {was}, but the target now has {now}; "
            "resume it with the data it was swept on or use a new --study name"
        )
    for key in SPLIT_KEYS:
        if key in stored_config and stored_config[key] != current[key]:
            raise StorageError(
                f"study {config.study!r} was split with {key} = {stored_config[key]!r}, not {current[key]!r}; "
                f"resume it with the same {key} (it decides the rows and columns trials see) or use a new --study name"
            )
    if data.get("fingerprint") not in (None, dataset.fingerprint):
        raise StorageError(
            f"study {config.study!r} was created on other data (fingerprint {data['fingerprint']}, now "
            f"{dataset.fingerprint}); use a new --study name for new data"
        )
    for key in MODEL_KEYS:
        if key in stored_config and stored_config[key] != current[key]:
            raise StorageError(
                f"study {config.study!r} was swept with {key} = {stored_config[key]!r}, not {current[key]!r}; "
                f"resume it with the same {'--model' if key == 'model' else '[space] / --param entries'} "
                "or use a new --study name"
            )
    if stored_config and stored_config.get("model", "builtin") != config.model:  # a study stored before the key
        raise StorageError(
            f"study {config.study!r} was swept with the builtin network, not {config.model!r}; use a new --study name"
        )
    judged = data.get("validation")
    if judged is not None and judged != dataset.validation.describe():
        raise StorageError(
            f"study {config.study!r} judges trials by {judged}, not {dataset.validation.describe()}; resume it with "
            "the same --cv and --cv-repeats or use a new --study name"
        )
    spec = stored.get("objective", {}).get("spec")
    if spec is not None and parse_goal(spec) != config.goal:
        raise StorageError(
            f"study {config.study!r} optimises objective {spec!r}, not {config.objective!r}; "
            "use the same --objective to resume it or a new --study name"
        )


class _StopAfterFailures:
    """Stop the study after MAX_CONSECUTIVE_FAILURES failed trials in a row in this process."""

    def __init__(self) -> None:
        self.in_a_row = 0
        self.last_reason: str | None = None

    def observe(self, trial: FrozenTrial) -> None:
        if trial.user_attrs.get("run_timeout"):
            return  # stopped by the run's --timeout: no sign of anything wrong
        if trial.state == TrialState.FAIL and not trial.user_attrs.get("over_budget"):
            self.in_a_row += 1
            self.last_reason = trial.user_attrs.get("fail_reason", "see the log")
        elif trial.state != TrialState.FAIL:
            self.in_a_row = 0

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.observe(trial)
        if self.in_a_row >= MAX_CONSECUTIVE_FAILURES:
            study.stop()


class Budget:
    """The study's trial budget shared by every worker: trials count when complete, pruned or still running.

    A worker stops once the budget is covered; a trial is admitted only if fewer than `total` trials that
    were created before it are finished or running, so concurrent workers end with exactly `total`
    finished trials (a running trial that later fails frees its place for the workers still going). Its
    counts (sweep.study.queries.TrialCounts) cost what the trials open or finished since the last check cost, not
    what the study's size does.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self._counts: TrialCounts | None = None

    COVERING = (*BUDGET_STATES, TrialState.RUNNING)

    def count(self, study: optuna.Study, states, below_number: int | None = None) -> int:
        """count_trials of `study`, through one TrialCounts kept for it."""
        if self._counts is None or self._counts.study.study_name != study.study_name:
            self._counts = TrialCounts(study)
        return self._counts(states, below_number)

    def admits(self, trial: optuna.Trial) -> bool:
        if trial.number < self.total:
            return True  # only trial.number trials were created before it: fewer than the budget, whatever their state
        return self.count(trial.study, self.COVERING, below_number=trial.number) < self.total

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if self.count(study, self.COVERING) >= self.total:
            study.stop()


NEVER_STAMPED_REASON = (
    "worker lost: the trial never got a heartbeat in {seconds} s (its worker lost the database or died as it "
    "started it)"
)


def fail_stale_trials(study: optuna.Study, grace_period: float) -> None:
    """Optuna's fail_stale_trials (marked experimental in Optuna 5) without its warning; then fail the RUNNING
    trials that never got a first heartbeat within `grace_period`, which Optuna never takes for stale (they
    would hold a place in the budget for ever). Neither while the storage is away or has just come back (see
    sweep.study.storage.RidingStorage): the live workers' heartbeats stopped during the outage too."""
    if outage.process().settling(grace_period):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    storage = storage_of(study)
    for trial_key in running_trials_never_stamped(study, grace_period):
        if storage.set_trial_state_values(trial_key, state=TrialState.FAIL):
            set_attr_of_finished_trial(
                storage, trial_key, "fail_reason", NEVER_STAMPED_REASON.format(seconds=grace_period)
            )


def ended_elsewhere(exc: BaseException) -> bool:
    """Whether `exc`, out of study.optimize, is Optuna refusing to tell or update a trial that is already finished:
    its heartbeat lapsed while this worker was cut off and another worker failed and retried it (or a write whose
    answer the outage swallowed had gone through)."""
    refused = isinstance(exc, ValueError) and str(exc).startswith("Cannot tell a")
    if refused or isinstance(exc, optuna.exceptions.UpdateFinishedTrialError):
        logger.warning(
            "a trial of this worker was ended by another one while this one could not reach the storage; going on"
        )
        return True
    return False


def run_sweep(
    config: SweepConfig,
    callbacks: Sequence[TrialCallback] = (),
    dataset: Dataset | None = None,
    on_start: Callable[[optuna.Study], None] | None = None,
    worker_index: int = 0,
) -> SweepResult:
    """Run the sweep of `config` to `config.trials` finished trials in total (resuming the study if it exists).

    Data, config and storage are checked before any trial starts (then `on_start` is called); a failing trial
    is recorded as FAIL with user attr fail_reason and the sweep goes on. Several processes may run this on
    one study at once (see run_workers). A storage outage is waited for up to config.outage_limit (every storage
    call rides it out, sweep.study.outage); past it StorageUnreachable is raised.
    """
    outage.configure(config.outage_limit)
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    select_device(config.device_spec, worker_index)
    dataset = dataset if dataset is not None else load_dataset(config)
    config, depth = sized_for(config, dataset)
    study = prepare_study(config, dataset, worker_index, depth)
    dataset.release_rows()  # trials need only the encoded search parts, not the raw table (nor the test part)
    before = count_trials(study, tuple(TrialState))
    loop = _SweepLoop(study, config, dataset, callbacks)
    if on_start is not None:
        on_start(study)
    try:
        loop.run()
    finally:
        loop.figures.close()  # the last best trial's figures are attached before the run returns
    save_study_note(study)
    ran_now = count_trials(study, tuple(TrialState)) - before
    return summarize(study, config.storage, ran_now=ran_now, stop_reason=loop.stop_reason())


class _SweepLoop:
    """One process's trials of a study until its budget is met, its --timeout passes or too many fail in a row: a
    trial at a time through study.optimize, or population rounds."""

    def __init__(self, study: optuna.Study, config: SweepConfig, dataset: Dataset, callbacks) -> None:
        self.study, self.config, self.dataset, self.callbacks = study, config, dataset, callbacks
        self.failures = _StopAfterFailures()
        self.budget = Budget(config.trials)
        self.figures = FigureWorker(artifact_store(config.storage))
        self.deadline = None if config.timeout is None else time.monotonic() + config.timeout
        self.population = trials_per_round(config, dataset)

    def run(self) -> None:
        while self.failures.in_a_row < MAX_CONSECUTIVE_FAILURES:
            stopping.check()
            try:
                if not self._step():
                    return
            except Exception as exc:
                unreachable = outage.unreachable_in(exc)  # Optuna may raise another error on top of it
                if unreachable is not None:
                    raise unreachable from None
                if not (told_after_watchdog(exc) or ended_elsewhere(exc)):  # a trial that is over and recorded: go on
                    raise

    def stop_reason(self) -> str | None:
        failures = self.failures
        if failures.in_a_row < MAX_CONSECUTIVE_FAILURES:
            return None
        return f"stopped after {failures.in_a_row} failed trials in a row; last reason: {failures.last_reason}"

    def _step(self) -> bool:
        """Run the next trial or round, or wait for other workers' trials; False once the budget or time is up."""
        study, config, budget = self.study, self.config, self.budget
        remaining = None if self.deadline is None else self.deadline - time.monotonic()
        finished = budget.count(study, BUDGET_STATES)
        if finished >= config.trials or (remaining is not None and remaining <= 0):
            return False
        if finished + budget.count(study, (TrialState.RUNNING,)) >= config.trials:
            # Other workers' trials cover the rest of the budget: wait for them to finish, or for their
            # heartbeats to lapse (a dead worker), in which case their trials are failed and retried here.
            time.sleep(config.heartbeat_interval)
            fail_stale_trials(study, config.grace_period)
            return True
        if self.population > 1:
            self._round(finished)
            return True
        study.optimize(
            trial_function(config, self.dataset, config.goal, admit=budget.admits, figures=self.figures),
            timeout=remaining,
            catch=(TrialFailed,),
            callbacks=[budget, self.failures, *self.callbacks],
            # A full collection after each trial walks TensorFlow's object graph for nothing: memory stays flat
            # without it (docs/benchmarks/trial-speed.md).
            gc_after_trial=False,
        )
        return True

    def _round(self, finished: int) -> None:
        """One population round of the trials the budget still has room for."""
        study, config = self.study, self.config
        # Optuna's TPE defaults to constant_liar in version 5, so trials asked together spread out.
        fail_stale_trials(study, config.grace_period)
        running = self.budget.count(study, (TrialState.RUNNING,))
        size = min(self.population, config.trials - finished - running)
        told_trials = population_round(
            study, config, self.dataset, config.goal, size, admit=self.budget.admits, figures=self.figures,
            deadline=self.deadline,
        )  # fmt: skip
        for told in told_trials:
            self.failures.observe(told)
            for callback in self.callbacks:
                callback(study, told)


def trials_per_round(config: SweepConfig, dataset: Dataset) -> int:
    """Trials trained together: config.population, or the automatic choice when it is 0."""
    if not model_kind(config, dataset).populations:
        return 1  # a user's model trains through Keras fit, one trial at a time
    fold_models = len(dataset.validation.folds)
    if config.population:
        return config.population
    from sweep.models.population import automatic_population
    from sweep.runtime import detect_device

    chosen = automatic_population(
        config.trials,
        config.hidden_width,
        config.hidden_layers,
        detect_device() == "/GPU:0",
        config.workers,
        fold_models,
    )
    logger.info("population: %d trials per round (automatic)", chosen)
    return chosen


def _worker_main(config: SweepConfig, worker_index: int) -> None:
    """Entry point of one worker process started by run_workers; SIGINT/SIGTERM stop it gracefully."""
    import sys

    from sweep.errors import quiet_trial_tracebacks

    stopping.install()
    logging.basicConfig(level=logging.WARNING, format=f"[worker {worker_index}] %(levelname)s %(message)s")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    quiet_trial_tracebacks()
    try:
        result = run_sweep(config, worker_index=worker_index)
    except KeyboardInterrupt:
        sys.exit(130)
    except StorageUnreachable:
        sys.exit(EXIT_UNREACHABLE)  # the driver, cut off too, says it in one line
    except Exception as exc:  # reported by the parent from the exit code; the line says why
        from sweep.errors import SweepError

        print(f"worker {worker_index}: error: {exc}", file=sys.stderr, flush=True)
        sys.exit(exc.exit_code if isinstance(exc, SweepError) else 1)
    sys.exit(1 if result.stop_reason else 0)


def run_workers(
    config: SweepConfig,
    on_start: Callable[[optuna.Study], None] | None = None,
    on_progress: Callable[[optuna.Study], None] | None = None,
    poll_seconds: float = 1.0,
) -> SweepResult:
    """Run `config.workers` worker processes on one study (each a run_sweep) and wait for them.

    The data, config and storage are checked, and the study created, here first, so bad input fails once
    and before any process starts. SIGINT/SIGTERM stop the workers; each marks its running trial FAIL.
    """
    import multiprocessing

    outage.configure(config.outage_limit)
    if config.workers == 1:
        return run_sweep(
            config, callbacks=[lambda study, _trial: on_progress(study)] if on_progress else (), on_start=on_start
        )
    dataset = load_dataset(config)
    config, depth = sized_for(config, dataset)  # resolved once here, so every worker trains the same network
    study = prepare_study(config, dataset, depth=depth)
    del dataset  # each worker loads its own; this process only waits for them
    before = count_trials(study, tuple(TrialState))
    if on_start is not None:
        on_start(study)
    context = multiprocessing.get_context("spawn")  # no forked TensorFlow or database connections
    processes = [
        context.Process(target=_worker_main, args=(config, index), daemon=False) for index in range(config.workers)
    ]
    for process in processes:
        process.start()
    try:
        while any(process.is_alive() for process in processes):
            for process in processes:
                process.join(timeout=poll_seconds / len(processes))
            if on_progress is not None:
                try:
                    on_progress(study)  # waits out an outage, with the workers
                except StorageUnreachable:
                    pass  # past the limit: the workers give up as well, and the summary below says so
            stopping.check()
    except KeyboardInterrupt:
        for process in processes:  # each fails its running trial at its next epoch and exits
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(timeout=60)
        raise
    codes = [process.exitcode for process in processes]
    if EXIT_UNREACHABLE in codes:
        raise _workers_cut_off(config, codes)
    stop_reason = None
    if any(codes):
        stop_reason = f"worker exit codes {codes}: see the worker lines above"
    return summarize(
        study, config.storage, ran_now=count_trials(study, tuple(TrialState)) - before, stop_reason=stop_reason
    )


def _workers_cut_off(config: SweepConfig, codes: list) -> StorageUnreachable:
    """The one line for workers that gave up on the storage: the driver's own when it is cut off too."""
    seen = outage.process()
    if seen.since is not None:
        return seen.unreachable()
    gave_up = ", ".join(str(index) for index, code in enumerate(codes) if code == EXIT_UNREACHABLE)
    return StorageUnreachable(
        f"worker(s) {gave_up} could not reach storage {mask_url(config.storage)} for longer than outage_limit = "
        f"{config.outage_limit:g} s; nothing stored is lost: once it is back, run the same command again to resume",
        what=mask_url(config.storage),
        seconds=config.outage_limit,
    )
