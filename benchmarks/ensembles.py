"""What to export: one refit against averages of several models, on the same test rows (`--ensemble`).

    python benchmarks/ensembles.py [--repeats 12] [--trials 12] [--epochs 50] [--tables ...] [--out FILE.json]
    python benchmarks/ensembles.py --quick        # smoke run: 2 repeats, 6 trials, 10 epochs, 2 tables
    python benchmarks/ensembles.py --tables --models digits_cnn tabular_dropout   # users' own Keras models only

For each table and repeat r (the study's seed r: its stratified test split, its folds and its trial seeds), one
cross-validated sweep (`cv = 5`, defaults otherwise) is exported four ways from the same study and scored on the
same test rows: `single` (one refit on all non-test rows), `seeds:5` (five refit seeds, averaged), `folds` (the
best trial's five fold models, averaged) and `greedy:5` (greedy ensemble selection over the five best trials).
The tables: five small real ones that install offline (benchmarks/tables.py) and one synthetic one; `--models`
adds users' own Keras models, the examples of studies/*.toml (their data, builder, [space] and epochs; the same
5 folds and trials as the tables). Prints, per
table, the mean test F1, flag rate, precision and recall of each choice and the paired difference of its F1
against `single` with a 95% t interval over the repeats, then the same over every (table, repeat) pair.
Runs in one process, one sweep at a time (TensorFlow's start paid once).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402
from tables import BUILDERS, PACKAGES  # noqa: E402

CHOICES = ("single", "seeds:5", "folds", "greedy:5")
TABLES = ("breast_cancer", "diabetes", "cars_europe", "seattle_snow", "digits_3_rare", "synthetic")
QUICK = {"repeats": 2, "trials": 6, "epochs": 10, "tables": ["cars_europe", "synthetic"]}
ROOT = Path(__file__).resolve().parent.parent
# A user's own model: the example's TOML under studies/ (its data made by sweep.data.examples.write_examples).
USER_MODELS = {
    "digits_cnn": "digits-cnn.toml",
    "sequences_conv1d": "sequences-conv1d.toml",
    "tabular_dropout": "tabular-dropout.toml",
}


def synthetic() -> pd.DataFrame:
    """2,000 rows, 8 features (4 informative), about 4% positives plus make_classification's 1% label noise."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=2000,
        n_features=8,
        n_informative=4,
        n_redundant=2,
        n_clusters_per_class=2,
        weights=[0.96, 0.04],
        class_sep=0.8,
        random_state=7,
    )
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame["label"] = y
    return frame


def table(name: str) -> pd.DataFrame:
    return synthetic() if name == "synthetic" else BUILDERS[name]()


def run_one(
    name: str,
    frame: pd.DataFrame | None,
    repeat: int,
    args,
    work: Path,
    choices=CHOICES,
    extra: dict | None = None,
    label: str = "",
) -> list[dict]:
    """One sweep of table `name` with seed `repeat` (config keys `extra` on top of the benchmark's), exported each
    way in `choices`; one result per choice, tagged with `label` (what `extra` varies)."""
    from sweep.config import resolve_config
    from sweep.handover.export import export_best
    from sweep.study.runner import run_sweep

    study = f"{name}-s{repeat}{label}"
    if frame is None:  # a user's own model (USER_MODELS): its example's data, builder, space and epochs
        data = user_model_config(name, work)
    else:
        csv = work / f"{name}.csv"
        if not csv.exists():
            frame.to_csv(csv, index=False)
        data = {"data": str(csv), "target": "label", "epochs": args.epochs}
    config = resolve_config(
        {"storage": f"sqlite:///{work / 'bench.db'}", "study": study, "trials": args.trials, "seed": repeat, "cv": 5}
        | data
        | (extra or {}),
        env={},
    )
    started = time.perf_counter()
    run_sweep(config)
    sweep_seconds = time.perf_counter() - started
    results = []
    for choice in choices:
        started = time.perf_counter()
        try:
            best = export_best(
                config.storage, study, work / "exports" / study / choice.replace(":", "_"), force=True, ensemble=choice
            ).best
        except Exception as exc:  # a failed export is a row with its reason, not a lost run
            results.append(
                {
                    "table": name,
                    "repeat": repeat,
                    "choice": choice,
                    "label": label,
                    "error": f"{type(exc).__name__}: {exc}",
                }
            )
            continue
        test = best["test"]["metrics"]
        results.append(
            {
                "table": name,
                "repeat": repeat,
                "choice": choice,
                "label": label,
                "epochs": best["train_settings"]["epochs"],
                "f1": test["f1"],
                "flag_rate": test["flag_rate"],
                "precision": test["precision"],
                "recall": test["recall"],
                "average_precision": test["average_precision"],
                "brier": best["test"]["probability"]["calibrated probability"]["brier"],
                "threshold": best["threshold"],
                "validation_f1": best["validation"].get("ensemble_metrics", best["validation"]["metrics"])["f1"],
                "members": best["ensemble"]["size"],
                "distinct_members": len(best["ensemble"]["members"]),
                "test_rows": best["data"]["splits"]["test"]["rows"],
                "test_positives": best["data"]["splits"]["test"]["positives"],
                "export_seconds": round(time.perf_counter() - started, 2),
                "sweep_seconds": round(sweep_seconds, 2),
            }
        )
        print(
            f"  {study} {choice} ({results[-1]['epochs']} epochs): test f1 {test['f1']:.3f} flag rate "
            f"{test['flag_rate']:.3f} ({results[-1]['export_seconds']:.1f} s)",
            file=sys.stderr,
            flush=True,
        )
    return results


