"""Queries of a study's trials whose cost does not grow with the study: counts (one COUNT or GROUP BY query, or a
worker's running counts), trials that never got a heartbeat, the best few and the last few trials (one ordered
query with a LIMIT, then each trial read alone). On a storage that is not a database they read the trials. Each
opens its session through sweep.study.optuna_private.rdb_session and rides out a storage outage
(sweep.study.outage.rides_out)."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from sweep.study.optuna_private import heartbeats_of, rdb_session, read_trials
from sweep.study.outage import rides_out

if TYPE_CHECKING:
    import optuna


@rides_out
def count_trials(study: optuna.Study, states, below_number: int | None = None) -> int:
    """How many of the study's trials are in `states` (and numbered below `below_number`): one COUNT query
    on an RDB storage, whatever the study's size; other storages read the trials."""
    from sqlalchemy import func

    with rdb_session(study) as rdb:
        if rdb is None:
            trials = study.get_trials(deepcopy=False, states=tuple(states))
            return sum(1 for t in trials if below_number is None or t.number < below_number)
        trial = rdb.models.TrialModel
        query = rdb.session.query(func.count(trial.trial_id)).filter(
            trial.study_id == rdb.study_id, trial.state.in_(tuple(states))
        )
        if below_number is not None:
            query = query.filter(trial.number < below_number)
        return int(query.scalar())


class TrialCounts:
    """count_trials for a worker's repeated checks of one study's budget, whose cost follows the study's open
    and recently finished trials, not its size. A trial before the study's oldest open (RUNNING or WAITING)
    trial has finished for good, so the counts of those trials are kept and each check counts, in one query
    over a range of the primary key, only the trials from the oldest open one on (a second query moves that
    point on). Exact as count_trials is: kept counts only grow over trials numbered without a gap (a trial
    another worker is still creating is never skipped). Other storages count with count_trials."""

    OPEN = ("RUNNING", "WAITING")

    def __init__(self, study: optuna.Study) -> None:
        self.study = study
        self._from_id = 0  # the study's trials with a smaller id have finished and are counted in _kept
        self._kept: dict = {}  # TrialState -> how many of them
        self._kept_total = 0  # so they are numbered 0 .. _kept_total - 1
        self._lock = threading.Lock()

    @rides_out
    def __call__(self, states, below_number: int | None = None) -> int:
        with self._lock, rdb_session(self.study) as rdb:
            if rdb is None:
                return count_trials(self.study, states, below_number)
            return self._count(rdb, tuple(states), below_number)

    def _count(self, rdb, states: tuple, below_number: int | None) -> int:
        from optuna.trial import TrialState
        from sqlalchemy import case, func

        session, trial = rdb.session, rdb.models.TrialModel
        open_states = tuple(TrialState[name] for name in self.OPEN)
        since = (trial.study_id == rdb.study_id, trial.trial_id >= self._from_id)
        first_open, last = (
            session.query(func.min(case((trial.state.in_(open_states), trial.trial_id))), func.max(trial.trial_id))
            .filter(*since)
            .one()
        )
        if last is not None:
            end = last + 1 if first_open is None else first_open
            rows = (
                session.query(trial.state, func.count(trial.trial_id), func.max(trial.number))
                .filter(*since, trial.trial_id < end)
                .group_by(trial.state)
                .all()
            )
            added = sum(count for _, count, _ in rows)
            if added and max(number for _, _, number in rows) == self._kept_total + added - 1:
                for state, count, _ in rows:
                    self._kept[state] = self._kept.get(state, 0) + count
                self._kept_total, self._from_id = self._kept_total + added, end
        if below_number is not None and below_number < self._kept_total:
            return count_trials(self.study, states, below_number)  # below the kept trials: count them all
        query = session.query(func.count(trial.trial_id)).filter(
            trial.study_id == rdb.study_id, trial.trial_id >= self._from_id, trial.state.in_(states)
        )
        if below_number is not None:
            query = query.filter(trial.number < below_number)
        return sum(self._kept.get(state, 0) for state in states) + int(query.scalar())


