"""Tests for sweep.study.optuna_private: each private Optuna name still has the shape we use, each function works on a
real SQLite study, and no other module of the package uses a private Optuna name."""

from __future__ import annotations

import ast
import importlib
import inspect
import time
import warnings
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from sweep.study import optuna_private
from sweep.study.optuna_private import (
    attach_artifact,
    heartbeat_enabled,
    heartbeat_interval,
    record_heartbeat,
    set_attr_of_finished_trial,
    set_param,
    set_user_attrs,
    storage_of,
    trial_by_number,
    trial_id,
)
from sweep.study.queries import (
    TrialCounts,
    best_complete_trials,
    count_trials,
    last_trials,
    running_trials_never_stamped,
    state_counts,
)

PACKAGE = Path(optuna_private.__file__).parent.parent
# The two homes of other libraries' private names: Optuna's, and TensorFlow's (the gradient registry, sweep.runtime).
PRIVATE_HOMES = ("study/optuna_private.py", "runtime.py")


def rdb_study(tmp_path: Path, heartbeat: int | None = None, grace: int | None = None) -> optuna.Study:
    """A study on a fresh SQLite file, with heartbeats when `heartbeat` is given."""
    with warnings.catch_warnings():  # the heartbeat arguments are "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            f"sqlite:///{tmp_path / 'private.db'}", heartbeat_interval=heartbeat, grace_period=grace
        )
    return optuna.create_study(storage=storage, study_name="private")


def ask(study: optuna.Study) -> optuna.Trial:
    with warnings.catch_warnings():  # Optuna warns that ask() trials get no heartbeat: we record them by hand
        warnings.simplefilter("ignore", UserWarning)
        return study.ask()


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _study_storage(tmp_path: Path) -> None:
    study = rdb_study(tmp_path)
    assert isinstance(study._storage, optuna.storages.BaseStorage), f"Study._storage is {type(study._storage).__name__}"


def _trial_ids(tmp_path: Path) -> None:
    study = rdb_study(tmp_path)
    trial = ask(study)
    assert isinstance(trial._trial_id, int), "Trial._trial_id is not an int"
    study.tell(trial, 1.0)
    assert study.trials[0]._trial_id == trial._trial_id, "FrozenTrial._trial_id is not the running trial's id"


def _is_heartbeat_enabled(_tmp_path: Path) -> None:
    module = importlib.import_module("optuna.storages._heartbeat")
    assert _parameters(module.is_heartbeat_enabled) == ["storage"], inspect.signature(module.is_heartbeat_enabled)


def _heartbeat_methods(_tmp_path: Path) -> None:
    base = importlib.import_module("optuna.storages._heartbeat").BaseHeartbeat
    assert _parameters(base.record_heartbeat) == ["self", "trial_id"], inspect.signature(base.record_heartbeat)
    assert _parameters(base.get_heartbeat_interval) == ["self"], inspect.signature(base.get_heartbeat_interval)
    assert issubclass(optuna.storages.RDBStorage, base), "RDBStorage no longer implements BaseHeartbeat"


def _cached_backend(tmp_path: Path) -> None:
    cached = importlib.import_module("optuna.storages._cached_storage")._CachedStorage
    storage = rdb_study(tmp_path)._storage
    assert isinstance(storage, cached), (
        f"create_study on an RDBStorage gives a {type(storage).__name__}, not a _CachedStorage"
    )
    assert isinstance(storage._backend, optuna.storages.RDBStorage), "_CachedStorage._backend is not the RDBStorage"


