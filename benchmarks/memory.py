"""Peak resident memory of a whole `sweep run` (and `sweep export`) against the table's size.

    python benchmarks/memory.py [--rows 1000000 3000000 10000000] [--export-rows 10000000] [--folder DIR]
        [--json OUT.json]

For each size it writes a Parquet table of 10 float32 features and a 0/1 int8 label (about 2% positives,
a linear signal; written in row groups of a million rows, so making it needs little memory), then runs

    sweep run --data T.parquet --target label --trials 4 --epochs 1 --population 4 --cv 0 --storage sqlite:///...

as a subprocess and reads its peak resident set size from the kernel (os.wait4's ru_maxrss: the child's own
high-water mark). TensorFlow's own footprint is measured the same way: a subprocess that imports what a sweep
imports (sweep.runtime.tensorflow(), pandas, pyarrow, Optuna) and trains one tiny population (4 members,
1,000 rows, 1 epoch). Few epochs, since only memory matters; wall time is the subprocess's, start-up included.
`--export-rows` also runs `sweep export` of that size's study and reports its peak; `--cv K` sweeps with K folds.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SWEEP = str(Path(sys.executable).with_name("sweep"))
FEATURES = 10
CHUNK = 1_000_000
WEIGHTS = np.array([1.5, -1.0, 0.8, 0.5, 0.3, 0.0, 0.0, 0.0, 0.0, 0.0])
INTERCEPT = -5.6  # about 2% positives with these weights

FOOTPRINT = """
import numpy as np, optuna, pandas, pyarrow.parquet, sklearn.model_selection
from sweep.runtime import tensorflow
from sweep.models.population import Member, train_population
tensorflow()
rng = np.random.default_rng(0)
X, y = rng.standard_normal((1000, 10)).astype(np.float32), (rng.random(1000) < 0.05).astype(np.int8)
train_population(X, y, [Member(8, 10.0, k) for k in range(4)], 1, 100, 0.001, 0)
"""


def make_table(path: Path, rows: int, seed: int = 0) -> float:
    """Write the table in row groups of CHUNK rows; returns the share of positives."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    positives = 0
    schema = pa.schema([(f"f{i}", pa.float32()) for i in range(FEATURES)] + [("label", pa.int8())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK):
            n = min(CHUNK, rows - start)
            X = rng.standard_normal((n, FEATURES), dtype=np.float32)
            chance = 1.0 / (1.0 + np.exp(-(X @ WEIGHTS.astype(np.float32) + INTERCEPT)))
            y = (rng.random(n, dtype=np.float32) < chance).astype(np.int8)
            positives += int(y.sum())
            columns = [pa.array(X[:, i]) for i in range(FEATURES)] + [pa.array(y)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))
    return positives / rows


def measured(command: list[str], log: Path) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, exit code) of one subprocess, its output sent to `log`."""
    started = time.perf_counter()
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss / 1024, time.perf_counter() - started, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 3_000_000, 10_000_000])
    parser.add_argument(
        "--export-rows", type=int, nargs="*", default=[10_000_000], help="sizes whose study is also exported"
    )
    parser.add_argument("--folder", help="where tables, studies and logs go (default: a temporary folder, removed)")
    parser.add_argument("--json", help="also write the measurements to this JSON file")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--cv", type=int, default=0, help="folds per trial (0: one validation split)")
    args = parser.parse_args()
    print(f"Machine: {machine()}\n", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.folder or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        footprint, seconds, code = measured([sys.executable, "-c", FOOTPRINT], folder / "footprint.log")
        assert code == 0, f"footprint run failed; see {folder / 'footprint.log'}"
        print(f"TensorFlow footprint (imports + one tiny population): {footprint:.0f} MB peak RSS, {seconds:.1f} s\n")
        print(
            "| rows | float32 features (MB) | command | peak RSS (MB) | minus TF footprint (MB) | ratio to float32 "
            "matrix | wall (s) |"
        )
        print("|---|---|---|---|---|---|---|", flush=True)
        results = {"machine": machine(), "footprint_mb": footprint, "runs": []}
        for rows in args.rows:
            table = folder / f"table-{rows}.parquet"
            if not table.exists():
                make_table(table, rows)
            matrix = rows * FEATURES * 4 / 1e6
            storage = f"sqlite:///{folder}/memory-{rows}.db"
            study = f"memory-{rows}-{int(time.time())}"
            commands = [
                (
                    "sweep run",
                    [
                        SWEEP,
                        "run",
                        "--data",
                        str(table),
                        "--target",
                        "label",
                        "--trials",
                        str(args.trials),
                        "--epochs",
                        str(args.epochs),
                        "--population",
                        "4",
                        "--cv",
                        str(args.cv),
                        "--storage",
                        storage,
                        "--study",
                        study,
                    ],
                )
            ]
            if rows in (args.export_rows or []):
                commands.append(
                    (
                        "sweep export",
                        [
                            SWEEP,
                            "export",
                            study,
                            "--storage",
                            storage,
                            "--out",
                            str(folder / f"export-{rows}"),
                            "--force",
                        ],
                    )
                )
            for name, command in commands:
                log = folder / f"{name.split()[1]}-{rows}.log"
                peak, seconds, code = measured(command, log)
                status = "" if code == 0 else f" (exit {code}; see {log})"
                extra = peak - footprint
                print(
                    f"| {rows:,} | {matrix:.0f} | `{name}`{status} | {peak:.0f} | {extra:.0f} | {extra / matrix:.2f} | "
                    f"{seconds:.0f} |",
                    flush=True,
                )
                results["runs"].append(
                    {
                        "rows": rows,
                        "command": name,
                        "matrix_mb": matrix,
                        "peak_mb": peak,
                        "seconds": seconds,
                        "exit": code,
                    }
                )
                if code != 0:
                    print(Path(log).read_text()[-2000:], file=sys.stderr)
                    break
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
