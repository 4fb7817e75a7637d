"""What ships decides as it was judged: the ways to hand over the models and their threshold, measured on real
tables (benchmarks/tables.py) over several splits, paired on the same test rows.

    python benchmarks/decisions.py [--group choose|confirm|all] [--tables ...] [--seeds 0 1 2] [--trials 30]
                                   [--epochs 50] [--set KEY=VALUE ...] [--results FILE] [--rank]
    python benchmarks/decisions.py --summary-only --results FILE     # print the table of a finished run

For each (table, split seed): one default `sweep run` (the sweep's own choice of one validation split or 5-fold
trials), then four exports of it, each what `sweep export` ships (after its decision check, which ships the judged
models where a refit does not flag what they flagged), with test F1, flag rate and AP:

- single: one refit on all non-test rows (`--ensemble single`);
- greedy: the greedy ensemble of the 5 best trials, members refit on all non-test rows (`--ensemble greedy:5`);
- judged single, judged greedy: the same with `--refit judged`: the models the threshold was chosen on, no refit (a
  cross-validated trial's fold models averaged, a holdout trial's own model; for greedy, each chosen trial's such
  models);
- with --rank, also each refit at the threshold that flags the judged share of the non-test rows (rank carry-over).

A collapse is a test flag rate of 0 or over three times the judged flag rate. Each (table, seed) appends one JSON
line to --results, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402
from tables import BUILDERS, GROUPS, write_table  # noqa: E402

from sweep.config import resolve_config  # noqa: E402
from sweep.metrics import metrics  # noqa: E402

VARIANTS = ("single", "greedy", "judged single", "judged greedy")
RANK_VARIANTS = ("single rank", "greedy rank")
COLLAPSE_FACTOR = 3.0


def rank_threshold(scores: np.ndarray, share: float) -> float:
    """The threshold at which `scores` flag `share` of their rows (as near as ties allow)."""
    ordered = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    k = int(round(share * len(ordered)))
    if k <= 0:
        return float(np.nextafter(ordered[0], np.inf))
    if k >= len(ordered):
        return float(ordered[-1])
    return float((ordered[k - 1] + ordered[k]) / 2)


def measure(found, prefix: str, rank: bool) -> dict:
    """Test metrics of what one export ships (after its decision check; `fell_back`: the judged models ship), and
    with `rank`, of its models at the threshold that flags the judged share of the non-test rows instead."""
    check = found.check
    test_scores = found.ensemble.scores(found.test.X)
    judged_rate = check.judged_flag_rate
    thresholds = [(prefix, check.threshold)]
    if rank and found.fallback is None and found.refit == "all":
        thresholds.append(
            (f"{prefix} rank", rank_threshold(found.ensemble.scores(found.dataset.development.X), judged_rate))
        )
    found_rows = {}
    for name, threshold in thresholds:
        test = metrics(found.test.y, test_scores, threshold)
        found_rows[name] = {
            "f1": test["f1"],
            "flag_rate": test["flag_rate"],
            "ap": test["average_precision"],
            "recall": test["recall"],
            "precision": test["precision"],
            "judged_flag_rate": judged_rate,
            "threshold": threshold,
            "collapse": bool(test["flag_rate"] == 0 or test["flag_rate"] > COLLAPSE_FACTOR * judged_rate),
            "fell_back": found.fallback is not None,
            "validation_value": found.goal.value(found.ensemble_validation or found.validation),
        }
    return found_rows


def sweep_config(table: str, seed: int, trials: int, epochs: int, work: Path, overrides: dict | None = None):
    """The default sweep of `table` at split `seed`: the table written to `work`, a SQLite study of its own there."""
    csv = write_table(table, work)
    return resolve_config(
        {
            "data": str(csv),
            "target": "label",
            "storage": f"sqlite:///{work / f'{table}-{seed}.db'}",
            "study": f"{table}-{seed}",
            "trials": trials,
            "epochs": epochs,
            "seed": seed,
        }
        | (overrides or {}),
        env={},
    )


def run_one(table: str, seed: int, args, work: Path) -> dict:
    from sweep.handover.retrain import retrain_best
    from sweep.study.runner import run_sweep

    overrides = dict(item.split("=", 1) for item in args.set)
    config = sweep_config(table, seed, args.trials, args.epochs, work, overrides)
    storage = config.storage
    started = time.perf_counter()
    run_sweep(config)
    swept = time.perf_counter() - started
    row = {"table": table, "seed": seed, "sweep_seconds": round(swept, 1)}
    for ensemble, refit, prefix in (
        ("single", "all", "single"),
        ("greedy:5", "all", "greedy"),
        ("single", "judged", "judged single"),
        ("greedy:5", "judged", "judged greedy"),
    ):
        found = retrain_best(storage, config.study, ensemble=ensemble, refit=refit)
        row |= measure(found, prefix, args.rank)
    kind = found.dataset.validation.kind
    row |= {
        "validation": kind,
        "test_positives": int(found.test.y.sum()),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return row


def summary(rows: list[dict]) -> list[str]:
    """Markdown: each variant's mean test F1, flag rate and AP, collapses and fallbacks, and its paired F1 difference
    from `single` and `greedy` over every (table, split)."""
    variants = [v for v in VARIANTS + RANK_VARIANTS if all(v in r for r in rows)]
    lines = [
        f"{len(rows)} (table, split) pairs over {len({r['table'] for r in rows})} tables",
        "",
        "| variant | mean test F1 | mean flag rate | mean judged flag rate | mean AP | collapses | fell back | "
        "F1 - single [95% t] | F1 - greedy [95% t] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in variants:
        got = [r[variant] for r in rows]
        cells = [f"{np.mean([g[k] for g in got]):.3f}" for k in ("f1", "flag_rate", "judged_flag_rate", "ap")]
        diffs = []
        for base in ("single", "greedy"):
            mean, low, high = t_interval([r[variant]["f1"] - r[base]["f1"] for r in rows])
            diffs.append(f"{mean:+.3f} [{low:+.3f}, {high:+.3f}]")
        counts = f"{sum(g['collapse'] for g in got)} | {sum(g.get('fell_back', False) for g in got)}"
        lines.append(f"| {variant} | " + " | ".join(cells) + f" | {counts} | " + " | ".join(diffs) + " |")
    lines += [
        "",
        "Per table, mean test F1 over its splits:",
        "",
        "| table | splits | validation | " + " | ".join(variants) + " |",
        "|---|---|---|" + "---|" * len(variants),
    ]
    for table in dict.fromkeys(r["table"] for r in rows):
        mine = [r for r in rows if r["table"] == table]
        cells = [f"{np.mean([r[v]['f1'] for r in mine]):.3f}" for v in variants]
        lines.append(f"| {table} | {len(mine)} | {mine[0]['validation']} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=list(BUILDERS), default=None, help="default: those of --group")
    parser.add_argument(
        "--group",
        choices=list(GROUPS),
        default="choose",
        help="choose: defaults are chosen on these; confirm: held apart",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument(
        "--results", type=Path, default=Path("decisions.jsonl"), help="one JSON line per (table, seed); resumed"
    )
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="config overrides for every sweep, e.g. threshold_search=tuned",
    )
    parser.add_argument(
        "--rank", action="store_true", help="also measure each refit at the threshold carried over by rank"
    )
    args = parser.parse_args()
    args.tables = args.tables or list(GROUPS[args.group])
    print(machine())
    done = [json.loads(line) for line in args.results.read_text().splitlines()] if args.results.exists() else []
    if not args.summary_only:
        seen = {(r["table"], r["seed"]) for r in done}
        with tempfile.TemporaryDirectory() as folder:
            for seed in args.seeds:
                for table in args.tables:
                    if (table, seed) in seen:
                        continue
                    row = run_one(table, seed, args, Path(folder))
                    done.append(row)
                    with args.results.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    shown = ", ".join(f"{v} {row[v]['f1']:.3f}" for v in VARIANTS + RANK_VARIANTS if v in row)
                    print(f"{table} seed {seed}: {shown} ({row['seconds']} s)", flush=True)
    print("\n".join(summary([r for r in done if r["table"] in args.tables])))


if __name__ == "__main__":
    main()
