"""Tests for sweep.study.rounds: a population round's member trials and their reporter thread."""

import numpy as np
import optuna
import pytest

from sweep.study.rounds import MemberTrials


class _FinishesBetweenLooks:
    """A report job that is still running at its first look and has failed by the next."""

    def __init__(self) -> None:
        self.looks = 0

    def done(self) -> bool:
        self.looks += 1
        return self.looks > 1

    def result(self):
        raise RuntimeError("the report job failed")


def test_a_report_error_is_never_lost_between_looks():
    """Check that a population report job that fails while still_open looks at it raises at the next look instead of
    vanishing."""
    members = MemberTrials(optuna.create_study(), [], [])
    try:
        members.reports._pending = [_FinishesBetweenLooks()]
        members.still_open(0)
        with pytest.raises(RuntimeError, match="report job failed"):
            members.still_open(0)
    finally:
        members.drain(raise_errors=False)
        members.close()


@pytest.mark.parametrize("learning_rate, expected", [(0.001, 0.001), ((1e-4, 1e-2), 1e-3)])
def test_population_rate_is_the_fixed_rate_or_the_middle_of_the_range(tiny_config, learning_rate, expected):
    """Check that a population steps with the fixed learning rate, or the geometric middle of a searched range."""
    from sweep.study.rounds import population_rate

    rate = ":".join(map(str, learning_rate)) if isinstance(learning_rate, tuple) else learning_rate
    assert population_rate(tiny_config(learning_rate=rate)) == pytest.approx(expected)


@pytest.mark.parametrize("cv, folds", [(0, 1), (3, 3)])
def test_fold_subnets_lay_out_one_network_per_member_and_fold(tiny_config, cv, folds):
    """Check that a round trains one network per member and fold, fold-major, with each fold's keep column."""
    from sweep.data import load_dataset
    from sweep.models.population import fold_subnets

    plan = load_dataset(tiny_config(cv=cv)).validation
    members = ["a", "b"]
    subnets, keep, member_fold = fold_subnets(members, plan)
    assert subnets == members * folds
    if cv == 0:
        assert keep is None and member_fold is None
    else:
        assert keep.shape == (len(plan.y_fit), folds) and list(member_fold) == [0, 0, 1, 1, 2, 2]
        assert all(np.array_equal(keep[:, f], fold.keep) for f, fold in enumerate(plan.folds))


