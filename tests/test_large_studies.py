"""Tests for what must not grow with a study: a population's member list stored once (and studies stored by an earlier
version, whose every member holds it, still retrained), and `sweep show` reading the few trials it prints, not every
trial."""

from __future__ import annotations

import json
import sqlite3

import optuna
import pytest
from optuna.trial import TrialState

from sweep.data import load_dataset
from sweep.handover.export import export_best
from sweep.metrics import metrics, parse_goal
from sweep.models.builtin import BuiltinNetwork
from sweep.models.population import population_description
from sweep.reading.results import view_study
from sweep.study.optuna_private import set_attr_of_finished_trial, storage_of, trial_by_number, trial_id
from sweep.study.rounds import population_round
from sweep.study.runner import run_sweep
from sweep.study.storage import open_storage
from tests.conftest import tiny_values
from tests.test_results import single_study


def _round(tiny_config, size: int, name: str) -> list[optuna.trial.FrozenTrial]:
    """The trials of one population round of `size` members (1 epoch) on a fresh SQLite study."""
    config = tiny_config(epochs=1, pruner="none")
    study = optuna.create_study(storage=open_storage(config.storage), study_name=name, direction="maximize")
    population_round(study, config, load_dataset(config), parse_goal("f1"), size)
    return sorted(study.trials, key=lambda t: t.number)


@pytest.mark.parametrize("sizes", [(2, 9), (3, 7)])
def test_a_member_stores_the_same_few_numbers_whatever_the_population_size(tiny_config, sizes):
    """Check that a population's member list is stored once, on its first trial: every other member's attributes
    are the same size whatever K, and a round stores K member entries, not K x K."""
    other_sizes = []
    for size in sizes:
        trials = _round(tiny_config, size, f"k{size}")
        attrs = [t.user_attrs["population"] for t in trials]
        assert [a["member"] for a in attrs] == list(range(size)) and {a["first_trial"] for a in attrs} == {
            trials[0].number
        }
        assert [len(a.get("members", [])) for a in attrs] == [size] + [0] * (size - 1)
        assert [m["trial"] for m in attrs[0]["members"]] == [t.number for t in trials]
        other_sizes.append(max(len(json.dumps(a)) for a in attrs[1:]))
    assert other_sizes[0] == other_sizes[1] < 120


def _to_old_layout(study: optuna.Study) -> None:
    """Rewrite a study's population attributes as an earlier version stored them: every member the whole description."""
    trials = study.get_trials(deepcopy=False)
    firsts = {t.number: t.user_attrs["population"] for t in trials if "members" in t.user_attrs["population"]}
    for trial in trials:
        own = trial.user_attrs["population"]
        old = {key: value for key, value in firsts[own["first_trial"]].items() if key != "first_trial"} | {
            "member": own["member"]
        }
        set_attr_of_finished_trial(storage_of(study), trial_id(trial), "population", old)


@pytest.fixture(scope="module")
def population_study(tmp_path_factory, tiny_csv):
    """A study of one population of 3 complete trials (3 epochs) in the new layout, as (config, study file)."""
    folder = tmp_path_factory.mktemp("population")
    config = tiny_values(
        tiny_csv,
        f"sqlite:///{folder / 'population.db'}",
        study="population",
        trials=3,
        population=3,
        epochs=3,
        pruner="none",
    )
    run_sweep(config)
    return config, folder / "population.db"


@pytest.mark.parametrize("layout", ["new", "old"])
def test_every_member_is_retrained_and_exported_from_either_layout(population_study, tmp_path, layout):
    """Check that each member of a population is retrained to its stored validation metrics, and the best exported and
    reproduced, both from the new layout (the list on the first member) and from the old one (on every member)."""
    config, path = population_study
    copy = tmp_path / "copy.db"
    with sqlite3.connect(path) as reading, sqlite3.connect(copy) as writing:  # with what the write-ahead log holds
        reading.backup(writing)
    storage = f"sqlite:///{copy}"
    study = optuna.load_study(study_name=config.study, storage=storage)
    if layout == "old":
        _to_old_layout(study)
        study = optuna.load_study(study_name=config.study, storage=storage)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    assert [("members" in t.user_attrs["population"]) for t in trials] == (
        [True] * 3 if layout == "old" else [True, False, False]
    )
    dataset = load_dataset(config)
    for trial in trials:
        assert (
            population_description(trial, lambda n: trial_by_number(study, n))["member"]
            == trial.user_attrs["population"]["member"]
        )
        retrained = BuiltinNetwork(config).retrain(dataset, [trial], lambda n: trial_by_number(study, n))[trial.number]
        validation = metrics(dataset.validation.y, retrained.pooled, trial.params["threshold"])
        assert validation["f1"] == pytest.approx(trial.user_attrs["val_f1"], abs=1e-6)
        assert validation["precision"] == pytest.approx(trial.user_attrs["val_precision"], abs=1e-6)
    if layout == "new":
        with pytest.raises(ValueError, match="pass its study"):
            population_description(trials[1])
    bundle = export_best(storage, config.study, tmp_path / "bundle").best
    assert bundle["validation"]["reproduced"] and bundle["trial"] == study.best_trial.number


@pytest.mark.parametrize("top", [1, 3, 10])
def test_show_reads_the_same_rows_from_a_database_as_from_memory(sqlite_url, top):
    """Check that `show`'s table and failures from a SQLite study (bounded queries) equal those of the same trials in
    memory."""
    in_memory = view_study(single_study(), sqlite_url, top=top)
    stored = view_study(single_study(open_storage(sqlite_url)), sqlite_url, top=top)
    assert stored.trials == in_memory.trials and stored.failures == in_memory.failures
    assert stored.chosen.number == in_memory.chosen.number == 2


@pytest.mark.parametrize("in_database", [False, True])
def test_summary_and_study_note_count_every_state_in_one_read(sqlite_url, in_database):
    """Check that the summary (`show`, `studies`, a run's end) and the dashboard's study note give the counts and best
    trial that counting each state gives, from a SQLite study and from memory."""
    from sweep.study.figures import study_note
    from sweep.study.summary import count_trials, summarize

    study = single_study(open_storage(sqlite_url) if in_database else None)
    study.ask()  # one RUNNING trial
    summary = summarize(study, sqlite_url)
    assert (
        (summary.finished, summary.failed, summary.running)
        == (6, 2, 1)
        == (
            count_trials(study, (TrialState.COMPLETE, TrialState.PRUNED)),
            count_trials(study, (TrialState.FAIL,)),
            count_trials(study, (TrialState.RUNNING,)),
        )
    )
    assert summary.best.number == 2
    note = study_note(study)
    assert "**Trials**: 6 finished, 2 failed." in note and "trial #2" in note
