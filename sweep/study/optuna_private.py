"""Every use of a private Optuna name, each behind one small function, and nothing else (TensorFlow's one private
name lives in sweep.runtime; the queries built on these functions in sweep.study.queries).

Checked against Optuna 5.1.0. tests/test_optuna_private.py checks that each name below still exists with the
shape used here and exercises each function on a real SQLite study, so a new Optuna that changes one fails
there, naming it, rather than in a running sweep.

- `Study._storage`: the storage a study talks to (a `_CachedStorage` around an `RDBStorage` for a database
  URL). Needed to stamp heartbeats of trials asked with `study.ask()` and to write to a finished trial.
- `Trial._trial_id`, `FrozenTrial._trial_id`: a trial's id in the storage, which storage methods take (the
  public `number` counts within one study only).
- `optuna.storages._heartbeat.is_heartbeat_enabled(storage)`, and the methods `record_heartbeat(trial_id)`
  and `get_heartbeat_interval()` of `optuna.storages._heartbeat.BaseHeartbeat` (public methods of a class in
  a private module): Optuna stamps heartbeats only for trials run by `study.optimize`; a population's trials
  come from `study.ask()`, so sweep.study.rounds stamps them itself, or a live population would look dead and a
  dead one would never go stale.
- `_CachedStorage._backend` (`optuna.storages._cached_storage`): the `RDBStorage` inside the cache that
  `create_study`/`load_study` wrap around it.
- `RDBStorage.scoped_session` and `optuna.storages._rdb.models.TrialUserAttributeModel` (columns `trial_id`,
  `key`, `value_json`): Optuna's API refuses attributes on a finished trial, but a trial whose worker died is
  failed by Optuna before our retry callback learns of it; the callback records why (user attribute
  `fail_reason`) by writing the one attribute row through the storage's own session and model.
- `optuna.storages._rdb.models.TrialSystemAttributeModel` (the same columns): a new best trial's figures are
  drawn on a background thread, by when the trial may have finished; the artifact is listed on the trial as
  Optuna's own `upload_artifact` lists it (system attribute `artifacts:<id>`), written through that model.
- `optuna.storages._rdb.storage._create_scoped_session(scoped_session, ignore_integrity_error)` (commit or
  roll back, Optuna's errors on failure), `TrialModel` and `TrialUserAttributeModel`, and
  `Trial._cached_frozen_trial`: `Trial.set_user_attr` commits one transaction of several queries per key
  (a round trip each, more over a network: docs/benchmarks/trial-speed.md#section-11); a trial's attributes are
  written in one transaction of three statements instead, after the running-trial check Optuna applies, and the trial's
  own copy is updated as `set_user_attr` updates it. `set_param` updates the same copy's `params` and
  `distributions` as `Trial._suggest` does, after the public `BaseStorage.set_trial_param`.
- `optuna.storages._rdb.models.TrialHeartbeatModel` (column `trial_id`) and `TrialModel`'s `datetime_start`
  column: Optuna takes a trial for stale only once it has a heartbeat, so a worker that lost its database
  between creating a trial and its first stamp leaves a trial RUNNING for ever, which holds a place in the
  budget and makes the other workers wait for it for ever; such trials are found by one query.
- `RDBStorage._create_new_trial`, `RDBStorage._set_trial_param`, `RDBStorage._get_best_trial_id` and
  `RDBStorage._get_trials`: `_CachedStorage` calls these private methods of the storage inside it, not the public
  ones (CACHED_STORAGE_CALLS); sweep.study.storage.RidingStorage rides out an outage in each, as in every public method.
- `BaseHeartbeat._get_stale_trial_ids(study_id)` (RDBStorage's, which Optuna's `fail_stale_trials` calls before
  every trial of `study.optimize`): sweep.study.storage.RidingStorage holds the stale check back while the storage is
  away or has just come back (every heartbeat stopped during the outage), and otherwise asks RDBStorage's own.
- `Study._study_id` and `optuna.storages._rdb.models.TrialModel` (columns `study_id`, `number`, `state`): the
  budget check counts a study's finished and running trials in one indexed COUNT query, where the public
  `get_trials` reads every trial, a cost that grows with the study.
- `optuna.storages._rdb.models.TrialValueModel` (columns `trial_id`, `objective`, `value`, `value_type`, and its
  `TrialValueType`): `sweep show` lists a study's best few trials and its last failed ones; the public API reads every
  trial for that (a cost that grows with the study: docs/benchmarks/large-studies.md#section-16), so the few trial ids
  are found by one ordered query with a LIMIT (the best by value as Optuna's own `best_trial` orders them, the last by
  number) and each trial is then read alone through the storage's public `get_trial`; a population member finds its
  population's first trial by number the same way (`get_trial_id_from_study_id_trial_number`, public, on
  `Study._storage`).
- `TrialModel`'s `trial_id` (the primary key; Optuna numbers a study's trials in its order, under a lock on
  the study's row): a worker checks its budget before and after every trial; COUNT over the study's trials
  grows with the study (docs/benchmarks/large-studies.md#section-16), so `TrialCounts` keeps the counts of the trials
  before the oldest open one (finished for good) and counts only the trials from that one on.

Each function here that opens a session of its own rides out a storage outage (sweep.study.outage.rides_out) as the
storage's own methods do (sweep.study.storage.RidingStorage).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sweep.study.outage import rides_out

if TYPE_CHECKING:
    import optuna

# The Optuna version these names were last checked against (tests/test_optuna_private.py).
CHECKED_WITH = "5.1.0"
# RDBStorage's private methods that `_CachedStorage` calls on the storage inside it (`self._backend.<name>`).
CACHED_STORAGE_CALLS = (
    "_create_new_trial",
    "_set_trial_param",
    "_get_best_trial_id",
    "_get_trials",
    "_get_stale_trial_ids",
)


def storage_of(study: optuna.Study) -> optuna.storages.BaseStorage:
    """The storage object `study` reads and writes through (`Study._storage`)."""
    return study._storage


def trial_id(trial: optuna.Trial | optuna.trial.FrozenTrial) -> int:
    """A running or finished trial's id in its storage (`_trial_id`)."""
    return trial._trial_id


