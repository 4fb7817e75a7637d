"""Your own training with an exported configuration: does it land within noise of the bundle?

    python benchmarks/own_training.py exports/reference-f1 [--seeds 0 1]

Reads a bundle's best.json and does what docs/guides/exported-config.md says, in plain Keras:
a `Dense(hidden_width, relu)` network with a sigmoid output, Adam at the study's learning rate, the study's epochs
and batch size, `model.fit(X, y, class_weight={0: 1.0, 1: best["class_weight"]["1"]})` on all non-test rows, and
rows flagged where the raw output is `>= best["threshold"]` (with a greedy ensemble, `best["params"]["threshold"]`).
The rows and their encoding are the study's own (`sweep.data.load_dataset` on the bundle's config), so every row
below is scored on the same test rows as the bundle. Prints one row per seed, the bundle's own row and the paired
F1 difference (own minus bundle) with its 95% paired bootstrap interval. Builtin-network bundles only (a user's model
is rebuilt from `best["model"]`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402


def own_training(best: dict, development, seed: int):
    """The recipe of docs/guides/exported-config.md: a fresh network at the exported weight, trained on the development
    rows."""
    import keras

    keras.utils.set_random_seed(seed)
    settings = best["train_settings"]
    layers = [keras.Input(shape=(development.X.shape[1],))]
    layers += [keras.layers.Dense(best["hidden_width"], activation="relu") for _ in range(settings["hidden_layers"])]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    model = keras.Sequential(layers)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=settings["learning_rate"]), loss="binary_crossentropy")
    model.fit(
        development.X,
        development.y,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        class_weight={0: 1.0, 1: best["class_weight"]["1"]},
        verbose=0,
    )
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle", type=Path, help="an exported bundle folder (sweep export ... --out FOLDER)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    args = parser.parse_args()

    from common import machine

    from sweep.api import load
    from sweep.config import resolve_config
    from sweep.data import load_dataset
    from sweep.metrics import bootstrap_intervals, metrics, paired_f1_difference

    best = json.loads((args.bundle / "best.json").read_text())
    if best["model"]["kind"] != "builtin":
        sys.exit(
            f"error: {args.bundle} holds a user's model ({best['model']['kind']}); this recipe is the builtin network's"
        )
    config = resolve_config(best["config"], env={})
    dataset = load_dataset(config)
    development, test = dataset.development, dataset.test
    threshold = best["params"]["threshold"] if best["ensemble"]["kind"] == "greedy" else best["threshold"]
    bundle_scores = load(args.bundle).score(dataset.test_frame if dataset.test_frame is not None else test.X)
    print(f"Machine: {machine()}")
    print(
        f"Bundle {args.bundle}: trial #{best['trial']}, weight 1:{best['class_weight']['1']:.4g}, width "
        f"{best['hidden_width']}, threshold {threshold:.3f}; {len(development.y)} training rows, "
        f"{len(test.y)} test rows\n"
    )
    print(
        "| model | threshold | precision | recall | F1 [95% interval] | flag rate | "
        "F1 minus the bundle's [95% paired] |"
    )
    print("|---|---|---|---|---|---|---|")

    def row(name: str, scores: np.ndarray, cut: float, paired: str) -> None:
        found = metrics(test.y, scores, cut)
        low, high = bootstrap_intervals(test.y, scores, cut)["f1"]
        print(
            f"| {name} | {cut:.3f} | {found['precision']:.3f} | {found['recall']:.3f} | {found['f1']:.3f} "
            f"[{low:.3f}, {high:.3f}] | {found['flag_rate']:.4f} | {paired} |"
        )

    row("the bundle (sweep export)", bundle_scores, best["threshold"], "-")
    for seed in args.seeds:
        scores = own_training(best, development, seed).predict(test.X, verbose=0).ravel()
        paired = paired_f1_difference(test.y, scores, threshold, bundle_scores, best["threshold"])
        row(
            f"own training, seed {seed}",
            scores,
            threshold,
            f"{paired['difference']:+.3f} [{paired['low']:+.3f}, {paired['high']:+.3f}]",
        )


if __name__ == "__main__":
    main()