def _scoped_session(tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    session = rdb_study(tmp_path)._storage._backend.scoped_session()
    try:
        assert isinstance(session, Session), f"RDBStorage.scoped_session() gives a {type(session).__name__}"
    finally:
        session.close()


def _user_attribute_model(_tmp_path: Path) -> None:
    models = importlib.import_module("optuna.storages._rdb.models")
    columns = {column.name for column in models.TrialUserAttributeModel.__table__.columns}
    assert {"trial_id", "key", "value_json"} <= columns, f"its columns are {sorted(columns)}"
    assert models.TrialUserAttributeModel.__tablename__ == "trial_user_attributes"


def _model_columns(name: str, wanted: set[str]):
    def check(_tmp_path: Path) -> None:
        model = getattr(importlib.import_module("optuna.storages._rdb.models"), name)
        columns = {column.name for column in model.__table__.columns}
        assert wanted <= columns, f"{name}'s columns are {sorted(columns)}"

    return check


def _scoped_session_helper(_tmp_path: Path) -> None:
    helper = importlib.import_module("optuna.storages._rdb.storage")._create_scoped_session
    assert _parameters(helper) == ["scoped_session", "ignore_integrity_error"], inspect.signature(helper)


def _cached_frozen_trial(tmp_path: Path) -> None:
    trial = ask(rdb_study(tmp_path))
    trial.set_user_attr("k", 1)
    assert trial._cached_frozen_trial.user_attrs == {"k": 1}, (
        "Trial._cached_frozen_trial no longer mirrors user attributes"
    )


def _value_model(_tmp_path: Path) -> None:
    model = importlib.import_module("optuna.storages._rdb.models").TrialValueModel
    columns = {column.name for column in model.__table__.columns}
    assert {"trial_id", "objective", "value", "value_type"} <= columns, (
        f"TrialValueModel's columns are {sorted(columns)}"
    )
    kinds = {kind.name for kind in model.TrialValueType}
    assert {"INF_NEG", "FINITE", "INF_POS"} <= kinds, f"TrialValueModel.TrialValueType is {sorted(kinds)}"


def _stale_trial_ids(tmp_path: Path) -> None:
    base = importlib.import_module("optuna.storages._heartbeat").BaseHeartbeat
    assert _parameters(base._get_stale_trial_ids) == ["self", "study_id"], inspect.signature(base._get_stale_trial_ids)
    study = rdb_study(tmp_path, heartbeat=1, grace=1)
    assert optuna_private.rdb_stale_trial_ids(study._storage._backend, study._study_id) == []


def _cached_storage_calls(_tmp_path: Path) -> None:
    import re

    source = inspect.getsource(importlib.import_module("optuna.storages._cached_storage")._CachedStorage)
    private = {name for name in re.findall(r"self\._backend\.(\w+)", source) if name.startswith("_")}
    assert private <= set(optuna_private.CACHED_STORAGE_CALLS), (
        f"_CachedStorage also calls {sorted(private - set(optuna_private.CACHED_STORAGE_CALLS))}"
    )
    assert all(
        callable(getattr(optuna.storages.RDBStorage, name, None)) for name in optuna_private.CACHED_STORAGE_CALLS
    )


def _study_id(tmp_path: Path) -> None:
    study = rdb_study(tmp_path)
    assert study._study_id == study._storage.get_study_id_from_name("private"), (
        "Study._study_id is not the storage's id"
    )


# Each private name optuna_private uses (as its docstring lists it) and the check of its shape.
PRIVATE_NAMES = {
    "Study._storage": _study_storage,
    "Trial._trial_id": _trial_ids,
    "optuna.storages._heartbeat.is_heartbeat_enabled": _is_heartbeat_enabled,
    "optuna.storages._heartbeat.BaseHeartbeat": _heartbeat_methods,
    "_CachedStorage._backend": _cached_backend,
    "RDBStorage.scoped_session": _scoped_session,
    "optuna.storages._rdb.models.TrialUserAttributeModel": _user_attribute_model,
    "optuna.storages._rdb.models.TrialSystemAttributeModel": _model_columns(
        "TrialSystemAttributeModel", {"trial_id", "key", "value_json"}
    ),
    "optuna.storages._rdb.models.TrialModel": _model_columns(
        "TrialModel", {"trial_id", "study_id", "number", "state", "datetime_start"}
    ),
    "optuna.storages._rdb.models.TrialHeartbeatModel": _model_columns("TrialHeartbeatModel", {"trial_id", "heartbeat"}),
    "optuna.storages._rdb.models.TrialValueModel": _value_model,
    "optuna.storages._rdb.storage._create_scoped_session": _scoped_session_helper,
    "Trial._cached_frozen_trial": _cached_frozen_trial,
    "Study._study_id": _study_id,
    "BaseHeartbeat._get_stale_trial_ids": _stale_trial_ids,
    "RDBStorage._get_trials": _cached_storage_calls,
}


@pytest.mark.parametrize("name", PRIVATE_NAMES)
def test_private_name_has_the_shape_we_use(name, tmp_path):
    """Check that a private Optuna name sweep.study.optuna_private relies on still exists with the expected signature or
    fields."""
    try:
        PRIVATE_NAMES[name](tmp_path)
    except (AssertionError, AttributeError, ImportError, TypeError) as exc:
        pytest.fail(
            f"Optuna {optuna.__version__} changed the private name {name} "
            f"(sweep.study.optuna_private was checked against {optuna_private.CHECKED_WITH}): "
            f"{type(exc).__name__}: {exc}; update sweep/study/optuna_private.py"
        )


@pytest.mark.parametrize("name", PRIVATE_NAMES)
def test_each_private_name_is_documented(name):
    """Check that the module docstring lists every private name the tests check, with why it is needed."""
    assert name in optuna_private.__doc__


def test_docstring_names_the_checked_version():
    """Check that the module docstring names the Optuna version CHECKED_WITH records."""
    assert f"Checked against Optuna {optuna_private.CHECKED_WITH}." in optuna_private.__doc__


def test_heartbeat_is_recorded_and_seen_by_the_stale_check(tmp_path):
    """Check that a trial stamped by record_heartbeat is failed by Optuna's stale-trial check once the grace period has
    passed, while a trial never stamped is not."""
    study = rdb_study(tmp_path, heartbeat=1, grace=1)
    storage = storage_of(study)
    assert heartbeat_enabled(storage) and heartbeat_interval(storage) == 1
    stamped, bare = ask(study), ask(study)
    record_heartbeat(storage, trial_id(stamped))
    optuna.storages.fail_stale_trials(study)
    assert [t.state for t in study.trials] == [TrialState.RUNNING] * 2, "a fresh heartbeat was taken for stale"
    time.sleep(2.5)  # SQLite stamps whole seconds: past the 1 s grace period for sure
    optuna.storages.fail_stale_trials(study)
    states = {t.number: t.state for t in study.trials}
    assert (states[stamped.number], states[bare.number]) == (TrialState.FAIL, TrialState.RUNNING)


def test_heartbeat_is_off_without_an_interval(tmp_path):
    """Check that a storage opened without a heartbeat interval, and an in-memory one, record no heartbeats."""
    assert not heartbeat_enabled(storage_of(rdb_study(tmp_path)))
    assert not heartbeat_enabled(storage_of(optuna.create_study()))


@pytest.mark.parametrize("through", ["study's cached storage", "plain RDBStorage"])
def test_attribute_of_a_finished_trial_is_written(tmp_path, through):
    """Check that set_attr_of_finished_trial adds and replaces user attributes of a finished trial, seen by a fresh
    read."""
    study = rdb_study(tmp_path)
    trial = ask(study)
    trial.set_user_attr("fail_reason", "first reason")
    frozen = study.tell(trial, state=TrialState.FAIL)
    storage = storage_of(study) if through == "study's cached storage" else storage_of(study)._backend
    set_attr_of_finished_trial(storage, trial_id(frozen), "fail_reason", "worker lost")
    set_attr_of_finished_trial(storage, trial_id(frozen), "extra", {"a": [1, 2]})
    reread = optuna.load_study(study_name="private", storage=f"sqlite:///{tmp_path / 'private.db'}").trials[0]
    assert reread.user_attrs == {"fail_reason": "worker lost", "extra": {"a": [1, 2]}}
    assert reread.state == TrialState.FAIL


def test_user_attributes_are_set_in_one_write_and_refused_once_finished(tmp_path):
    """Check that set_user_attrs stores every attribute (seen by a fresh read and by the trial itself) and, like
    Trial.set_user_attr, refuses a finished trial."""
    study = rdb_study(tmp_path)
    trial = ask(study)
    set_user_attrs(trial, {"a": 1, "b": {"c": [1.5, "x"]}})
    set_user_attrs(trial, {"a": 2})
    assert trial.user_attrs == {"a": 2, "b": {"c": [1.5, "x"]}}
    study.tell(trial, 1.0)
    reread = optuna.load_study(study_name="private", storage=f"sqlite:///{tmp_path / 'private.db'}").trials[0]
    assert reread.user_attrs == {"a": 2, "b": {"c": [1.5, "x"]}}
    with pytest.raises(RuntimeError, match="finished"):
        set_user_attrs(trial, {"late": True})


@pytest.mark.parametrize("in_memory", [False, True])
def test_a_param_known_after_training_is_recorded_as_a_sampled_one(tmp_path, in_memory):
    """Check that set_param stores a running trial's param with its distribution, seen by the trial itself and by a
    fresh read once it has finished, as a param drawn by the sampler is."""
    study = optuna.create_study() if in_memory else rdb_study(tmp_path)
    trial = ask(study)
    distribution = optuna.distributions.FloatDistribution(0.01, 0.99)
    set_param(trial, "threshold", 0.42, distribution)
    assert trial.params == {"threshold": 0.42} and trial.distributions == {"threshold": distribution}
    study.tell(trial, 1.0)
    assert study.trials[0].params == {"threshold": 0.42} and study.trials[0].distributions == {
        "threshold": distribution
    }


def test_user_attributes_fall_back_to_optuna_without_a_database():
    """Check that set_user_attrs on an in-memory study sets the attributes through Optuna's API."""
    study = optuna.create_study()
    trial = study.ask()
    set_user_attrs(trial, {"a": 1, "b": 2})
    study.tell(trial, 0.5)
    assert study.trials[0].user_attrs == {"a": 1, "b": 2}


@pytest.mark.parametrize("in_memory", [False, True])
def test_count_agrees_with_reading_the_trials(tmp_path, in_memory):
    """Check that count_trials gives what filtering get_trials gives, by states and below a trial number."""
    study = optuna.create_study() if in_memory else rdb_study(tmp_path)
    for value in (1.0, None, 2.0, None, 3.0):
        trial = ask(study)
        if value is not None:
            study.tell(trial, value)
        elif trial.number == 1:
            study.tell(trial, state=TrialState.FAIL)
    covering = (TrialState.COMPLETE, TrialState.RUNNING)
    for below in (None, 0, 2, 4, 99):
        expected = [t for t in study.trials if t.state in covering and (below is None or t.number < below)]
        assert count_trials(study, covering, below) == len(expected)
    assert count_trials(study, (TrialState.FAIL,)) == 1


def test_artifact_is_listed_on_a_finished_trial(tmp_path):
    """Check that attach_artifact lists a file on a trial that has already finished, as upload_artifact lists it on
    a running one: Optuna's own readers find its name and type, and download gives the same bytes."""
    study = rdb_study(tmp_path)
    trial = ask(study)
    frozen = study.tell(trial, 1.0)
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    (tmp_path / "artifacts").mkdir()
    figure = tmp_path / "figure.png"
    figure.write_bytes(b"\x89PNG fake bytes")
    artifact = attach_artifact(storage_of(study), trial_id(frozen), store, str(figure), "image/png")
    reread = optuna.load_study(study_name="private", storage=f"sqlite:///{tmp_path / 'private.db'}")
    [meta] = optuna.artifacts.get_all_artifact_meta(reread.trials[0], storage=reread._storage)
    assert (meta.artifact_id, meta.filename, meta.mimetype) == (artifact, "figure.png", "image/png")
    optuna.artifacts.download_artifact(artifact_store=store, artifact_id=artifact, file_path=str(tmp_path / "back.png"))
    assert (tmp_path / "back.png").read_bytes() == figure.read_bytes()


def test_writes_and_counts_on_postgres(postgres_url, unique_name, tmp_path):
    """Check set_user_attrs, count_trials and attach_artifact on a real Postgres study."""
    study = optuna.create_study(storage=postgres_url, study_name=unique_name)
    try:
        running, done = ask(study), ask(study)
        set_user_attrs(done, {"a": 1, "b": [2.5]})
        set_user_attrs(done, {"a": 2})
        frozen = study.tell(done, 0.5)
        store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
        figure = tmp_path / "f.png"
        figure.write_bytes(b"png")
        attach_artifact(storage_of(study), trial_id(frozen), store, str(figure), "image/png")
        reread = optuna.load_study(study_name=unique_name, storage=postgres_url)
        assert reread.trials[1].user_attrs == {"a": 2, "b": [2.5]}
        assert [
            m.filename for m in optuna.artifacts.get_all_artifact_meta(reread.trials[1], storage=reread._storage)
        ] == ["f.png"]
        assert count_trials(reread, (TrialState.COMPLETE, TrialState.RUNNING)) == 2
        assert count_trials(reread, (TrialState.RUNNING,), below_number=running.number + 1) == 1
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)


