"""Tests for sweep.handover.decision: the judged threshold carried over to the shipped models, and the check that they
flag what the judged models flagged."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from sweep.cli import app
from sweep.handover.bundle import load_bundle
from sweep.handover.decision import FLAG_RATE_TOLERANCE, check_decision, flag_rate
from tests.conftest import tiny_values

SCORES = np.random.default_rng(0).uniform(size=1000)


@pytest.mark.parametrize(
    "threshold, shipped, passed",
    [
        (0.9, SCORES, True),  # the same models: the same flags
        (0.9, SCORES * 0.8, False),  # a refit that lost its range flags nothing at 0.9
        (0.9, SCORES**0.5, False),  # a refit whose scale rose flags three times as many rows
        (0.9, np.clip(SCORES * 1.05, 0, 1), True),  # a small shift of scale stays within the tolerance
        (0.999, SCORES * 0.99, True),  # one judged flag and none shipped: within the slack of a few rows
    ],
)
def test_check_compares_flag_rates_at_the_threshold(threshold, shipped, passed):
    """Check that the decision check passes when the shipped flag rate is within the tolerance of the judged one
    and fails when the shipped models flag nothing or far more."""
    check = check_decision(SCORES, shipped, threshold, "the non-test rows")
    assert check.passed is passed and check.record()["passed"] is passed
    assert check.judged_flag_rate == flag_rate(SCORES, threshold) and check.shipped_flag_rate == flag_rate(
        shipped, threshold
    )
    assert check.shipped_max_score == pytest.approx(np.max(shipped))


@pytest.fixture(scope="module")
def greedy_study(tiny_csv, tmp_path_factory):
    """A 4-trial study with one validation split on the tiny table (its default export is a greedy ensemble)."""
    from sweep.study.runner import run_sweep

    folder = tmp_path_factory.mktemp("decision")
    config = tiny_values(tiny_csv, f"sqlite:///{folder / 'd.db'}", study="decision", trials=4, epochs=4)
    run_sweep(config)
    return config


@pytest.mark.parametrize("ensemble", ["greedy:3", "single"])
def test_a_refit_that_loses_its_range_gives_way_to_the_judged_models(greedy_study, ensemble, tmp_path, monkeypatch):
    """Check the collapse the check exists for: a refit (a greedy ensemble's member, or the one refit) that loses its
    range (its output pushed towards 0) never reaches the judged threshold; export ships the judged models instead,
    whose flag rate on held-out rows is within the tolerance of the judged one, and names the fallback in best.json
    and its printout."""
    from sweep.data import load_dataset
    from sweep.models.builtin import BuiltinNetwork
    from sweep.models.network import Network

    def lose_range(network):
        *hidden, (kernel, bias) = network.layers
        return Network((*hidden, (kernel, bias - 12.0)))

    refit = BuiltinNetwork.refit
    monkeypatch.setattr(BuiltinNetwork, "refit", lambda *a: [lose_range(m) for m in refit(*a)])
    config = greedy_study
    result = CliRunner().invoke(
        app,
        ["export", config.study, "--out", str(tmp_path / "b"), "--storage", config.storage, "--ensemble", ensemble],
        env={"SWEEP_STORAGE": None},
    )
    assert result.exit_code == 0, result.output
    best = json.loads((tmp_path / "b" / "best.json").read_text())
    decision = best["decision"]
    assert decision["passed"] and decision["rows"] == "their own validation rows"
    assert not decision["failed_check"]["passed"] and decision["failed_check"]["shipped_flag_rate"] == 0.0
    assert "shipping the judged models themselves instead (--refit judged)" in decision["fallback"]
    assert "fallback: the refit models do not decide as the judged ones did" in " ".join(result.output.split())
    assert best["refit"]["choice"] == "judged" and "training part" in best["refit"]["rows"]
    assert best["ensemble"]["kind"] == ensemble.partition(":")[0]
    dataset = load_dataset(config)
    bundle = load_bundle(tmp_path / "b")
    held_out = flag_rate(bundle.score(dataset.test_frame), best["threshold"])
    judged = decision["judged_flag_rate"]
    assert judged / FLAG_RATE_TOLERANCE <= held_out <= judged * FLAG_RATE_TOLERANCE
    assert best["test"]["metrics"]["flag_rate"] == pytest.approx(
        held_out, abs=3 / len(dataset.test.y)
    )  # Keras' float32 sigmoid


def test_judged_greedy_ships_the_models_its_threshold_was_chosen_on(greedy_study, tmp_path):
    """Check that --refit judged with a greedy ensemble ships each chosen trial's own model, whose averaged
    validation scores reproduce the ensemble's validation value at its threshold exactly."""
    from sweep.handover.export import export_best

    best = export_best(
        greedy_study.storage, greedy_study.study, tmp_path / "j", refit="judged", ensemble="greedy:3"
    ).best
    assert best["ensemble"]["kind"] == "greedy" and best["refit"]["choice"] == "judged"
    assert all(m["fitted_on"] == "its training part" for m in best["ensemble"]["members"])
    assert best["decision"]["passed"] and best["decision"]["fallback"] is None
    assert (
        best["decision"]["shipped_flag_rate"]
        == best["decision"]["judged_flag_rate"]
        == pytest.approx(best["validation"]["ensemble_metrics"]["flag_rate"])
    )


def test_judged_greedy_of_a_cross_validated_study_ships_every_chosen_fold_model(cross_validated, tmp_path):
    """Check that --refit judged with a greedy ensemble of a cross-validated study ships each chosen trial's fold
    models (each counted as often as its trial was chosen), with a threshold that passes its check."""
    from sweep.handover.export import export_best

    config, _ = cross_validated
    best = export_best(config.storage, config.study, tmp_path / "j", refit="judged", ensemble="greedy:3").best
    members = best["ensemble"]["members"]
    assert len(members) % 5 == 0 and {m["fold"] for m in members} == set(range(5))
    assert all("outside fold" in m["fitted_on"] for m in members) and best["refit"]["rows"].startswith(
        "each fold model"
    )
    assert best["decision"]["passed"] and best["test"]["metrics"]["flag_rate"] > 0
