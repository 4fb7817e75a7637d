"""Is `probability` a probability? Brier score and log loss on test rows of the raw score, the class-weight prior
correction, and the correction followed by isotonic regression or Platt scaling fitted on validation scores.

    python benchmarks/calibration.py [--trials 50] [--epochs 50] [--tables digits_8 diabetes breast_cancer]
                                     [--reference-cv] [--weights 1 10 100 1000] [--out FILE]
    python benchmarks/calibration.py --quick      # smoke run: 6 trials, 5 epochs, one table

What is measured, for each study:

- the study: `sweep run` of studies/reference.toml (the tutorial's seed data, its 20,000 test rows; 50 trials of
  50 epochs unless --trials/--epochs say otherwise; --reference-cv adds the same with 5-fold trials), and of
  sklearn-bundled tables from benchmarks/tables.py (the defaults but --trials/--epochs; these are small, so the
  automatic rule cross-validates their trials with 5 folds);
- the model: what `sweep export` does, in process (sweep.handover.retrain.retrain_best): the best trial retrained
  from its seed, whose pooled validation scores (out-of-fold for cross-validated trials, the validation part otherwise)
  are the only rows any calibration is fitted on, and the configuration refit on all non-test rows, whose test
  scores are calibrated and judged;
- each output on the test rows: mean, Brier score and log loss (probabilities clipped to [1e-12, 1 - 1e-12]),
  with 95% stratified bootstrap intervals (1,000 resamples, seed 0; sweep.metrics.bootstrap_mean_intervals), and
  "constant" (the positive rate of the non-test rows predicted for every row) as the floor any output must beat.

--weights adds fixed minority weights on the reference data (no search): the builtin network at the reference's
width 8 trained on the training part with each weight, calibrated on the validation part, judged on test rows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import machine  # noqa: E402
from tables import BUILDERS, write_table  # noqa: E402

from sweep.handover.calibration import METHODS, fit_calibration, probability_scores  # noqa: E402

QUICK = {"trials": 6, "epochs": 5, "tables": ["digits_8"]}
OUTPUTS = ("constant", "raw", "corrected", "corrected + isotonic", "corrected + Platt")
_FIT = {"corrected": "prior", "corrected + isotonic": "isotonic", "corrected + Platt": "platt"}
assert set(_FIT.values()) == set(METHODS)


def outputs(
    raw_test: np.ndarray, val_scores: np.ndarray, val_y: np.ndarray, weight: float, prior: float
) -> dict[str, np.ndarray]:
    """Each output's test probabilities: calibrations fitted on (val_scores, val_y) only."""
    found = {"constant": np.full(len(raw_test), prior), "raw": raw_test.astype(np.float64)}
    for name, method in _FIT.items():
        found[name] = fit_calibration(val_scores, val_y, weight, method)(raw_test)
    return found


def rows_of(label: str, detail: str, y_test: np.ndarray, found: dict[str, np.ndarray]) -> list[str]:
    lines = []
    for name in OUTPUTS:
        s = probability_scores(y_test, found[name])
        b, ll = s["intervals"]["brier"], s["intervals"]["log_loss"]
        lines.append(
            f"| {label} | {detail} | {name} | {s['mean_probability']:.4f} | {s['brier']:.4f} [{b[0]:.4f}, {b[1]:.4f}] "
            f"| {s['log_loss']:.4f} [{ll[0]:.4f}, {ll[1]:.4f}] |"
        )
    return lines


