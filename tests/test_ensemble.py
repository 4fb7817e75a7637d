"""Tests for sweep.handover.ensemble and `--ensemble`: what an export bundle holds (one refit, refit seeds, fold models,
a greedy ensemble), saved as one safe-mode Keras model whose scores are the average of its members'."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import optuna
import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.data import load_dataset
from sweep.errors import ExportError
from sweep.handover.bundle import load_bundle
from sweep.handover.ensemble import EnsembleChoice, automatic_ensemble, greedy_selection, member_seeds, parse_ensemble
from sweep.handover.export import export_best
from sweep.metrics import choose_threshold, parse_goal, threshold_metrics
from sweep.models.network import TrainSettings, score, train_model
from sweep.space import TrialParams
from tests.conftest import tiny_values, user_model_values


@pytest.fixture(scope="module")
def studies(tiny_csv, tmp_path_factory):
    """Three small studies on the tiny table: one validation split (trials alone), 3-fold cross-validated
    populations of 2, and a user's Keras MLP cross-validated with 3 folds."""
    from sweep.study.runner import run_sweep

    folder = tmp_path_factory.mktemp("ensembles")
    storage = f"sqlite:///{folder / 'e.db'}"
    configs = {
        "holdout": tiny_values(tiny_csv, storage, study="holdout", trials=3, epochs=3),
        "cv_population": tiny_values(tiny_csv, storage, study="cv_population", trials=4, cv=3, population=2, epochs=3),
        "user_cv": user_model_values(
            tiny_csv,
            storage,
            "tabular_mlp",
            {"units": "4", "depth": "1", "dropout": "0.0"},
            study="user_cv",
            target="label",
            cv=3,
            trials=2,
        ),
    }
    for config in configs.values():
        run_sweep(config)
    return configs


def _best(config):
    return optuna.load_study(study_name=config.study, storage=config.storage).best_trial


def _members_alone(config, dataset, best: dict, kind: str) -> list:
    """The bundle's members trained again from best.json alone, with the library's primitives (not
    sweep.handover.ensemble)."""
    from sweep.models import model_kind
    from sweep.models.population import Member, member_network, train_population
    from sweep.study.optuna_private import trial_by_number

    study = optuna.load_study(study_name=config.study, storage=config.storage)
    trial = study.best_trial
    seam = model_kind(config)
    if kind == "folds":
        return seam.retrain(dataset, [trial], lambda n: trial_by_number(study, n))[trial.number].models
    X, y = dataset.development.X, dataset.development.y
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    if config.model != "builtin":  # each member fitted alone, one after another
        by_number = {t.number: t for t in study.trials}
        fitted = []
        for m in best["ensemble"]["members"]:  # greedy members are other trials, with their own params
            params = seam.params(by_number[m["trial"]])
            seeded = dataclasses.replace(settings, seed=m["seed"])
            fitted.append(seam.fit(X, y, params, params.class_weight, seeded))
        return fitted
    trials = {t.number: t for t in study.trials}
    members = [
        Member(trials[m["trial"]].params["hidden_width"], trials[m["trial"]].params["minority_weight"], m["seed"])
        for m in best["ensemble"]["members"]
    ]
    first = best["ensemble"]["members"][0]["seed"]
    population, _, _, _ = train_population(
        X, y, members, settings.epochs, settings.batch_size, settings.learning_rate, first
    )
    return [member_network(population, index) for index in range(len(members))]


