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


def set_attr_of_finished_trial(storage: optuna.storages.BaseStorage, trial_id: int, key: str, value: Any) -> None:
    """Set (or replace) user attribute `key` of a trial that has already finished, which Optuna's API refuses,
    in one transaction of the RDB storage's own session. Readers see it once they read the trial anew."""
    from optuna.storages._rdb import models

    rdb = getattr(storage, "_backend", storage)  # create_study wraps an RDBStorage in a cache
    session = rdb.scoped_session()
    try:
        row = session.query(models.TrialUserAttributeModel).filter_by(trial_id=trial_id, key=key).one_or_none()
        if row is None:
            session.add(models.TrialUserAttributeModel(trial_id=trial_id, key=key, value_json=json.dumps(value)))
        else:
            row.value_json = json.dumps(value)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
