"""Tests for sweep.study.runner: study creation, resume semantics of --trials and compatibility checks."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep.config import parse_pruner
from sweep.errors import StorageError
from sweep.space import PARAM_NAMES
from sweep.study.runner import make_pruner, run_sweep
from sweep.study.summary import BUDGET_STATES
from tests.conftest import make_table

SWEEP = str(Path(sys.executable).with_name("sweep"))


def test_trials_is_a_total_and_a_rerun_resumes(tiny_config):
    """Check that --trials N leaves N finished trials in total: a rerun adds the missing ones, or none."""
    first = run_sweep(tiny_config(trials=2))
    assert (first.finished, first.ran_now) == (2, 2)
    second = run_sweep(tiny_config(trials=4))
    assert (second.finished, second.ran_now) == (4, 2)
    third = run_sweep(tiny_config(trials=3))
    assert (third.finished, third.ran_now) == (4, 0)
    study = optuna.load_study(study_name="tiny", storage=tiny_config().storage)
    params = [tuple(t.params[name] for name in PARAM_NAMES) for t in study.trials]
    assert len(set(params)) == 4, "a resumed run must not replay the first run's draws"


def test_study_bookkeeping(tiny_config):
    """Check that the study stores its resolved config (the auto learning rate sized), data fingerprint, split sizes,
    class counts and metric name."""
    config = tiny_config(trials=1, objective="fbeta:2", learning_rate="auto")
    result = run_sweep(config)
    study = optuna.load_study(study_name="tiny", storage=config.storage)
    attrs = study.user_attrs
    assert attrs["config"]["objective"] == "fbeta:2" and attrs["config"]["hidden_width"] == [1, 8]
    assert attrs["config"]["learning_rate"] == 0.01 == result.best.user_attrs["train_settings"]["learning_rate"]
    assert len(attrs["data"]["fingerprint"]) == 16
    splits = attrs["data"]["splits"]
    assert sum(splits[part]["rows"] for part in ("train", "validation", "test")) == 3000
    assert splits["development"]["rows"] == splits["train"]["rows"] + splits["validation"]["rows"]
    assert all(part["positives"] + part["negatives"] == part["rows"] for part in splits.values())
    assert study.metric_names == ["val_f2"] == [result.metric_name]
    assert result.best is not None and result.best.state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "key, match",
    [
        ("objective", r"optimises objective 'f1', not 'ap'"),
        ("data", r"created on other data"),
        ("seed", r"split with seed = 0, not 3"),
        ("validation_fraction", r"split with validation_fraction = 0.2, not 0.3"),
        ("cv", r"judges trials by \{'kind': 'holdout'\}, not \{'kind': 'cv', 'folds': 3, 'repeats': 1\}.*same --cv"),
        ("drop", r"split with drop = \[\], not \['f1'\]"),
    ],
)
def test_resume_refuses_an_incompatible_study(tiny_config, tmp_path, key, match):
    """Check that resuming with another objective, other data or another split is an error that leaves the study
    untouched."""
    run_sweep(tiny_config(trials=1))
    other_table = tmp_path / "other.csv"
    make_table(seed=5).to_csv(other_table, index=False)
    change = {
        "objective": "ap",
        "data": str(other_table),
        "seed": 3,
        "validation_fraction": 0.3,
        "cv": 3,
        "drop": "f1",
    }[key]
    with pytest.raises(StorageError, match=match):
        run_sweep(tiny_config(trials=3, **{key: change}))
    assert len(optuna.load_study(study_name="tiny", storage=tiny_config().storage).trials) == 1


def test_pruned_trials_count_towards_the_budget(tiny_config):
    """Check that a strict pruner prunes trials after its start-up trials and that pruned trials count in --trials."""
    result = run_sweep(tiny_config(trials=8, epochs=5, pruner="percentile:1", population=1))  # keeps the top 1%
    study = optuna.load_study(study_name="tiny", storage=tiny_config().storage)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert result.finished == 8 and len(pruned) >= 1
    assert all(t.user_attrs["pruned_at_epoch"] < 5 for t in pruned)


@pytest.mark.parametrize(
    "spec, kind",
    [
        ("none", "NopPruner"),
        ("median", "MedianPruner"),
        ("hyperband", "HyperbandPruner"),
        ("successive_halving", "SuccessiveHalvingPruner"),
        ("percentile:25", "PercentilePruner"),
    ],
)
def test_pruner_specs(spec, kind):
    """Check that each --pruner spec builds the matching Optuna pruner."""
    assert type(make_pruner(parse_pruner(spec), epochs=50)).__name__ == kind


def test_timeout_stops_early(tiny_config):
    """Check that --timeout stops a sweep before its trial budget."""
    # Small populations: the timeout is looked at between rounds, and an automatic round of 125 would run long.
    result = run_sweep(tiny_config(trials=500, timeout=3, population=4))
    assert 1 <= result.finished < 500


def test_postgres_sweep(tiny_config, postgres_url, unique_name):
    """Check that the same sweep runs against a real Postgres storage and resumes there."""
    try:
        assert run_sweep(tiny_config(storage=postgres_url, study=unique_name, trials=2)).finished == 2
        assert run_sweep(tiny_config(storage=postgres_url, study=unique_name, trials=3)).ran_now == 1
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)


def _resident_mb() -> float:
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) / 1024 for line in handle if line.startswith("VmRSS:"))


def test_memory_stays_flat_across_trials(tiny_config):
    """Check that resident memory grows by at most 1 MB a trial after the first 10 (a longer run is in
    docs/benchmarks/memory.md#section-4)."""
    marks = {}
    run_sweep(
        tiny_config(trials=30, epochs=1, pruner="none", population=1),
        callbacks=[lambda study, _t: marks.setdefault(len(study.trials), _resident_mb())],
    )
    assert marks[30] - marks[10] <= 20, marks


def _storage_for(backend: str, request, tmp_path) -> str:
    if backend == "postgres":
        return request.getfixturevalue("postgres_url")
    return f"sqlite:///{tmp_path / 'shared.db'}"


def _cleanup(storage: str, name: str) -> None:
    if storage.startswith("postgresql") and name in optuna.get_all_study_names(storage):
        optuna.delete_study(study_name=name, storage=storage)


@pytest.mark.parametrize(
    "backend, population", [("sqlite", 1), pytest.param("postgres", 1, marks=pytest.mark.slow), ("postgres", 3)]
)
def test_three_workers_fill_the_budget_exactly(tiny_config, backend, population, request, tmp_path, unique_name):
    """Check that 3 worker processes (of single trials or populations) end with exactly the requested finished trials,
    none duplicated or lost."""
    from sweep.study.runner import run_workers

    storage = _storage_for(backend, request, tmp_path)
    config = tiny_config(
        storage=storage, study=unique_name, trials=9, epochs=15, workers=3, pruner="none", population=population
    )
    try:
        result = run_workers(config)
        study = optuna.load_study(study_name=unique_name, storage=storage)
        finished = study.get_trials(states=BUDGET_STATES)
        assert result.stop_reason is None and result.finished == len(finished) == 9
        assert all(t.state != TrialState.RUNNING for t in study.trials)
        assert len({t.number for t in study.trials}) == len(study.trials)
        assert all(t.value is not None and set(t.params) == set(PARAM_NAMES) for t in finished)
        assert len({t.user_attrs["worker"] for t in finished}) >= 2, "the work was not shared"
        surplus = [t for t in study.trials if t.state == TrialState.FAIL]
        assert all(t.user_attrs.get("over_budget") for t in surplus)
    finally:
        _cleanup(storage, unique_name)


def _worker_command(csv: str, storage: str, study: str, trials: int, epochs: int, population: int = 0) -> list[str]:
    """`sweep worker` on the tiny table; one hidden layer named: these tests' subject is
    workers and storage, and the depth probe would train two networks for all the epochs before each run."""
    return [
        SWEEP,
        "worker",
        "--data",
        csv,
        "--target",
        "label",
        "--storage",
        storage,
        "--study",
        study,
        "--trials",
        str(trials),
        "--epochs",
        str(epochs),
        "--pruner",
        "none",
        "--batch-size",
        "32",
        "--heartbeat-interval",
        "1",
        "--grace-period",
        "3",
        "--population",
        str(population),
        "--hidden-layers",
        "1",
        "--cv",
        "0",
    ]


def _wait_for(condition, timeout: float = 120.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(step)
    raise AssertionError("condition not met in time")


@pytest.mark.parametrize("backend", [pytest.param("sqlite", marks=pytest.mark.slow), "postgres"])
def test_killed_worker_trial_is_failed_and_retried(tiny_csv, backend, request, tmp_path, unique_name):
    """Check that SIGKILL of one of two workers mid-trial leaves its trial FAIL, retried, and the budget reached
    intact."""
    storage = _storage_for(backend, request, tmp_path)
    # 300 epochs of the tiny table take seconds: long enough to be killed mid-trial.
    epochs = 300
    command = _worker_command(tiny_csv, storage, unique_name, trials=6, epochs=epochs, population=1)
    victim = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    survivor = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:

        def victim_running_after_a_completion():
            try:
                trials = optuna.load_study(study_name=unique_name, storage=storage).trials
            except KeyError:
                return None
            if not any(t.state == TrialState.COMPLETE for t in trials):
                return None
            # Its last report before half its epochs: most of the trial is still ahead, so the kill lands
            # mid-trial. Counted in epochs, not by the clock: a loaded machine's poll of the storage can take longer
            # than a wall-clock window.
            mine = [
                t
                for t in trials
                if t.state == TrialState.RUNNING
                and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
                and max(t.intermediate_values, default=0) < epochs // 2
            ]
            if not mine and victim.poll() is not None:
                raise AssertionError(
                    f"the victim worker exited ({victim.returncode}) before it could be killed mid-trial"
                )
            return (mine[0], trials) if mine else None

        _wait_for(victim_running_after_a_completion, step=0.02)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        # Read what the kill left, not what was seen just before it: the trial seen running may have
        # finished in between. A dead worker's trial stays RUNNING until its heartbeat lapses.
        before = optuna.load_study(study_name=unique_name, storage=storage).trials
        orphaned = [
            t
            for t in before
            if t.state == TrialState.RUNNING and t.user_attrs.get("worker", "").endswith(f":{victim.pid}")
        ]
        assert len(orphaned) == 1, "the victim was not mid-trial when killed"
        killed = orphaned[0]
        completed_before = {t.number: (t.value, t.params) for t in before if t.state == TrialState.COMPLETE}
        _, stderr = survivor.communicate(timeout=300)
        assert survivor.returncode == 0, stderr
        study = optuna.load_study(study_name=unique_name, storage=storage)
        trials = {t.number: t for t in study.trials}
        assert trials[killed.number].state == TrialState.FAIL
        assert any(t.system_attrs.get("failed_trial") == killed.number for t in study.trials), "not retried"
        assert len(study.get_trials(states=BUDGET_STATES)) == 6
        assert not study.get_trials(states=(TrialState.RUNNING,))
        for number, (value, params) in completed_before.items():
            assert (trials[number].state, trials[number].value, trials[number].params) == (
                TrialState.COMPLETE,
                value,
                params,
            )
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
        _cleanup(storage, unique_name)


def test_sweep_survives_dropped_postgres_connections(tiny_csv, postgres_url, unique_name):
    """Check that terminating the worker's Postgres connections (pg_terminate_backend) costs at most a trial each, not
    the sweep."""
    import sqlalchemy

    drops = 3
    tag = f"sweep-{unique_name}"
    url = postgres_url + ("&" if "?" in postgres_url else "?") + f"application_name={tag}"
    worker = subprocess.Popen(
        _worker_command(tiny_csv, url, unique_name, trials=8, epochs=30, population=1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine = sqlalchemy.create_engine(postgres_url)

    def trials_made():
        if unique_name not in optuna.get_all_study_names(postgres_url):
            return 0
        return len(optuna.load_study(study_name=unique_name, storage=postgres_url).trials)

    terminated = 0
    try:
        # Drop every connection of the worker while a trial runs, then wait for it to start another trial before
        # the next drop: the claim is about a running sweep, and the wait keeps the test's pace the machine's.
        seen = 0
        for _ in range(drops):
            seen = _wait_for(lambda seen=seen: (n := trials_made()) > seen and worker.poll() is None and n, step=0.2)
            with engine.connect() as connection:
                terminated += connection.execute(
                    sqlalchemy.text(
                        "select count(pg_terminate_backend(pid)) from pg_stat_activity where application_name = :tag"
                    ),
                    {"tag": tag},
                ).scalar()
                connection.commit()
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
        assert terminated >= drops, "the test did not drop the worker's connections"
        study = optuna.load_study(study_name=unique_name, storage=postgres_url)
        assert len(study.get_trials(states=BUDGET_STATES)) == 8
        assert not study.get_trials(states=(TrialState.RUNNING,))
        assert len(study.get_trials(states=(TrialState.FAIL,))) <= drops
    finally:
        if worker.poll() is None:
            worker.kill()
        engine.dispose()
        _cleanup(postgres_url, unique_name)


@pytest.mark.parametrize(
    "signum, population",
    [pytest.param(signal.SIGTERM, 1, marks=pytest.mark.slow), (signal.SIGINT, 1), (signal.SIGTERM, 3)],
)
def test_interrupted_worker_fails_its_trial_and_the_next_run_resumes(tiny_csv, tmp_path, signum, population):
    """Check that SIGTERM/SIGINT stop a worker with exit 130, its running trials FAIL (not RUNNING), and a rerun
    completes the study."""
    storage = f"sqlite:///{tmp_path / 'stop.db'}"
    # 200 epochs of the tiny table take seconds: the signal, sent as soon as a trial is RUNNING, arrives while it
    # runs.
    command = _worker_command(tiny_csv, storage, "stop", trials=4, epochs=200, population=population)
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:

        def running():
            try:
                trials = optuna.load_study(study_name="stop", storage=storage).trials
            except KeyError:
                return None
            return [t for t in trials if t.state == TrialState.RUNNING]

        _wait_for(running)
        worker.send_signal(signum)
        _, stderr = worker.communicate(timeout=60)
        assert worker.returncode == 130, stderr
        study = optuna.load_study(study_name="stop", storage=storage)
        stopped = [
            t
            for t in study.trials
            if t.user_attrs.get("fail_reason") == f"interrupted by {signal.Signals(signum).name}"
        ]
        assert len(stopped) == population and all(t.state == TrialState.FAIL for t in stopped)
        assert not study.get_trials(states=(TrialState.RUNNING,))
    finally:
        if worker.poll() is None:
            worker.kill()
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert len(optuna.load_study(study_name="stop", storage=storage).get_trials(states=BUDGET_STATES)) == 4


def test_pareto_sweep_and_pick(tiny_config, tmp_path):
    """Check that a pareto sweep stores two named objectives, no intermediate values, and that a pick rule chooses
    within the front."""
    from sweep.handover.export import export_best
    from sweep.metrics import parse_pick
    from sweep.study.summary import best_trial

    config = tiny_config(objective="pareto:recall,flag_rate", trials=6)
    result = run_sweep(config)
    study = optuna.load_study(study_name="tiny", storage=config.storage)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["val_recall", "val_flag_rate"] and result.metric_name == "val_recall,val_flag_rate"
    assert all(not t.intermediate_values for t in study.trials)
    front = study.best_trials
    rule = parse_pick("recall:flag_rate<=0.3")
    chosen = best_trial(study, rule)
    allowed = [t for t in front if t.user_attrs["val_flag_rate"] <= 0.3]
    if allowed:
        assert chosen in front and chosen.user_attrs["val_recall"] == max(t.user_attrs["val_recall"] for t in allowed)
        bundle = export_best(config.storage, "tiny", tmp_path / "b", pick=rule).best
        assert bundle["trial"] == chosen.number and bundle["validation"]["reproduced"]
        assert bundle["objective"]["picked_by"] == "best recall with flag_rate <= 0.3"
    else:
        assert chosen is None
    assert (
        best_trial(study, parse_pick("recall:flag_rate<=0")) is None
        or min(t.user_attrs["val_flag_rate"] for t in front) == 0
    )


@pytest.mark.parametrize("total", [1, 3, 5, 8])
def test_budget_admits_exactly_the_trials_the_rule_allows(tmp_path, total):
    """Check that Budget.admits (a shortcut below the budget, one COUNT query above it) admits a trial exactly
    when fewer than `total` earlier trials are finished or running, whatever the states of the earlier trials."""
    from sweep.study.runner import Budget

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'budget.db'}")
    outcomes = [1.0, "fail", "running", 2.0, "pruned", "fail", "running", 3.0]
    trials = []
    for outcome in outcomes:
        trial = study.ask()
        trials.append(trial)
        if outcome == "fail":
            study.tell(trial, state=TrialState.FAIL)
        elif outcome == "pruned":
            study.tell(trial, state=TrialState.PRUNED)
        elif outcome != "running":
            study.tell(trial, outcome)
    covering = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    budget = Budget(total)
    for trial in trials:
        earlier = [t for t in study.trials if t.number < trial.number and t.state in covering]
        assert budget.admits(trial) == (len(earlier) < total), (trial.number, total)


def test_a_trial_that_never_got_a_heartbeat_does_not_hold_the_budget(tiny_config):
    """Check that a RUNNING trial left without any heartbeat (its worker lost the database as it started it) is
    failed with its reason once the grace period has passed, so the sweep fills its budget instead of waiting for
    ever."""
    config = tiny_config(trials=2, population=1, heartbeat_interval=1, grace_period=2)
    run_sweep(config)
    orphan = optuna.load_study(study_name=config.study, storage=config.storage).ask()  # RUNNING, never stamped
    result = run_sweep(tiny_config(trials=3, population=1, heartbeat_interval=1, grace_period=2, timeout=60))
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    left = study.trials[orphan.number]
    assert result.finished == 3, "the sweep waited for the orphan until its timeout"
    assert left.state == TrialState.FAIL and left.user_attrs["fail_reason"].startswith(
        "worker lost: the trial never got a heartbeat"
    )
