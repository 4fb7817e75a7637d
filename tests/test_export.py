"""Tests for sweep.export: the bundle reproduces the best trial, and predict() scores new tables with it."""

import json

import numpy as np
import optuna
import pandas as pd
import pytest

from sweep.errors import DataError, ExportError
from sweep.export import export_best, load_bundle, predict
from sweep.runner import run_sweep
from sweep.storage import open_storage


@pytest.fixture
def exported(tiny_config, tmp_path):
    config = tiny_config(trials=3)
    run_sweep(config)
    return config, export_best(config.storage, config.study, tmp_path / "bundle")


def test_bundle_reproduces_the_best_trial(exported):
    """Check that the exported model reproduces the best trial's validation value and best.json says so."""
    config, result = exported
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    best = json.loads((result.out_dir / "best.json").read_text())
    assert best["trial"] == study.best_trial.number
    assert best["validation"]["reproduced_value"] == pytest.approx(study.best_value, abs=1e-12)
    assert best["validation"]["reproduced"] is True
    assert best["params"] == study.best_trial.params
    assert best["class_weight"] == {"0": 1.0, "1": study.best_trial.params["minority_weight"]}
    assert best["threshold"] == study.best_trial.params["threshold"]
    assert best["objective"] == {"spec": "f1", "names": ["val_f1"], "directions": ["maximize"], "picked_by": None}
    assert set(best["test"]["metrics"]) >= {"precision", "recall", "f1", "flag_rate", "average_precision"}
    assert best["data"]["splits"]["test"]["rows"] == 600 and best["data"]["fingerprint"]
    assert {"tensorflow", "keras", "optuna"} <= set(best["versions"]) and best["seed"] == best["train_settings"]["seed"]
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["best.json", "model.keras", "scaler.json"]


def test_predict_scores_every_row_in_order(exported, tiny_csv, tmp_path):
    """Check that predict gives one row per input row in input order, with decisions at the bundle's threshold."""
    _, result = exported
    table = pd.read_csv(tiny_csv).drop(columns="label")
    shuffled = table[["f1", "f0"]].assign(extra="ignored")  # matched by name, extra columns ignored
    path = tmp_path / "new.csv"
    shuffled.to_csv(path, index=False)
    scored = predict(result.out_dir, path)
    assert list(scored.columns) == ["probability", "decision"] and len(scored) == len(table)
    assert np.array_equal(scored["decision"], (scored["probability"] >= result.best["threshold"]).astype(int))
    _, scaler, model = load_bundle(result.out_dir)
    expected = model(scaler.transform(table[["f0", "f1"]].to_numpy())).numpy().ravel()
    assert np.allclose(scored["probability"], expected)


def test_predict_names_a_missing_column(exported, tmp_path):
    """Check that a table without one of the model's feature columns is a DataError naming it."""
    _, result = exported
    pd.DataFrame({"f0": [0.1, 0.2]}).to_csv(tmp_path / "x.csv", index=False)
    with pytest.raises(DataError, match=r"lacks feature column 'f1'"):
        predict(result.out_dir, tmp_path / "x.csv")


def test_export_refuses_a_non_empty_directory_unless_forced(exported):
    """Check that export will not write into a non-empty directory without force=True."""
    config, result = exported
    with pytest.raises(ExportError, match="exists and is not empty.*--force"):
        export_best(config.storage, config.study, result.out_dir)
    again = export_best(config.storage, config.study, result.out_dir, force=True)
    assert again.reproduced


def test_export_needs_a_complete_trial(tiny_config, tmp_path):
    """Check that a study without a complete trial cannot be exported."""
    config = tiny_config()
    optuna.create_study(storage=open_storage(config.storage), study_name="empty")
    with pytest.raises(ExportError, match="no complete trial"):
        export_best(config.storage, "empty", tmp_path / "out")
