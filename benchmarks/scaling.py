"""Finished trials per hour with 1, 2 and 4 local worker processes, on SQLite and on Postgres.

    python benchmarks/scaling.py [--trials 16] [--epochs 10] [--postgres postgresql+psycopg://postgres@127.0.0.1:5432/test]

Each cell runs a fresh study of `--trials` trials on the reference data (batch 100, pruner none, so
every trial does the same work) with `sweep run --workers N` semantics (run_workers), and reports
trials per hour of wall time, process start-up included. The machine's core count bounds what more
workers can give: say so when reading the table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, sqlite_storage, study_config, timed_sweep  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n")
    print(f"{args.trials} trials x {args.epochs} epochs each, reference data\n")
    print("| storage | workers | wall time (s) | trials per hour | speed-up vs 1 worker |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for backend, url in (("SQLite", sqlite_storage(folder, "scaling")), ("Postgres", args.postgres)):
            single = None
            for workers in args.workers:
                name = f"scaling-{uuid.uuid4().hex[:8]}"
                values = {"trials": args.trials, "epochs": args.epochs, "workers": workers, "pruner": "none"}
                timing = timed_sweep(study_config(url, name, values), workers=True)
                result, seconds = timing.result, timing.seconds
                assert result.finished == args.trials, result
                per_hour = args.trials / seconds * 3600
                single = single or per_hour
                print(
                    f"| {backend} | {workers} | {seconds:.0f} | {per_hour:.0f} | {per_hour / single:.2f}x |", flush=True
                )
                if backend == "Postgres":
                    optuna.delete_study(study_name=name, storage=url)


if __name__ == "__main__":
    main()
