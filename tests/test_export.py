"""Tests for sweep.handover.export: the bundle reproduces the best trial, and predict() scores new tables with it."""

import json
import re

import numpy as np
import optuna
import pandas as pd
import pytest

from sweep.data import load_dataset
from sweep.errors import DataError, ExportError
from sweep.handover.bundle import load_bundle, predict
from sweep.handover.export import export_best
from sweep.study.runner import run_sweep
from sweep.study.storage import open_storage
from tests.conftest import tiny_values, user_model_values


@pytest.fixture(scope="module")
def exported(tiny_csv, tmp_path_factory):
    """A 3-trial study with one validation split on the tiny table, exported as one refit (shared by the tests
    below; the default, a greedy ensemble, is tested in test_ensemble.py)."""
    folder = tmp_path_factory.mktemp("exported")
    config = tiny_values(tiny_csv, f"sqlite:///{folder / 'e.db'}", trials=3)
    run_sweep(config)
    return config, export_best(config.storage, config.study, folder / "bundle", ensemble="single")


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
    assert best["threshold"] == best["decision"]["threshold"] == study.best_trial.params["threshold"]
    assert best["decision"]["passed"] and best["decision"]["fallback"] is None
    assert best["objective"] == {"spec": "f1", "names": ["val_f1"], "directions": ["maximize"], "picked_by": None}
    assert set(best["test"]["metrics"]) >= {"precision", "recall", "f1", "flag_rate", "average_precision"}
    assert best["data"]["splits"]["test"]["rows"] == 600 and best["data"]["fingerprint"]
    assert {"tensorflow", "keras", "optuna"} <= set(best["versions"]) and best["seed"] == best["train_settings"]["seed"]
    assert sorted(p.name for p in result.out_dir.iterdir()) == ["best.json", "model.keras", "preprocessor.json"]
    assert best["refit"] == {
        "rows": "all non-test rows",
        "choice": "all",
        "counts": best["data"]["splits"]["development"],
        "epochs": config.epochs,
    }
    assert best["refit"]["counts"]["rows"] == 2400


def test_predict_scores_every_row_in_order(exported, tiny_csv, tmp_path):
    """Check that predict gives one row per input row in input order, with decisions at the bundle's threshold."""
    _, result = exported
    table = pd.read_csv(tiny_csv).drop(columns="label")
    shuffled = table[["f1", "f0"]].assign(extra="ignored")  # matched by name, extra columns ignored
    path = tmp_path / "new.csv"
    shuffled.to_csv(path, index=False)
    scored = predict(result.out_dir, path)
    assert list(scored.columns) == ["probability", "decision", "score"] and len(scored) == len(table)
    assert np.array_equal(scored["decision"], (scored["score"] >= result.best["threshold"]).astype(int))
    loaded = load_bundle(result.out_dir)
    preprocessor, model = loaded.preprocessor, loaded.model
    expected = model(preprocessor.transform(table)).numpy().ravel()
    assert np.allclose(scored["score"], expected)


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
    again = export_best(
        config.storage, config.study, result.out_dir, force=True, ensemble="single"
    )  # the bundle the module shares
    assert again.reproduced


def test_export_needs_a_complete_trial(tiny_config, tmp_path):
    """Check that a study without a complete trial cannot be exported."""
    config = tiny_config()
    optuna.create_study(storage=open_storage(config.storage), study_name="empty")
    with pytest.raises(ExportError, match="no complete trial"):
        export_best(config.storage, "empty", tmp_path / "out")


def test_test_metrics_carry_intervals_around_them(exported):
    """Check that best.json gives a 95% bootstrap interval around every headline test metric."""
    _, result = exported
    test = result.best["test"]
    assert set(test["intervals"]) == {"precision", "recall", "f1", "average_precision", "flag_rate"}
    for name, (low, high) in test["intervals"].items():
        assert low <= test["metrics"][name] <= high, name
    assert "1000 resamples" in test["interval_method"]


def test_refit_train_exports_the_trials_own_model(exported, tmp_path):
    """Check that --refit train keeps the trial's model (trained on the training part only) and says so, and that
    the default refit learned from more rows."""
    config, refit_all = exported
    own = export_best(config.storage, config.study, tmp_path / "own", refit="train")
    assert own.best["refit"]["choice"] == "train" and own.best["refit"]["counts"] == own.best["data"]["splits"]["train"]
    assert own.best["refit"]["counts"]["rows"] < refit_all.best["refit"]["counts"]["rows"]
    assert own.reproduced


