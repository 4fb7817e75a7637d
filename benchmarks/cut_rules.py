"""Where to cut with few positives: rules for the shipped threshold, measured on the same models and rows.

    python benchmarks/cut_rules.py --tables ... --seeds 0 1 ... --arrays DIR      # collect (resumable, shareable)
    python benchmarks/cut_rules.py --arrays DIR [DIR ...] [--group choose|confirm|all]   # compare the rules

Collect: for each (table, split seed), one default `sweep run` (30 trials, 50 epochs) and the default export's
retrain at the best trial's own threshold (`--threshold-rule trial`); it saves the judged models' pooled validation
(out-of-fold) scores with their labels and fold numbers, the shipped models' test scores, the shipped threshold, and
scikit-learn's class-balanced logistic regression with a cross-validated F1 threshold on the same test rows
(benchmarks/real_tables.py's reference). Every rule below then
cuts the same shipped scores, so their differences are the rule's alone:

- shipped: the best trial's own threshold (`sweep export --threshold-rule trial`);
- tuned: the cut with the best F1 on the pooled validation scores, tried between every two distinct scores (as
  threshold_search = tuned chooses a trial's own);
- fold mean: the best mean of per-fold F1 curves (as scikit-learn's TunedThresholdClassifierCV averages its folds);
- bagged: the median over bootstrap resamples of the validation rows of each resample's best threshold;
- smoothed: the best F1 averaged over those bootstrap resamples;
- expected: the cut that maximises the expected F1 under the calibrated probabilities of the validation rows
  (Jansche 2007; Nan et al. 2012's plug-in rule; sweep.handover.calibration's Platt map);
- generous: the lowest cut whose F1 is within one bootstrap standard error of the best (the sweep's losses to the
  logistic regression came with fewer flags, so: does flagging more where the noise allows help?);
- switches between shipped and fold mean: "fold mean beyond noise" where the fold-mean cut's pooled validation F1
  beats the shipped cut's by more than one bootstrap standard error of the gap; "fold mean from N" where the
  validation rows hold N positives or more (from 200 is `sweep export`'s default, `--threshold-rule auto`).

Compare: mean test F1 and flag rate per rule, its paired difference from `shipped` (t interval over the pairs), and
"ranks better, decides worse" against the logistic regression per table, by group; then, per switch, the pairs where
it moved the cut and the F1 difference on those alone. Several --arrays folders (other split seeds) pool.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402
from decisions import sweep_config  # noqa: E402
from tables import BUILDERS, GROUPS  # noqa: E402

_threads = os.environ.get("OMP_NUM_THREADS")
from real_tables import Row, features, reference_row, test_rows  # noqa: E402

if _threads is None:  # real_tables limits its references to one thread; the sweep here runs as `sweep run` would
    os.environ.pop("OMP_NUM_THREADS", None)

BOOTSTRAPS = 200


def collect(table: str, seed: int, args, work: Path, out: Path) -> None:
    """One sweep and its default export's retrain; the arrays every rule needs, saved to `out`."""
    import pandas as pd

    from sweep.handover.retrain import retrain_best
    from sweep.study.runner import run_sweep

    config = sweep_config(table, seed, args.trials, args.epochs, work)
    storage, csv = config.storage, config.data
    started = time.perf_counter()
    run_sweep(config)
    found = retrain_best(storage, config.study, threshold_rule="trial")
    seconds = time.perf_counter() - started
    plan = found.dataset.validation
    fold_of = np.zeros(len(plan.y), dtype=np.int64)
    if plan.kind == "cv":
        for number, fold in enumerate(plan.folds):
            fold_of[fold.slots] = number
    frame = pd.read_csv(csv)
    y = frame["label"].to_numpy()
    rest, test = test_rows(y, seed)
    if not np.array_equal(np.sort(found.dataset.rows.test), test):
        raise SystemExit(f"{table} seed {seed}: the study's test rows are not the benchmark's")
    order = np.argsort(found.dataset.rows.test, kind="stable")
    X, numeric, categorical = features(frame)
    logistic = reference_row("logistic", X, y, rest, test, numeric, categorical, Row(table, seed, 0, 0, 0, ""))
    np.savez(
        out,
        val_scores=found.validation_scores,
        val_y=plan.y,
        fold_of=fold_of,
        test_scores=np.asarray(found.ensemble.scores(found.test.X), dtype=np.float64).ravel()[order],
        test_y=found.test.y[order],
        threshold=found.threshold,
        weight=found.params.minority_weight,
        fell_back=found.fallback is not None,
        logistic_scores=logistic.scores,
        logistic_threshold=logistic.threshold,
        seconds=seconds,
    )


# ---------------------------------------------------------------- the rules


def _cuts(scores: np.ndarray) -> np.ndarray:
    distinct = np.unique(scores)
    return np.concatenate([(distinct[1:] + distinct[:-1]) / 2, [distinct[-1] + 1e-9]])