def _ranked_study(study: optuna.Study) -> optuna.Study:
    """Complete trials with ties and infinite values, a pruned trial with a better value and failed ones between."""
    values = [0.3, float("inf"), None, 0.3, float("-inf"), 0.7, "pruned", 0.1, None, 0.7, None]
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for number, value in enumerate(values):
        if value is None:
            state, value = TrialState.FAIL, None
        elif value == "pruned":
            state, value = TrialState.PRUNED, 5.0
        else:
            state = TrialState.COMPLETE
        study.add_trial(
            optuna.trial.create_trial(
                state=state,
                value=value if state == TrialState.COMPLETE else None,
                params={"x": number / 20},
                distributions=distributions,
                user_attrs={"number": number},
                intermediate_values={1: value} if state == TrialState.PRUNED else None,
            )
        )
    return study


def _expected_best(study: optuna.Study, count: int) -> list[int]:
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [
        t.number for t in sorted(complete, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")[:count]
    ]


def _check_bounded_reads(study: optuna.Study) -> None:
    """best_complete_trials, last_trials and trial_by_number give what reading every trial gives."""
    for count in (0, 1, 2, 3, 6, 50):
        assert [t.number for t in best_complete_trials(study, count)] == _expected_best(study, count), count
        failed = [t.number for t in study.get_trials(states=(TrialState.FAIL,))]
        assert [t.number for t in last_trials(study, (TrialState.FAIL,), count)] == (
            failed[-count:] if count else []
        ), count
    covering = (TrialState.COMPLETE, TrialState.PRUNED)
    assert [t.number for t in last_trials(study, covering, 4)] == [t.number for t in study.get_trials(states=covering)][
        -4:
    ]
    for trial in study.trials:
        read = trial_by_number(study, trial.number)
        assert (read.number, read.state, read.value, read.params, read.user_attrs) == (
            trial.number,
            trial.state,
            trial.value,
            trial.params,
            trial.user_attrs,
        )
    with pytest.raises(KeyError):
        trial_by_number(study, len(study.trials) + 5)


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
@pytest.mark.parametrize("in_memory", [False, True])
def test_bounded_reads_agree_with_reading_every_trial(tmp_path, in_memory, direction):
    """Check that the best trials (ties in trial order, infinite values ranked as Optuna ranks them), the last trials in
    some states and a trial by number read with a LIMIT or alone equal what sorting all the study's trials gives."""
    storage = None if in_memory else optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'ranked.db'}")
    study = _ranked_study(optuna.create_study(storage=storage, study_name="ranked", direction=direction))
    best = [t.number for t in best_complete_trials(study, 2)]
    assert best == ([1, 5] if direction == "maximize" else [4, 7])
    _check_bounded_reads(study)
    if not in_memory:
        assert best_complete_trials(study, 1)[0].number == study.best_trial.number  # as Optuna's own best_trial orders