def test_cross_validated_trials_store_pooled_and_per_fold_metrics(cross_validated):
    """Check that each complete cross-validated trial stores metrics of its pooled out-of-fold scores over every
    non-test row, plus each fold's values."""
    config, _ = cross_validated
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    assert study.user_attrs["data"]["validation"] == {"kind": "cv", "folds": 5, "repeats": 1}
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        attrs = trial.user_attrs
        development = study.user_attrs["data"]["splits"]["development"]
        assert (
            attrs["val_tp"] + attrs["val_fp"] + attrs["val_tn"] + attrs["val_fn"] == development["rows"] == 2400
        )  # every non-test row once
        assert attrs["val_tp"] + attrs["val_fn"] == development["positives"]
        assert trial.value == attrs["val_f1"]
        assert {k: len(v) for k, v in attrs["cv_folds"].items()} == {
            k: 5 for k in ("f1", "precision", "recall", "average_precision", "flag_rate")
        }
        assert attrs["cv_f1_sd"] == pytest.approx(np.std(attrs["cv_folds"]["f1"]), abs=1e-4)


def test_cross_validated_export_reproduces_refits_and_brackets(cross_validated):
    """Check that exporting a cross-validated study reproduces the pooled value, refits on all non-test rows and
    gives test intervals with lower <= value <= upper."""
    _, result = cross_validated
    best = result.best
    assert best["validation"]["reproduced"] and best["validation"]["judged_by"]["kind"] == "cv"
    assert best["refit"]["counts"]["rows"] == 2400 and best["refit"]["choice"] == "all"
    for name, (low, high) in best["test"]["intervals"].items():
        assert low <= best["test"]["metrics"][name] <= high, name


def test_refit_train_is_refused_for_cross_validated_studies(cross_validated, tmp_path):
    """Check that --refit train on a cross-validated study (no one trial model) is an ExportError that says why."""
    config, _ = cross_validated
    with pytest.raises(
        ExportError, match=r"--refit train .* cross-validates \(5 fold models per trial\); use --refit all"
    ):
        export_best(config.storage, config.study, tmp_path / "x", refit="train")


@pytest.mark.parametrize(
    "name, kind, files",
    [
        ("digits", "arrays", ["best.json", "model.keras"]),
        ("sequences", "arrays", ["best.json", "model.keras"]),
        ("tabular", "table", ["best.json", "model.keras", "preprocessor.json"]),
    ],
)
def test_user_model_bundle_holds_the_model_and_every_param(user_studies, name, kind, files):
    """Check that a user model's bundle holds model.keras (preprocessor.json for tables only) and best.json with the
    class weight, threshold, every param (fixed ones too), the builder, the input shape, the kind of data and the
    decision check of what it ships against what was judged."""
    config, result = user_studies[name]
    assert sorted(p.name for p in result.out_dir.iterdir()) == files
    best = result.best
    assert (
        best["model"]["kind"] == "user"
        and best["model"]["builder"] == config.model
        and best["model"]["data_kind"] == kind
    )
    assert tuple(best["model"]["input_shape"]) == load_dataset(config).input_shape
    assert set(best["params"]) >= {"minority_weight", "threshold"} | {spec.name for spec in config.space}
    assert best["class_weight"] == {"0": 1.0, "1": best["params"]["minority_weight"]}
    assert best["validation"]["reproduced"] and best["refit"]["choice"] == "all"
    assert best["decision"]["threshold"] == best["threshold"] and best["decision"]["rows"].endswith("non-test rows")
    assert {"judged_flag_rate", "shipped_flag_rate", "passed", "fallback"} <= set(best["decision"])


@pytest.mark.parametrize("name", ["digits", "sequences"])
def test_user_bundle_reloads_in_safe_mode_and_predicts_what_the_trained_model_did(user_studies, name):
    """Check that the exported model, reloaded with keras.saving.load_model(safe_mode=True), gives the test rows the
    probabilities of the model export trained (retrained from the same seed), and predict uses them in order."""
    import keras

    from sweep.handover.retrain import retrain_best

    config, result = user_studies[name]
    found = retrain_best(config.storage, config.study)
    trained = found.model.predict(found.test.X, verbose=0).ravel()
    reloaded = keras.saving.load_model(result.out_dir / "model.keras", safe_mode=True)
    assert np.allclose(reloaded.predict(found.test.X, verbose=0).ravel(), trained, atol=1e-6)
    scored = predict(result.out_dir, found.test.X)
    assert np.allclose(scored["score"], trained, atol=1e-6)
    assert np.array_equal(scored["probability"], found.calibration(scored["score"].to_numpy()))
    assert np.array_equal(scored["decision"], (scored["score"] >= result.best["threshold"]).astype(int))


