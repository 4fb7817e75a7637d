"""Tests for sweep.plots: a trial's figures and a study's figures are written as PNG files."""

import numpy as np
import optuna
import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.trial import create_trial

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def scored_rows(rows: int = 500):
    """Labels with 10% positives and scores that rank positives a little higher."""
    rng = np.random.default_rng(0)
    y = (rng.random(rows) < 0.1).astype(int)
    return y, np.clip(rng.random(rows) * 0.7 + 0.3 * y, 0, 1)


def test_trial_figures_are_pngs(tmp_path):
    """Check that the precision-recall and confusion-matrix figures are written as non-empty PNG files."""
    from sweep.plots import trial_figures

    y, scores = scored_rows()
    paths = trial_figures(y, scores, 0.5, tmp_path, "trial #0")
    assert [p.name for p in paths] == ["pr_curve.png", "confusion_matrix.png"]
    for path in paths:
        assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 5000


def synthetic_study(directions: list[str]) -> optuna.Study:
    """Six complete trials over weight, width and threshold, with one value per direction."""
    study = optuna.create_study(study_name="s", directions=directions)
    distributions = {
        "minority_weight": FloatDistribution(1, 1000, log=True),
        "hidden_width": IntDistribution(1, 64, log=True),
        "threshold": FloatDistribution(0.01, 0.99),
    }
    rng = np.random.default_rng(1)
    for _ in range(6):
        params = {
            "minority_weight": float(rng.uniform(1, 1000)),
            "hidden_width": int(rng.integers(1, 64)),
            "threshold": float(rng.uniform(0.01, 0.99)),
        }
        values = [float(v) for v in rng.random(len(directions))]
        study.add_trial(create_trial(values=values, params=params, distributions=distributions))
    return study


@pytest.mark.parametrize(
    "directions, names",
    [
        (["maximize"], ["s-history.png", "s-landscape.png", "s-importances.png"]),
        (["maximize", "minimize"], ["s-pareto.png"]),
    ],
    ids=["single", "pareto"],
)
def test_study_figures_are_pngs(tmp_path, directions, names):
    """Check that a study's figures (history, landscape and importances, or its Pareto front) and the best model's
    test figures are written as PNG files named after the study."""
    from sweep.plots import study_figures

    y, scores = scored_rows()
    paths = study_figures(synthetic_study(directions), scores, y, 0.5, tmp_path)
    assert [p.name for p in paths] == [*names, "s-test-precision-recall.png", "s-test-confusion-matrix.png"]
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)


def test_matplotlib_is_imported_only_to_draw():
    """Check that importing sweep.plots (and the dashboard and report that use it) loads no matplotlib."""
    import subprocess
    import sys

    script = (
        "import sys, sweep.plots, sweep.reading.dashboard, sweep.reading.report; "
        "print(any(m.split('.')[0] == 'matplotlib' for m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
