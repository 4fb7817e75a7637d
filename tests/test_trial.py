"""Tests for sweep.study.trial: one trial's value and user attributes, and failures with reasons."""

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from sweep.data import load_dataset
from sweep.errors import TrialFailed
from sweep.metrics import parse_goal
from sweep.models import model_kind
from sweep.study.storage import open_storage
from sweep.study.trial import trial_function
from tests.conftest import user_model_values

VALIDATION_ATTRS = ("precision", "recall", "f1", "average_precision", "roc_auc", "flag_rate", "tp", "fp", "tn", "fn")


@pytest.mark.parametrize("spec", ["f1", "cost:miss=20,false_alarm=1", "ap"])
def test_trial_records_metrics_and_returns_the_objective(tiny_config, spec):
    """Check that a trial stores validation metrics, timing, epochs and device, and returns the objective's value."""
    config = tiny_config(objective=spec)
    dataset = load_dataset(config)
    goal = parse_goal(spec)
    study = optuna.create_study(storage=open_storage(config.storage), direction=goal.direction)
    study.optimize(trial_function(config, dataset, goal), n_trials=1)
    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    attrs = trial.user_attrs
    for key in VALIDATION_ATTRS:
        assert f"val_{key}" in attrs
    assert attrs["val_tp"] + attrs["val_fp"] + attrs["val_tn"] + attrs["val_fn"] == len(dataset.validation.y)
    assert attrs["epochs_run"] == 2 and attrs["train_seconds"] > 0 and attrs["device"] == "cpu"
    assert attrs["class_weight"] == {"0": 1.0, "1": trial.params["minority_weight"]}
    metrics = {key: attrs[f"val_{key}"] for key in VALIDATION_ATTRS}
    assert trial.value == pytest.approx(goal.value(metrics))


def test_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(tiny_config):
    """Check that a trial whose loss overflows ends FAIL with fail_reason while the next trial completes."""
    config = tiny_config(minority_weight="1:1e38", learning_rate=1.0)
    dataset = load_dataset(config)
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize")
    study.enqueue_trial({"minority_weight": 1e38, "hidden_width": 2, "threshold": 0.5})
    study.enqueue_trial({"minority_weight": 3.0, "hidden_width": 2, "threshold": 0.5})
    study.optimize(trial_function(config, dataset, parse_goal("f1")), n_trials=2, catch=(TrialFailed,))
    failed, finished = study.trials
    assert failed.state == TrialState.FAIL
    assert "loss became" in failed.user_attrs["fail_reason"]
    assert finished.state == TrialState.COMPLETE


@pytest.mark.parametrize(
    "pruner, state, epochs, epochs_reported",
    [
        (optuna.pruners.NopPruner(), TrialState.COMPLETE, 3, [1, 2, 3]),
        # Past REPORTS_PER_TRIAL epochs, every report_every-th epoch and the last are reported.
        (optuna.pruners.NopPruner(), TrialState.COMPLETE, 103, [*range(3, 103, 3), 103]),
        # A real pruner told that no value is good enough: it stops the trial after its first report.
        (optuna.pruners.ThresholdPruner(lower=2.0), TrialState.PRUNED, 3, [1]),
    ],
)
def test_epochs_are_reported_and_pruning_is_recorded(tiny_config, pruner, state, epochs, epochs_reported):
    """Check that the validation objective is reported every epoch (every few of a long training, and the last), and
    a pruned trial ends PRUNED at its epoch."""
    config = tiny_config(epochs=epochs)
    dataset = load_dataset(config)
    study = optuna.create_study(storage=open_storage(config.storage), direction="maximize", pruner=pruner)
    study.optimize(trial_function(config, dataset, parse_goal("f1")), n_trials=1)
    trial = study.trials[0]
    assert trial.state == state
    assert sorted(trial.intermediate_values) == epochs_reported
    if state == TrialState.PRUNED:
        assert trial.user_attrs["pruned_at_epoch"] == 1 and trial.user_attrs["epochs_run"] == 1
    else:
        assert trial.intermediate_values[epochs] == pytest.approx(trial.value)
    assert set(trial.user_attrs["threads"]) == {"intra_op", "inter_op"}