def test_bounded_reads_on_postgres(postgres_url, unique_name):
    """Check best_complete_trials, last_trials and trial_by_number on a real Postgres study, in both directions."""
    names = [f"{unique_name}-max", f"{unique_name}-min"]
    try:
        for name, direction in zip(names, ("maximize", "minimize")):
            study = _ranked_study(optuna.create_study(storage=postgres_url, study_name=name, direction=direction))
            _check_bounded_reads(optuna.load_study(study_name=name, storage=postgres_url))
            assert best_complete_trials(study, 1)[0].number == study.best_trial.number
    finally:
        for name in names:
            try:
                optuna.delete_study(study_name=name, storage=postgres_url)
            except KeyError:
                pass


STATE_SETS = [
    (TrialState.COMPLETE, TrialState.PRUNED),
    (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING),
    (TrialState.RUNNING,),
    (TrialState.FAIL,),
    (TrialState.WAITING,),
    tuple(TrialState),
]


def _check_counts(study: optuna.Study, counts: TrialCounts) -> None:
    """TrialCounts and state_counts give what count_trials and reading the trials give."""
    assert state_counts(study) == dict(Counter(t.state for t in study.trials))
    for states in STATE_SETS:
        for below in (None, 0, 1, 3, len(study.trials) - 1, len(study.trials) + 2):
            assert counts(states, below) == count_trials(study, states, below), (states, below)


