"""Tests for sweep.cli: the commands end to end, their exit codes and their one-line errors."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from sweep.cli import app
from sweep.space import PARAM_NAMES
from sweep.study.storage import open_storage
from tests.conftest import make_table
from tests.test_trial import VALIDATION_ATTRS

SWEEP = str(Path(sys.executable).with_name("sweep"))
TRIAL_ATTRS = tuple(f"val_{k}" for k in VALIDATION_ATTRS) + ("train_seconds", "epochs_run", "device")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args), env={"SWEEP_STORAGE": None})


@pytest.fixture(scope="module")
def seed_sweep(tmp_path_factory):
    """`sweep run --trials 3 --epochs 2` on the seed data in a fresh directory, run as the real console script."""
    workdir = tmp_path_factory.mktemp("seed-run")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWEEP_")}
    done = subprocess.run(
        [SWEEP, "run", "--trials", "3", "--epochs", "2"],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return workdir, env, done


def test_run_on_a_new_machine_leaves_a_study_optuna_reads(seed_sweep):
    """Check that `sweep run --trials 3 --epochs 2` stores 3 complete trials with params and user attributes."""
    workdir, _, done = seed_sweep
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "I0000" not in done.stderr
    assert "sweep dashboard" in done.stdout and "sweep export minority-weight" in done.stdout
    assert "studies/sweeps.db" in done.stdout and "Best trial #" in done.stdout
    study = optuna.load_study(study_name="minority-weight", storage=f"sqlite:///{workdir / 'studies' / 'sweeps.db'}")
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(complete) == 3
    for trial in complete:
        assert set(PARAM_NAMES) == set(trial.params)
        assert set(TRIAL_ATTRS) <= set(trial.user_attrs)
    assert study.metric_names == ["val_f1"]


def test_export_then_predict_round_trip_on_seed_data(seed_sweep, tmp_path):
    """Check that export then predict on seed rows gives one row per input row and decisions at the threshold."""
    workdir, env, _ = seed_sweep
    bundle = tmp_path / "bundle"
    exported = subprocess.run(
        [SWEEP, "export", "minority-weight", "--out", str(bundle)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert exported.returncode == 0, exported.stderr
    best = json.loads((bundle / "best.json").read_text())
    assert best["validation"]["reproduced"] and best["data"]["splits"]["test"]["rows"] == 20000
    rng = np.random.default_rng(0)
    # A tutorial user's DataFrame, as it is: its own column names, its label column left in.
    rows = pd.DataFrame({"feature1": rng.normal(size=257), "feature2": rng.normal(size=257), "target": 0})
    rows.to_csv(tmp_path / "rows.csv", index=False)
    predicted = subprocess.run(
        [SWEEP, "predict", str(bundle), "--data", str(tmp_path / "rows.csv"), "--out", str(tmp_path / "p.csv")],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert predicted.returncode == 0, predicted.stderr
    scored = pd.read_csv(tmp_path / "p.csv")
    assert len(scored) == 257 and list(scored.columns) == ["probability", "decision", "score"]
    assert np.array_equal(scored["decision"], (scored["score"] >= best["threshold"]).astype(int))


def mixed_csv(path: Path, rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """A table as people have them: a text column, a boolean column, missing values in both kinds, few positives."""
    rng = np.random.default_rng(seed)
    color = rng.choice(["red", "blue", "green"], rows).astype(object)
    amount = rng.normal(size=rows)
    label = (rng.random(rows) < 0.02 + 0.08 * (color == "red") + 0.05 * (amount > 1)).astype(int)
    table = pd.DataFrame(
        {"amount": amount, "color": color, "member": (rng.random(rows) < 0.4).astype(object), "label": label}
    )
    table.loc[rng.random(rows) < 0.05, "amount"] = np.nan
    table.loc[rng.random(rows) < 0.05, "color"] = None
    table.loc[rng.random(rows) < 0.05, "member"] = None
    table.to_csv(path, index=False)
    return table


def test_a_table_with_text_booleans_and_gaps_runs_exports_and_predicts(tmp_path, lenient_decision_check):
    """Check run -> export (a greedy ensemble, its members named) -> predict on a CSV with a text column, a
    boolean column and missing values in both kinds, predicting rows with an unseen level and gaps: exit 0 each
    time, one output row per input row, in order."""
    mixed_csv(tmp_path / "mixed.csv")
    storage = f"sqlite:///{tmp_path / 'm.db'}"
    ran = invoke(
        "run",
        "--data",
        str(tmp_path / "mixed.csv"),
        "--target",
        "label",
        "--trials",
        "2",
        "--epochs",
        "2",
        "--storage",
        storage,
    )
    assert ran.exit_code == 0, ran.stderr
    exported = invoke(
        "export", "minority-weight", "--out", str(tmp_path / "bundle"), "--storage", storage, "--ensemble", "greedy:2"
    )
    assert exported.exit_code == 0, exported.stderr
    assert re.search(r"test \(95% bootstrap intervals\): precision [0-9.]+ \[[0-9.]+, [0-9.]+\]", exported.stdout)
    assert "model refit on all non-test rows (1200 rows" in exported.stdout
    assert re.search(
        r"best trial: class_weight .*; the ensemble's threshold [0-9.]+\n.*greedy ensemble of \d+ configurations, "
        r"averaged: #\d+ \(weight",
        exported.stdout,
    )
    new = pd.DataFrame(
        {
            "member": [True, None, False, None],
            "color": ["purple", None, "red", "blue"],
            "amount": [0.1, None, 2.5, float("nan")],
        }
    )
    new.to_csv(tmp_path / "new.csv", index=False)
    predicted = invoke(
        "predict", str(tmp_path / "bundle"), "--data", str(tmp_path / "new.csv"), "--out", str(tmp_path / "p.csv")
    )
    assert predicted.exit_code == 0, predicted.stderr
    scored = pd.read_csv(tmp_path / "p.csv")
    assert len(scored) == 4 and scored["probability"].between(0, 1).all()
    single = [
        invoke("predict", str(tmp_path / "bundle"), "--data", str(_write(tmp_path, f"r{i}.csv", new.iloc[[i]])))
        for i in range(4)
    ]
    assert [float(r.stdout.splitlines()[1].split(",")[0]) for r in single] == pytest.approx(
        scored["probability"].tolist(), abs=1e-6
    )


def test_dropped_and_grouped_columns_are_named_in_a_warning(tmp_path):
    """Check that a constant or entirely missing column is left out, and a column with more frequent levels than
    --max-levels keeps the most frequent ones, each with a one-line warning naming it, and the run goes on."""
    table = make_table(rows=600).assign(version=3, notes=np.nan, state=[f"s{i % 30}" for i in range(600)])
    table.to_csv(tmp_path / "t.csv", index=False)
    ran = invoke(
        "run",
        "--data",
        str(tmp_path / "t.csv"),
        "--target",
        "label",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--max-levels",
        "10",
        "--storage",
        f"sqlite:///{tmp_path / 'w.db'}",
    )
    assert ran.exit_code == 0, ran.stderr
    assert re.search(r"warning: column 'version' is not used: constant \(3\)", ran.stderr)
    assert re.search(r"warning: column 'notes' is not used: entirely missing", ran.stderr)
    assert re.search(
        r"warning: column 'state' has 30 levels seen at least 5 times; the 10 most frequent are kept and the other 20 "
        r"go to '\(other\)'",
        ran.stderr,
    )


def test_thread_settings_reach_tensorflow_and_the_trial(tiny_csv, tmp_path):
    """Check that --intra-op-threads/--inter-op-threads are applied in a fresh process and recorded per trial."""
    storage = f"sqlite:///{tmp_path / 'threads.db'}"
    args = [
        "run",
        "--data",
        tiny_csv,
        "--target",
        "label",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--storage",
        storage,
        "--cv",
        "0",
    ]
    done = subprocess.run(
        [SWEEP, *args, "--intra-op-threads", "2", "--inter-op-threads", "3"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    trial = optuna.load_study(study_name="minority-weight", storage=storage).trials[0]
    assert trial.user_attrs["threads"] == {"intra_op": 2, "inter_op": 3}


def test_studies_and_show(seed_sweep):
    """Check that `studies` lists the study with its counts and `show` prints the best and top trials."""
    workdir, _, _ = seed_sweep
    storage = f"sqlite:///{workdir / 'studies' / 'sweeps.db'}"
    listed = invoke("studies", "--storage", storage)
    assert listed.exit_code == 0 and "minority-weight" in listed.stdout and "val_f1" in listed.stdout
    shown = invoke("show", "minority-weight", "--storage", storage, "--top", "2")
    assert shown.exit_code == 0 and "Best trial #" in shown.stdout and "top 2 trials" in shown.stdout


@pytest.mark.parametrize("command", [[], ["run"], ["studies"], ["show"], ["export"], ["predict"], ["dashboard"]])
def test_every_command_has_help(command):
    """Check that --help works on every command and exits 0."""
    result = invoke(*command, "--help")
    assert result.exit_code == 0 and "Usage" in result.stdout


def _write(tmp_path: Path, name: str, table: pd.DataFrame | bytes | str) -> str:
    path = tmp_path / name
    if isinstance(table, pd.DataFrame):
        table.to_parquet(path) if name.endswith(".parquet") else table.to_csv(path, index=False)
    else:
        path.write_bytes(table if isinstance(table, bytes) else table.encode())
    return str(path)


def _table(**changes) -> pd.DataFrame:
    table = make_table(rows=300)
    for column, values in changes.items():
        table[column] = values
    return table


def _npz(**arrays) -> bytes:
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


_X, _Y = np.random.default_rng(0).normal(size=(200, 6, 2)).astype(np.float32), (np.arange(200) % 10 == 0).astype(int)
_CONV = (
    "import keras\n\ndef build(params, input_shape):\n"
    "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), "
    "keras.layers.Dense(1, activation='sigmoid')])\n"
)
_MODELS = {
    "ok.py": _CONV,
    "broken.py": "import keras\nimport no_such_package_here\n",
    "notmodel.py": "def build(params, input_shape):\n    return 'a model'\n",
    "softmax.py": (
        "import keras\n\ndef build(params, input_shape):\n"
        "    return keras.Sequential([keras.Input(input_shape), keras.layers.Flatten(), "
        "keras.layers.Dense(2, activation='softmax')])\n"
    ),
    "picky.py": (
        "def build(params, input_shape):\n    raise ValueError(f\"filters must be even, got {params['filters']}\")\n"
    ),
    "a.npz": _npz(x=_X, y=_Y),
}
USER_MODEL_RUNS = [
    ("missing model file", {}, ["--model", "nope.py:build"], r"model file '.*nope.py' does not exist"),
    ("missing function", _MODELS, ["--model", "ok.py:make"], r"has no function 'make' \(it defines: build\)"),
    (
        "import error in the module",
        _MODELS,
        ["--model", "broken.py:build"],
        r"model file '.*broken.py' failed to import \(ModuleNotFoundError: No module named 'no_such_package_here'\)",
    ),
    (
        "unimportable module",
        {},
        ["--model", "no_such_pkg.models:build"],
        r"model module 'no_such_pkg.models' is not importable",
    ),
    ("builder returns no model", _MODELS, ["--model", "notmodel.py:build"], r"returned a str, not a keras.Model"),
    (
        "two-unit softmax",
        _MODELS,
        ["--model", "softmax.py:build"],
        r"outputs shape \(None, 2\).*expected \(None, 1\) or \(None,\)",
    ),
    (
        "builder rejects a param",
        _MODELS,
        ["--model", "picky.py:build", "--param", "filters=3"],
        r"rejected params \{'filters': 3\}: ValueError: filters must be even, got 3",
    ),
    (
        "unparsable param",
        _MODELS,
        ["--model", "ok.py:build", "--param", "dropout=abc:1"],
        r"param dropout=abc:1 .*'abc' is not a number",
    ),
    ("param without =", _MODELS, ["--model", "ok.py:build", "--param", "dropout"], r"param 'dropout' .*no '='"),
    (
        "param low above high",
        _MODELS,
        ["--model", "ok.py:build", "--param", "dropout=0.5:0.1"],
        r"its low 0.5 exceeds its high 0.1",
    ),
    (
        "param of sweep's own",
        _MODELS,
        ["--model", "ok.py:build", "--param", "threshold=0.1:0.2"],
        r"param threshold .*searched by sweep itself",
    ),
    ("param without a user model", {}, ["--param", "dropout=0:0.5"], r"param dropout .*model = builtin"),
    (
        "npz without y",
        {"a.npz": _npz(x=_X)},
        ["--data", "a.npz", "--model", "ok.py:build"],
        r"has no array 'y' \(it holds: x\)",
    ),
    (
        "npz lengths disagree",
        {"a.npz": _npz(x=_X, y=_Y[:150])},
        ["--data", "a.npz"],
        r"200 rows in x but 150 labels in y",
    ),
    ("npz with one class", {"a.npz": _npz(x=_X, y=np.zeros(200))}, ["--data", "a.npz"], r"y in .* has 1 class"),
    (
        "npz with a rare class",
        {"a.npz": _npz(x=_X, y=np.where(np.arange(200) < 4, 2, np.arange(200) % 2))},
        ["--data", "a.npz"],
        r"class '2' has 4 rows in .*needs at least 10 of every class",
    ),
    (
        "npz with NaN",
        {"a.npz": _npz(x=np.where(np.arange(200)[:, None, None] == 7, np.nan, _X), y=_Y)},
        ["--data", "a.npz"],
        r"NaN or infinite values in 1 rows \(first: row 7\)",
    ),
    (
        "npz of objects",
        {"a.npz": _npz(x=np.array([object()] * 3, dtype=object), y=np.zeros(3))},
        ["--data", "a.npz"],
        r"holds Python objects",
    ),
    (
        "images for the builtin network",
        {"a.npz": _npz(x=_X, y=_Y)},
        ["--data", "a.npz", "--model", "builtin"],
        r"builtin network takes rows of features.*--model",
    ),
    (
        "population with a user model",
        _MODELS,
        ["--model", "ok.py:build", "--population", "4"],
        r"population = 4 trains builtin networks .*drop --population",
    ),
    (
        "hidden layers with a user model",
        _MODELS,
        ["--model", "ok.py:build", "--hidden-layers", "2"],
        r"hidden_layers is a setting of the builtin network",
    ),
    (
        "hidden width with a user model",
        _MODELS,
        ["--model", "ok.py:build", "--hidden-width", "2:8"],
        r"--param hidden_width=LOW:HIGH:log",
    ),
    ("model spec syntax", {}, ["--model", "just-a-name"], r"model = 'just-a-name' .*PATH.py:FUNCTION"),
]

BAD_RUNS = [
    # (id, files to write, args, match)
    ("missing file", {}, ["--data", "nope.csv", "--target", "label"], r"data file '.*nope.csv' does not exist"),
    (
        "unreadable file",
        {"bad.parquet": b"not parquet"},
        ["--data", "bad.parquet", "--target", "label"],
        r"could not read data file .* as Parquet",
    ),
    ("empty file", {"empty.csv": ""}, ["--data", "empty.csv", "--target", "label"], r"is empty"),
    (
        "empty table",
        {"header.csv": "f0,f1,label\n"},
        ["--data", "header.csv", "--target", "label"],
        r"has no data rows",
    ),
    (
        "missing target",
        {"t.csv": _table()},
        ["--data", "t.csv", "--target", "nope"],
        r"target column 'nope' not found.*f0, f1, label",
    ),
    ("no target given", {"t.csv": _table()}, ["--data", "t.csv"], r"no target column given.*--target"),
    (
        "one class",
        {"t.csv": _table(label=0)},
        ["--data", "t.csv", "--target", "label"],
        r"has 1 class \(0\); expected two or more",
    ),
    (
        "an identifier as target",
        {"t.csv": _table(label=np.arange(300) % 150)},
        ["--data", "t.csv", "--target", "label"],
        r"has 150 classes \(0, 1, 2, 3, 4, \.\.\.\); expected at most 100: pass the label column as --target",
    ),
    (
        "identifier column",
        {"t.csv": _table(customer=[f"c{i}" for i in range(300)])},
        ["--data", "t.csv", "--target", "label"],
        r"column 'customer' .* looks like an identifier \(300 distinct text values in 300 rows\); drop it with --drop "
        r"customer",
    ),
    (
        "everything missing",
        {"t.parquet": _table(f0=[np.nan] * 300, f1=[np.nan] * 300)},
        ["--data", "t.parquet", "--target", "label"],
        r"no usable feature column .*f0: entirely missing .*f1: entirely missing",
    ),
    (
        "unknown dropped column",
        {"t.csv": _table()},
        ["--data", "t.csv", "--target", "label", "--drop", "nope"],
        r"--drop names column 'nope'.*columns: f0, f1, label",
    ),
    (
        "inverted learning-rate range",
        {},
        ["--learning-rate", "0.1:0.001"],
        r"learning_rate = '0.1:0.001' .*0 < LOW <= HIGH < 10",
    ),
    ("one fold", {}, ["--cv", "1"], r"cv = '1' .*auto, 0 \(one validation split\) or 2 to 20 folds"),
    (
        "repeats without folds",
        {},
        ["--cv", "0", "--cv-repeats", "3"],
        r"cv_repeats = 3 repeats cross-validation folds, but cv = 0",
    ),
    (
        "tiny minority",
        {"t.csv": _table(label=[1] * 4 + [0] * 296)},
        ["--data", "t.csv", "--target", "label"],
        r"minority class has 4 rows.*at least 10",
    ),
    ("unknown objective", {}, ["--objective", "accuracy"], r"objective 'accuracy' .*unknown objective"),
    ("inverted range", {}, ["--minority-weight", "100:1"], r"minority_weight = '100:1'.*LOW <= HIGH"),
    ("non-positive range", {}, ["--minority-weight", "-1:10"], r"minority_weight = '-1:10'.*0 < LOW"),
    ("zero trials", {}, ["--trials", "0"], r"trials = 0 .*>= 1"),
    ("negative trials", {}, ["--trials", "-2"], r"trials = -2"),
    (
        "bad storage",
        {},
        ["--storage", "postgresql+psycopg://u:pw123@127.0.0.1:1/x", "--outage-limit", "0"],
        r"cannot open storage postgresql\+psycopg://u:\*\*\*@",
    ),
    ("storage not a URL", {}, ["--storage", "nonsense"], r"storage URL 'nonsense' is not a database URL"),
    (
        "unknown positive label",
        {"t.csv": _table()},
        ["--data", "t.csv", "--target", "label", "--positive-label", "7"],
        r"--positive-label '7' is not a label",
    ),
    ("bad config key", {"c.toml": "trails = 3\n"}, ["--config", "c.toml"], r"unknown key 'trails'"),
]


def _with_data(args: list[str]) -> list[str]:
    """A user-model case reads a.npz unless it names its own data."""
    return args if "--data" in args or "--model" not in args else ["--data", "a.npz", *args]


BAD_RUNS += [(name, files, _with_data(args), match) for name, files, args, match in USER_MODEL_RUNS]


@pytest.mark.parametrize("files, args, match", [case[1:] for case in BAD_RUNS], ids=[case[0] for case in BAD_RUNS])
def test_bad_run_input_is_one_line_exit_2_and_stores_nothing(tmp_path, monkeypatch, files, args, match):
    """Check that bad input to `sweep run` (config, data, user model hooks) gets one clear line on stderr, exit code
    2, and no study is created."""
    monkeypatch.chdir(tmp_path)
    for name, content in files.items():
        _write(tmp_path, name, content)
    if "a.npz" in args and "a.npz" not in files:
        _write(tmp_path, "a.npz", _MODELS["a.npz"])
    result = invoke("run", "--epochs", "1", *args)
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(match, lines[0]), lines[0]
    assert "pw123" not in result.stderr
    assert not (tmp_path / "studies" / "sweeps.db").exists()


@pytest.fixture
def small_study(tiny_config):
    """A finished 2-trial study on the tiny table."""
    from sweep.study.runner import run_sweep

    config = tiny_config()
    run_sweep(config)
    return config


@pytest.mark.parametrize(
    "args, match",
    [
        (["show", "nope", "--storage", "{storage}"], r"no study named 'nope'.*studies: tiny"),
        (["export", "nope", "--out", "{tmp}/o", "--storage", "{storage}"], r"no study named 'nope'"),
        (["export", "empty", "--out", "{tmp}/o", "--storage", "{storage}"], r"study 'empty' has no complete trial"),
        (["export", "tiny", "--out", "{tmp}/full", "--storage", "{storage}"], r"exists and is not empty.*--force"),
        (
            ["export", "tiny", "--out", "{tmp}/o", "--storage", "{storage}", "--ensemble", "seeds:0"],
            r"--ensemble 'seeds:0' is invalid.*expected auto \| single \| seeds:K",
        ),
        (
            ["export", "tiny", "--out", "{tmp}/o", "--storage", "{storage}", "--ensemble", "bogus"],
            r"--ensemble 'bogus' is invalid: unknown kind",
        ),
        (
            ["export", "tiny", "--out", "{tmp}/o", "--storage", "{storage}", "--ensemble", "folds"],
            r"--ensemble folds averages a cross-validated.*one validation split",
        ),
        (["predict", "{tmp}", "--data", "{tmp}/x.csv"], r"is not an export bundle"),
    ],
)
def test_bad_study_commands_are_one_line_exit_2(small_study, tmp_path, args, match):
    """Check that unknown studies, empty studies and blocked export directories are one-line errors with exit 2."""
    optuna.create_study(storage=open_storage(small_study.storage), study_name="empty")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = invoke(*[a.format(tmp=tmp_path, storage=small_study.storage) for a in args])
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(match, lines[0]), lines[0]
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_export_force_overwrites(small_study, tmp_path):
    """Check that --force lets export replace a non-empty directory."""
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "old.txt").write_text("x")
    result = invoke("export", "tiny", "--out", str(tmp_path / "o"), "--storage", small_study.storage, "--force")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["best.json", "model.keras", "preprocessor.json"]


def test_unexpected_errors_exit_1_without_traceback(small_study, monkeypatch):
    """Check that an unexpected failure prints one line and exits 1, and --debug shows the traceback."""
    import sweep.study.runner

    def explode(*_args, **_kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sweep.study.runner, "run_sweep", explode)
    quiet = invoke("run", "--storage", small_study.storage, "--data", small_study.data, "--target", "label")
    assert quiet.exit_code == 1 and "RuntimeError: disk on fire" in quiet.stderr and "Traceback" not in quiet.stderr
    loud = invoke("--debug", "run", "--storage", small_study.storage, "--data", small_study.data, "--target", "label")
    assert loud.exit_code == 1 and "Traceback" in loud.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_dashboard_serves_our_study(small_study):
    """Check that `sweep dashboard` starts the real optuna-dashboard and serves the study, trials, metric names, user
    attributes, note and artifacts."""
    port = _free_port()
    server = subprocess.Popen(
        [SWEEP, "dashboard", "--storage", small_study.storage, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        studies = None
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2) as response:
                    studies = json.load(response)["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        assert studies is not None, "dashboard did not answer"
        listed = {s["study_name"]: s for s in studies}
        assert "tiny" in listed
        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/api/studies/{listed['tiny']['study_id']}", timeout=5
        ) as response:
            detail = json.load(response)
        assert len(detail["trials"]) == 2 and detail["objective_names"] == ["val_f1"]
        assert any(attr["key"] == "val_flag_rate" for attr in detail["trials"][0]["user_attrs"])
        assert "flag rate" in detail["note"]["body"] and "**Best so far**" in detail["note"]["body"]
        best = max(detail["trials"], key=lambda t: (t.get("values") or [-1.0])[0])  # the best has figures at the end
        names = {artifact["filename"]: artifact for artifact in best["artifacts"]}
        assert set(names) == {"pr_curve.png", "confusion_matrix.png"}
        artifact_url = f"http://127.0.0.1:{port}/artifacts/{listed['tiny']['study_id']}/{best['trial_id']}/{names['pr_curve.png']['artifact_id']}"
        with urllib.request.urlopen(artifact_url, timeout=5) as response:
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_no_password_in_any_output_attribute_or_file(postgres_url, tiny_csv, tmp_path, unique_name):
    """Check that a password in the storage URL appears in no output, log, study or trial attribute, or exported
    file."""
    from sqlalchemy.engine import make_url

    secret = "pw-S3cr3t-7781"
    url = make_url(postgres_url).set(password=secret).render_as_string(hide_password=False)
    bundle = tmp_path / "bundle"
    runs = [
        [
            "run",
            "--data",
            tiny_csv,
            "--target",
            "label",
            "--study",
            unique_name,
            "--trials",
            "2",
            "--epochs",
            "2",
            "--storage",
            url,
            "--cv",
            "0",
        ],
        ["studies", "--storage", url],
        ["show", unique_name, "--storage", url],
        ["export", unique_name, "--out", str(bundle), "--storage", url],
        ["show", "no-such-study", "--storage", url],
        ["studies", "--storage", url.replace("127.0.0.1:5432", "127.0.0.1:1")],
    ]
    try:
        no_wait = {**os.environ, "SWEEP_OUTAGE_LIMIT": "0"}  # the last one's server is not there: say so at once
        outputs = [
            subprocess.run([SWEEP, *args], capture_output=True, text=True, timeout=300, env=no_wait) for args in runs
        ]
        assert [o.returncode for o in outputs] == [0, 0, 0, 0, 2, 2], [o.stderr for o in outputs]
        env_run = subprocess.run(
            [SWEEP, "studies"], capture_output=True, text=True, timeout=300, env={**os.environ, "SWEEP_STORAGE": url}
        )
        assert env_run.returncode == 0 and unique_name in env_run.stdout
        for output in [*outputs, env_run]:
            assert secret not in output.stdout + output.stderr
        assert "***" in outputs[0].stdout
        study = optuna.load_study(study_name=unique_name, storage=url)
        stored = json.dumps(
            [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
            + [[t.user_attrs, t.system_attrs] for t in study.trials]
        )
        assert secret not in stored and "***" in stored
        for path in bundle.iterdir():
            assert secret.encode() not in path.read_bytes(), path.name
    finally:
        if unique_name in optuna.get_all_study_names(url):
            optuna.delete_study(study_name=unique_name, storage=url)


def test_dashboard_page_renders_the_study_in_chromium(small_study, chromium, tmp_path):
    """Check that headless Chromium opens the dashboard page of a study, renders it (name and metric in the DOM) and
    screenshots it."""
    port = _free_port()
    server = subprocess.Popen(
        [SWEEP, "dashboard", "--storage", small_study.storage, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/api/studies")
        page = f"http://127.0.0.1:{port}/dashboard/studies/1"
        dom = chromium(page, "--dump-dom")
        assert dom.returncode == 0, dom.stderr[-2000:]
        assert "tiny" in dom.stdout and "val_f1" in dom.stdout
        shot = tmp_path / "dashboard.png"
        chromium(page, "--window-size=1280,900", f"--screenshot={shot}")
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20000
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_dashboard_shows_population_trials_like_single_ones(tiny_config):
    """Check that optuna-dashboard serves a population trial with the same fields, user attributes (plus `population`)
    and learning curve as a single trial."""
    from sweep.study.runner import run_sweep

    run_sweep(tiny_config(study="single", trials=2, epochs=3, population=1, pruner="none"))
    run_sweep(tiny_config(study="stacked", trials=2, epochs=3, population=2, pruner="none"))
    port = _free_port()
    server = subprocess.Popen(
        [SWEEP, "dashboard", "--storage", tiny_config().storage, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/api/studies")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5) as response:
            ids = {s["study_name"]: s["study_id"] for s in json.load(response)["study_summaries"]}
        trials = {}
        for name in ("single", "stacked"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{ids[name]}", timeout=5) as response:
                trials[name] = [t for t in json.load(response)["trials"] if t["state"] == "Complete"]
        assert trials["single"] and trials["stacked"]
        for single, stacked in zip(trials["single"], trials["stacked"]):
            assert set(single) == set(stacked)
            single_attrs, stacked_attrs = ({a["key"] for a in t["user_attrs"]} for t in (single, stacked))
            assert stacked_attrs - single_attrs == {"population"} and not single_attrs - stacked_attrs
            assert (
                [v["step"] for v in stacked["intermediate_values"]]
                == [v["step"] for v in single["intermediate_values"]]
                == [1, 2, 3]
            )
            assert {p["name"] for p in stacked["params"]} == {p["name"] for p in single["params"]}
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_for_http(url: str) -> None:
    for _ in range(100):
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")


def _lambda_model(path: Path) -> None:
    import keras

    keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Lambda(lambda v: v + 1.0),
            keras.layers.Flatten(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    ).save(path)


BAD_BUNDLES = [
    # (id, bundle, tampering of the copied bundle, extra args, match)
    ("best.json not JSON", "digits", lambda b: (b / "best.json").write_text("{not json"), [], r"best.json' is damaged"),
    (
        "threshold not a number",
        "digits",
        lambda b: _edit_best(b, threshold="high"),
        [],
        r"best.json' is damaged \(ValueError",
    ),
    (
        "threshold outside [0, 1]",
        "digits",
        lambda b: _edit_best(b, threshold=3.5),
        [],
        r"has threshold 3.5, outside \[0, 1\]",
    ),
    (
        "truncated model.keras",
        "digits",
        lambda b: (b / "model.keras").write_bytes((b / "model.keras").read_bytes()[:300]),
        [],
        r"model.keras' cannot be loaded .*export again",
    ),
    (
        "model.keras missing",
        "digits",
        lambda b: (b / "model.keras").unlink(),
        [],
        r"not a whole export bundle \(missing model.keras\)",
    ),
    (
        "preprocessor.json missing",
        "tabular",
        lambda b: (b / "preprocessor.json").unlink(),
        [],
        r"missing preprocessor.json",
    ),
    (
        "Lambda layer",
        "digits",
        lambda b: _lambda_model(b / "model.keras"),
        [],
        r"holds code \(a Lambda layer\) that Keras' safe mode refuses",
    ),
    (
        "rows of another shape",
        "digits",
        lambda b: np.savez(b.parent / "rows.npz", x=np.zeros((4, 6, 6, 1))),
        ["--data", "{rows}"],
        r"holds rows of shape \(6, 6, 1\).*takes rows of shape \(8, 8, 1\)",
    ),
    (
        "arrays for a table model",
        "tabular",
        lambda b: np.savez(b.parent / "rows.npz", x=np.zeros((4, 3))),
        ["--data", "{rows}"],
        r"trained on a table; pass a DataFrame \(or a CSV/Parquet file\)",
    ),
    (
        "unimportable custom objects",
        "digits",
        lambda b: None,
        ["--custom-objects", "no_such_layers_pkg"],
        r"--custom-objects no_such_layers_pkg: .*not importable",
    ),
]


def _edit_best(bundle: Path, **changes) -> None:
    best = json.loads((bundle / "best.json").read_text())
    (bundle / "best.json").write_text(json.dumps(best | changes))


@pytest.mark.parametrize(
    "name, tamper, extra, match", [case[1:] for case in BAD_BUNDLES], ids=[case[0] for case in BAD_BUNDLES]
)
def test_bad_bundles_are_one_line_exit_2_and_lose_no_trial(
    user_studies, example_files, tmp_path, name, tamper, extra, match
):
    """Check that a tampered or incomplete bundle, a Lambda layer, rows of the wrong shape or kind and unimportable
    custom objects each end `sweep predict` with one line and exit 2, and the study's stored trials are untouched."""
    import shutil

    config, result = user_studies[name]
    before = [
        (t.number, t.state, t.value) for t in optuna.load_study(study_name=config.study, storage=config.storage).trials
    ]
    bundle = tmp_path / "bundle"
    shutil.copytree(result.out_dir, bundle)
    tamper(bundle)
    data = example_files["digits.npz" if name == "digits" else "tabular.csv"]
    args = [a.format(rows=tmp_path / "rows.npz") for a in extra]
    found = invoke("predict", str(bundle), *(args if "--data" in args else ["--data", data, *args]))
    assert found.exit_code == 2, found.stdout + found.stderr
    lines = found.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), found.stderr
    assert re.search(match, lines[0]), lines[0]
    after = [
        (t.number, t.state, t.value) for t in optuna.load_study(study_name=config.study, storage=config.storage).trials
    ]
    assert after == before