def f1_curve(y: np.ndarray, scores: np.ndarray, cuts: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """F1 at each cut (flag = score >= cut); with `weights` (resamples x rows of multiplicities), one curve per row.
    By hand: the bootstrap rules need every cut of 200 resamples at once, where sklearn's precision_recall_curve
    takes one set of sample weights a call."""
    w = np.ones((1, len(y))) if weights is None else weights
    order = np.argsort(scores)
    sorted_scores = scores[order]
    positions = np.searchsorted(sorted_scores, cuts, side="left")  # rows below each cut
    tail_all = np.cumsum(w[:, order][:, ::-1], axis=1)[:, ::-1]
    tail_tp = np.cumsum((w * y)[:, order][:, ::-1], axis=1)[:, ::-1]
    tail_all = np.concatenate([tail_all, np.zeros((len(w), 1))], axis=1)[:, positions]
    tail_tp = np.concatenate([tail_tp, np.zeros((len(w), 1))], axis=1)[:, positions]
    positives = (w * y).sum(axis=1, keepdims=True)
    denominator = tail_all + positives
    return np.where(denominator > 0, 2 * tail_tp / np.maximum(denominator, 1e-300), 0.0)


def bootstrap_weights(y: np.ndarray, seed: int) -> np.ndarray:
    """Stratified bootstrap multiplicities (BOOTSTRAPS x rows): the resamples of the test intervals' bootstrap."""
    from sweep.metrics import _stratified_counts

    return _stratified_counts(np.asarray(y, dtype=np.float64), BOOTSTRAPS, seed)


def rule_tuned(s, y, folds, weight):
    cuts = _cuts(s)
    return float(cuts[np.argmax(f1_curve(y, s, cuts)[0])])


def rule_fold_mean(s, y, folds, weight):
    cuts = _cuts(s)
    if folds.max() == 0:
        return rule_tuned(s, y, folds, weight)
    curves = [f1_curve(y[folds == k], s[folds == k], cuts)[0] for k in np.unique(folds)]
    return float(cuts[np.argmax(np.mean(curves, axis=0))])


def rule_bagged(s, y, folds, weight):
    cuts = _cuts(s)
    curves = f1_curve(y, s, cuts, bootstrap_weights(y, 0))
    return float(np.median(cuts[np.argmax(curves, axis=1)]))


def rule_smoothed(s, y, folds, weight):
    cuts = _cuts(s)
    curves = f1_curve(y, s, cuts, bootstrap_weights(y, 0))
    return float(cuts[np.argmax(curves.mean(axis=0))])


def rule_expected(s, y, folds, weight):
    from sweep.handover.calibration import fit_calibration

    p = fit_calibration(s, y, weight)(s)
    order = np.argsort(-s, kind="stable")
    top = np.cumsum(p[order])
    k = np.arange(1, len(s) + 1)
    expected = 2 * top / (k + p.sum())
    best = int(np.argmax(expected))
    ordered = s[order]
    return float((ordered[best] + ordered[best + 1]) / 2) if best + 1 < len(s) else float(ordered[best])


def rule_generous(s, y, folds, weight):
    """The lowest cut whose F1 is within one bootstrap standard error of the best (flag more where it costs no
    more than the noise)."""
    cuts = _cuts(s)
    curve = f1_curve(y, s, cuts)[0]
    best = int(np.argmax(curve))
    spread = f1_curve(y, s, cuts[best : best + 1], bootstrap_weights(y, 0))[:, 0].std()
    return float(cuts[np.flatnonzero(curve >= curve[best] - spread)].min())


def rule_fold_mean_beyond_noise(s, y, folds, weight, shipped):
    """The fold-mean cut where its F1 on the pooled validation scores beats the shipped cut's by more than one
    bootstrap standard error of the paired gap, else the shipped cut (the one-standard-error rule, as for depth)."""
    cut = rule_fold_mean(s, y, folds, weight)
    both = np.array([cut, shipped])
    at = f1_curve(y, s, both)[0]
    resampled = f1_curve(y, s, both, bootstrap_weights(y, 0))
    gain, spread = at[0] - at[1], (resampled[:, 0] - resampled[:, 1]).std()
    return cut if gain > spread else shipped


def fold_mean_from(positives: int):
    """The fold-mean cut where the validation rows hold at least `positives` positives, else the shipped cut."""

    def rule(s, y, folds, weight, shipped):
        return rule_fold_mean(s, y, folds, weight) if y.sum() >= positives else shipped

    return rule


RULES = {
    "tuned": rule_tuned,
    "fold mean": rule_fold_mean,
    "bagged": rule_bagged,
    "smoothed": rule_smoothed,
    "expected": rule_expected,
    "generous": rule_generous,
}
SWITCHES = {"fold mean beyond noise": rule_fold_mean_beyond_noise} | {
    f"fold mean from {n}": fold_mean_from(n) for n in (50, 100, 150, 200, 300)
}


def evaluate(path: Path) -> dict:
    from sweep.metrics import average_precision, threshold_metrics

    a = np.load(path)
    s, y, folds, weight = a["val_scores"], a["val_y"].astype(int), a["fold_of"], float(a["weight"])
    shipped = float(a["threshold"])
    thresholds = {"shipped": shipped} | {n: rule(s, y, folds, weight) for n, rule in RULES.items()}
    thresholds |= {n: rule(s, y, folds, weight, shipped) for n, rule in SWITCHES.items()}
    test_y = a["test_y"].astype(int)
    row = {"ap": average_precision(test_y, a["test_scores"]), "positives": int(y.sum())}
    for name, threshold in thresholds.items():
        found = threshold_metrics(test_y, a["test_scores"], threshold)
        judged = threshold_metrics(y, s, threshold)
        row[name] = {
            "f1": found["f1"],
            "flag_rate": found["flag_rate"],
            "judged_flag_rate": judged["flag_rate"],
            "threshold": threshold,
        }
    lr = threshold_metrics(test_y, a["logistic_scores"], float(a["logistic_threshold"]))
    row["logistic"] = {"f1": lr["f1"], "flag_rate": lr["flag_rate"]}
    row["logistic_ap"] = average_precision(test_y, a["logistic_scores"])
    return row


def compare(folders: list[Path], tables: list[str]) -> None:
    rows = {}
    for path in sorted(p for folder in folders for p in folder.glob("*.npz")):
        table, _, seed = path.stem.rpartition("-")
        if table in tables:
            rows[(table, int(seed))] = evaluate(path)
    names = ["shipped", *RULES, *SWITCHES]
    print(f"{len(rows)} (table, split) pairs over {len({t for t, _ in rows})} tables\n")
    print(
        "| rule | mean test F1 | mean flag rate | F1 - shipped [95% t] | F1 - logistic [95% t] | "
        "ranks better, decides worse |"
    )
    print("|---|---|---|---|---|---|")
    for name in names:
        f1 = [r[name]["f1"] for r in rows.values()]
        diff = t_interval([r[name]["f1"] - r["shipped"]["f1"] for r in rows.values()])
        vs_lr = t_interval([r[name]["f1"] - r["logistic"]["f1"] for r in rows.values()])
        worse = []
        for table in dict.fromkeys(t for t, _ in rows):
            mine = [r for (t, _), r in rows.items() if t == table]
            if np.mean([r["ap"] for r in mine]) >= np.mean([r["logistic_ap"] for r in mine]) and np.mean(
                [r[name]["f1"] for r in mine]
            ) < np.mean([r["logistic"]["f1"] for r in mine]):
                worse.append(table)
        rate = np.mean([r[name]["flag_rate"] for r in rows.values()])
        print(
            f"| {name} | {np.mean(f1):.3f} | {rate:.3f} | {diff[0]:+.3f} [{diff[1]:+.3f}, {diff[2]:+.3f}] | "
            f"{vs_lr[0]:+.3f} [{vs_lr[1]:+.3f}, {vs_lr[2]:+.3f}] | {len(worse)}: {', '.join(worse)} |"
        )
    print("\nPer table, mean test F1 (flag rate) over its splits:\n")
    print("| table | splits | positives (validation) | logistic | " + " | ".join(names) + " |")
    print("|---|---|---|---|" + "---|" * len(names))
    for table in dict.fromkeys(t for t, _ in rows):
        mine = [r for (t, _), r in rows.items() if t == table]
        cells = [
            f"{np.mean([r[n]['f1'] for r in mine]):.3f} ({np.mean([r[n]['flag_rate'] for r in mine]):.3f})"
            for n in ["logistic", *names]
        ]
        print(f"| {table} | {len(mine)} | {mine[0]['positives']} | " + " | ".join(cells) + " |")
    print("\nWhere each switch moved the cut (the pairs whose threshold is not the shipped one):\n")
    print("| rule | pairs moved | tables | F1 - shipped on those pairs [95% t] |")
    print("|---|---|---|---|")
    for name in SWITCHES:
        moved = {key: r for key, r in rows.items() if r[name]["threshold"] != r["shipped"]["threshold"]}
        gap = t_interval([r[name]["f1"] - r["shipped"]["f1"] for r in moved.values()]) if len(moved) > 1 else None
        shown = f"{gap[0]:+.4f} [{gap[1]:+.4f}, {gap[2]:+.4f}]" if gap else "-"
        print(f"| {name} | {len(moved)} | {len({t for t, _ in moved})} | {shown} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(BUILDERS), default=None, help="default: those of --group")
    parser.add_argument("--group", choices=list(GROUPS), default="all")
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="collect these splits (else compare)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--arrays",
        type=Path,
        nargs="+",
        required=True,
        help="one .npz per (table, seed); shared, resumed (collect: the first folder; compare: every one, pooled)",
    )
    args = parser.parse_args()
    tables = args.tables or list(GROUPS[args.group])
    print(machine())
    if args.seeds is None:
        compare(args.arrays, tables)
        return
    arrays = args.arrays[0]
    arrays.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for seed in args.seeds:
            for table in tables:
                out = arrays / f"{table}-{seed}.npz"
                claim = out.with_suffix(".claimed")
                if out.exists() or claim.exists():
                    continue
                claim.write_text("")
                started = time.perf_counter()
                collect(table, seed, args, Path(folder), out)
                claim.unlink()
                print(f"{table} seed {seed}: {time.perf_counter() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