def test_user_bundle_predicts_npz_and_tables_through_the_cli(user_studies, example_files, tmp_path):
    """Check that `sweep predict` writes one row per input row for an .npz of images and for a table with gaps."""
    from typer.testing import CliRunner

    from sweep.cli import app

    for name, data, rows in (
        ("digits", example_files["digits.npz"], len(np.load(example_files["digits.npz"])["y"])),
        ("tabular", example_files["tabular.csv"], len(pd.read_csv(example_files["tabular.csv"]))),
    ):
        out = tmp_path / f"{name}.csv"
        result = CliRunner().invoke(
            app, ["predict", str(user_studies[name][1].out_dir), "--data", data, "--out", str(out)]
        )
        assert result.exit_code == 0, result.stderr
        scored = pd.read_csv(out)
        assert len(scored) == rows and scored["probability"].between(0, 1).all()


CUSTOM_LAYER = """
import keras


@keras.saving.register_keras_serializable(package="testlayers")
class Doubled(keras.layers.Layer):
    def call(self, x):
        return 2.0 * x


def build(params, input_shape):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), Doubled(), \
keras.layers.Dense(1, activation="sigmoid")])
"""


def test_custom_layers_load_only_from_a_named_module_and_lambda_is_refused(example_files, tmp_path, monkeypatch):
    """Check that a bundle with a registered custom layer predicts only with --custom-objects naming its module (one
    line otherwise), and a model with a Lambda layer is refused by safe mode in one line."""
    import keras

    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    package = tmp_path / "mylayers"
    package.mkdir()
    (package / "__init__.py").write_text(CUSTOM_LAYER)
    monkeypatch.chdir(tmp_path)
    config = user_model_values(
        example_files["digits.npz"], f"sqlite:///{tmp_path / 'c.db'}", "mylayers:build", {}, trials=1, epochs=1
    )
    run_sweep(config)
    bundle = export_best(config.storage, config.study, tmp_path / "bundle").out_dir
    x = np.load(example_files["digits.npz"])["x"][:7]
    keras.saving.get_custom_objects().clear()  # a fresh process: nothing registered until the module is imported
    import sys

    sys.modules.pop("mylayers", None)
    with pytest.raises(DataError, match=r"uses a custom class Keras cannot find .*pass --custom-objects MODULE"):
        load_bundle(bundle)
    assert len(predict(bundle, x, custom_objects=["mylayers"])) == 7
    with pytest.raises(DataError, match=r"--custom-objects no_such_layers: .*not importable"):
        load_bundle(bundle, ["no_such_layers"])
    lambda_model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Lambda(lambda v: v * 2),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    lambda_model.save(bundle / "model.keras")
    with pytest.raises(DataError, match=r"holds code \(a Lambda layer\) that Keras' safe mode refuses to run"):
        load_bundle(bundle, ["mylayers"])


LAMBDA_BUILDER = """
import keras


def build(params, input_shape):
    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), \
keras.layers.Lambda(lambda v: v * 2, name="doubled"),
                             keras.layers.Dense(1, activation="sigmoid")])
"""


def test_a_lambda_model_is_warned_of_at_run_and_refused_at_export_before_anything_is_written(
    example_files, tmp_path, caplog
):
    """Check that a builder with a Lambda layer gets a one-line warning before its trials train, and export refuses it
    in one line (safe mode could not load the bundle) and writes nothing."""
    (tmp_path / "lambdas.py").write_text(LAMBDA_BUILDER)
    config = user_model_values(
        example_files["digits.npz"],
        f"sqlite:///{tmp_path / 'l.db'}",
        f"{tmp_path / 'lambdas.py'}:build",
        {},
        trials=1,
        epochs=1,
    )
    with caplog.at_level("WARNING", logger="sweep.models.builder"):
        run_sweep(config)
    warned = [r.getMessage() for r in caplog.records if r.name == "sweep.models.builder"]
    assert len(warned) == 1 and re.search(
        r"^warning: the model from .*lambdas.py:build holds Lambda layer\(s\) 'doubled': its trials train, but sweep "
        r"export refuses",
        warned[0],
    )
    assert optuna.load_study(study_name=config.study, storage=config.storage).best_trial.state.name == "COMPLETE"
    with pytest.raises(
        ExportError,
        match=r"holds Lambda layer\(s\) 'doubled': refusing to write a bundle whose model.keras Keras' safe mode "
        r"cannot load; replace each Lambda",
    ):
        export_best(config.storage, config.study, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def _bundle_of(request, name: str):
    """(config, ExportResult) of a shared exported study: the one-split table, the 5-fold one, or a user model's."""
    if name == "holdout":
        return request.getfixturevalue("exported")
    if name == "cv":
        return request.getfixturevalue("cross_validated")
    return request.getfixturevalue("user_studies")[name]


@pytest.mark.parametrize("name", ["holdout", "cv", "digits", "sequences", "tabular"])
def test_bundle_round_trips_score_calibrated_probability_and_decision_without_pickles(request, name, monkeypatch):
    """Check that with every unpickler disabled a bundle loads and predicts, `score` is the Keras model's output,
    `probability` is best.json's calibration applied to `score` exactly, `decision` is score >= threshold, and
    threshold_probability is the calibrated value at the threshold (builtin and user models, one split and folds)."""
    import pickle

    import keras

    from sweep.handover.calibration import Calibration
    from sweep.handover.retrain import retrain_best

    config, result = _bundle_of(request, name)
    found = retrain_best(config.storage, config.study, ensemble="single")
    rows = found.dataset.test_frame if found.preprocessor is not None else found.test.X

    def refuse(*_, **__):
        raise AssertionError("a bundle must load without unpickling anything")

    for attribute in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, attribute, refuse)
    bundle = load_bundle(result.out_dir)
    scored = predict(result.out_dir, rows)
    monkeypatch.undo()
    best = json.loads((result.out_dir / "best.json").read_text())
    calibration = Calibration.from_dict(best["calibration"])
    assert calibration == bundle.calibration == found.calibration
    assert np.allclose(
        scored["score"],
        keras.saving.load_model(result.out_dir / "model.keras").predict(found.test.X, verbose=0).ravel(),
        atol=1e-6,
    )
    assert np.array_equal(scored["probability"], calibration(scored["score"].to_numpy()))
    assert np.array_equal(bundle.predict_proba(rows), scored["probability"]) and np.array_equal(
        bundle.score(rows), scored["score"]
    )
    assert np.array_equal(scored["decision"], (scored["score"] >= best["threshold"]).astype(int))
    assert np.array_equal(bundle.predict(rows), scored["decision"])
    assert (
        best["threshold_probability"] == calibration(np.array([best["threshold"]]))[0] == bundle.threshold_probability
    )
    assert best["calibration"]["class_weight"] == best["class_weight"]["1"]
    assert set(best["outputs"]) == {"probability", "score", "decision"}