def heartbeat_enabled(storage: optuna.storages.BaseStorage) -> bool:
    """Whether `storage` records heartbeats (an RDB storage opened with a heartbeat interval)."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage)


def record_heartbeat(storage: optuna.storages.BaseStorage, trial_id: int) -> None:
    """Stamp a running trial's heartbeat now (BaseHeartbeat.record_heartbeat); a trial that was never stamped
    is never taken for stale, so stamp it as soon as it runs."""
    storage.record_heartbeat(trial_id)


def heartbeat_interval(storage: optuna.storages.BaseStorage) -> int | None:
    """Seconds between a running trial's heartbeats (BaseHeartbeat.get_heartbeat_interval); None without."""
    return storage.get_heartbeat_interval()


def _rdb(storage: optuna.storages.BaseStorage):
    """The RDBStorage behind `storage` (create_study wraps one in a cache), or None for another storage."""
    import optuna

    rdb = getattr(storage, "_backend", storage)
    return rdb if isinstance(rdb, optuna.storages.RDBStorage) else None


@dataclass(frozen=True)
class Rdb:
    """An open session of a study's RDB storage, Optuna's table models and the study's id in them."""

    session: Any
    models: Any  # optuna.storages._rdb.models
    study_id: int

    @property
    def started_utc(self):
        """TrialModel's start time column (`_datetime_start_utc`)."""
        return self.models.TrialModel._datetime_start_utc


@contextmanager
def rdb_session(study: optuna.Study):
    """An Rdb for a query of the study's RDB storage (closed after it), or None for another storage: the one
    place the query layer (sweep.study.queries) opens a session."""
    rdb = _rdb(study._storage)
    if rdb is None:
        yield None
        return
    from optuna.storages._rdb import models

    session = rdb.scoped_session()
    try:
        yield Rdb(session, models, study._study_id)
    finally:
        session.close()


def heartbeats_of(study: optuna.Study) -> bool:
    """Whether the study's storage is a database that records heartbeats."""
    rdb = _rdb(study._storage)
    return rdb is not None and rdb.get_heartbeat_interval() is not None


