"""Every use of a private Optuna name, each behind one small function, and nothing else.

Checked against Optuna 5.0.0. tests/test_optuna_private.py checks that each name below still exists with the
shape used here and exercises each function on a real SQLite study, so a new Optuna that changes one fails
there, naming it, rather than in a running sweep.

- `Study._storage`: the storage a study talks to (a `_CachedStorage` around an `RDBStorage` for a database
  URL). Needed to stamp heartbeats of trials asked with `study.ask()` and to write to a finished trial.
- `Trial._trial_id`, `FrozenTrial._trial_id`: a trial's id in the storage, which storage methods take (the
  public `number` counts within one study only).
- `optuna.storages._heartbeat.is_heartbeat_enabled(storage)`, and the methods `record_heartbeat(trial_id)`
  and `get_heartbeat_interval()` of `optuna.storages._heartbeat.BaseHeartbeat` (public methods of a class in
  a private module): Optuna stamps heartbeats only for trials run by `study.optimize`; a population's trials
  come from `study.ask()`, so sweep.rounds stamps them itself, or a live population would look dead and a
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
  (about 0.5-1 ms each on SQLite, more over a network); a trial's 15-20 attributes are written in one
  transaction of three statements instead, after the running-trial check Optuna applies, and the trial's
  own copy is updated as `set_user_attr` updates it.
- `optuna.storages._rdb.models.TrialHeartbeatModel` (column `trial_id`) and `TrialModel`'s `datetime_start`
  column: Optuna takes a trial for stale only once it has a heartbeat, so a worker that lost its database
  between creating a trial and its first stamp leaves a trial RUNNING for ever, which holds a place in the
  budget and makes the other workers wait for it for ever; such trials are found by one query.
- `Study._study_id` and `optuna.storages._rdb.models.TrialModel` (columns `study_id`, `number`, `state`): the
  budget check counts a study's finished and running trials in one indexed COUNT query, where the public
  `get_trials` reads every trial, a cost that grows with the study.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

# The Optuna version these names were last checked against (tests/test_optuna_private.py).
CHECKED_WITH = "5.0.0"


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
        rows = [{"trial_id": trial._trial_id, "key": key, "value_json": json.dumps(value)} for key, value in attrs.items()]
        session.execute(insert(attribute), rows)
    trial._cached_frozen_trial.user_attrs.update(attrs)


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
    meta = ArtifactMeta(artifact_id=artifact_id, filename=filename, mimetype=mimetype, encoding=mimetypes.guess_type(filename)[1])
    with open(path, "rb") as handle:
        store.write(artifact_id, handle)
    set_attr_of_finished_trial(storage, trial_id, f"artifacts:{artifact_id}", json.dumps(asdict(meta)), system=True)
    return artifact_id


def count_trials(study: optuna.Study, states, below_number: int | None = None) -> int:
    """How many of the study's trials are in `states` (and numbered below `below_number`): one COUNT query
    on an RDB storage, whatever the study's size; other storages read the trials."""
    rdb = _rdb(study._storage)
    if rdb is None:
        return sum(1 for t in study.get_trials(deepcopy=False, states=tuple(states)) if below_number is None or t.number < below_number)
    from optuna.storages._rdb import models
    from sqlalchemy import func

    session = rdb.scoped_session()
    try:
        query = session.query(func.count(models.TrialModel.trial_id)).filter(
            models.TrialModel.study_id == study._study_id, models.TrialModel.state.in_(tuple(states))
        )
        if below_number is not None:
            query = query.filter(models.TrialModel.number < below_number)
        return int(query.scalar())
    finally:
        session.close()


def running_trials_never_stamped(study: optuna.Study, older_than_seconds: float) -> list[int]:
    """Ids of the study's RUNNING trials that started more than `older_than_seconds` ago and never got a
    heartbeat (one query; empty for a storage without heartbeats or not in a database)."""
    import datetime

    rdb = _rdb(study._storage)
    if rdb is None or rdb.get_heartbeat_interval() is None:
        return []
    from optuna.storages._rdb import models
    from optuna.trial import TrialState

    started_before = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None) - datetime.timedelta(seconds=older_than_seconds)
    trial, heartbeat = models.TrialModel, models.TrialHeartbeatModel
    session = rdb.scoped_session()
    try:
        rows = (
            session.query(trial.trial_id)
            .outerjoin(heartbeat, heartbeat.trial_id == trial.trial_id)
            .filter(trial.study_id == study._study_id, trial.state == TrialState.RUNNING, heartbeat.trial_id.is_(None))
            .filter(trial._datetime_start_utc < started_before)
            .all()
        )
        return [row[0] for row in rows]
    finally:
        session.close()
