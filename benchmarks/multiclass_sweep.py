"""Does the exported multi-class sweep beat simpler ways of handling the imbalance, on the same test rows?

Issue 25's end-to-end check, after multiclass_rules.py and multiclass_weights.py measured the rule and the weight on a
logistic regression: here sweep itself runs (the builtin network's softmax head, its searched `minority_weight` and
hidden width, the logit-adjusted rule chosen per trial, `export`), and its exported model is compared, on the test
rows sweep held out, with three comparison rows trained on all non-test rows and read at argmax:

- the same network (the exported trial's hidden width and train settings) with scikit-learn's balanced weights;
- the same network unweighted;
- a class-balanced multinomial logistic regression on the same encoded features;

and with the exported model itself read at argmax (the rule's own gain). For each table and split seed, sweep gets
every row (`seed` = the split seed, `test_fraction` 0.2) and splits off its own stratified test part; the script
finds the same rows with sweep's own split (sweep.data.folds.stratified_split on the class numbers) and checks their
class counts against best.json. The comparison rows use the bundle's own encoding (`bundle.rows`). Prints mean test
macro-F1 and balanced accuracy per table, paired 95% t intervals over the (table, split) pairs and within each table,
and the (table, split) pairs sweep refused or failed on, with their tracebacks.

Tables: multiclass_rules.py's six, and digits_rare_12: digits_rare_5 with digit 4 topped up from 5 to 12 rows, since
sweep refuses a class of fewer than 10 rows (digits_rare_5 itself is kept, and shows that refusal).

    python benchmarks/multiclass_sweep.py --seeds 0 1 2 3 4 5 6 7 8 9 --trials 30

Two settings on the same splits: run one with `--learning-rate 0.001 --save a.json`, the other with `--save b.json
--against a.json`, which adds the paired difference of the exported models' test metrics between the two runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import interval_text, machine, t_interval  # noqa: E402
from multiclass_rules import TABLES, digits_rare  # noqa: E402

from sweep.multiclass import ClassGoal, balanced_weights, class_counts  # noqa: E402

SWEEP = "sweep export"
ARGMAX = "same model, argmax"
BALANCED_NET = "network, balanced weights"
UNWEIGHTED_NET = "network, unweighted"
LOGISTIC = "logistic regression, balanced"
ROWS = (SWEEP, ARGMAX, BALANCED_NET, UNWEIGHTED_NET, LOGISTIC)
COMPARED = (BALANCED_NET, UNWEIGHTED_NET, LOGISTIC)
METRICS = (("f1", "macro-F1"), ("ba", "balanced accuracy"))
TARGET = "label"
RARE_FOUR = 12  # digits_rare_5 has 5 rows of digit 4, and sweep needs 10 of every class (MIN_MINORITY_ROWS)


def digits_rare_12():
    """digits_rare_5 with its digit 4 topped up to RARE_FOUR rows (the first such rows of scikit-learn's digits that it
    lacks), so that sweep accepts it; the other rows are digits_rare_5's."""
    import pandas as pd
    from sklearn.datasets import load_digits

    X, y = digits_rare()
    digits = load_digits()
    kept = {tuple(row) for row in X.to_numpy()[y.to_numpy() == 4]}
    extra = [row for row, label in zip(digits.data, digits.target) if label == 4 and tuple(row) not in kept]
    extra = np.array(extra[: RARE_FOUR - len(kept)])
    X = pd.concat([X, pd.DataFrame(extra)], ignore_index=True)
    return X, pd.concat([y, pd.Series([4] * len(extra))], ignore_index=True)


SWEPT_TABLES = {**TABLES, "digits_rare_12": digits_rare_12}


def frame_of(X, labels):
    """The table as sweep gets it: text column names, the labels as text in column `label`."""
    frame = X.copy()
    frame.columns = [str(c) for c in frame.columns]
    frame[TARGET] = labels.astype(str).to_numpy()
    return frame


def sweep_bundle(frame, seed: int, trials: int, folder: str, options: dict):
    """Run a fresh study on every row (sweep splits off its own test part) and export it; the bundle loaded back."""
    from sweep.api import Sweep

    study = Sweep(
        "builtin",
        data=frame,
        target=TARGET,
        trials=trials,
        storage=f"sqlite:///{folder}/study.db",
        study=f"split-{seed}",
        seed=seed,
        test_fraction=0.2,
        **options,
    )
    study.run()
    return study.export(f"{folder}/bundle")


def scores_of(y: np.ndarray, decided: np.ndarray, k: int) -> dict[str, float]:
    return {
        "f1": ClassGoal("macro_f1").value(y, decided, k),
        "ba": ClassGoal("balanced_accuracy").value(y, decided, k),
    }