def _slow_first_epoch(monkeypatch, seconds: float) -> None:
    """The first trial's first epoch ends `seconds` late (a sleep before its per-epoch report)."""
    import time

    from sweep.study.trial import TrialHooks

    real, calls = TrialHooks.side_by_side, []

    def side_by_side(hooks, epoch, pooled):
        calls.append(epoch)
        if len(calls) == 1:  # the first trial's first epoch
            time.sleep(seconds)
        real(hooks, epoch, pooled)

    monkeypatch.setattr(TrialHooks, "side_by_side", side_by_side)


def _stuck_first_trial(monkeypatch, seconds: float) -> None:
    """The first trial is stuck in one call for `seconds` (it never reaches an epoch's end)."""
    import time

    from sweep.models.builtin import BuiltinNetwork

    real, calls = BuiltinNetwork.train_folds, []

    def train_folds(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(seconds)
        return real(*args, **kwargs)

    monkeypatch.setattr(BuiltinNetwork, "train_folds", train_folds)


@pytest.mark.parametrize(
    "slow_down, reason",
    [
        (
            lambda monkeypatch: _slow_first_epoch(monkeypatch, 2.5),
            r"^stopped after \d+\.\d s: longer than --trial-timeout 2 \(epoch 1 of 2\)$",
        ),
        # Stuck in one call: the watchdog fails it grace_period (2 s) past the limit and SIGALRM ends the sleep.
        (
            lambda monkeypatch: _stuck_first_trial(monkeypatch, 120),
            r"^stopped after \d+\.\d s: longer than --trial-timeout 2 and stuck in one call "
            r"for more than its grace_period of 2 s \(before its first epoch\); failed by the watchdog$",
        ),
    ],
    ids=["late-epoch", "stuck-call"],
)
def test_a_trial_past_trial_timeout_fails_and_the_sweep_reaches_its_budget(tiny_config, monkeypatch, slow_down, reason):
    """Check that a builtin trial running past --trial-timeout (a late epoch, or stuck in one call) ends FAIL with the
    reason, and the worker goes on until the study holds its budget of finished trials."""
    import re
    import time

    from sweep.study.runner import run_sweep

    slow_down(monkeypatch)
    config = tiny_config(trials=2, population=1, trial_timeout=2, heartbeat_interval=1, grace_period=2)
    started = time.monotonic()
    result = run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    first = study.trials[0]
    assert first.state == TrialState.FAIL
    assert re.match(reason, first.user_attrs["fail_reason"]), first.user_attrs["fail_reason"]
    assert result.finished == 2 and result.stop_reason is None
    assert len(study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 2
    assert time.monotonic() - started < 60, "the stuck call was not interrupted"


def test_a_watchdog_off_the_main_thread_fails_the_trial_but_cannot_interrupt_it():
    """Check that a trial stuck in one call on another thread than the main one is failed by its watchdog grace seconds
    past the limit while it is still stuck, which then claims nothing (the call itself runs to its end)."""
    import threading
    import time

    from sweep.study.watchdog import TrialClock, Watchdog

    failed: list[tuple[float, str]] = []
    outcome: dict = {}

    def stuck_trial():
        watchdog = Watchdog(TrialClock(0.2, epochs=5), 0.3, lambda reason: failed.append((time.monotonic(), reason)))
        with watchdog:
            time.sleep(1.5)  # not interrupted: SIGALRM reaches the main thread only
            outcome["woke"], outcome["claimed"] = time.monotonic(), watchdog.claim()

    thread = threading.Thread(target=stuck_trial)
    thread.start()
    thread.join(timeout=30)
    assert len(failed) == 1 and failed[0][0] < outcome["woke"]
    assert (
        "longer than --trial-timeout 0.2 and stuck in one call for more than its grace_period of 0.3 s" in failed[0][1]
    )
    assert outcome["claimed"] is False
    assert not [t for t in threading.enumerate() if t.name == "trial-watchdog"]


@pytest.mark.parametrize(
    "overrides, expected_epochs",
    [
        ({}, 2),  # min_steps 0: exactly --epochs
        (
            {"min_steps": 100},
            4,
        ),  # the tiny table's 1,920 training rows at batch 64 are 30 steps an epoch: ceil(100 / 30)
        ({"min_steps": 1000}, 34),  # ceil(1000 / 30)
        ({"min_steps": 1000, "epochs": 50}, 50),  # enough steps already: the epochs stay
        ({"min_steps": 1000, "cv": 3}, 40),  # each of 3 fold models learns from 1,600 rows: 25 steps, ceil(1000 / 25)
        ({"hidden_layers": 0}, 34),  # a linear network takes at least LINEAR_STEPS = 1,000: ceil(1000 / 30)
    ],
)
def test_min_steps_raises_the_epochs_of_a_small_table(tiny_config, overrides, expected_epochs):
    """Check that min_steps raises a builtin sweep's epochs until each fold model takes that many Adam steps,
    and leaves them where they already suffice."""
    config = tiny_config(**overrides)
    dataset = load_dataset(config)
    rows = min(len(fold.training_rows(len(dataset.validation.y_fit))) for fold in dataset.validation.folds)
    steps = -(-rows // config.batch_size)
    least = max(config.min_steps, 1000 if config.hidden_layers == 0 else 0)
    assert model_kind(config).sized(dataset).epochs == max(config.epochs, -(-least // steps)) == expected_epochs


@pytest.mark.parametrize(
    "overrides, expected_rate",
    [
        ({"learning_rate": "auto"}, 0.01),  # 2 epochs of 30 steps: far below 2,000 steps, the upper bound
        ({"learning_rate": "auto", "epochs": 400}, 0.00167),  # 12,000 steps: 20 / 12,000
        ({"learning_rate": "auto", "epochs": 1000}, 0.001),  # 30,000 steps: the lower bound (as on the reference data)
        ({"learning_rate": "auto", "hidden_layers": 0}, 0.05),  # a linear network: LINEAR_RATE
        ({"learning_rate": 0.002}, 0.002),  # a given rate is kept
        ({"learning_rate": "0.0003:0.03"}, (0.0003, 0.03)),  # so is a searched range
    ],
)
def test_auto_learning_rate_is_sized_to_the_training_steps(tiny_config, overrides, expected_rate):
    """Check that learning_rate = auto gives the builtin network 20 / (its fold models' Adam steps) within
    [0.001, 0.01], and that a given rate or range is kept."""
    config = tiny_config(**overrides)
    assert config.learning_rate == overrides["learning_rate"] or isinstance(config.learning_rate, tuple)
    assert model_kind(config).sized(load_dataset(config)).learning_rate == pytest.approx(expected_rate)


def test_auto_learning_rate_of_a_user_model_is_adams_default(example_files, sqlite_url):
    """Check that learning_rate = auto trains a user's Keras model at Keras' Adam default, 0.001, whatever the table."""
    config = user_model_values(
        example_files["tabular.csv"],
        sqlite_url,
        "tabular_mlp",
        {"dropout": "0.0:0.5", "units": "4", "depth": "2"},
        target="label",
    )
    assert config.learning_rate == "auto"
    assert model_kind(config).sized(load_dataset(config)).learning_rate == 0.001


@pytest.mark.parametrize(
    "kind, overrides",
    [
        ("builtin", {"population": 1, "objective": "cost:miss=20,false_alarm=1"}),
        ("builtin", {"population": 2, "cv": 3}),
        ("user", {"cv": 3}),
    ],
)
def test_a_tuned_threshold_is_the_best_on_the_trials_own_scores_and_stored_as_its_param(
    tiny_csv, tmp_path, kind, overrides
):
    """Check that with threshold_search tuned no threshold is sampled: each complete trial's threshold param is the one
    that scores best by the objective on its pooled validation scores, within the range, its value is the objective
    there, and export retrains it to the same value."""
    from sweep.handover.retrain import retrain_best
    from sweep.metrics import choose_threshold, metrics
    from sweep.study.runner import run_sweep
    from tests.conftest import tiny_values, user_model_values

    storage = f"sqlite:///{tmp_path / 't.db'}"
    if kind == "user":
        config = user_model_values(
            tiny_csv,
            storage,
            "tabular_mlp",
            {"units": "4", "depth": "1", "dropout": "0.0"},
            threshold_search="tuned",
            trials=2,
            target="label",
            **overrides,
        )
    else:
        config = tiny_values(tiny_csv, storage, trials=4, epochs=4, threshold_search="tuned", **overrides)
    run_sweep(config)
    study = optuna.load_study(study_name=config.study, storage=storage)
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert complete and all(config.threshold[0] <= t.params["threshold"] <= config.threshold[1] for t in complete)
    assert all(isinstance(t.distributions["threshold"], optuna.distributions.FloatDistribution) for t in complete)
    found = retrain_best(storage, config.study, ensemble="single")
    y, pooled = found.dataset.validation.y, found.validation_scores
    threshold, value = choose_threshold(config.goal, y, pooled, config.threshold)
    assert found.trial.params["threshold"] == pytest.approx(threshold) and found.trial.value == pytest.approx(value)
    assert found.trial.value == pytest.approx(config.goal.value(metrics(y, pooled, found.trial.params["threshold"])))
    assert found.trial.intermediate_values  # per-epoch reports, at each epoch's best threshold


def ring_table(rows: int = 600, seed: int = 0):
    """Positives outside a ring of two features (no straight line ranks them) and eight features of noise."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 10))
    frame = pd.DataFrame(x, columns=[f"f{i}" for i in range(10)])
    frame["label"] = (x[:, 0] ** 2 + x[:, 1] ** 2 > 5).astype(int)
    return frame


def line_table(rows: int = 400, seed: int = 0):
    """Positives on one side of a noisy straight line through 30 features, as few as in the smallest real tables."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows, n_features=30, n_informative=10, weights=[0.93], flip_y=0.02, class_sep=1.0, random_state=seed
    )
    return pd.DataFrame(X, columns=[f"f{i}" for i in range(30)]).assign(label=y)


@pytest.mark.parametrize("table, expected", [(line_table, 0), (ring_table, 1)])
def test_auto_depth_is_the_better_ranking_on_validation(tmp_path, sqlite_url, table, expected):
    """Check that hidden_layers = auto resolves to a linear network where a straight line ranks the validation rows
    better, to one hidden layer where none does, and that a new study stores the choice and its figures."""
    from sweep.config import resolve_config
    from sweep.study.runner import prepare_study, sized_for

    path = tmp_path / "table.csv"
    table().to_csv(path, index=False)
    config = resolve_config({"data": str(path), "target": "label", "storage": sqlite_url, "epochs": 20}, env={})
    assert config.hidden_layers == "auto"
    dataset = load_dataset(config)
    sized, depth = sized_for(config, dataset)
    assert sized.hidden_layers == depth["hidden_layers"] == expected
    assert (depth["hidden_ap"] - depth["linear_ap"] > depth["gap_error"] > 0) == (expected == 1)
    study = prepare_study(sized, dataset, depth=depth)
    assert study.user_attrs["depth"] == depth and study.user_attrs["config"]["hidden_layers"] == expected


@pytest.mark.parametrize("hidden_noise, richer_wins", [(None, False), (0.0, True), (2.0, False)])
def test_one_hidden_layer_only_beyond_the_gap_error(hidden_noise, richer_wins):
    """Check that the probe's ranking gap counts for one hidden layer only beyond its bootstrap standard error: not for
    the same ranking, yes for a perfect one against a noisy one, not for a noisier one."""
    from sklearn.metrics import average_precision_score

    from sweep.models.builtin import gap_error

    rng = np.random.default_rng(0)
    y = (np.arange(300) % 15 == 0).astype(int)
    linear = y + rng.normal(0, 1.0, y.size)
    hidden = linear if hidden_noise is None else y + rng.normal(0, hidden_noise, y.size)
    gap = average_precision_score(y, hidden) - average_precision_score(y, linear)
    error = gap_error(y, linear, hidden, seed=0)
    assert (gap > error) == richer_wins
    assert error == 0 if hidden_noise is None else error > 0


@pytest.mark.parametrize("case, why", [("population", "population = 4"), ("classes", "three or more classes")])
def test_auto_depth_is_one_hidden_layer_without_a_probe(tiny_config, tmp_path, case, why):
    """Check that hidden_layers = auto is one hidden layer, unmeasured, in populations (which hold one hidden layer)
    and for three or more classes (the probe ranks one class)."""
    from sweep.study.runner import sized_for
    from tests.conftest import class_table

    overrides = {"population": 4}
    if case == "classes":
        class_table().to_csv(tmp_path / "classes.csv", index=False)
        overrides = {"data": str(tmp_path / "classes.csv")}
    config = tiny_config(hidden_layers="auto", **overrides)
    sized, depth = sized_for(config, load_dataset(config))
    assert sized.hidden_layers == 1 and why in depth["why"] and "linear_ap" not in depth


def test_a_resumed_auto_depth_keeps_the_depth_its_study_stored(tiny_config):
    """Check that resuming a study with hidden_layers = auto goes on with the depth the study was created with,
    without measuring again."""
    from sweep.study.runner import run_sweep, sized_for

    run_sweep(tiny_config(trials=1, hidden_layers=1))
    config = tiny_config(hidden_layers="auto")
    sized, depth = sized_for(config, load_dataset(config))
    assert sized.hidden_layers == 1 and depth is None
