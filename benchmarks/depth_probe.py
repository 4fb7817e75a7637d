"""What hidden_layers = auto chooses on each real table, and how well the choice ranks the test rows: the measurement
behind the default.

    python benchmarks/depth_probe.py [--group all] [--seeds 0 1 2 3 4 5 6 7 8 9]

For each table (benchmarks/tables.py) and split seed, the sweep's own encoding, test split and validation plan
(load_dataset with that seed), sweep.models.builtin.choose_depth as `sweep run` calls it (a linear network and one of
one hidden layer of 16 units, balanced weights, pooled validation average precision, one hidden layer only where it is
ahead by more than the gap's standard error). Then each candidate is trained on all non-test rows as the sweep would
size it, with balanced weights, and scored by test average precision beside a class-balanced logistic regression on
the same encoded rows: a ranking, so no search or threshold is involved. "(plain)" counts the linear choices of the
plain comparison (the higher validation AP wins) on the same probes. The last two columns are the chosen candidate's
test AP minus the one-hidden-layer network's (the default before hidden_layers = auto) and minus the plain
comparison's pick, 95% t intervals over the seeds. Needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import interval_text, machine  # noqa: E402


def table_rows(name: str, seeds, folder: Path) -> dict:
    """Per seed: the choice, and the test AP of the linear network, the one-hidden-layer network, the logistic
    regression and the chosen network."""
    import tables
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import average_precision_score

    from sweep.config import resolve_config
    from sweep.data import load_dataset
    from sweep.metrics import balanced_class_weight
    from sweep.models.builtin import PROBE_WIDTH, BuiltinNetwork, choose_depth
    from sweep.models.network import TrainSettings, train_model

    csv = folder / f"{name}.csv"
    getattr(tables, name)().to_csv(csv, index=False)
    found: dict = {key: [] for key in ("chosen", "plain", "linear", "hidden", "logistic", "pick", "plain pick")}
    for seed in seeds:
        config = resolve_config({"data": str(csv), "target": "label", "seed": seed}, env={})
        dataset = load_dataset(config)
        rest, test = dataset.development, dataset.test
        choice = choose_depth(config, dataset)
        weights = balanced_class_weight(rest.y)
        ranked = {}
        for layers in (0, 1):
            sized = BuiltinNetwork(dataclasses.replace(config, hidden_layers=layers)).sized(dataset)
            settings = TrainSettings(sized.epochs, sized.batch_size, float(sized.learning_rate), layers, seed)
            network, _ = train_model(rest.X, rest.y, PROBE_WIDTH, weights, settings)
            ranked[layers] = average_precision_score(test.y, network.scores(test.X))
        logistic = LogisticRegression(class_weight="balanced", max_iter=3000).fit(rest.X, rest.y)
        found["chosen"].append(choice["hidden_layers"])
        found["linear"].append(ranked[0])
        found["hidden"].append(ranked[1])
        found["logistic"].append(average_precision_score(test.y, logistic.decision_function(test.X)))
        found["pick"].append(ranked[choice["hidden_layers"]])
        plain = 0 if choice["linear_ap"] > choice["hidden_ap"] else 1
        found["plain"].append(plain)
        found["plain pick"].append(ranked[plain])
    found["rows"] = len(rest.y)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--group", default="all", help="choose, confirm or all (benchmarks/tables.py)")
    parser.add_argument("--tables", nargs="*", help="table names instead of a group")
    parser.add_argument("--seeds", nargs="*", type=int, default=list(range(10)))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import numpy as np
    import tables

    names = args.tables or list(tables.GROUPS[args.group])
    print(f"Machine: {machine()}\n")
    print(f"Test average precision, mean over seeds {args.seeds}.\n")
    columns = (
        "linear chosen",
        "(plain)",
        "logistic",
        "linear",
        "one hidden layer",
        "chosen",
        "chosen - one layer",
        "chosen - plain",
    )
    print("| table | group | non-test rows | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 3) + "|")
    gains: dict = {"choose": [], "confirm": []}
    over_plain: dict = {"choose": [], "confirm": []}
    with tempfile.TemporaryDirectory() as folder:
        for name in names:
            found = table_rows(name, args.seeds, Path(folder))
            group = tables.group_of(name)
            picks, plain = (sum(1 for layers in found[key] if layers == 0) for key in ("chosen", "plain"))
            means = " | ".join(f"{np.mean(found[key]):.3f}" for key in ("logistic", "linear", "hidden", "pick"))
            gain = [a - b for a, b in zip(found["pick"], found["hidden"])]
            gains[group] += gain
            change = [a - b for a, b in zip(found["pick"], found["plain pick"])]
            over_plain[group] += change
            cells = (
                f"{picks} of {len(args.seeds)} | {plain} | {means} | {interval_text(gain)} | {interval_text(change)}"
            )
            print(f"| {name} | {group} | {found['rows']:,} | {cells} |", flush=True)
    for title, differences in (
        ("Chosen minus one hidden layer, paired over (table, seed) pairs (95% t interval)", gains),
        ("Chosen minus the plain comparison (the higher validation AP wins, no standard-error rule)", over_plain),
    ):
        print(f"\n{title}:\n")
        for group, values in differences.items():
            if values:
                print(f"- {group}: {interval_text(values)} over {len(values)} pairs")
        print(f"- all: {interval_text(differences['choose'] + differences['confirm'])}")


if __name__ == "__main__":
    main()
