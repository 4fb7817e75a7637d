"""Two runs of benchmarks/real_tables.py (their --out markdown) compared on the same (table, split) pairs: the test F1
and AP of one method row in each (the sweep's default export, say, with and without an option), per table and over
all pairs, with 95% t intervals of the paired differences, and the first run's F1 against a reference row of the
second (the logistic regression unless --reference names another).

    python benchmarks/paired_runs.py /tmp/option.md /tmp/default.md [--method "sweep default"] [--names option default]
        [--reference "gradient boosting"] [--carry /tmp/default.md] [--group confirm] [--second-method "..."]

Only pairs present in both runs count; a pair one run lacks is named. --carry fills the (table, split) pairs the
first run lacks from another run's rows: for an option rerun only on the tables it changes (it then differs from the
second run by exactly 0 on the rest). --second-method compares another row of the second run (two export variants
of one run: pass the same file twice). Last, the tables where the first run's method ranks better and decides worse
than the reference (mean AP at or above, mean F1 below), as real_tables.py counts them.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interval_text  # noqa: E402

ROW = re.compile(
    r"^\| (?P<table>\S+) \(seed (?P<seed>\d+)\) \|[^|]*\|[^|]*\| (?P<method>[^|]+?) \| (?P<f1>[\d.]+) [^|]*\| "
    r"(?P<ap>[\d.]+|-)"
)


def read_run(path: Path) -> dict[tuple[str, int, str], tuple[float, float | None]]:
    """(table, seed, method) -> (test F1, test AP) of every row of a real_tables.py markdown output."""
    found = {}
    for line in path.read_text().splitlines():
        match = ROW.match(line)
        if match:
            ap = None if match["ap"] == "-" else float(match["ap"])
            found[(match["table"], int(match["seed"]), match["method"].strip())] = (float(match["f1"]), ap)
    return found


def shown(differences: list[float]) -> str:
    if len(differences) < 2:
        return f"{statistics.fmean(differences):+.3f}" if differences else "-"
    return interval_text(differences)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    parser.add_argument("--method", default="sweep default")
    parser.add_argument("--second-method", help="the second run's row to compare (default: --method)")
    parser.add_argument("--names", nargs=2, default=["first", "second"])
    parser.add_argument("--reference", default="logistic", help="the reference row of the last column")
    parser.add_argument("--carry", type=Path, help="a run whose rows fill the pairs the first run lacks")
    parser.add_argument("--group", choices=("choose", "confirm", "all"), default="all", help="tables.py's groups")
    args = parser.parse_args()
    runs = [read_run(args.first), read_run(args.second)]
    if args.carry:
        have = {(t, s) for (t, s, _m) in runs[0]}
        runs[0].update({key: value for key, value in read_run(args.carry).items() if key[:2] not in have})
    from tables import GROUPS

    methods = [args.method, args.second_method or args.method]
    rows = [
        {(t, s) for (t, s, m) in run if m == method and t in GROUPS[args.group]} for run, method in zip(runs, methods)
    ]
    pairs = sorted(rows[0] & rows[1])
    missing = sorted((rows[0] | rows[1]) - set(pairs))
    per_table = defaultdict(lambda: defaultdict(list))
    for table, seed in pairs:
        (f1_a, ap_a), (f1_b, ap_b) = (run[(table, seed, method)] for run, method in zip(runs, methods))
        reference = runs[1][(table, seed, args.reference)][0]
        for key, value in (("f1", f1_a - f1_b), ("ap", (ap_a or 0) - (ap_b or 0)), ("a_vs_ref", f1_a - reference)):
            per_table[table][key].append(value)
            per_table["all pairs"][key].append(value)
        for group in (table, "all pairs"):
            per_table[group]["a"].append(f1_a)
            per_table[group]["b"].append(f1_b)
    first, second = args.names
    header = f"F1: {first} - {second} | AP: {first} - {second} | F1: {first} - {args.reference}"
    print(f"| table | pairs | {first} F1 | {second} F1 | {header} |")
    print("|---|---|---|---|---|---|---|")
    for table, values in sorted(per_table.items(), key=lambda item: item[0] == "all pairs"):
        means = [f"{statistics.fmean(values[k]):.3f}" if values[k] else "-" for k in ("a", "b")]
        differences = " | ".join(shown(values[key]) for key in ("f1", "ap", "a_vs_ref"))
        print(f"| {table} | {len(values['f1'])} | {means[0]} | {means[1]} | {differences} |")
    if missing:
        print(f"\nPairs in one run only: {', '.join(f'{t} seed {s}' for t, s in missing)}")
    worse = ranks_better_decides_worse(runs[0], args.method, args.reference, {t for t, _ in pairs})
    print(
        f"\n{first}: ranks better, decides worse than {args.reference} on {len(worse)} of {len(per_table) - 1} tables"
    )
    for line in worse:
        print(f"- {line}")


def ranks_better_decides_worse(run: dict, method: str, reference: str, tables: set[str]) -> list[str]:
    """Tables whose mean test AP over the splits is at or above `reference`'s and mean F1 below it, with both means."""
    found = []
    for table in sorted(tables):
        seeds = [s for (t, s, m) in run if t == table and m == method and (t, s, reference) in run]
        mine, theirs = ([run[(table, s, m)] for s in seeds] for m in (method, reference))
        f1, ap = (
            (statistics.fmean(v[0] for v in mine), statistics.fmean(v[0] for v in theirs)),
            (
                statistics.fmean(v[1] or 0 for v in mine),
                statistics.fmean(v[1] or 0 for v in theirs),
            ),
        )
        if ap[0] >= ap[1] and f1[0] < f1[1]:
            found.append(f"{table}: AP {ap[0]:.4f} vs {ap[1]:.4f}, F1 {f1[0]:.3f} vs {f1[1]:.3f}")
    return found


if __name__ == "__main__":
    main()
