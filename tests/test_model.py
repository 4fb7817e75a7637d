"""Tests for sweep.models.builder: the network's shape for one set of parameters; a user's model file and its
neighbours."""

import subprocess
import sys
from pathlib import Path

import pytest

from sweep.models.network import build_model
from sweep.runtime import tensorflow


@pytest.mark.parametrize("width, layers", [(1, 1), (2, 1), (16, 3), (None, 0)])
def test_layers_and_widths(width, layers):
    """Check that the model has `layers` relu layers of `width` units and one sigmoid output."""
    tensorflow()
    model = build_model(n_features=5, hidden_width=width, hidden_layers=layers)
    dense = model.layers
    assert [layer.units for layer in dense] == [width] * layers + [1]
    assert [layer.activation.__name__ for layer in dense] == ["relu"] * layers + ["sigmoid"]
    hidden = 5 * width + width + (layers - 1) * (width * width + width) + width if layers else 5
    assert model.count_params() == hidden + 1


MYLAYERS = """
import keras


@keras.saving.register_keras_serializable(package="mylayers")
class Doubled(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x
"""

MODELS = """
import keras
import mylayers  # a module beside this file, as `python models.py` would find it


def build(params, input_shape):
    if params["fail"] == 1:
        raise ValueError("this configuration cannot be built")
    return keras.Sequential([keras.Input(input_shape), mylayers.Doubled(), keras.layers.Dense(1, activation="sigmoid")])
"""


@pytest.mark.slow  # three CLI processes importing TensorFlow each: the longest of the fast suite
def test_a_model_file_imports_a_module_beside_it_in_run_export_and_predict(tiny_csv, tmp_path, monkeypatch):
    """Check that --model studies/models.py:build finds `import mylayers` beside it (a registered custom layer) when run
    from another folder with 2 workers, then in export and in `predict --custom-objects mylayers` from a third folder;
    and that each failed trial (a builder refusing its params) is one line of a worker's output, no traceback."""
    import optuna
    import pandas as pd

    from sweep.handover.export import export_best

    studies = tmp_path / "studies"
    studies.mkdir()
    (studies / "mylayers.py").write_text(MYLAYERS)
    (studies / "models.py").write_text(MODELS)
    sweep = str(Path(sys.executable).with_name("sweep"))
    storage = f"sqlite:///{tmp_path / 'user.db'}"
    ran = subprocess.run(
        [
            sweep,
            "run",
            "--data",
            tiny_csv,
            "--target",
            "label",
            "--model",
            "studies/models.py:build",
            "--param",
            "fail=0,1",
            "--trials",
            "6",
            "--epochs",
            "1",
            "--cv",
            "0",
            "--pruner",
            "none",
            "--workers",
            "2",
            "--study",
            "beside",
            "--storage",
            storage,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    failed = optuna.load_study(study_name="beside", storage=storage).get_trials(states=(optuna.trial.TrialState.FAIL,))
    refused = [trial for trial in failed if "rejected params {'fail': 1}" in trial.user_attrs.get("fail_reason", "")]
    assert refused, "no trial drew fail=1"
    assert "Traceback" not in ran.stderr
    lines = [line for line in ran.stderr.splitlines() if "rejected params {'fail': 1}" in line]
    assert len(lines) == len(refused), ran.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"  # neither the model's folder nor the one the sweep ran from
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))  # export puts the model's folder on it, in this process
    export_best(storage, "beside", tmp_path / "bundle")
    pd.read_csv(tiny_csv).drop(columns="label").head(9).to_csv(elsewhere / "rows.csv", index=False)
    predicted = subprocess.run(
        [sweep, "predict", str(tmp_path / "bundle"), "--data", "rows.csv", "--custom-objects", "mylayers"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=elsewhere,
    )
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    assert len(predicted.stdout.strip().splitlines()) == 1 + 9