@pytest.mark.parametrize(
    "study, ensemble, size",
    [
        ("cv_population", "seeds:3", 3),
        ("cv_population", "folds", 3),
        ("cv_population", "greedy:3", None),
        ("holdout", "seeds:2", 2),
        ("holdout", "greedy:3", None),
        ("user_cv", "folds", 3),
        ("user_cv", "seeds:2", 2),
        ("user_cv", "greedy:2", None),
    ],
)
def test_each_ensemble_kind_round_trips_as_the_average_of_its_members(
    studies, tmp_path, study, ensemble, size, lenient_decision_check
):
    """Check that each ensemble kind exports one safe-mode Keras model whose score is the weighted average of its
    members' (trained again independently from best.json), that best.json lists the members and that the test
    metrics it reports are those of the shipped model."""
    config = studies[study]
    result = export_best(config.storage, config.study, tmp_path / "bundle", ensemble=ensemble)
    best = json.loads((tmp_path / "bundle" / "best.json").read_text())
    record = best["ensemble"]
    assert record["kind"] == ensemble.partition(":")[0] and record["how_chosen"]
    assert size is None or (record["size"] == size and len(record["members"]) == size)
    assert sum(m["weight"] for m in record["members"]) == pytest.approx(1.0, abs=1e-5)
    assert all({"trial", "seed", "fitted_on", "weight"} <= set(m) for m in record["members"])
    trial = _best(config)
    if record["kind"] == "seeds":
        assert [m["seed"] for m in record["members"]] == member_seeds(trial.user_attrs["train_settings"]["seed"], size)
    if record["kind"] == "greedy":
        study_trials = optuna.load_study(study_name=config.study, storage=config.storage).get_trials(
            states=(optuna.trial.TrialState.COMPLETE,)
        )
        three_best = {t.number for t in sorted(study_trials, key=lambda t: (-t.value, t.number))[:3]}
        assert {m["trial"] for m in record["members"]} <= three_best and 0 < best["threshold"] < 1
    bundle = load_bundle(tmp_path / "bundle")
    averaged = [layer.__class__.__name__ for layer in bundle.model.layers][-1] == "Average"
    assert averaged == (len(record["members"]) > 1)  # greedy selection may choose the best trial alone
    dataset = load_dataset(config)
    alone = _members_alone(config, dataset, best, record["kind"])
    weights = np.array([m["weight"] for m in record["members"]])
    expected = np.sum([w * score(m, dataset.test.X) for w, m in zip(weights, alone)], axis=0)
    shipped = bundle.score(dataset.test_frame)
    np.testing.assert_allclose(shipped, expected, atol=2e-5)
    np.testing.assert_allclose(bundle.predict_proba(dataset.test_frame), bundle.calibration(expected), atol=2e-5)
    found = threshold_metrics(dataset.test.y, shipped, bundle.threshold)
    assert found["f1"] == pytest.approx(best["test"]["metrics"]["f1"], abs=1e-9) and result.best["ensemble"] == record


def test_single_is_the_one_refit_export_of_before(studies, tmp_path):
    """Check that --ensemble single ships one plain network refit on all non-test rows with the trial's seed: the
    test scores of that one network trained directly."""
    config = studies["holdout"]
    best = export_best(config.storage, config.study, tmp_path / "bundle", ensemble="single").best
    trial = _best(config)
    dataset = load_dataset(config)
    params = TrialParams.from_dict(trial.params)
    network = train_model(
        dataset.development.X,
        dataset.development.y,
        params.hidden_width,
        params.class_weight,
        TrainSettings(**trial.user_attrs["train_settings"]),
    )[0]
    before = threshold_metrics(dataset.test.y, network.scores(dataset.test.X), params.threshold)
    assert {k: best["test"]["metrics"][k] for k in before} == before
    assert best["ensemble"]["kind"] == "single" and len(best["ensemble"]["members"]) == 1
    assert best["threshold"] == params.threshold and best["refit"]["rows"] == "all non-test rows"
    bundle = load_bundle(tmp_path / "bundle")
    assert "Average" not in {layer.__class__.__name__ for layer in bundle.model.layers}
    np.testing.assert_allclose(bundle.score(dataset.test_frame), network.scores(dataset.test.X), atol=1e-6)


def _trial_count(config) -> int:
    return len(optuna.load_study(study_name=config.study, storage=config.storage).trials)


