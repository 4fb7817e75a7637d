"""Training sized to the table: fixed epochs against a minimum number of Adam steps (`--min-steps`), same rows.

    python benchmarks/training_length.py [--repeats 10] [--trials 12] [--steps 0 1000 3000] [--choices single greedy:5]
    python benchmarks/training_length.py --variants hidden_layers=1 hidden_layers=2   # any config overrides instead
    python benchmarks/training_length.py --quick        # smoke run: 2 repeats, 6 trials, 2 tables

For each table and repeat r (the study's seed r: its stratified test split, folds and trial seeds), one
cross-validated sweep (`cv = 5`, 50 epochs) per `--steps` value, each exported as every `--choices` and scored on
the same test rows. 50 epochs of batch 100 are 150 Adam steps on 300 training rows; `min_steps` raises the epochs
of the builtin network until each fold model takes at least that many steps. Prints, per table and over every
(table, repeat) pair, the mean epochs, test F1, flag rate, AP and sweep seconds of each setting, and the paired F1
difference against the first `--steps` value with a 95% t interval over the repeats.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, t_interval  # noqa: E402
from ensembles import arguments, loaded_tables, run_one  # noqa: E402

QUICK = {"repeats": 2, "trials": 6, "tables": ["cars_europe", "synthetic"]}


def parse_variant(text: str) -> dict:
    """KEY=VALUE[,KEY=VALUE...] -> config overrides (values as text: the config's own rules parse them)."""
    pairs = [part.split("=", 1) for part in text.split(",") if part]
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise SystemExit(f"error: --variants {text!r}: expected KEY=VALUE[,KEY=VALUE...], e.g. hidden_layers=2")
    return dict(pairs)


def variant_label(overrides: dict) -> str:
    return "-" + "-".join(f"{k}{v}" for k, v in overrides.items()).replace(":", "_").replace(".", "p")


def summary(results: list[dict], variants: list[str], choices: list[str]) -> str:
    """Per table and choice, each variant's means and its paired F1 difference against the first variant."""
    ok = [r for r in results if "error" not in r]
    by = {(r["table"], r["repeat"], r["choice"], r["label"]): r for r in ok}
    labels = [variant_label(parse_variant(v)) for v in variants]
    lines = [
        "| table | export | setting | repeats | epochs | test F1 | flag rate | AP | F1 - first [95% t interval] | "
        "sweep s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def block(name: str, keys: list[tuple]) -> None:
        for choice in choices:
            for m, label in zip(variants, labels):
                rows = [by[k + (choice, label)] for k in keys if k + (choice, label) in by]
                if not rows:
                    continue
                mean = {
                    x: statistics.mean(r[x] for r in rows)
                    for x in ("epochs", "f1", "flag_rate", "average_precision", "sweep_seconds")
                }
                if label == labels[0]:
                    difference = "—"
                else:
                    paired = [
                        by[k + (choice, label)]["f1"] - by[k + (choice, labels[0])]["f1"]
                        for k in keys
                        if k + (choice, label) in by and k + (choice, labels[0]) in by
                    ]
                    centre, low, high = t_interval(paired)
                    difference = f"{centre:+.3f} [{low:+.3f}, {high:+.3f}]"
                lines.append(
                    f"| {name} | {choice} | {m} | {len(rows)} | {mean['epochs']:.0f} | {mean['f1']:.3f} | "
                    f"{mean['flag_rate']:.3f} | {mean['average_precision']:.3f} | {difference} | "
                    f"{mean['sweep_seconds']:.1f} |"
                )

    names = list(dict.fromkeys(r["table"] for r in ok))
    for name in names:
        block(name, sorted({(r["table"], r["repeat"]) for r in ok if r["table"] == name}))
    block("all tables", sorted({(r["table"], r["repeat"]) for r in ok}))
    lines += [
        f"- failed: {r['table']} repeat {r['repeat']} {r['label']} {r['choice']}: {r['error']}"
        for r in results
        if "error" in r
    ]
    return "\n".join(lines)


def main() -> None:
    def add(parser) -> None:
        parser.add_argument(
            "--steps", nargs="+", type=int, default=[0, 1000, 3000], help="min_steps values; the first is the reference"
        )
        parser.add_argument(
            "--variants",
            nargs="+",
            help="config overrides to compare instead of --steps, each KEY=VALUE[,KEY=VALUE]; the first is the "
            "reference",
        )
        parser.add_argument(
            "--choices", nargs="+", default=["single", "greedy:5"], help="export --ensemble choices to score"
        )

    args = arguments(__doc__.split("\n")[0], 10, QUICK, add)
    variants = args.variants or [f"min_steps={m}" for m in args.steps]
    print(machine())
    print(
        f"repeats {args.repeats}, trials {args.trials}, epochs {args.epochs}, cv 5, settings {variants}, tables "
        f"{', '.join(args.tables)}"
    )
    started = time.perf_counter()
    results: list[dict] = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        for name, frame in loaded_tables(args.tables):
            for repeat in range(args.repeats):
                for variant in variants:
                    overrides = parse_variant(variant)
                    results += run_one(
                        name, frame, repeat, args, work, args.choices, overrides, variant_label(overrides)
                    )
                if args.out:
                    args.out.write_text(json.dumps(results, indent=1))
    print(summary(results, variants, args.choices))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
