"""Tests for sweep.handover.calibration: the class-weight prior correction, the fitted monotone maps, their JSON form,
and a bundle's calibrated probability on data where the answer is known."""

import json

import numpy as np
import pytest

from sweep.handover.calibration import METHOD, METHODS, Calibration, brier, fit_calibration, log_loss, prior_correction


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def scored_rows(rows: int = 4000, weight: float = 50.0, seed: int = 0):
    """Labels drawn from a logistic model (3% positives) and the scores of that model with its odds scaled by weight,
    rounded to float32 as a network's are (so there are ties)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    true = _sigmoid(1.5 * x - 4.0)
    y = (rng.random(rows) < true).astype(int)
    return y, _sigmoid(1.5 * x - 4.0 + np.log(weight)).astype(np.float32), true


@pytest.mark.parametrize("weight", [1.0, 0.2, 7.5, 200.0, 1000.0])
def test_prior_correction_gives_back_the_unweighted_logistic_probability(weight):
    """Check that a logistic model whose odds are scaled by w exactly is corrected back to the unweighted
    probability."""
    z = np.linspace(-12, 8, 201)
    weighted = _sigmoid(z + np.log(weight))
    assert np.allclose(prior_correction(weighted, weight), _sigmoid(z), rtol=1e-10, atol=1e-15)
    assert prior_correction(np.array([0.0, 1.0]), weight).tolist() == [0.0, 1.0]


@pytest.mark.parametrize("method", METHODS)
def test_calibration_is_monotone_so_decisions_stay_those_of_the_raw_threshold(method):
    """Check that every calibration is non-decreasing in the score, so rows flagged at the raw threshold have calibrated
    probability >= its calibrated value and the others <= it: the decision rule is the raw threshold's exactly."""
    y, scores, _ = scored_rows()
    calibration = fit_calibration(scores, y, 50.0, method)
    grid = np.sort(np.r_[np.linspace(0, 1, 5001), scores])
    assert np.all(np.diff(calibration(grid)) >= 0)
    probability = calibration(scores)
    assert np.all((probability >= 0) & (probability <= 1))
    for threshold in (0.3, 0.5, 0.77):
        flagged = scores >= threshold
        at = calibration(np.array([threshold]))[0]
        assert flagged.any() and (~flagged).any()
        assert np.all(probability[flagged] >= at) and np.all(probability[~flagged] <= at)


@pytest.mark.parametrize("method", METHODS)
def test_calibration_round_trips_through_plain_json(method):
    """Check that a calibration written as JSON (plain numbers, nothing pickled) reads back to the same map, bit for
    bit."""
    y, scores, _ = scored_rows()
    calibration = fit_calibration(scores, y, 50.0, method, fitted_on="the validation part")
    text = json.dumps(calibration.to_dict())
    again = Calibration.from_dict(json.loads(text))
    assert again == calibration and np.array_equal(again(scores), calibration(scores))
    assert all(isinstance(v, (str, float, list)) for v in json.loads(text).values())


@pytest.mark.parametrize("method", ["isotonic", "platt"])
def test_fitted_calibration_recovers_the_true_probability(method):
    """Check that on a logistic model's weighted scores the fitted calibrations come close to the true probability and
    beat the raw score's Brier score and log loss by far."""
    y, scores, true = scored_rows(rows=20000)
    probability = fit_calibration(scores, y, 50.0, method)(scores)
    assert np.mean(np.abs(probability - true)) < 0.01
    assert brier(y, probability) < brier(y, true) * 1.02 < brier(y, scores) / 5
    assert log_loss(y, probability) < log_loss(y, scores) / 3


def test_isotonic_is_sklearns_isotonic_regression():
    """Check that the stored isotonic map applied by np.interp equals sklearn's IsotonicRegression(out_of_bounds="clip")
    fitted on the corrected scores, inside and beyond the fitted range."""
    from sklearn.isotonic import IsotonicRegression

    y, scores, _ = scored_rows()
    calibration = fit_calibration(scores, y, 50.0, "isotonic")
    corrected = prior_correction(scores, 50.0)
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(corrected, y)
    probe = np.r_[0.0, 1e-9, scores[:500], 1.0]
    assert np.allclose(calibration(probe), fitted.predict(prior_correction(probe, 50.0)), atol=1e-12)


@pytest.mark.parametrize(
    "values, match",
    [
        ({"method": "spline", "class_weight": 2.0}, "not one of"),
        ({"method": "isotonic", "class_weight": 2.0, "x": [0.1, 0.2], "y": [0.5]}, "as many knots"),
        ({"method": "isotonic", "class_weight": 2.0, "x": [0.1, 0.2], "y": [0.5, 0.4]}, "non-decreasing"),
        ({"method": "isotonic", "class_weight": 2.0, "x": [0.1, 0.2], "y": [0.5, 1.5]}, "non-decreasing"),
        ({"method": "platt", "class_weight": 2.0, "slope": -1.0, "intercept": 0.0}, "slope >= 0"),
    ],
)
def test_a_damaged_calibration_is_refused(values, match):
    """Check that a calibration that is not a non-decreasing map into [0, 1] is a ValueError saying what is wrong."""
    with pytest.raises(ValueError, match=match):
        Calibration.from_dict(values)


@pytest.mark.parametrize("cv", [0, 3])
def test_calibrated_mean_is_near_the_positive_rate_where_the_raw_mean_is_far_above(tiny_config, tmp_path, cv):
    """Check that with a large minority weight on the tiny table, the exported bundle's mean calibrated probability on
    the test rows is near their positive rate while the raw score's mean is far above it, and the Brier score falls."""
    from sweep.data import load_dataset
    from sweep.handover.bundle import load_bundle
    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    config = tiny_config(minority_weight="150:300", trials=2, epochs=3, cv=cv, study=f"heavy-{cv}")
    run_sweep(config)
    result = export_best(config.storage, config.study, tmp_path / "bundle")
    bundle, dataset = load_bundle(result.out_dir), load_dataset(config)
    rate = dataset.test.y.mean()
    raw, probability = bundle.score(dataset.test_frame), bundle.predict_proba(dataset.test_frame)
    assert raw.mean() > 4 * rate
    assert abs(probability.mean() - rate) < 0.5 * rate
    measured = result.best["test"]["probability"]
    assert measured["calibrated probability"]["mean_probability"] == pytest.approx(probability.mean())
    assert measured["calibrated probability"]["brier"] < measured["raw score"]["brier"] / 2
    assert result.best["calibration"]["method"] == METHOD
    assert ("out-of-fold" in result.best["calibration"]["fitted_on"]) == (cv > 0)
