"""Tests for sweep.reading.results: counts, the best trial and Pareto pick, and the tables `show` and `studies`
print."""

import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import TrialState, create_trial

from sweep.metrics import parse_pick
from sweep.reading.results import format_values, studies_table, view_study
from sweep.study.storage import open_storage
from sweep.study.summary import BUDGET_STATES, best_trial, count_trials, format_value, is_new_best, summarize

DISTRIBUTIONS = {
    "minority_weight": FloatDistribution(1, 1000, log=True),
    "hidden_width": IntDistribution(1, 64, log=True),
    "threshold": FloatDistribution(0.01, 0.99),
}


def finished(value=None, state=TrialState.COMPLETE, **attrs) -> optuna.trial.FrozenTrial:
    """A finished trial as a sweep stores it: its params, value(s) and val_* user attributes."""
    values = value if isinstance(value, list) else None
    return create_trial(
        state=state,
        value=None if values is not None else value,
        values=values,
        distributions=DISTRIBUTIONS,
        params={"minority_weight": 10.0, "hidden_width": 4, "threshold": 0.5},
        user_attrs=attrs,
    )


def single_study(storage=None, name="single") -> optuna.Study:
    """Five complete trials (values 0.1 .. 0.5), one pruned and two failed."""
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
    for value in (0.3, 0.1, 0.5, 0.2, 0.4):
        study.add_trial(
            finished(value, val_precision=value / 2, val_recall=value * 2, val_flag_rate=0.1, train_seconds=1.5)
        )
    study.add_trial(finished(0.05, TrialState.PRUNED))
    study.add_trial(finished(state=TrialState.FAIL, fail_reason="loss became nan"))
    study.add_trial(finished(state=TrialState.FAIL))
    study.set_metric_names(["val_f1"])
    return study


def pareto_study() -> optuna.Study:
    """A precision/recall study whose front holds three trials with F1 0.3, 0.4 and 0.2."""
    study = optuna.create_study(directions=["maximize", "maximize"])
    front = [(0.9, 0.1, 0.3), (0.5, 0.5, 0.4), (0.2, 0.8, 0.2)]
    for precision, recall, f1 in front + [(0.1, 0.1, 0.1)]:
        study.add_trial(finished([precision, recall], val_precision=precision, val_recall=recall, val_f1=f1))
    return study


def test_counts_and_summary():
    """Check that the summary counts complete and pruned trials as finished, failed ones apart, and names the metric."""
    study = single_study()
    assert count_trials(study, BUDGET_STATES) == 6 and count_trials(study, (TrialState.FAIL,)) == 2
    summary = summarize(study, "postgresql+psycopg://u:secret@h/db", ran_now=3)
    assert (summary.finished, summary.failed, summary.ran_now) == (6, 2, 3)
    assert (summary.metric_name, summary.direction, summary.best.value) == ("val_f1", "maximize", 0.5)
    assert "secret" not in summary.storage


@pytest.mark.parametrize(
    "pick, expected_f1",
    [(None, 0.4), ("recall", 0.2), ("precision:recall>=0.5", 0.4), ("recall:precision>=0.95", None)],
)
def test_best_trial_picks_from_the_pareto_front(pick, expected_f1):
    """Check that a multi-objective study's best trial is the front trial the pick rule chooses, or None when none meets
    its bound."""
    chosen = best_trial(pareto_study(), parse_pick(pick) if pick else None)
    assert (chosen.user_attrs["val_f1"] if chosen else None) == expected_f1


def test_best_trial_is_none_without_a_complete_trial():
    """Check that a study with only failed trials has no best trial."""
    study = optuna.create_study()
    study.add_trial(finished(state=TrialState.FAIL))
    assert best_trial(study) is None


@pytest.mark.parametrize("value, new_best", [(0.6, True), (0.5, False), (0.2, False)])
def test_is_new_best(value, new_best):
    """Check that a running trial's value is a new best only when it beats every complete trial."""
    study = single_study()
    assert is_new_best(study.ask(), value) is new_best


def test_new_bests_agree_with_the_study_and_query_only_for_candidates(monkeypatch):
    """Check that NewBests answers as is_new_best does for a run of values, also when another worker finished a
    better trial in between, and reads the study's best only for values that beat the best it last read."""
    from sweep.study.summary import NewBests

    study = single_study()
    reads = []
    best_value = type(study).best_value
    monkeypatch.setattr(type(study), "best_value", property(lambda s: reads.append(1) or best_value.fget(s)))
    new_bests = NewBests()
    for value in (0.55, 0.3, 0.52, 0.53, 0.7, 0.6, 0.65, 0.71):
        trial = study.ask()
        expected = is_new_best(trial, value)
        reads.clear()
        assert new_bests(trial, value) is expected, value
        if value in (0.3, 0.53, 0.65):
            assert not reads, f"read the study's best for {value}, which beats no best read before"
        study.tell(trial, value)
    study.add_trial(finished(value=0.9))  # another worker's better trial
    trial = study.ask()
    assert new_bests(trial, 0.8) is is_new_best(trial, 0.8) is False


@pytest.mark.parametrize(
    "value, digits, shown", [(None, 4, "-"), (0.123456, 4, "0.1235"), (0.123456, 3, "0.123"), (12, 4, "12")]
)
def test_format_value(value, digits, shown):
    """Check that table cells show floats to the given significant digits and a missing value as '-'."""
    assert format_value(value, digits) == shown


def test_view_study_lists_the_top_trials_and_the_last_failures():
    """Check that `show`'s table holds the best trials first, limited to top, and its failures carry their reasons."""
    view = view_study(single_study(), "sqlite:///x.db", top=3)
    assert view.trials.title == "top 3 trials (validation)" and not view.multi
    assert [row[1] for row in view.trials.rows] == ["0.5", "0.4", "0.3"]
    assert view.trials.columns[:2] == ("trial", "val_f1") and "F1 sd over folds" not in view.trials.columns
    assert view.chosen.value == 0.5
    assert [reason for _, reason in view.failures] == ["loss became nan", "no reason recorded"]


def test_view_study_of_a_pareto_study_lists_its_front():
    """Check that `show` lists the whole Pareto front of a multi-objective study, and its values as pairs."""
    view = view_study(pareto_study(), "sqlite:///x.db", top=1, pick=parse_pick("recall"))
    assert view.multi and view.trials.title == "Pareto front: 3 trials (validation)"
    assert [row[1] for row in view.trials.rows] == ["0.2, 0.8", "0.5, 0.5", "0.9, 0.1"]
    assert format_values(view.chosen) == "0.2, 0.8"


def test_view_study_shows_the_f1_spread_of_cross_validated_trials():
    """Check that `show` adds the F1 spread over folds for a cross-validated study."""
    study = single_study()
    study.set_user_attr("data", {"validation": {"kind": "cv", "folds": 5}})
    assert "F1 sd over folds" in view_study(study, "sqlite:///x.db").trials.columns


def test_studies_table_has_a_row_per_study(sqlite_url):
    """Check that `studies`' table lists each study with its counts, running trials and best value."""
    storage = open_storage(sqlite_url)
    single_study(storage, "one")
    study = optuna.create_study(storage=storage, study_name="two")
    study.ask()
    table = studies_table(storage, sqlite_url)
    assert table.columns[0] == "study" and table.title is None
    assert table.rows == (
        ("one", "6", "2", "0", "val_f1", "maximize", "0.5", "#2"),
        ("two", "0", "0", "1", "value", "minimize", "-", "-"),
    )