def test_open_members_get_heartbeats(tmp_path):
    """Check that a round's open members are stamped at once (so a dead worker's members go stale, failed with the
    reason) and told when ended."""
    import time
    import warnings

    from sweep.study.storage import open_storage

    url = f"sqlite:///{tmp_path / 'beat.db'}"
    study = optuna.create_study(storage=open_storage(url, heartbeat_interval=1, grace_period=1), study_name="beat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        stamped, told_now = study.ask(), study.ask()
    told = []
    members = MemberTrials(study, [stamped, told_now], told)
    try:
        members.end(1, values=0.5)
        assert [t.number for t in told] == [told_now.number] and members.indices() == [0]
    finally:
        members.drain()
        members.close()  # the worker "dies": no more heartbeats for the open member
    time.sleep(2.5)  # SQLite stamps whole seconds: past the 1 s grace period for sure
    optuna.storages.fail_stale_trials(study)
    trials = {t.number: t for t in optuna.load_study(study_name="beat", storage=url).trials}
    assert (trials[stamped.number].state, trials[told_now.number].state) == (
        optuna.trial.TrialState.FAIL,
        optuna.trial.TrialState.COMPLETE,
    )
    assert trials[stamped.number].user_attrs["fail_reason"].startswith("worker lost: no heartbeat")


def test_a_failure_while_setting_up_members_ends_every_member(tiny_config, monkeypatch):
    """Check that an error after the members' heartbeats started but before training (here: suggesting the second
    member's parameters) ends every member FAIL with the reason and stops the heartbeat thread, so none stays
    RUNNING."""
    import threading

    import sweep.study.rounds
    from sweep.data import load_dataset
    from sweep.metrics import parse_goal
    from sweep.study.storage import open_storage

    config = tiny_config(heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=open_storage(config.storage, 1, 2), direction="maximize")
    calls = []

    def failing_suggest(trial, config, own_params, class_counts=()):
        calls.append(trial.number)
        if len(calls) == 2:
            raise RuntimeError("storage went away")
        return real_suggest(trial, config, own_params, class_counts)

    real_suggest = sweep.study.rounds.suggest
    monkeypatch.setattr(sweep.study.rounds, "suggest", failing_suggest)
    with pytest.raises(RuntimeError, match="storage went away"):
        sweep.study.rounds.population_round(study, config, load_dataset(config), parse_goal("f1"), 3)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3
    assert all("storage went away" in t.user_attrs["fail_reason"] for t in study.trials)
    assert not [thread for thread in threading.enumerate() if thread.name == "population-heartbeat"]


def _slow_epochs(monkeypatch, seconds: float, calls: int | None = None) -> None:
    """Each of the first `calls` (None: every) epoch boundaries of a round takes `seconds` longer: a sleep in the
    per-epoch scoring, which runs right after the boundary's checks."""
    import time

    import sweep.study.rounds

    real, seen = sweep.study.rounds.population_scores, []

    def population_scores(*args):
        seen.append(1)
        if calls is None or len(seen) <= calls:
            time.sleep(seconds)
        return real(*args)

    monkeypatch.setattr(sweep.study.rounds, "population_scores", population_scores)


def _stuck_first_round(monkeypatch, seconds: float) -> None:
    """The first round is stuck in one call for `seconds` before it trains (it never reaches an epoch's end)."""
    import time

    import sweep.models.population

    real, calls = sweep.models.population.train_population, []

    def train_population(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweep.models.population, "train_population", train_population)


@pytest.mark.parametrize(
    "slow_down, grace, reason",
    [
        # A late epoch: a grace_period of 10 s keeps the watchdog out of it however loaded the machine is.
        (
            lambda monkeypatch: _slow_epochs(monkeypatch, 2.5, calls=1),
            10,
            r"^stopped after \d+\.\d s: longer than --trial-timeout 2 \(epoch 2 of 3\)$",
        ),
        # Stuck in one call: the watchdog fails every member grace_period (2 s) past the limit and SIGALRM ends the
        # sleep.
        (
            lambda monkeypatch: _stuck_first_round(monkeypatch, 120),
            2,
            r"^stopped after \d+\.\d s: longer than --trial-timeout 2 and stuck in one call "
            r"for more than its grace_period of 2 s \(before its first epoch\); failed by the watchdog$",
        ),
    ],
    ids=["late-epoch", "stuck-call"],
)
def test_members_past_trial_timeout_fail_together_and_the_sweep_reaches_its_budget(
    tiny_config, monkeypatch, slow_down, grace, reason
):
    """Check that a population round running past --trial-timeout (a late epoch, or stuck in one call) ends every member
    FAIL with the reason (they started and trained together), and the worker goes on to its budget of finished
    trials."""
    import re
    import time

    from sweep.study.runner import run_sweep

    slow_down(monkeypatch)  # the first round only
    config = tiny_config(trials=4, population=2, epochs=3, trial_timeout=2, heartbeat_interval=1, grace_period=grace)
    started = time.monotonic()
    result = run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    failed = study.get_trials(states=(optuna.trial.TrialState.FAIL,))
    assert sorted(t.number for t in failed) == [0, 1]
    for trial in failed:
        assert re.match(reason, trial.user_attrs["fail_reason"]), trial.user_attrs["fail_reason"]
    assert result.finished == 4 and result.stop_reason is None
    assert time.monotonic() - started < 60, "the stuck call was not interrupted"


def test_the_run_timeout_stops_a_long_population_round_within_an_epoch(tiny_config, monkeypatch):
    """Check that --timeout ends a population round that would run far longer at the first epoch's end past the
    deadline: every member FAIL with the reason and run_timeout set, not counted as failures in a row, and the run
    returns."""
    import re
    import time

    from sweep.study.runner import MAX_CONSECUTIVE_FAILURES, run_sweep

    _slow_epochs(monkeypatch, 0.2)  # 200 epochs: a round of at least 40 s
    size = MAX_CONSECUTIVE_FAILURES + 2
    config = tiny_config(trials=size, population=size, epochs=200, timeout=2)
    started = time.monotonic()
    result = run_sweep(config)
    elapsed = time.monotonic() - started
    assert elapsed < 2 + 15, f"the round ran {elapsed:.1f} s past a 2 s --timeout"
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * size
    for trial in study.trials:
        found = re.match(
            r"^stopped at the run's --timeout 2 s \(epoch (\d+) of 200\)$", trial.user_attrs["fail_reason"]
        )
        assert found and int(found[1]) < 200 and trial.user_attrs["run_timeout"] is True
    assert result.finished == 0 and result.stop_reason is None
