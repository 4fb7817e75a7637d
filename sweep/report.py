"""The comparison a person reads: the sweep's exported configuration against the tutorial's fixed weights,
all scored on the same held-out test rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.data import Dataset
from sweep.metrics import metrics
from sweep.train import TrainSettings, score, train_model

REPORTED = ("precision", "recall", "f1", "average_precision", "flag_rate")


@dataclass(frozen=True)
class FixedVariant:
    """One of the tutorial's models: architecture, class weights, threshold 0.5."""

    name: str
    hidden_width: int
    hidden_layers: int
    class_weight: dict[int, float] | str  # "balanced" = sklearn's compute_class_weight on the training labels


TUTORIAL_VARIANTS = (
    FixedVariant("tutorial: no weights", 2, 2, {0: 1.0, 1: 1.0}),
    FixedVariant("tutorial: balanced weights", 2, 1, "balanced"),
    FixedVariant("tutorial: manual 1:200", 2, 1, {0: 1.0, 1: 200.0}),
)


@dataclass(frozen=True)
class Row:
    name: str
    values: dict[str, float]  # mean over seeds of each REPORTED metric on the test part
    spread: dict[str, float]  # standard deviation over seeds (0 for a single run)


def balanced_class_weight(y: np.ndarray) -> dict[int, float]:
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    return {0: float(weights[0]), 1: float(weights[1])}


def _row(name: str, runs: list[dict]) -> Row:
    return Row(
        name,
        {k: float(np.mean([r[k] for r in runs])) for k in REPORTED},
        {k: float(np.std([r[k] for r in runs])) for k in REPORTED},
    )


def tutorial_rows(dataset: Dataset, seeds=(0, 1, 2), epochs: int = 50, batch_size: int = 100) -> list[Row]:
    """The tutorial's three fixed-weight networks (threshold 0.5), trained on our training part, scored on test."""
    rows = []
    for variant in TUTORIAL_VARIANTS:
        weights = balanced_class_weight(dataset.train.y) if variant.class_weight == "balanced" else variant.class_weight
        runs = []
        for seed in seeds:
            settings = TrainSettings(epochs, batch_size, 0.001, variant.hidden_layers, seed)
            model, _ = train_model(dataset.train.X, dataset.train.y, variant.hidden_width, weights, settings)
            runs.append(metrics(dataset.test.y, score(model, dataset.test.X), 0.5))
        rows.append(_row(variant.name, runs))
    return rows


def logistic_reference_row(dataset: Dataset) -> Row:
    """sklearn's LogisticRegression(class_weight="balanced") with its threshold tuned for F1 by CV on train."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import TunedThresholdClassifierCV

    tuned = TunedThresholdClassifierCV(LogisticRegression(class_weight="balanced"), scoring="f1", random_state=0)
    tuned.fit(dataset.train.X, dataset.train.y)
    found = metrics(dataset.test.y, tuned.predict_proba(dataset.test.X)[:, 1], tuned.best_threshold_)
    return _row(f"logistic regression, balanced, CV-tuned threshold {tuned.best_threshold_:.3f}", [found])


def bundle_row(bundle_dir: str | Path, dataset: Dataset) -> Row:
    """The exported best configuration, scored on the same test rows."""
    from sweep.export import load_bundle

    best, _, model = load_bundle(bundle_dir)
    found = metrics(dataset.test.y, score(model, dataset.test.X), best["threshold"])
    name = (
        f"sweep best: weight 1:{best['class_weight']['1']:.3g}, width {best['hidden_width']}, "
        f"threshold {best['threshold']:.3f}"
    )
    return _row(name, [found])


def markdown_table(rows: list[Row]) -> str:
    """A markdown table of the rows; seed-to-seed spread shown as ± where there is one."""
    header = "| model | " + " | ".join(REPORTED).replace("_", " ") + " |"
    lines = [header, "|---" * (len(REPORTED) + 1) + "|"]
    for row in rows:
        cells = [
            f"{row.values[k]:.3f}" + (f" ± {row.spread[k]:.3f}" if row.spread[k] > 0 else "") for k in REPORTED
        ]
        lines.append(f"| {row.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