def user_model_config(name: str, work: Path) -> dict:
    """The config keys of a user-model example (studies/<toml>) but its study and trials, its data written under
    `work`."""
    from sweep.config import read_config_file
    from sweep.data.examples import write_examples

    values = read_config_file(ROOT / "studies" / USER_MODELS[name])
    data = work / Path(values["data"]).name
    if not data.exists():
        write_examples(work)
    target, _, function = values["model"].rpartition(":")
    return {k: v for k, v in values.items() if k not in ("study", "trials")} | {
        "data": str(data),
        "model": f"{ROOT / target}:{function}",
    }


def summary(results: list[dict]) -> str:
    """The markdown tables: per table (and over every pair) each choice's means and its paired F1 difference."""
    ok = [r for r in results if "error" not in r]
    by = {(r["table"], r["repeat"], r["choice"]): r for r in ok}
    tables = list(dict.fromkeys(r["table"] for r in ok))
    lines = [
        "| table | choice | repeats | test F1 | flag rate | precision | recall | AP | F1 - single [95% t interval] | "
        "export s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def block(label: str, keys: list[tuple]) -> None:
        for choice in CHOICES:
            rows = [by[k + (choice,)] for k in keys if k + (choice,) in by]
            if not rows:
                continue
            mean = {
                m: statistics.mean(r[m] for r in rows)
                for m in ("f1", "flag_rate", "precision", "recall", "average_precision", "export_seconds")
            }
            if choice == "single":
                difference = "—"
            else:
                paired = [
                    by[k + (choice,)]["f1"] - by[k + ("single",)]["f1"]
                    for k in keys
                    if k + (choice,) in by and k + ("single",) in by
                ]
                centre, low, high = t_interval(paired)
                difference = f"{centre:+.3f} [{low:+.3f}, {high:+.3f}]"
            lines.append(
                f"| {label} | {choice} | {len(rows)} | {mean['f1']:.3f} | {mean['flag_rate']:.3f} | "
                f"{mean['precision']:.3f} | {mean['recall']:.3f} | {mean['average_precision']:.3f} | {difference} | "
                f"{mean['export_seconds']:.1f} |"
            )

    for name in tables:
        block(name, sorted({(r["table"], r["repeat"]) for r in ok if r["table"] == name}))
    block("all tables", sorted({(r["table"], r["repeat"]) for r in ok}))
    failed = [r for r in results if "error" in r]
    lines += [f"- failed: {r['table']} repeat {r['repeat']} {r['choice']}: {r['error']}" for r in failed]
    return "\n".join(lines)


def arguments(description: str, repeats: int, quick: dict, add=lambda parser: None) -> argparse.Namespace:
    """The options every sweep-and-export benchmark here takes (plus those `add` adds); --quick applies `quick`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--tables", nargs="*", default=list(TABLES), choices=list(TABLES))
    parser.add_argument(
        "--models", nargs="*", default=[], choices=list(USER_MODELS), help="users' own Keras models (studies/*.toml)"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, help="also write every result as JSON here")
    add(parser)
    args = parser.parse_args()
    if args.quick:
        for key, value in quick.items():
            setattr(args, key, value)
    return args


def loaded_tables(names):
    """(name, frame) of each table; one whose package is missing is skipped and said so, not a lost run."""
    for name in names:
        try:
            frame = table(name)
        except ImportError as exc:
            print(f"skipped {name}: needs {PACKAGES.get(name, '?')} ({exc}); pip install it", flush=True)
            continue
        print(f"{name}: {len(frame)} rows, {int(frame['label'].sum())} positives", file=sys.stderr, flush=True)
        yield name, frame


def cases(args):
    """(name, frame) of each table asked for, then (name, None) of each user-model example."""
    yield from loaded_tables(args.tables)
    for name in args.models:
        print(f"{name}: a user's own model, studies/{USER_MODELS[name]}", file=sys.stderr, flush=True)
        yield name, None


def main() -> None:
    args = arguments(__doc__.split("\n")[0], 12, QUICK)
    print(machine())
    print(
        f"repeats {args.repeats}, trials {args.trials}, epochs {args.epochs} (user models: their example's), cv 5, "
        f"tables {', '.join(args.tables) or '-'}, user models {', '.join(args.models) or '-'}"
    )
    started = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for name, frame in cases(args):
            for repeat in range(args.repeats):
                results += run_one(name, frame, repeat, args, work)
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))
    print(summary(results))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