def _exercise_counts(study: optuna.Study) -> None:
    """Trials asked, told in another order than asked, failed long after later ones finished, enqueued and taken:
    one TrialCounts agrees with count_trials after every step."""
    counts = TrialCounts(study)
    _check_counts(study, counts)
    old = ask(study)  # stays RUNNING while the others finish
    done = [ask(study) for _ in range(4)]
    _check_counts(study, counts)
    for trial, value in zip(reversed(done), (0.1, None, 0.3, 0.4)):
        study.tell(trial, value) if value is not None else study.tell(trial, state=TrialState.PRUNED)
        _check_counts(study, counts)
    study.tell(old, state=TrialState.FAIL)
    _check_counts(study, counts)
    study.enqueue_trial({})
    _check_counts(study, counts)
    taken = ask(study)
    _check_counts(study, counts)
    study.tell(taken, 0.5)
    for _ in range(3):
        study.tell(ask(study), 0.2)
        _check_counts(study, counts)


@pytest.mark.parametrize("in_memory", [False, True])
def test_trial_counts_agree_with_count_trials(tmp_path, in_memory):
    """Check that TrialCounts, which keeps the counts of the trials before the oldest open one, gives count_trials'
    answer after every ask, tell (in any order), late failure and enqueued trial, by states and below a number, and
    state_counts the count of every state."""
    _exercise_counts(optuna.create_study() if in_memory else rdb_study(tmp_path))