@rides_out
def state_counts(study: optuna.Study) -> dict:
    """How many of the study's trials are in each state (states without a trial left out): one GROUP BY query
    on an RDB storage, where a count per state is a query each; other storages read the trials."""
    from collections import Counter

    from sqlalchemy import func

    with rdb_session(study) as rdb:
        if rdb is None:
            return dict(Counter(t.state for t in study.get_trials(deepcopy=False)))
        trial = rdb.models.TrialModel
        rows = (
            rdb.session.query(trial.state, func.count(trial.trial_id))
            .filter(trial.study_id == rdb.study_id)
            .group_by(trial.state)
            .all()
        )
        return {state: int(count) for state, count in rows}


@rides_out
def running_trials_never_stamped(study: optuna.Study, older_than_seconds: float) -> list[int]:
    """Ids of the study's RUNNING trials that started more than `older_than_seconds` ago and never got a
    heartbeat (one query; empty for a storage without heartbeats or not in a database)."""
    import datetime

    from optuna.trial import TrialState

    if not heartbeats_of(study):
        return []
    now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    started_before = now - datetime.timedelta(seconds=older_than_seconds)
    with rdb_session(study) as rdb:
        trial, heartbeat = rdb.models.TrialModel, rdb.models.TrialHeartbeatModel
        rows = (
            rdb.session.query(trial.trial_id)
            .outerjoin(heartbeat, heartbeat.trial_id == trial.trial_id)
            .filter(trial.study_id == rdb.study_id, trial.state == TrialState.RUNNING, heartbeat.trial_id.is_(None))
            .filter(rdb.started_utc < started_before)
            .all()
        )
        return [row[0] for row in rows]


@rides_out
def best_complete_trials(study: optuna.Study, count: int) -> list[optuna.trial.FrozenTrial]:
    """A single-objective study's best `count` COMPLETE trials, best first, ties in trial order: one ordered
    query with a LIMIT on an RDB storage (infinite values ordered as Optuna's best_trial orders them), then
    each trial read alone; other storages sort the study's trials."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    maximize = study.direction == StudyDirection.MAXIMIZE
    with rdb_session(study) as rdb:
        if rdb is None:
            complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            return sorted(complete, key=lambda t: t.value, reverse=maximize)[:count]
        from sqlalchemy import case

        trial, value = rdb.models.TrialModel, rdb.models.TrialValueModel
        kind = value.TrialValueType
        rank = case(
            (value.value_type == kind.INF_NEG, -1),
            (value.value_type == kind.FINITE, 0),
            (value.value_type == kind.INF_POS, 1),
        )
        order = (rank.desc(), value.value.desc()) if maximize else (rank.asc(), value.value.asc())
        ids = [
            row[0]
            for row in rdb.session.query(trial.trial_id)
            .join(value, value.trial_id == trial.trial_id)
            .filter(trial.study_id == rdb.study_id, trial.state == TrialState.COMPLETE, value.objective == 0)
            .order_by(*order, trial.number.asc())
            .limit(count)
            .all()
        ]
    return read_trials(study, ids)


@rides_out
def last_trials(study: optuna.Study, states, count: int) -> list[optuna.trial.FrozenTrial]:
    """The study's `count` highest-numbered trials in `states`, in trial order: one query with a LIMIT on an
    RDB storage, then each trial read alone; other storages read the trials."""
    with rdb_session(study) as rdb:
        if rdb is None:
            return study.get_trials(deepcopy=False, states=tuple(states))[-count:] if count > 0 else []
        trial = rdb.models.TrialModel
        ids = [
            row[0]
            for row in rdb.session.query(trial.trial_id)
            .filter(trial.study_id == rdb.study_id, trial.state.in_(tuple(states)))
            .order_by(trial.number.desc())
            .limit(count)
            .all()
        ]
    return read_trials(study, list(reversed(ids)))
