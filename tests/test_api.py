"""Tests for sweep.api: the notebook example of docs/guides/python.md, run as written, and the Python API's own
errors."""

import re
from pathlib import Path

import numpy as np
import pytest

GUIDE = Path(__file__).resolve().parent.parent / "docs" / "guides" / "python.md"


def notebook_example() -> str:
    """The python block marked `<!-- doc-example: notebook -->` in docs/guides/python.md."""
    return re.search(r"<!-- doc-example: notebook -->\n```python\n(.*?)```", GUIDE.read_text(), re.S).group(1)


def test_notebook_example_runs_as_written(tmp_path, monkeypatch, capsys):
    """Check that the Python guide's notebook example sweeps, exports and predicts as written, and what it prints is the
    stored study's best trial and the bundle's test F1."""
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(notebook_example(), str(GUIDE), "exec"), namespace)
    bundle, result = namespace["bundle"], namespace["result"]
    assert result.finished == 4 and set(result.best.params) == {"minority_weight", "filters", "threshold"}
    assert namespace["probabilities"].shape == (10,) and np.all(
        (namespace["probabilities"] >= 0) & (namespace["probabilities"] <= 1)
    )
    assert np.array_equal(namespace["decisions"], (namespace["scores"] >= bundle.threshold).astype(np.int8))
    assert np.array_equal(namespace["probabilities"], bundle.calibration(namespace["scores"]))
    assert (tmp_path / "exports" / "digits-notebook" / "model.keras").is_file()
    printed = capsys.readouterr().out
    assert str(result.best.params) in printed and str(bundle.best["test"]["metrics"]["f1"]) in printed


def test_table_in_memory_runs_with_the_builtin_network_and_refuses_a_cli_export(tmp_path, monkeypatch):
    """Check that a DataFrame and target sweep from Python, export from Python, and `sweep export` of that study says
    in one line that its data was in memory."""
    from typer.testing import CliRunner

    import sweep
    from sweep.cli import app
    from tests.conftest import make_table

    monkeypatch.chdir(tmp_path)
    study = sweep.Sweep(
        data=make_table(rows=600),
        target="label",
        study="frame",
        trials=2,
        epochs=2,
        cv=0,
        storage=f"sqlite:///{tmp_path / 'f.db'}",
    )
    assert study.run().finished == 2
    bundle = study.export(tmp_path / "b")
    assert bundle.predict(make_table(rows=50, seed=3)).shape == (50,)
    refused = CliRunner().invoke(
        app, ["export", "frame", "--out", str(tmp_path / "c"), "--storage", f"sqlite:///{tmp_path / 'f.db'}"]
    )
    assert refused.exit_code == 2 and "handed to the Python API in memory" in refused.stderr


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.zeros((5, 2))), r"pass arrays as x=... and y=... together"),
        (dict(x=np.zeros((5, 2)), y=np.zeros(5), workers=2), r"workers > 1 start processes"),
    ],
)
def test_python_api_refuses_what_it_cannot_do(kwargs, match):
    """Check that half-given arrays and workers that cannot see in-memory data are one clear ConfigError."""
    import sweep

    with pytest.raises(sweep.ConfigError, match=match):
        sweep.Sweep(**kwargs)


def test_arrays_of_several_classes_sweep_export_and_predict_from_python(tmp_path):
    """Check that arrays of four classes sweep with the builtin network from Python, and the bundle's predict gives
    class names by its rule and predict_proba rows that sum to 1."""
    import sweep
    from tests.conftest import class_arrays

    x, y = class_arrays(rows=500)
    study = sweep.Sweep(x=x, y=y, study="four", trials=2, epochs=2, storage=f"sqlite:///{tmp_path / 'f.db'}")
    assert study.run().finished == 2
    bundle = study.export(tmp_path / "b")
    decided = bundle.predict(x[:40])
    assert set(decided) <= {"0", "1", "2", "3"} and len(decided) == 40
    assert list(decided) == [bundle.classes[c] for c in bundle.rule.decide(bundle.score(x[:40]))]
    np.testing.assert_allclose(bundle.predict_proba(x[:40]).sum(axis=1), 1.0)
    with pytest.raises(sweep.errors.DataError, match="has no threshold"):
        _ = bundle.threshold


def test_a_linear_network_sweeps_and_exports_without_a_width(tmp_path):
    """Check that hidden_layers = 0 sweeps the weight and threshold of a network with no hidden layer (no width is
    searched) and ships it as one sigmoid Dense layer."""
    import sweep
    from tests.conftest import make_table

    table = make_table(rows=600)
    storage = f"sqlite:///{tmp_path / 'f.db'}"
    study = sweep.Sweep(
        data=table, target="label", study="linear", trials=3, epochs=2, hidden_layers=0, storage=storage
    )
    assert study.run().finished == 3
    import optuna

    trials = optuna.load_study(study_name="linear", storage=storage).trials
    assert all("hidden_width" not in t.params and t.user_attrs["train_settings"]["hidden_layers"] == 0 for t in trials)
    bundle = study.export(tmp_path / "b")
    assert bundle.best["hidden_layers"] == 0 and bundle.best["hidden_width"] is None
    assert [layer.activation.__name__ for layer in bundle.model.layers] == ["sigmoid"]
    assert set(bundle.predict(make_table(rows=50, seed=3))) <= {0, 1}
