"""Compare an exported sweep bundle with the tutorial's fixed-weight networks on the same test rows.

    python scripts/compare_with_tutorial.py exports/reference-f1 [--seeds 3]

Prints a markdown table (test precision, recall, F1, average precision, flag rate). The tutorial's networks
are trained on the same training part as the sweep (50 epochs, batch 100, threshold 0.5), averaged over
seeds; the logistic-regression row is the simple reference from DESIGN.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from sweep.config import config_from_dict
from sweep.data import load_dataset
from sweep.report import bundle_row, logistic_reference_row, markdown_table, tutorial_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="directory written by `sweep export`")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per tutorial network (default 3)")
    args = parser.parse_args()
    best = json.loads((args.bundle / "best.json").read_text())
    dataset = load_dataset(config_from_dict(best["config"]))
    if dataset.fingerprint != best["data"]["fingerprint"]:
        raise SystemExit("the bundle was made on other data than the seed recipe; this script compares seed data only")
    rows = tutorial_rows(dataset, seeds=tuple(range(args.seeds)))
    rows += [logistic_reference_row(dataset), bundle_row(args.bundle, dataset)]
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