@pytest.mark.parametrize(
    "name, fitted_on",
    [
        ("holdout", r"trial #\d+'s scores on the validation part \(480 rows, 41 positives\)"),
        ("cv", r"trial #\d+'s pooled out-of-fold scores \(5 folds, 2400 rows, 204 positives\)"),
        ("sequences", r"trial #\d+'s pooled out-of-fold scores \(3 folds, "),
    ],
)
def test_calibration_is_fitted_on_the_trials_pooled_validation_scores(request, name, fitted_on):
    """Check that the bundle's calibration is the one fitted on the retrained trial's pooled validation scores (the
    validation part, or out-of-fold with --cv), never on test rows, and best.json says which rows they were."""
    from sweep.handover.calibration import fit_calibration
    from sweep.handover.retrain import retrain_best

    config, result = _bundle_of(request, name)
    found = retrain_best(config.storage, config.study, ensemble="single")
    plan = found.dataset.validation
    assert len(found.validation_scores) == len(plan.y) and (plan.kind == "cv") == (name != "holdout")
    again = fit_calibration(found.validation_scores, plan.y, found.params.minority_weight)
    assert again(np.linspace(0, 1, 101)).tolist() == result.calibration(np.linspace(0, 1, 101)).tolist()
    assert re.fullmatch(fitted_on + ".*", result.best["calibration"]["fitted_on"])


def test_best_json_reports_brier_and_log_loss_of_raw_and_calibrated_output(exported):
    """Check that best.json gives the test rows' Brier score and log loss of the raw score and the calibrated
    probability, each inside its bootstrap interval."""
    _, result = exported
    probability = result.best["test"]["probability"]
    assert set(probability) == {"raw score", "calibrated probability"}
    for found in probability.values():
        for name in ("brier", "log_loss"):
            low, high = found["intervals"][name]
            assert low <= found[name] <= high, name


def test_a_bundle_without_a_calibration_gets_the_prior_correction(exported, tmp_path):
    """Check that a bundle exported by an earlier version (no "calibration" in best.json) predicts the prior-corrected
    score with its class weight, and a damaged calibration is a DataError saying to export again."""
    import shutil

    from sweep.handover.calibration import prior_correction

    _, result = exported
    old = tmp_path / "old"
    shutil.copytree(result.out_dir, old)
    best = json.loads((old / "best.json").read_text())
    del best["calibration"]
    (old / "best.json").write_text(json.dumps(best))
    rows = pd.DataFrame({"f0": [0.1, -1.0, 2.0], "f1": [0.3, 0.0, -1.5]})
    scored = predict(old, rows)
    assert np.array_equal(scored["probability"], prior_correction(scored["score"], best["class_weight"]["1"]))
    best["calibration"] = {"method": "isotonic", "class_weight": 2.0, "x": [0.1, 0.2], "y": [0.9, 0.1]}
    (old / "best.json").write_text(json.dumps(best))
    with pytest.raises(DataError, match=r"is damaged .*non-decreasing.*export the study again"):
        load_bundle(old)