def test_trial_counts_never_keep_past_a_trial_still_being_created(tmp_path):
    """Check that a trial missing from the numbering (another worker's, not yet committed) is not skipped by the kept
    counts: it is counted once it appears."""
    import sqlite3

    study = rdb_study(tmp_path)
    trials = [ask(study) for _ in range(5)]
    for trial in trials:
        study.tell(trial, state=TrialState.FAIL)
    path = tmp_path / "private.db"
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT * FROM trials WHERE number = 2").fetchone()
        connection.execute("DELETE FROM trials WHERE number = 2")
    counts = TrialCounts(study)
    assert counts((TrialState.FAIL,)) == 4
    with sqlite3.connect(path) as connection:
        connection.execute(f"INSERT INTO trials VALUES ({', '.join('?' * len(row))})", row)
    assert counts((TrialState.FAIL,)) == count_trials(study, (TrialState.FAIL,)) == 5


def test_trial_counts_on_postgres(postgres_url, unique_name):
    """Check that TrialCounts agrees with count_trials, and state_counts with the trials, on a real Postgres study
    through every step."""
    try:
        _exercise_counts(optuna.create_study(storage=postgres_url, study_name=unique_name))
    finally:
        optuna.delete_study(study_name=unique_name, storage=postgres_url)


def test_running_trials_never_stamped_are_found_once_old(tmp_path):
    """Check that only RUNNING trials with no heartbeat that started more than the given seconds ago are found."""
    study = rdb_study(tmp_path, heartbeat=1, grace=1)
    bare, stamped, done = ask(study), ask(study), ask(study)
    record_heartbeat(storage_of(study), trial_id(stamped))
    study.tell(done, 1.0)
    assert running_trials_never_stamped(study, 60) == []
    time.sleep(1.5)
    assert running_trials_never_stamped(study, 1) == [trial_id(bare)]
    (tmp_path / "other").mkdir()
    assert running_trials_never_stamped(rdb_study(tmp_path / "other"), 0) == []  # no heartbeats: never


def _private_uses(path: Path) -> list[str]:
    """Private names used in one module: `x._name` for x other than self/cls, getattr(x, "_name"), and imports of
    modules with a private part (e.g. optuna.storages._rdb). Dunder names (`__name__`) are public protocol."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "getattr"
            and len(node.args) > 1
        ):
            name = node.args[1]
            if (
                isinstance(name, ast.Constant)
                and isinstance(name.value, str)
                and name.value.startswith("_")
                and not name.value.startswith("__")
            ):
                found.append(f"{path.name}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module != "__future__" and any(part.startswith("_") for part in module.split(".")):
                    found.append(f"{path.name}:{node.lineno} import of {module}")
    return found


def test_no_other_module_uses_a_private_name():
    """Check that private (underscore) names of other objects are used only in their homes: Optuna's in
    sweep/study/optuna_private.py, TensorFlow's in sweep/runtime.py."""
    paths = [
        path for path in sorted(PACKAGE.rglob("*.py")) if path.relative_to(PACKAGE).as_posix() not in PRIVATE_HOMES
    ]
    found = [use for path in paths for use in _private_uses(path)]
    assert not found, f"private names outside {', '.join(PRIVATE_HOMES)} (put them behind a function there): {found}"


def test_the_scan_finds_private_uses(tmp_path):
    """Check that the private-name scan reports attribute, getattr and import uses (so the test above can fail)."""
    module = tmp_path / "m.py"
    module.write_text(
        "import optuna.storages._heartbeat\nfrom optuna.storages._rdb import models\n\n\n"
        "def f(study, self):\n    getattr(study, '_backend')\n    self._fine = 1\n    return study._storage\n"
    )
    assert sorted(use.split(" ", 1)[1] for use in _private_uses(module)) == [
        "getattr(study, '_backend')",
        "import of optuna.storages._heartbeat",
        "import of optuna.storages._rdb",
        "study._storage",
    ]