def read_trials(study: optuna.Study, ids: list[int]) -> list:
    """The trials with these storage ids, each read alone, in order."""
    return [study._storage.get_trial(trial_key) for trial_key in ids]


def rdb_stale_trial_ids(storage: optuna.storages.RDBStorage, study_id: int) -> list[int]:
    """RDBStorage's own ids of the study's RUNNING trials whose heartbeat is older than its grace period
    (`_get_stale_trial_ids`), for a subclass that overrides it."""
    import optuna

    return optuna.storages.RDBStorage._get_stale_trial_ids(storage, study_id)


@rides_out
def set_attr_of_finished_trial(
    storage: optuna.storages.BaseStorage, trial_id: int, key: str, value: Any, system: bool = False
) -> None:
    """Set (or replace) user attribute `key` (a system attribute with `system`) of a trial that has already
    finished, which Optuna's API refuses, in one transaction of the RDB storage's own session. Readers see
    it once they read the trial anew."""
    from optuna.storages._rdb import models

    model = models.TrialSystemAttributeModel if system else models.TrialUserAttributeModel
    session = _rdb(storage).scoped_session()
    try:
        row = session.query(model).filter_by(trial_id=trial_id, key=key).one_or_none()
        if row is None:
            session.add(model(trial_id=trial_id, key=key, value_json=json.dumps(value)))
        else:
            row.value_json = json.dumps(value)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


@rides_out
def set_user_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    """Set several user attributes of a running trial in one transaction (what `trial.set_user_attr` does for
    each, which commits one transaction per key); refused, like it, once the trial has finished."""
    rdb = _rdb(trial.storage)
    if rdb is None:
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        return
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session
    from sqlalchemy import insert

    attribute = models.TrialUserAttributeModel
    with _create_scoped_session(rdb.scoped_session) as session:
        state = session.query(models.TrialModel.state).filter(models.TrialModel.trial_id == trial._trial_id).scalar()
        if state is None:
            raise KeyError(f"no trial with id {trial._trial_id}")
        rdb.check_trial_is_updatable(trial._trial_id, state)
        session.query(attribute).filter(attribute.trial_id == trial._trial_id, attribute.key.in_(list(attrs))).delete(
            synchronize_session=False
        )
        rows = [
            {"trial_id": trial._trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()
        ]
        session.execute(insert(attribute), rows)
    trial._cached_frozen_trial.user_attrs.update(attrs)


def set_param(trial: optuna.Trial, name: str, value: float, distribution) -> None:
    """Record a param of a running trial whose value is known only after training (a threshold tuned on its
    validation scores), as `Trial._suggest` records a sampled one: in the storage and in the trial's own copy."""
    trial.storage.set_trial_param(trial._trial_id, name, distribution.to_internal_repr(value), distribution)
    trial._cached_frozen_trial.distributions[name] = distribution
    trial._cached_frozen_trial.params[name] = value


def attach_artifact(storage: optuna.storages.BaseStorage, trial_id: int, store, path: str, mimetype: str) -> str:
    """Write a file to the artifact store and list it on a trial, running or finished, as Optuna's
    `upload_artifact` lists it on a running one (which it refuses once the trial has finished); its id."""
    import mimetypes
    import os
    import uuid
    from dataclasses import asdict

    from optuna.artifacts import ArtifactMeta

    artifact_id = str(uuid.uuid4())
    filename = os.path.basename(path)
    meta = ArtifactMeta(
        artifact_id=artifact_id, filename=filename, mimetype=mimetype, encoding=mimetypes.guess_type(filename)[1]
    )
    with open(path, "rb") as handle:
        store.write(artifact_id, handle)
    set_attr_of_finished_trial(storage, trial_id, f"artifacts:{artifact_id}", json.dumps(asdict(meta)), system=True)
    return artifact_id


def trial_by_number(study: optuna.Study, number: int) -> optuna.trial.FrozenTrial:
    """The study's trial numbered `number`, read alone (study.trials would read every trial); KeyError if none."""
    storage = study._storage
    return storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