def comparison_decisions(bundle, x_rest, y_rest, x_test, k: int) -> dict[str, np.ndarray]:
    """The three comparison rows, trained on the non-test rows, their argmax decisions on the test rows."""
    from sklearn.linear_model import LogisticRegression

    from sweep.models.network import TrainSettings, train_model

    best = bundle.best
    settings = TrainSettings(**(best["train_settings"] | {"epochs": best["refit"]["epochs"]}))
    found = {}
    for row, weights in (
        (BALANCED_NET, balanced_weights(class_counts(y_rest, k))),
        (UNWEIGHTED_NET, dict.fromkeys(range(k), 1.0)),
    ):
        network, _ = train_model(x_rest, y_rest, best["hidden_width"], weights, settings)
        found[row] = np.argmax(network.scores(x_test), axis=1)
    logistic = LogisticRegression(max_iter=2000, class_weight="balanced").fit(x_rest, y_rest)
    found[LOGISTIC] = logistic.predict(x_test)
    return found


def one_split(frame, y: np.ndarray, names: list[str], seed: int, trials: int, options: dict) -> dict:
    """Every row's test macro-F1 and balanced accuracy on one split, and what the sweep chose."""
    from sweep.data.folds import stratified_split

    k = len(names)
    rest, test = stratified_split(y, 0.2, seed)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        bundle = sweep_bundle(frame, seed, trials, folder, options)
    seconds = time.perf_counter() - started
    best = bundle.best
    expected = dict(zip(names, class_counts(y[test], k).tolist()))
    if best["classes"] != names or best["data"]["splits"]["test"]["classes"] != expected:
        raise AssertionError(f"sweep's test part is not the rows found here: {best['data']['splits']['test']}")
    features = frame.drop(columns=[TARGET])
    x_rest, x_test = bundle.rows(features.iloc[rest]), bundle.rows(features.iloc[test])
    raw = bundle.score(features.iloc[test])
    decisions = {SWEEP: bundle.rule.decide(raw), ARGMAX: np.argmax(raw, axis=1)}
    decisions |= comparison_decisions(bundle, x_rest, y[rest], x_test, k)
    found = {row: scores_of(y[test], decided, k) for row, decided in decisions.items()}
    return found | {
        "seconds": seconds,
        "matches_best": abs(found[SWEEP]["f1"] - best["test"]["metrics"]["macro_f1"]) < 1e-9,
        "weight": best["params"]["minority_weight"],
        "width": best["hidden_width"],
        "tau": best["decision_rule"].get("tau") or 0.0,
        "learning_rate": best["train_settings"]["learning_rate"],
        "folds": best["data"]["validation"].get("folds", 0),
        "fallback": best["decision"]["fallback"] is not None,
    }


def run_table(name: str, seeds: list[int], trials: int, failures: list, options: dict) -> list[dict]:
    """One table's splits; a split sweep refuses or fails on is recorded in `failures` (with its traceback), not run."""
    from sweep.data.readers import class_order

    X, labels = SWEPT_TABLES[name]()
    frame = frame_of(X, labels)
    names = class_order(set(frame[TARGET]))
    y = np.array([names.index(v) for v in frame[TARGET]])
    print(f"{name}: {len(y)} rows, classes {dict(zip(names, class_counts(y, len(names)).tolist()))}", flush=True)
    runs = []
    for seed in seeds:
        try:
            runs.append(one_split(frame, y, names, seed, trials, options) | {"seed": seed})
        except Exception:
            failures.append((name, seed, traceback.format_exc()))
            print(f"  seed {seed}: failed, {traceback.format_exc().strip().splitlines()[-1]}", flush=True)
            continue
        print(f"  seed {seed}: {runs[-1]['seconds']:.0f} s, " + cells_of(runs[-1]), flush=True)
    return runs


def cells_of(run: dict) -> str:
    return ", ".join(f"{row} {run[row]['f1']:.3f}" for row in ROWS)


def below(values) -> bool:
    """Whether the paired 95% t interval lies entirely below 0."""
    return len(values) > 1 and t_interval(values)[2] < 0


def print_means(results: dict[str, list[dict]], splits: int, trials: int) -> None:
    print(f"\n### Test macro-F1 (balanced accuracy) per table, mean over up to {splits} splits, {trials} trials\n")
    print("| table | splits | " + " | ".join(ROWS) + " |")
    print("|---" * (len(ROWS) + 2) + "|")
    for name, runs in results.items():
        cells = [
            f"{statistics.mean(r[row]['f1'] for r in runs):.3f} ({statistics.mean(r[row]['ba'] for r in runs):.3f})"
            for row in ROWS
        ]
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")
    print("\n### What the sweep chose (medians over the splits)\n")
    print("| table | minority_weight | hidden width | rule's tau | folds | refit gave way to the judged models |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        print(
            f"| {name} | {statistics.median(r['weight'] for r in runs):.3g} | "
            f"{statistics.median(r['width'] for r in runs):.0f} | {statistics.median(r['tau'] for r in runs):.2f} | "
            f"{statistics.median(r['folds'] for r in runs):.0f} | {sum(r['fallback'] for r in runs)} of {len(runs)} |"
        )


