"""A prepared GPU check: the builtin network in populations and a user's Keras model (the digits CNN), each run
once with --device gpu and once with --device cpu, side by side, through the real command line.

    python benchmarks/gpu_check.py [--population 16] [--epochs 3] [--digits-trials 3] [--digits-epochs 5]

Each run is its own `sweep run` process (TensorFlow fixes its visible devices when it starts) on a fresh SQLite
study in a temporary folder; the table then reads every trial back: the device it recorded
(trial.user_attrs["device"]) and the seconds per trial (the study's first trial start to its last trial end,
over its trials; a population's trials are trained together and all end together). Without a GPU it says so in
one line and runs the CPU half only (exit 0); with one, a GPU run that fails or records another device exits 1.
About a minute on a GPU machine; about two on 2 CPU cores (the CPU half only).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from common import machine  # noqa: E402

PROBE = "from sweep.runtime import tensorflow\ntf = tensorflow()\nprint(len(tf.config.list_physical_devices('GPU')))\n"


def sweep_command() -> list[str]:
    """The `sweep` console script next to this interpreter, else the same entry point (sweep.cli:main) via -c."""
    script = Path(sys.executable).with_name("sweep")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from sweep.cli import main; sys.argv[0] = 'sweep'; main()"]


def environment() -> dict[str, str]:
    """This process's environment without SWEEP_* settings, so only the flags below decide each run."""
    return {key: value for key, value in os.environ.items() if not key.startswith("SWEEP_")}


def visible_gpus() -> tuple[int, str]:
    """(GPUs TensorFlow sees, the GPU names nvidia-smi gives or why there are none), probed in a subprocess."""
    names = ""
    if shutil.which("nvidia-smi"):
        found = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=60
        )
        names = (
            ", ".join(line.strip() for line in found.stdout.splitlines() if line.strip())
            if found.returncode == 0
            else ""
        )
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, cwd=ROOT, env=environment()
    )
    try:
        count = int(probe.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        count = 0
    if not names:
        names = "no nvidia-smi" if not shutil.which("nvidia-smi") else "nvidia-smi lists none"
    return count, names


def runs(folder: str, args) -> list[tuple[str, str, list[str]]]:
    """(path, study name stem, flags) of the two paths; each runs once per device."""
    import numpy as np

    from sweep.data.examples import digits_arrays

    x, y = digits_arrays()
    digits = f"{folder}/digits.npz"
    np.savez_compressed(digits, x=x, y=y)
    builtin = [
        "--data",
        "seed",
        "--population",
        str(args.population),
        "--trials",
        str(args.population),
        "--epochs",
        str(args.epochs),
        "--pruner",
        "none",
        "--cv",
        "0",
    ]
    user = [
        "--data",
        digits,
        "--model",
        f"{ROOT / 'studies' / 'models.py'}:digits_cnn",
        "--param",
        "filters=8",
        "--param",
        "dropout=0.2",
        "--minority-weight",
        "1:100",
        "--threshold",
        "0.05:0.95",
        "--trials",
        str(args.digits_trials),
        "--epochs",
        str(args.digits_epochs),
        "--batch-size",
        "32",
        "--pruner",
        "none",
        "--cv",
        "0",
    ]
    return [
        (f"builtin network, reference data, population {args.population} ({args.epochs} epochs)", "builtin", builtin),
        (
            f"your model: digits CNN ({args.digits_trials} trials x {args.digits_epochs} epochs, batch 32)",
            "digits",
            user,
        ),
    ]


def run_one(folder: str, stem: str, flags: list[str], device: str, timeout: float) -> dict:
    """One `sweep run ... --device DEVICE` process; its trials read back from its study."""
    import optuna

    storage, study = f"sqlite:///{folder}/{stem}-{device}.db", f"{stem}-{device}"
    command = [*sweep_command(), "run", *flags, "--device", device, "--storage", storage, "--study", study]
    started = time.perf_counter()
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=environment())
        code, tail = done.returncode, (done.stderr or done.stdout).strip().splitlines()[-3:]
    except subprocess.TimeoutExpired:
        code, tail = "timeout", [f"still running after {timeout:.0f} s"]
    wall = time.perf_counter() - started
    found = {
        "code": code,
        "wall": wall,
        "tail": tail,
        "devices": Counter(),
        "trials": 0,
        "per_trial": float("nan"),
        "train": float("nan"),
    }
    try:
        trials = [
            t for t in optuna.load_study(study_name=study, storage=storage).trials if t.datetime_complete is not None
        ]
    except Exception:  # no study: the run failed before creating it (its tail says why)
        trials = []
    if trials:
        span = max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)
        seconds = [t.user_attrs["train_seconds"] for t in trials if "train_seconds" in t.user_attrs]
        found |= {
            "devices": Counter(str(t.user_attrs.get("device", "not recorded")) for t in trials),
            "trials": len(trials),
            "per_trial": span.total_seconds() / len(trials),
            "train": statistics.median(seconds) if seconds else float("nan"),
        }
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=16, help="builtin trials, all in one population round")
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the builtin population")
    parser.add_argument("--digits-trials", type=int, default=3)
    parser.add_argument("--digits-epochs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300, help="seconds one `sweep run` may take")
    args = parser.parse_args()
    print(f"Machine: {machine()}")
    gpus, names = visible_gpus()
    devices = ["gpu", "cpu"] if gpus else ["cpu"]
    if gpus:
        print(f"GPU: TensorFlow sees {gpus} ({names}); running every path with --device gpu and with --device cpu.")
    else:
        print(f"No GPU: TensorFlow sees none ({names}); running the CPU half only.")
    failed = False
    print(
        "\n| path | device requested | exit | device each trial recorded | trials | s/trial (study span / trials) | "
        "train_seconds median | process wall s |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for label, stem, flags in runs(folder, args):
            for device in devices:
                found = run_one(folder, stem, flags, device, args.timeout)
                recorded = ", ".join(f"{name} x{count}" for name, count in sorted(found["devices"].items())) or "-"
                print(
                    f"| {label} | {device} | {found['code']} | {recorded} | {found['trials']} | "
                    f"{found['per_trial']:.3f} | {found['train']:.3f} | {found['wall']:.1f} |"
                )
                wrong = device == "gpu" and any(not name.startswith("gpu") for name in found["devices"])
                if found["code"] != 0 or wrong or not found["trials"]:
                    failed = True
                    print(
                        "|  | ^ failed: "
                        f"{' / '.join(found['tail']) or 'no output'}{' (recorded a non-GPU device)' if wrong else ''} "
                        "|  |  |  |  |  |  |"
                    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
