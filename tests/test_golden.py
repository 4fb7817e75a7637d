"""Golden outputs: the same config and seed give the same trials (values, params, states) and the same bundle (its
decision, ensemble and the scores it writes) as recorded in tests/golden/. A refactor that changes behaviour fails here.
`python -m tests.test_golden` records them again after a change that is meant to alter them (say why in the commit)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_table, user_model_values

GOLDEN = Path(__file__).with_name("golden")
# Values and scores are float32 training on the same CPU kind; a tolerance absorbs summation order, not behaviour.
TOLERANCE = 1e-4
# Each scenario's export: the default, fold models, and greedy ensembles of builtin and of user models.
SCENARIOS = {
    "seed-population": "auto",
    "table-population-cv": "greedy:3",
    "table-per-trial-cv": "folds",
    "digits-user-model": "greedy:2",
}


def scenario_of(name: str, folder: Path):
    """The config of one golden scenario and 40 input rows for its bundle, with its data written into `folder`: the
    reference data in population rounds; a table with gaps, one trial at a time on 3 folds (where hidden_layers = auto
    chooses a linear network); a user's Conv2D on the digits arrays, 3 folds."""
    from sweep.config import resolve_config
    from sweep.data.examples import digits_arrays
    from sweep.data.readers import seed_frame

    storage = f"sqlite:///{folder / 'golden.db'}"
    if name == "seed-population":
        values = dict(data="seed", trials=6, epochs=2, population=3, seed=0, pruner="none")
        return resolve_config(values | dict(storage=storage, study=name), env={}), seed_frame()[0].head(40)
    if name.startswith("table-"):
        frame = make_table(rows=1500, positive_share=0.08, seed=3)
        frame.loc[frame.index % 7 == 0, "f1"] = np.nan
        frame.to_csv(folder / "table.csv", index=False)
        population = 3 if name == "table-population-cv" else 1
        values = dict(
            data=str(folder / "table.csv"),
            target="label",
            trials=5,
            epochs=3,
            population=population,
            cv=3,
            seed=1,
            pruner="none",
        )
        return resolve_config(values | dict(storage=storage, study=name), env={}), frame.drop(columns="label").head(40)
    x, y = digits_arrays()
    np.savez(folder / "digits.npz", x=x, y=y)
    space = {"filters": "2:4", "dropout": "0.1"}
    config = user_model_values(
        str(folder / "digits.npz"),
        storage,
        "digits_cnn",
        space,
        study=name,
        trials=3,
        cv=3,
        epochs=8,
        minority_weight="10:60",
        threshold_search="tuned",
    )
    return config, x[:40]


def golden_outputs(name: str, folder: Path) -> dict:
    """Run the scenario's sweep, export it as SCENARIOS says and score 40 rows with the bundle."""
    import optuna

    from sweep.handover.bundle import load_bundle
    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    config, rows = scenario_of(name, folder)
    run_sweep(config)
    trials = optuna.load_study(study_name=config.study, storage=config.storage).get_trials(deepcopy=False)
    exported = export_best(config.storage, config.study, folder / "bundle", ensemble=SCENARIOS[name])
    bundle = load_bundle(exported.out_dir)
    best = exported.best
    return {
        "trials": [{"number": t.number, "state": t.state.name, "value": t.value, "params": t.params} for t in trials],
        "bundle": {
            "trial": best["trial"],
            "threshold": best["threshold"],
            "class_weight": best["class_weight"],
            "ensemble": {key: best["ensemble"][key] for key in ("kind", "size", "members")},
            "validation_value": best["validation"]["reproduced_value"],
            "test_value": best["test"]["value"],
            "scores": [float(v) for v in bundle.score(rows)],
            "probabilities": [float(v) for v in bundle.predict_proba(rows)],
            "decisions": [int(v) for v in bundle.predict(rows)],
        },
    }


def assert_same(found, expected, where: str = "") -> None:
    """Equal structure; floats within TOLERANCE (absolute and relative), everything else exactly."""
    if isinstance(expected, dict):
        assert sorted(found) == sorted(expected), f"{where}: keys {sorted(found)} != {sorted(expected)}"
        for key in expected:
            assert_same(found[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert len(found) == len(expected), f"{where}: {len(found)} items != {len(expected)}"
        for index, (a, b) in enumerate(zip(found, expected)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(expected, float) and not isinstance(found, bool):
        assert found == pytest.approx(expected, rel=TOLERANCE, abs=TOLERANCE), f"{where}: {found} != {expected}"
    else:
        assert found == expected, f"{where}: {found!r} != {expected!r}"


@pytest.mark.parametrize(
    "name",
    # The user model's scenario trains a Conv2D through Keras fit, half a minute: it runs in `make test-slow`.
    [pytest.param(name, marks=pytest.mark.slow) if name == "digits-user-model" else name for name in SCENARIOS],
)
def test_outputs_match_the_recorded_golden_outputs(name, tmp_path):
    """Check that a scenario's trials (numbers, states, values, params) and its bundle (trial, threshold, weights,
    ensemble, validation and test values, scores, probabilities and decisions of 40 test rows) are as recorded."""
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    found = json.loads(json.dumps(golden_outputs(name, tmp_path)))  # the same JSON round trip as the record
    assert_same(found, expected, name)


if __name__ == "__main__":
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    for scenario in sys.argv[1:] or SCENARIOS:
        with tempfile.TemporaryDirectory() as temporary:
            outputs = golden_outputs(scenario, Path(temporary))
        (GOLDEN / f"{scenario}.json").write_text(json.dumps(outputs, indent=1) + "\n")
        print(f"recorded {GOLDEN / scenario}.json")
