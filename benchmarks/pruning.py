"""Does the median pruner save time without losing the best value? Two sweeps on the reference data.

    python benchmarks/pruning.py [--trials 30] [--seed 0]

Runs the same study config (seeded TPE, 50 epochs, batch 100, objective f1) twice with the same trial
budget: once with --pruner none, once with --pruner median. Prints wall time, epochs trained, pruned
trials, and the best validation value of each, plus the test F1 of each best trial after export.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, sqlite_storage, study_config, timed_sweep  # noqa: E402

from sweep.handover.export import export_best  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(
        "| pruner | trials (pruned) | epochs trained | wall time (s) | best val F1 | its test F1 | its test flag rate |"
    )
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for pruner in ("none", "median"):
            values = {"pruner": pruner, "trials": args.trials, "seed": args.seed}
            config = study_config(sqlite_storage(folder, "pruning"), pruner, values)
            timing = timed_sweep(config)
            result, seconds = timing.result, timing.seconds
            study = optuna.load_study(study_name=pruner, storage=config.storage)
            pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials)
            epochs = sum(t.user_attrs.get("epochs_run", 0) for t in study.trials)
            exported = export_best(config.storage, pruner, Path(folder) / f"bundle-{pruner}")
            test = exported.best["test"]["metrics"]
            print(
                f"| {pruner} | {result.finished} ({pruned}) | {epochs} | {seconds:.0f} | {result.best.value:.4f} | "
                f"{test['f1']:.4f} | {test['flag_rate']:.4f} |"
            )


if __name__ == "__main__":
    main()