def study_rows(label: str, values: dict, work: Path) -> tuple[list[str], dict]:
    """Sweep, retrain as export does, and the rows of every output; plus a summary for the verdict."""
    from sweep.config import resolve_config
    from sweep.handover.retrain import retrain_best
    from sweep.models.network import score
    from sweep.study.runner import run_sweep

    storage = f"sqlite:///{work / 'calibration.db'}"
    values = dict(values)
    config_file = values.pop("config_file", None)
    config = resolve_config(values | {"storage": storage, "study": label}, config_file=config_file, env={})
    started = time.perf_counter()
    run_sweep(config)
    found = retrain_best(storage, label)
    plan, w = found.dataset.validation, found.params.minority_weight
    raw = score(found.model, found.test.X)
    y = found.test.y
    prior = float(found.dataset.development.y.mean())
    got = outputs(raw, found.validation_scores, plan.y, w, prior)
    fitted = f"{plan.n_splits}-fold out-of-fold" if plan.kind == "cv" else "validation part"
    detail = (
        f"w 1:{w:.3g}, {len(y)} test rows / {int(y.sum())} positives; fitted on {fitted} "
        f"({len(plan.y)} rows / {int(plan.y.sum())} positives)"
    )
    print(f"  {label}: {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)
    return rows_of(label, detail, y, got), {name: probability_scores(y, p) for name, p in got.items()}


def weight_rows(weights: list[float], epochs: int) -> tuple[list[str], list[dict]]:
    """The builtin network (width 8) at fixed weights on the reference split: trained on the training part,
    calibrated on the validation part, judged on test rows."""
    from sweep.config import resolve_config
    from sweep.data import load_dataset
    from sweep.models.network import TrainSettings, score, train_model

    config = resolve_config({"cv": 0}, config_file=HERE.parent / "studies" / "reference.toml", env={})
    dataset = load_dataset(config)
    test = dataset.test_split(dataset.preprocessor)
    prior = float(dataset.train.y.mean())
    lines, summaries = [], []
    for w in weights:
        settings = TrainSettings(epochs, config.batch_size, config.learning_rate, 1, config.seed)
        model, _ = train_model(dataset.train.X, dataset.train.y, 8, {0: 1.0, 1: float(w)}, settings)
        got = outputs(score(model, test.X), score(model, dataset.holdout.X), dataset.holdout.y, w, prior)
        detail = f"fixed w 1:{w:g}, width 8, {epochs} epochs; fitted on the validation part"
        lines += rows_of("seed, fixed weight", detail, test.y, got)
        summaries.append({name: probability_scores(test.y, p) for name, p in got.items()})
        print(f"  fixed weight {w:g} done", file=sys.stderr, flush=True)
    return lines, summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--tables", nargs="*", choices=list(BUILDERS), default=["digits_8", "diabetes", "breast_cancer"]
    )
    parser.add_argument(
        "--seeds", nargs="+", type=int, default=[0], help="split (and trial) seeds of the table studies"
    )
    parser.add_argument("--no-reference", action="store_true", help="leave out the reference study")
    parser.add_argument(
        "--reference-cv", action="store_true", help="also the reference with 5-fold cross-validated trials"
    )
    parser.add_argument(
        "--weights", nargs="*", type=float, default=[], help="fixed minority weights on the reference split"
    )
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    parser.add_argument("--out", type=Path, help="also write the markdown to this file")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs, args.tables = QUICK["trials"], QUICK["epochs"], QUICK["tables"]
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="calibration-"))
    reference = {
        "config_file": HERE.parent / "studies" / "reference.toml",
        "trials": args.trials,
        "epochs": args.epochs,
    }
    studies = [] if args.no_reference else [("reference-f1", reference | {"cv": 0})]
    if args.reference_cv:
        studies.append(("reference-f1-cv5", reference | {"cv": 5}))
    for name in args.tables:
        path = str(write_table(name, work))
        for seed in args.seeds:
            label = name if seed == 0 else f"{name} (seed {seed})"
            studies.append(
                (label, {"data": path, "target": "label", "trials": args.trials, "epochs": args.epochs, "seed": seed})
            )
    lines, summaries = [], []
    for label, values in studies:
        found, summary = study_rows(label, values, work)
        lines += found
        summaries.append(summary)
    if args.weights:
        found, more = weight_rows(args.weights, args.epochs)
        lines += found
        summaries += more
    header = [
        f"Machine: {machine()}",
        f"Settings: {args.trials} trials, {args.epochs} epochs per study, table seeds "
        f"{' '.join(map(str, args.seeds))}; {time.perf_counter() - started:.0f} s in all",
        "",
        "| study | model and rows | output | mean | Brier [95%] | log loss [95%] |",
        "|---|---|---|---|---|---|",
    ]
    verdict = [
        "",
        f"Over the {len(summaries)} studies (lower is better; ratios are geometric means of output / corrected):",
        "",
        "| output | mean Brier | mean log loss | Brier / corrected | log loss / corrected | lowest Brier | lowest log "
        "loss | worst log loss / constant's |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fitted = OUTPUTS[1:]
    for name in fitted:

        def ratio(key: str, name: str = name) -> float:
            return float(np.exp(np.mean([np.log(s[name][key] / s["corrected"][key]) for s in summaries])))

        wins = {
            key: sum(min(fitted, key=lambda n: s[n][key]) == name for s in summaries) for key in ("brier", "log_loss")
        }
        worst = max(s[name]["log_loss"] / s["constant"]["log_loss"] for s in summaries)
        verdict.append(
            f"| {name} | {np.mean([s[name]['brier'] for s in summaries]):.4f} | "
            f"{np.mean([s[name]['log_loss'] for s in summaries]):.4f} | {ratio('brier'):.3f} | {ratio('log_loss'):.3f} "
            f"| {wins['brier']} | {wins['log_loss']} | {worst:.2f} |"
        )
    text = "\n".join(header + lines + verdict)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
