"""Your own Keras model (`--model PATH.py:FUNCTION`): what sweep's bookkeeping costs per trial, whether memory
stays flat over a sweep, and what the exported model gains on the test rows, on the digits example
(sweep.data.examples.digits_arrays(): digit 8 against the rest, eights subsampled to 3% of the rows) with
studies/models.py:digits_cnn.

    python benchmarks/user_model.py [--rounds 3] [--trials 5] [--memory-trials 30] [--quality-trials 24]
                                    [--quality-epochs 20] [--seeds 3] [--large-test 0.4]

1. Overhead: in one process, interleaved `--rounds` times: a `--trials`-trial `run_sweep` (fresh SQLite study,
   filters=8 and dropout=0.2 fixed, minority weight 1-100 and threshold 0.05-0.95 searched, pruner none, 10
   epochs, batch 32, one validation split), then one bare `model.fit` per trial of that sweep: the same
   builder, compile (Adam at the config's rate, binary cross-entropy), rows (the validation split's training
   rows), epochs, batch size, seed and class weight. Sweep's seconds per trial are the whole run_sweep (data,
   study creation, builder check, asks, per-epoch validation scoring and reports, tells) over its trials; the
   bare fit's are build + compile + fit. Sweep's parts are timed by wrapping its functions.
2. Memory: resident memory after each trial of one `--memory-trials`-trial sweep (the digits-cnn.toml space,
   10 epochs, pruner none), with the size of keras_fit's tensor cache.
3. Quality: the digits-cnn.toml sweep (`--quality-trials` x `--quality-epochs`), exported with export_best
   (refit on all non-test rows), against the same CNN (the best trial's params) refit on the same rows with
   scikit-learn's "balanced" class weights and a threshold tuned for the objective on the study's own validation
   (sweep.reading.report.network_balanced_tuned), with balanced weights read at 0.5 and with none at 0.5, on the
   same test rows: 95% stratified bootstrap intervals and paired F1 differences. Repeated with `--large-test` as
   test share.
Prints markdown tables (paste them into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import numpy as np  # noqa: E402
from common import (  # noqa: E402
    FitTime,
    machine,
    resident_mb,
    sqlite_storage,
    study_config,
    timed_sweep,
    tutorial_fit,
)

import sweep.models.keras_fit as keras_fit  # noqa: E402
import sweep.study.reports as reports_module  # noqa: E402
from sweep.data import load_dataset  # noqa: E402
from sweep.data.examples import digits_arrays  # noqa: E402
from sweep.runtime import tensorflow  # noqa: E402
from sweep.study.runner import run_sweep  # noqa: E402

BUILDER = f"{ROOT / 'studies' / 'models.py'}:digits_cnn"
TOML = ROOT / "studies" / "digits-cnn.toml"
FIXED = {"filters": 8, "dropout": 0.2}
EPOCHS, BATCH = 10, 32


class Parts:
    """Seconds spent in sweep's functions (and Optuna's ask and tell) while a sweep runs, by wrapping the module
    attributes it calls (a benchmark may; the package never does)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)

    def install(self) -> None:
        import keras
        import optuna.study._optimize
        import optuna.study._tell

        import sweep.study.figures

        for module, attribute, label in (
            (keras_fit, "fit_user_model", "fit_user_model"),
            (keras_fit, "build_user_model", "build_user_model"),
            (keras_fit, "score_rows", "score_rows"),
            (reports_module, "report_epoch", "report_epoch"),
            (sweep.study.figures, "trial_figures", "figures"),
            (optuna.study.Study, "ask", "ask/tell"),
        ):
            setattr(module, attribute, self._timed(label, getattr(module, attribute)))
        clear = keras.backend.clear_session
        trial_clear, check_clear = (
            self._timed("clear_session", clear),
            self._timed("clear_session (builder check)", clear),
        )
        # A trial clears with free_memory=False; the builder check before the first trial clears fully.
        keras.backend.clear_session = lambda *a, **k: (
            trial_clear if k.get("free_memory", True) is False else check_clear
        )(*a, **k)
        tell = self._timed("ask/tell", optuna.study._tell._tell_with_warning)
        optuna.study._optimize._tell_with_warning = optuna.study.study._tell_with_warning = tell

    def _timed(self, label, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.calls[label] += 1

        return wrapper

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


def digits_file(folder: str) -> str:
    x, y = digits_arrays()
    path = f"{folder}/digits.npz"
    np.savez_compressed(path, x=x, y=y)
    return path


def overhead_config(folder: str, data: str, name: str, trials: int):
    values = {
        "data": data,
        "model": BUILDER,
        "space": [f"{k}={v}" for k, v in FIXED.items()],
        "trials": trials,
        "epochs": EPOCHS,
        "batch_size": BATCH,
        "pruner": "none",
        "cv": 0,
        "minority_weight": [1.0, 100.0],
        "threshold": [0.05, 0.95],
    }
    return study_config(sqlite_storage(folder, name), name, values)


def bare_fit(
    X,
    y,
    input_shape,
    class_weight: dict,
    seed: int,
    learning_rate: float,
    build_optimizer: bool = False,
    validation: tuple | None = None,
) -> FitTime:
    """common.tutorial_fit of the digits CNN (FIXED params, EPOCHS, BATCH) after an untimed clear_session."""
    import keras

    from sweep.models.builder import load_builder

    builder = load_builder(BUILDER)
    keras.backend.clear_session(free_memory=False)  # not timed: a bare fit in its own script needs none
    return tutorial_fit(
        X,
        y,
        class_weight,
        seed=seed,
        epochs=EPOCHS,
        batch_size=BATCH,
        build=lambda: builder(dict(FIXED), tuple(input_shape)),
        learning_rate=learning_rate,
        build_optimizer=build_optimizer,
        validation=validation,
    )


class NoFigures:
    """Diagnostic only: a sweep that draws no figures for new bests (what the dashboard shows)."""

    def __enter__(self):
        from sweep.study.figures import FigureWorker

        self.saved = FigureWorker.submit_if_best
        FigureWorker.submit_if_best = lambda *args, **kwargs: None

    def __exit__(self, *exc):
        from sweep.study.figures import FigureWorker

        FigureWorker.submit_if_best = self.saved


def sweep_parts(config, parts: Parts) -> dict:
    """One whole run_sweep (common.timed_sweep): wall and CPU seconds per trial, and its parts per trial."""
    import optuna

    parts.reset()
    timing = timed_sweep(config)
    seconds, cpu_seconds, ran = timing.seconds, timing.cpu, timing.result.ran_now
    study = optuna.load_study(study_name=config.study, storage=config.storage)
    first_start = min(t.datetime_start.timestamp() for t in study.trials) - timing.started_wall
    p, calls = dict(parts.seconds), dict(parts.calls)
    found = {
        "seconds": seconds / ran,
        "cpu": cpu_seconds / ran,
        "trials": sorted(study.trials, key=lambda t: t.number),
        "training": (p["fit_user_model"] - p.get("score_rows", 0)) / ran,
        "build": p["build_user_model"] / ran,
        "scoring": p.get("score_rows", 0) / ran,
        "reports": p.get("report_epoch", 0) / ran,
        "clear_session": p.get("clear_session", 0) / ran,
        "ask/tell": p.get("ask/tell", 0) / ran,
        "start": first_start / ran,
        "figures": p.get("figures", 0) / ran,
        "figure_calls": calls.get("figures", 0),
        "scoring_calls": calls.get("score_rows", 0) // ran,
        "report_calls": calls.get("report_epoch", 0) // ran,
    }
    found["after_start"] = found["seconds"] - found["start"]
    found["rest"] = (
        found["seconds"]
        - found["training"]
        - found["scoring"]
        - found["clear_session"]
        - found["ask/tell"]
        - found["start"]
    )
    return found


def overhead(folder: str, data: str, rounds: int, trials: int, parts: Parts) -> None:
    dataset = load_dataset(overhead_config(folder, data, "rows", 1))
    plan = dataset.validation
    fold = plan.folds[0]
    X_fit, y_fit = plan.X_fit[fold.fit_rows], plan.y_fit[fold.fit_rows]
    validation = (plan.X_fit[fold.val_rows], plan.y_fit[fold.val_rows])
    # Warm-up (not timed): TensorFlow's first model, first traces and first study in this process.
    run_sweep(overhead_config(folder, data, "warm", 1))
    bare_fit(X_fit, y_fit, dataset.input_shape, {0: 1.0, 1: 10.0}, 0, 0.001)

    sweeps, quiet, bare, builds, bare_cpu, prebuilt, prebuilt_cpu, validated = [], [], [], [], [], [], [], []
    for repeat in range(rounds):  # interleaved: every path sees the same machine
        swept = sweep_parts(overhead_config(folder, data, f"r{repeat}", trials), parts)
        sweeps.append(swept)
        for trial in swept["trials"]:  # the bare fits: each sweep trial's class weight and seed
            weights = {int(k): float(v) for k, v in trial.user_attrs["class_weight"].items()}
            seed = trial.user_attrs["train_settings"]["seed"]
            tutorial = bare_fit(X_fit, y_fit, dataset.input_shape, weights, seed, 0.001)
            bare.append(tutorial.seconds)
            builds.append(tutorial.built)
            bare_cpu.append(tutorial.cpu)
            like_sweep = bare_fit(X_fit, y_fit, dataset.input_shape, weights, seed, 0.001, True)
            prebuilt.append(like_sweep.seconds)
            prebuilt_cpu.append(like_sweep.cpu)
            validated.append(
                bare_fit(X_fit, y_fit, dataset.input_shape, weights, seed, 0.001, True, validation).seconds
            )
        with NoFigures():
            quiet.append(sweep_parts(overhead_config(folder, data, f"q{repeat}", trials), parts))

    def med(runs, key):
        return statistics.median(run[key] for run in runs)

    fit, swept, fit_cpu = statistics.median(bare), med(sweeps, "seconds"), statistics.median(bare_cpu)
    print(
        f"\n### 1. Overhead: seconds per trial, digits CNN (filters 8, dropout 0.2), {len(X_fit)} training rows, "
        f"{EPOCHS} epochs, batch {BATCH} ({rounds} interleaved rounds of a {trials}-trial sweep, 2 x {trials} bare "
        f"fits, a {trials}-trial sweep without figures)\n"
    )
    print("| path | wall s/trial median | min-max | vs bare fit | CPU s/trial median | CPU vs bare fit |")
    print("|---|---|---|---|---|---|")
    print(
        f"| bare `model.fit` on numpy rows (build + compile + fit), the tutorial's way | {fit:.3f} | "
        f"{min(bare):.3f}-{max(bare):.3f} | 1.00x | {fit_cpu:.3f} | 1.00x |"
    )
    like, like_cpu = statistics.median(prebuilt), statistics.median(prebuilt_cpu)
    print(
        f"| the same with `optimizer.build` before fit (as sweep's fit does) | {like:.3f} | "
        f"{min(prebuilt):.3f}-{max(prebuilt):.3f} | {like / fit:.2f}x | {like_cpu:.3f} | {like_cpu / fit_cpu:.2f}x |"
    )
    checked = statistics.median(validated)
    print(
        f"| the same, also scoring the validation rows after every epoch (`validation_data`, one batch), as a sweep "
        f"trial does | {checked:.3f} | {min(validated):.3f}-{max(validated):.3f} | {checked / fit:.2f}x | - | - |"
    )
    for label, runs in (
        ("`run_sweep`, whole run / trials", sweeps),
        ("`run_sweep` without new-best figures (diagnostic)", quiet),
    ):
        value, cpu = med(runs, "seconds"), med(runs, "cpu")
        print(
            f"| {label} | {value:.3f} | {min(r['seconds'] for r in runs):.3f}-{max(r['seconds'] for r in runs):.3f} | "
            f"{value / fit:.2f}x | {cpu:.3f} | {cpu / fit_cpu:.2f}x |"
        )
    print(
        f"\nAgainst the bare fit that also scores its validation rows every epoch: sweep {swept / checked:.3f}x wall; "
        f"after the run's start {med(sweeps, 'after_start') / checked:.3f}x; without figures "
        f"{med(quiet, 'seconds') / checked:.3f}x."
    )
    after_start = 100 * (med(sweeps, "after_start") / like - 1)
    print(
        f"Against the bare fit with the optimizer built first (no validation): sweep {100 * (swept / like - 1):+.1f}% "
        f"wall, {100 * (med(sweeps, 'cpu') / like_cpu - 1):+.1f}% CPU; bookkeeping is "
        f"{100 * (swept - like) / swept:.1f}% of sweep's trial; after the run's start {after_start:+.1f}%; "
        f"without figures {100 * (med(quiet, 'seconds') / like - 1):+.1f}%."
    )
    print(
        f"Against the tutorial's bare fit: {100 * (swept / fit - 1):+.1f}% of its wall time "
        f"({100 * (med(sweeps, 'cpu') / fit_cpu - 1):+.1f}% of its CPU time); bookkeeping is "
        f"{100 * (swept - fit) / swept:.1f}% of sweep's trial (goal: at most 10%). Without figures: "
        f"{100 * (med(quiet, 'seconds') / fit - 1):+.1f}% ({100 * (med(quiet, 'cpu') / fit_cpu - 1):+.1f}% CPU). After "
        f"the run's start (from the first trial on): {med(sweeps, 'after_start'):.3f} s/trial, "
        f"{100 * (med(sweeps, 'after_start') / fit - 1):+.1f}%.\n"
    )
    first = sweeps[0]
    print("| part of sweep's trial (median over rounds) | s/trial | share of the trial | bare fit's counterpart |")
    print("|---|---|---|---|")
    rows = (
        (
            "training: build, check, compile, Keras fit (without our per-epoch work)",
            "training",
            f"{fit:.3f} tutorial / {like:.3f} optimizer built first",
        ),
        (
            "  of which build_user_model (builder, probe call, compile)",
            "build",
            f"{statistics.median(builds):.3f} (builder + compile)",
        ),
        (f"per-epoch validation scoring (score_rows, {first['scoring_calls']} calls)", "scoring", "-"),
        (
            f"per-epoch reports (report_epoch: objective, trial.report, should_prune; {first['report_calls']} calls), "
            "on a thread (overlaps the rows above)",
            "reports",
            "-",
        ),
        ("keras.backend.clear_session before the trial", "clear_session", "-"),
        ("Optuna's ask + tell", "ask/tell", "-"),
        ("run start (data, study creation, builder check) / trials", "start", "-"),
        ("rest (suggest, attributes, metrics, the last figures' wait, summary)", "rest", "-"),
        ("figures of new bests, on a background thread (overlaps the rows above)", "figures", "-"),
    )
    for label, key, counterpart in rows:
        value = med(sweeps, key)
        print(f"| {label} | {value:.3f} | {100 * value / swept:.1f}% | {counterpart} |")
    pairs = sum(r["figure_calls"] for r in sweeps)
    print(
        f"\nNew bests drawn (a figure pair each) per {trials}-trial sweep: "
        f"{', '.join(str(r['figure_calls']) for r in sweeps)}; "
        f"{sum(r['figures'] * trials for r in sweeps) / max(1, pairs):.2f} s a pair."
    )


def memory(folder: str, data: str, trials: int) -> None:
    import gc

    values = {"data": data, "model": BUILDER, "trials": trials, "epochs": EPOCHS, "pruner": "none", "cv": 0}
    config = study_config(sqlite_storage(folder, "memory"), "memory", values, config_file=TOML)
    from tensorflow.python.eager import context
    from tensorflow.python.framework import ops

    rss, cached, objects, functions, gradients = [], [], [], [], []

    def record(_study, _trial) -> None:
        rss.append(resident_mb())
        cached.append(len(keras_fit._tensors))
        objects.append(len(gc.get_objects()))
        # Diagnostics (TensorFlow's private registries): functions in the eager context, and the gradients
        # tf.custom_gradient registered in graph mode (tf.distribute's all_reduce of each traced train step).
        functions.append(len(context.context().list_function_names()))
        gradients.append(sum(name.startswith("CustomGradient") for name in ops._gradient_registry._registry))

    seconds = timed_sweep(config, callbacks=[record]).seconds
    print(
        f"\n### 2. Memory: resident MB after each trial, one {trials}-trial sweep (digits-cnn.toml space, {EPOCHS} "
        f"epochs, pruner none; {seconds:.0f} s)\n"
    )
    shown = [n for n in (1, 5, 10, 20, 30, trials) if n <= len(rss)]
    shown = sorted(set(shown))
    print("| after trial | " + " | ".join(str(n) for n in shown) + " |")
    print("|---|" + "---|" * len(shown))
    print("| resident MB | " + " | ".join(f"{rss[n - 1]:.0f}" for n in shown) + " |")
    print("| keras_fit tensor cache entries | " + " | ".join(str(cached[n - 1]) for n in shown) + " |")
    print(
        "| Python objects tracked by gc (thousands) | "
        + " | ".join(f"{objects[n - 1] / 1000:.0f}" for n in shown)
        + " |"
    )
    print("| TensorFlow eager-context functions | " + " | ".join(str(functions[n - 1]) for n in shown) + " |")
    print(
        "| CustomGradient entries in TF's gradient registry | "
        + " | ".join(str(gradients[n - 1]) for n in shown)
        + " |"
    )
    if len(rss) > 6:
        slope = np.polyfit(np.arange(5, len(rss) + 1), np.array(rss[4:]), 1)[0]
        late = np.polyfit(np.arange(10, len(rss) + 1), np.array(rss[9:]), 1)[0] if len(rss) > 11 else float("nan")
        per_trial = (objects[-1] - objects[4]) / (len(rss) - 5)
        print(
            f"\nSlope (least squares) after trial 5: {slope:+.2f} MB/trial; after trial 10: {late:+.2f} MB/trial; "
            f"{per_trial:+.0f} gc-tracked objects a trial."
        )


def quality_config(
    folder: str, data: str, name: str, trials: int, epochs: int, test_fraction: float, cv: int | None = None
):
    values = {"data": data, "model": BUILDER, "trials": trials, "epochs": epochs, "test_fraction": test_fraction}
    return study_config(sqlite_storage(folder, name), name, values | ({} if cv is None else {"cv": cv}), TOML)


def _cell(value: float, interval) -> str:
    return f"{value:.3f} [{interval[0]:.2f}, {interval[1]:.2f}]"


def quality(
    folder: str, data: str, trials: int, epochs: int, seeds: int, test_fraction: float, cv: int | None = None
) -> None:
    from sweep.handover.bundle import load_bundle
    from sweep.handover.export import export_best
    from sweep.metrics import balanced_class_weight, bootstrap_intervals, metrics, paired_f1_difference
    from sweep.models import model_kind
    from sweep.models.network import TrainSettings, score
    from sweep.reading.report import network_balanced_tuned
    from sweep.space import TrialParams

    name = f"quality-{int(round(test_fraction * 100))}-cv{cv}"
    config = quality_config(folder, data, name, trials, epochs, test_fraction, cv)
    timing = timed_sweep(config)
    result, swept = timing.result, timing.seconds
    started = time.perf_counter()
    exported = export_best(config.storage, config.study, f"{folder}/{name}-bundle")
    export_seconds = time.perf_counter() - started
    bundle = load_bundle(exported.out_dir)
    dataset = load_dataset(config)
    X_test, y_test = dataset.test.X, dataset.test.y
    dev = dataset.development
    best = exported.best
    settings = TrainSettings(**best["train_settings"])
    kind = model_kind(config)
    trial_params = TrialParams.from_dict(best["params"], user_model=True)

    def refit(class_weight: dict, seed: int):
        import dataclasses

        model = kind.fit(dev.X, dev.y, trial_params, class_weight, dataclasses.replace(settings, seed=seed))
        return score(model, X_test)

    # The raw network output, which the exported threshold applies to (Bundle.score; predict_proba is calibrated).
    sweep_scores = bundle.score(X_test) if callable(getattr(bundle, "score", None)) else bundle.predict_proba(X_test)
    exported_test = metrics(y_test, sweep_scores, bundle.threshold)
    assert abs(exported_test["f1"] - best["test"]["metrics"]["f1"]) < 1e-9, (
        "bundle scores differ from the export's test metrics"
    )
    balanced = balanced_class_weight(dev.y)

    def fixed(weights: dict, threshold: float):
        return lambda seed: (refit(weights, seed), threshold)

    def tuned(seed: int):
        return network_balanced_tuned(kind, dataset, trial_params, settings, config.goal, seed)

    # label -> (seed -> (test scores, threshold), first seed offset): each variant's runs, each read at its own
    # threshold.
    variants = {
        f"sweep's weight {bundle.best['class_weight']['1']:.3g} and threshold {bundle.threshold:.3f}, other refit "
        "seeds": (
            fixed({0: 1.0, 1: float(best["class_weight"]["1"])}, bundle.threshold),
            1,
        ),
        f"balanced weights ({balanced[0]:.3f} : {balanced[1]:.2f}), threshold tuned on validation": (tuned, 0),
        f"balanced weights ({balanced[0]:.3f} : {balanced[1]:.2f}), threshold 0.5": (fixed(balanced, 0.5), 0),
        "no weights, threshold 0.5": (fixed({0: 1.0, 1: 1.0}, 0.5), 0),
    }
    started = time.perf_counter()
    variant_runs = {}
    for label, (run, first) in variants.items():  # seed = the export's, then the next ones
        variant_runs[label] = [run(settings.seed + offset) for offset in range(first, seeds)]
    variant_seconds = time.perf_counter() - started

    positives = int(y_test.sum())
    print(
        f"\n### 3. Quality on the same test rows, test share {test_fraction:g}{'' if cv is None else f', cv {cv}'}: "
        f"{len(y_test)} test rows, {positives} positives\n"
    )
    judged = (
        f"one validation split of {len(dataset.validation.y)} rows"
        if dataset.validation.kind == "holdout"
        else f"{dataset.validation.n_splits}-fold cross-validation, pooled over {len(dataset.validation.y)} rows"
    )
    print(
        f"Sweep: {result.ran_now} trials x {epochs} epochs (digits-cnn.toml: median pruner, {judged}, "
        f"{int(dataset.validation.y.sum())} positives) in {swept:.0f} s; best trial "
        f"#{best['trial']}: "
        f"{', '.join(f'{k} {v:.3g}' if isinstance(v, float) else f'{k} {v}' for k, v in best['params'].items())}; "
        f"validation F1 {best['validation']['value']:.3f} (reproduced: {exported.reproduced}); export (retrain + refit "
        f"on {len(dev.y)} non-test rows) {export_seconds:.0f} s; the variants {variant_seconds:.0f} s. Refit seed of "
        f"the export: {settings.seed}; variants use it first, then the next {seeds - 1} seeds. The tuned variant "
        f"(sweep.reading.report.network_balanced_tuned) chooses its threshold for {config.objective} on the validation "
        f"scores of the same CNN with balanced weights ({judged}), then refits it on the non-test rows; each seed at "
        "its own threshold.\n"
    )
    print(
        "One model each (the export; each variant at the export's seed), 95% stratified bootstrap intervals (1000 "
        "resamples):\n"
    )
    print("| model | threshold | tp / fp / fn | precision | recall | F1 | flag rate |")
    print("|---|---|---|---|---|---|---|")
    single = [(f"exported sweep model (trial #{best['trial']})", sweep_scores, bundle.threshold)]
    single += [(label, *runs[0]) for label, runs in variant_runs.items() if variants[label][1] == 0]
    for label, scores, threshold in single:
        found = metrics(y_test, scores, threshold)
        ci = bootstrap_intervals(y_test, scores, threshold, seed=0)
        print(
            f"| {label} | {threshold:.3f} | {found['tp']} / {found['fp']} / {found['fn']} | "
            + " | ".join(_cell(found[k], ci[k]) for k in ("precision", "recall", "f1", "flag_rate"))
            + " |"
        )
    if seeds > 1:
        print(
            "\nSeed to seed (mean ± sd over refit seeds, each at its own threshold; the sweep row: the export plus "
            f"{seeds - 1} other seeds):\n"
        )
        print("| model | seeds | precision | recall | F1 | flag rate |")
        print("|---|---|---|---|---|---|")
        rows_of = {
            "sweep's weight and threshold (export + other seeds)": [(sweep_scores, bundle.threshold)]
            + variant_runs[next(iter(variants))]
        }
        rows_of |= {label: variant_runs[label] for label in list(variants)[1:]}
        for label, runs in rows_of.items():
            found = [metrics(y_test, s, threshold) for s, threshold in runs]
            cells = [
                f"{np.mean([r[k] for r in found]):.3f} ± {np.std([r[k] for r in found]):.3f}"
                for k in ("precision", "recall", "f1", "flag_rate")
            ]
            print(f"| {label} | {len(found)} | " + " | ".join(cells) + " |")
    print(
        "\nPaired F1 difference, exported model minus each variant (one stratified bootstrap of the same test rows "
        "for both, 1000 resamples, 95%):\n"
    )
    print("| compared with | seed | threshold | F1 difference | 95% paired interval | verdict |")
    print("|---|---|---|---|---|---|")
    for label in list(variants)[1:]:
        for offset, (scores, threshold) in enumerate(variant_runs[label]):
            d = paired_f1_difference(y_test, sweep_scores, bundle.threshold, scores, threshold)
            verdict = (
                "sweep better" if d["low"] > 0 else ("sweep worse" if d["high"] < 0 else "no difference beyond noise")
            )
            print(
                f"| {label} | {settings.seed + offset} | {threshold:.3f} | {d['difference']:+.3f} | [{d['low']:+.3f}, "
                f"{d['high']:+.3f}] | {verdict} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--trials", type=int, default=10, help="trials per sweep of part 1 (they share the run's start)"
    )
    parser.add_argument("--memory-trials", type=int, default=30)
    parser.add_argument("--quality-trials", type=int, default=24)
    parser.add_argument("--quality-epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3, help="refit seeds of the fixed variants in part 3")
    parser.add_argument("--large-test", type=float, default=0.4, help="test share of part 3's second run (0: skip it)")
    parser.add_argument("--cv", type=int, default=None, help="part 3's folds per trial (default: the toml's cv = 0)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["overhead", "memory", "quality"])
    args = parser.parse_args()
    tensorflow()
    import optuna

    print(f"Machine: {machine()}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    parts = Parts()
    parts.install()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        data = digits_file(folder)
        if "overhead" not in args.skip:
            overhead(folder, data, args.rounds, args.trials, parts)
        if "memory" not in args.skip:
            memory(folder, data, args.memory_trials)
        if "quality" not in args.skip:
            quality(folder, data, args.quality_trials, args.quality_epochs, args.seeds, 0.2, args.cv)
            if args.large_test:
                quality(folder, data, args.quality_trials, args.quality_epochs, args.seeds, args.large_test, args.cv)
    print(f"\n(whole script: {time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
