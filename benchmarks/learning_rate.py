"""How well the builtin network ranks a real table's test rows at each Adam learning rate, against a class-balanced
logistic regression on the same encoded rows: the measurement behind learning_rate = auto.

    python benchmarks/learning_rate.py [--group choose] [--seeds 0 1 2 3 4 5] [--rates 0.001 0.003 0.01 0.03]

For each table of the group (benchmarks/tables.py) and split seed, the sweep's own encoding and test split
(load_dataset with that seed), one network of --width hidden units with scikit-learn's balanced class weights,
the tutorial's 50 epochs of batch 100 on all non-test rows, trained at each rate (sweep.models.network.train_model,
what a trial trains), scored by test average precision: a ranking, so no threshold or search is involved. The
steps column is 50 x ceil(non-test rows / 100), what one such network takes. Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interval_text, machine  # noqa: E402

EPOCHS, BATCH = 50, 100


def table_rows(name: str, seeds, rates, width: int, folder: Path) -> dict:
    """{"steps", "rows", "logistic": [AP per seed], rate: [AP per seed]} for one table."""
    import numpy as np
    import tables
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    from sweep.config import resolve_config
    from sweep.data import load_dataset
    from sweep.models.network import TrainSettings, train_model

    csv = folder / f"{name}.csv"
    getattr(tables, name)().to_csv(csv, index=False)
    found: dict = {"logistic": [], **{rate: [] for rate in rates}}
    for seed in seeds:
        dataset = load_dataset(resolve_config({"data": str(csv), "target": "label", "seed": seed}, env={}))
        rest, test = dataset.development, dataset.test
        weights = {0: 1.0, 1: float((rest.y == 0).sum() / (rest.y == 1).sum())}
        logistic = LogisticRegression(class_weight="balanced", max_iter=3000).fit(rest.X, rest.y)
        found["logistic"].append(average_precision_score(test.y, logistic.decision_function(test.X)))
        for rate in rates:
            network, _ = train_model(rest.X, rest.y, width, weights, TrainSettings(EPOCHS, BATCH, rate, 1, seed))
            found[rate].append(average_precision_score(test.y, network.scores(test.X)))
        found["rows"], found["steps"] = len(rest.y), EPOCHS * -(-len(rest.y) // BATCH)
    found["mean"] = {key: float(np.mean(found[key])) for key in ("logistic", *rates)}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default="choose", help="choose, confirm or all (benchmarks/tables.py)")
    parser.add_argument("--tables", nargs="*", help="table names instead of a group")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--rates", nargs="*", type=float, default=[0.001, 0.003, 0.01, 0.03])
    parser.add_argument("--width", type=int, default=16)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import tables

    names = args.tables or list(tables.GROUPS[args.group])
    print(f"Machine: {machine()}\n")
    rates, first = args.rates, args.rates[0]
    print(f"Test average precision, mean over seeds {args.seeds}; width {args.width}, {EPOCHS} epochs of {BATCH}.\n")
    print("| table | non-test rows | steps | logistic | " + " | ".join(f"rate {r:g}" for r in rates) + " |")
    print("|---|---|---|---|" + "---|" * len(rates))
    gains = {rate: [] for rate in rates[1:]}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            found = table_rows(name, args.seeds, rates, args.width, Path(folder))
            means = " | ".join(f"{found['mean'][r]:.3f}" for r in rates)
            print(f"| {name} | {found['rows']:,} | {found['steps']:,} | {found['mean']['logistic']:.3f} | {means} |")
            for rate in rates[1:]:
                gains[rate] += [a - b for a, b in zip(found[rate], found[first])]
    print(f"\nPaired over all (table, seed) pairs, AP at each rate minus AP at {first:g} (95% t interval):\n")
    for rate, values in gains.items():
        print(f"- rate {rate:g}: {interval_text(values)} over {len(values)} pairs")


if __name__ == "__main__":
    main()