def print_pairs(results: dict[str, list[dict]]) -> None:
    pairs = [run for runs in results.values() for run in runs]
    print(f"\n### Sweep export minus each row, paired over every (table, split), 95% t interval ({len(pairs)} pairs)\n")
    print("| row | macro-F1: sweep - row | balanced accuracy: sweep - row | tables where sweep is below beyond noise |")
    print("|---|---|---|---|")
    for row in (*COMPARED, ARGMAX):
        losses = [
            f"{sum(below([r[SWEEP][m] - r[row][m] for r in runs]) for runs in results.values())} of {len(results)}"
            for m, _ in METRICS
        ]
        print(
            f"| {row} | {interval_text([p[SWEEP]['f1'] - p[row]['f1'] for p in pairs])} | "
            f"{interval_text([p[SWEEP]['ba'] - p[row]['ba'] for p in pairs])} | macro-F1 {losses[0]}, BA {losses[1]} |"
        )
    print("\nThe last row is the rule's own gain: the exported model with its rule minus the same model at argmax.")
    for key, label in METRICS:
        print(f"\n### Sweep export minus each row, per table: {label}, paired 95% t interval\n")
        print("| table | " + " | ".join(f"- {row}" for row in (*COMPARED, ARGMAX)) + " |")
        print("|---" * (len(COMPARED) + 2) + "|")
        for name, runs in results.items():
            cells = [interval_text([r[SWEEP][key] - r[row][key] for r in runs]) for row in (*COMPARED, ARGMAX)]
            print(f"| {name} | " + " | ".join(cells) + " |")


def print_against(results: dict[str, list[dict]], path: str) -> None:
    """This run's exported model minus another run's (--save of a run with other options), on the same splits."""
    other = {(name, run["seed"]): run for name, runs in json.loads(Path(path).read_text()).items() for run in runs}
    both = [
        (run, other[(name, run["seed"])])
        for name, runs in results.items()
        for run in runs
        if (name, run["seed"]) in other
    ]
    print(f"\n### Sweep export, this run minus {path}, paired over {len(both)} (table, split) pairs\n")
    for key, label in METRICS:
        print(f"- {label}: {interval_text([a[SWEEP][key] - b[SWEEP][key] for a, b in both])}")
    rates = sorted({run.get("learning_rate") for pair in both for run in pair} - {None})
    print(f"- learning rates of the exported trials (both runs): {', '.join(f'{r:g}' for r in rates)}")


def print_failures(failures: list, results: dict[str, list[dict]]) -> None:
    """The recomputation check, then each distinct refusal or failure once: its (table, seed) pairs and traceback."""
    checked = [run["matches_best"] for runs in results.values() for run in runs]
    print(
        f"\nSweep export's macro-F1 recomputed from bundle.score equals best.json's: {sum(checked)} of {len(checked)}"
    )
    print(f"\n(table, split) pairs sweep refused or failed on (not in the tables above): {len(failures)}")
    grouped: dict[str, list] = {}
    for name, seed, text in failures:
        grouped.setdefault(text.strip().splitlines()[-1], []).append((name, seed, text))
    for last, cases in grouped.items():
        where = ", ".join(f"{name} seed {seed}" for name, seed, _ in cases)
        kind = "refused (a DataError: by design)" if last.startswith("sweep.errors.DataError") else "failed"
        print(f"\n{kind}: {where}\n\n```\n{cases[0][2].strip()}\n```")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument(
        "--trials", type=int, default=30, help="trials of each study (sweep's default; all else default)"
    )
    parser.add_argument("--tables", nargs="+", choices=list(SWEPT_TABLES), default=list(SWEPT_TABLES))
    parser.add_argument("--learning-rate", help="the sweep's learning_rate (default: sweep's own default)")
    parser.add_argument("--save", help="write every split's results to this JSON file")
    parser.add_argument("--against", help="a --save file of another run on the same splits: print the paired change")
    args = parser.parse_args()
    options = {} if args.learning_rate is None else {"learning_rate": args.learning_rate}
    print(f"{machine()}, scikit-learn {metadata.version('scikit-learn')}")
    started, cpu = time.perf_counter(), time.process_time()
    failures: list = []
    results = {name: run_table(name, args.seeds, args.trials, failures, options) for name in args.tables}
    results = {name: runs for name, runs in results.items() if runs}
    print(f"\nRun: {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    print_means(results, len(args.seeds), args.trials)
    print_pairs(results)
    print_failures(failures, results)
    if args.save:
        Path(args.save).write_text(json.dumps(results))
    if args.against:
        print_against(results, args.against)


if __name__ == "__main__":
    main()