@pytest.mark.parametrize(
    "study, value, match",
    [
        (
            "holdout",
            "folds",
            r"--ensemble folds averages a cross-validated trial's fold models, but study 'holdout' .*use --ensemble "
            r"single or seeds:K",
        ),
        (
            "holdout",
            "seeds:0",
            r"--ensemble 'seeds:0' is invalid: seeds:0 needs at least 2 .*expected auto \| single \| seeds:K",
        ),
        ("holdout", "seeds:x", r"--ensemble 'seeds:x' is invalid: seeds needs a whole number after ':', got 'x'"),
        (
            "cv_population",
            "bogus",
            r"--ensemble 'bogus' is invalid: unknown kind; expected auto \| single \| seeds:K \(K >= 2\) \| folds \| "
            r"greedy:N",
        ),
        ("cv_population", "greedy:1", r"--ensemble 'greedy:1' is invalid: greedy:1 needs at least 2"),
    ],
)
def test_bad_ensembles_are_one_line_exit_2_and_lose_no_trial(studies, tmp_path, study, value, match):
    """Check that --ensemble folds on a one-split study and a malformed --ensemble are one-line errors with exit
    code 2 through the CLI, writing no bundle and losing no stored trial."""
    config = studies[study]
    before = _trial_count(config)
    result = CliRunner().invoke(
        app,
        ["export", config.study, "--out", str(tmp_path / "o"), "--storage", config.storage, "--ensemble", value],
        env={"SWEEP_STORAGE": None},
    )
    assert result.exit_code == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and re.search(match, lines[0]), lines
    assert _trial_count(config) == before and not (tmp_path / "o").exists()


def test_refit_train_takes_only_the_single_model(studies, tmp_path):
    """Check that --refit train (one trial's own model) with an ensemble is refused with a one-line fix."""
    config = studies["holdout"]
    with pytest.raises(
        ExportError,
        match=r"--refit train exports one trial's own model, but --ensemble is seeds:2; use --ensemble single",
    ):
        export_best(config.storage, config.study, tmp_path / "o", refit="train", ensemble="seeds:2")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("auto", EnsembleChoice("auto")),
        ("single", EnsembleChoice("single")),
        (" Folds ", EnsembleChoice("folds")),
        ("seeds:5", EnsembleChoice("seeds", 5)),
        ("greedy:10", EnsembleChoice("greedy", 10)),
    ],
)
def test_parse_ensemble_reads_every_kind(text, expected):
    """Check that each --ensemble kind parses to its choice and prints back as written."""
    assert parse_ensemble(text) == expected and parse_ensemble(str(expected)) == expected


@pytest.mark.parametrize(
    "choice, expected",
    [
        (EnsembleChoice("auto"), EnsembleChoice("single")),
        (EnsembleChoice("seeds", 3), EnsembleChoice("seeds", 3)),
        (EnsembleChoice("greedy", 5), EnsembleChoice("greedy", 5)),
    ],
)
def test_auto_is_one_refit_and_a_named_choice_passes_through(choice, expected):
    """Check that --ensemble auto (the default) ships one refit, and that a named choice is kept as it is."""
    assert automatic_ensemble(choice) == expected


@pytest.mark.parametrize("study", ["holdout", "user_cv"])
def test_the_default_export_records_what_auto_chose(studies, tmp_path, study, lenient_decision_check):
    """Check that an export without --ensemble holds one refit and that best.json records it, with no ensemble
    metrics of its own."""
    config = studies[study]
    best = export_best(config.storage, config.study, tmp_path / "o").best
    assert best["ensemble"]["kind"] == "single" and "ensemble_metrics" not in best["validation"]


def test_greedy_selection_mixes_complementary_trials_and_rechooses_the_threshold():
    """Check that greedy selection averages two trials that each see half the positives when their average beats
    both, and that the threshold is the best one on the ensemble's own scores (a brute-force scan agrees)."""
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(40), np.zeros(400)].astype(int)
    noise = rng.uniform(0, 0.5, size=(3, len(y)))
    first, second, unrelated = noise.copy()
    first[:20] += 0.45  # trial 1 ranks the first half of the positives high, trial 2 the second half
    second[20:40] += 0.45
    pooled = {1: first, 2: second, 3: unrelated}
    goal = parse_goal("f1")
    chosen, threshold, value = greedy_selection(goal, y, pooled, (0.01, 0.99), steps=2)
    assert chosen == {1: 1, 2: 1}
    average = (first + second) / 2
    scan = max(threshold_metrics(y, average, t)["f1"] for t in np.unique(average))
    assert value == pytest.approx(scan) and threshold_metrics(y, average, threshold)["f1"] == pytest.approx(value)
    assert value > max(choose_threshold(goal, y, s, (0.01, 0.99))[1] for s in pooled.values())
