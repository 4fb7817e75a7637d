"""Tests for sweep.dashboard: the figures attached to best trials, the study note and where artifacts live."""

from pathlib import Path

import optuna
import pytest

from sweep.dashboard import artifact_dir, study_note
from sweep.runner import run_sweep


@pytest.mark.parametrize(
    "url, expected",
    [
        ("sqlite:///studies/sweeps.db", Path("studies/artifacts")),
        ("sqlite:////data/x/s.db", Path("/data/x/artifacts")),
        ("postgresql+psycopg://u:p@h/db", Path("studies/artifacts")),
    ],
)
def test_artifacts_live_beside_the_study(url, expected):
    """Check that artifacts go beside a SQLite file, and under ./studies/artifacts for a server database."""
    assert artifact_dir(url) == expected


def test_sweep_attaches_figures_to_best_trials_and_writes_a_note(tiny_config):
    """Check that every new best trial carries its two figures and the study note names the best and its flag rate."""
    config = tiny_config(trials=4)
    run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    artifacts = optuna.artifacts.get_all_artifact_meta(study.best_trial, storage=study._storage)
    assert sorted(a.filename for a in artifacts) == ["confusion_matrix.png", "pr_curve.png"]
    note = study_note(study)
    assert f"trial #{study.best_trial.number}" in note and "flag rate" in note and "test" in note


def test_note_and_show_describe_cross_validated_trials(cross_validated):
    """Check that a cross-validated study's note says how trials are judged and shows the best trial's per-fold F1,
    and `sweep show` adds the F1 spread over folds."""
    from typer.testing import CliRunner

    from sweep.cli import app

    config, _ = cross_validated
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    note = study_note(study)
    assert "5 fold models" in note and "pooled out-of-fold" in note and "F1 across folds [" in note
    shown = CliRunner().invoke(app, ["show", config.study, "--storage", config.storage])
    assert shown.exit_code == 0 and "F1 sd over folds" in shown.stdout
