"""Every figure, as PNG files: a trial's precision-recall curve and confusion matrix (the dashboard's artifacts
of the best trial, and the report's test figures), and a study's optimisation history, weight x threshold
landscape, parameter importances or Pareto front (the report). Matplotlib is imported only when drawing."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sweep.metrics import threshold_metrics

if TYPE_CHECKING:
    import optuna

# Resolution of every saved figure.
DPI = 90


def _pyplot():
    """matplotlib.pyplot on the file-only Agg backend (no display needed), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    """Lay out, write and close a figure; returns its path."""
    figure.tight_layout()
    figure.savefig(path, dpi=DPI)
    _pyplot().close(figure)
    return path


def plot(path: Path, draw, figsize: tuple[float, float] = (6.5, 4.2)) -> Path:
    """A one-axis figure drawn by draw(axis), written to `path`."""
    figure, axis = _pyplot().subplots(figsize=figsize)
    draw(axis)
    return _save(figure, path)


def trial_figures(
    y_true: np.ndarray, scores: np.ndarray, threshold: float, folder: Path, title: str, part: str = "validation"
) -> list[Path]:
    """Write pr_curve.png (precision and recall against the threshold, the chosen one marked) and
    confusion_matrix.png for one trial's scores on `part` of the data; returns their paths."""
    from sklearn.metrics import ConfusionMatrixDisplay, precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(y_true, scores)
    chosen = threshold_metrics(y_true, scores, threshold)
    figure, (curve, by_threshold) = _pyplot().subplots(1, 2, figsize=(10, 4))
    curve.plot(recall, precision)
    curve.scatter([chosen["recall"]], [chosen["precision"]], color="red", zorder=3, label=f"threshold {threshold:.3f}")
    curve.set(xlabel="recall", ylabel="precision", title=f"precision-recall ({part})")
    curve.legend()
    by_threshold.plot(thresholds, precision[:-1], label="precision")
    by_threshold.plot(thresholds, recall[:-1], label="recall")
    by_threshold.axvline(threshold, color="red", linestyle="--", label=f"chosen ({chosen['flag_rate']:.2%} flagged)")
    by_threshold.set(xlabel="threshold", title="against the threshold")
    by_threshold.legend()
    figure.suptitle(title)
    pr_path = _save(figure, folder / "pr_curve.png")

    def confusion(axis) -> None:
        matrix = np.array([[chosen["tn"], chosen["fp"]], [chosen["fn"], chosen["tp"]]])
        ConfusionMatrixDisplay(matrix, display_labels=["negative", "positive"]).plot(
            ax=axis, colorbar=False, values_format="d"
        )
        axis.set_title(f"{title}\n{part}, threshold {threshold:.3f}")

    return [pr_path, plot(folder / "confusion_matrix.png", confusion, figsize=(4.5, 4))]


def study_figures(
    study: optuna.Study, best_scores: np.ndarray, y_test: np.ndarray, threshold: float, folder: Path
) -> list[Path]:
    """Optimisation history, parameter importances, the weight x threshold landscape (or the Pareto front of a
    multi-objective study), and precision/recall against the threshold for the best model on the test part."""
    import matplotlib.ticker
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    prefix = study.study_name
    pr_curve, matrix = trial_figures(y_test, best_scores, threshold, folder, f"{prefix}: best trial", part="test")
    test_figures = [
        pr_curve.rename(folder / f"{prefix}-test-precision-recall.png"),
        matrix.rename(folder / f"{prefix}-test-confusion-matrix.png"),
    ]
    if len(study.directions) > 1:
        front = {t.number for t in study.best_trials}
        names = study.metric_names or ["objective 1", "objective 2"]

        def pareto(axis):
            axis.scatter(
                [t.values[0] for t in complete], [t.values[1] for t in complete], s=14, c="lightgray", label="trial"
            )
            ranked = sorted((t for t in complete if t.number in front), key=lambda t: t.values[0])
            axis.plot(
                [t.values[0] for t in ranked], [t.values[1] for t in ranked], "o-", color="red", label="Pareto front"
            )
            axis.set(xlabel=names[0], ylabel=names[1], title="Pareto front (validation)")
            axis.legend()

        return [plot(folder / f"{prefix}-pareto.png", pareto), *test_figures]
    values = np.array([t.value for t in complete])
    numbers = [t.number for t in complete]
    better = np.maximum.accumulate if study.direction == optuna.study.StudyDirection.MAXIMIZE else np.minimum.accumulate
    name = (study.metric_names or ["value"])[0]

    def history(axis):
        axis.scatter(numbers, values, s=12, label="trial")
        axis.plot(numbers, better(values), color="red", label="best so far")
        axis.set(xlabel="trial", ylabel=name, title="optimisation history (validation)")
        axis.legend()

    def landscape(axis):
        weights = [t.params["minority_weight"] for t in complete]
        thresholds = [t.params["threshold"] for t in complete]
        points = axis.scatter(weights, thresholds, c=values, cmap="viridis", s=25)
        axis.set_xscale("log")
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.set(xlabel="minority weight (log)", ylabel="threshold", title=f"{name} over weight x threshold")
        axis.figure.colorbar(points, ax=axis, label=name)

    figures = [plot(folder / f"{prefix}-history.png", history), plot(folder / f"{prefix}-landscape.png", landscape)]
    if len(complete) >= 2:
        importances = optuna.importance.get_param_importances(study)

        def importance(axis):
            axis.barh(list(importances)[::-1], list(importances.values())[::-1])
            axis.set(xlabel="importance (fANOVA)", title="parameter importances")

        figures.append(plot(folder / f"{prefix}-importances.png", importance))
    return figures + test_figures


def reliability_figure(
    y_true: np.ndarray, outputs: dict[str, np.ndarray], path: Path, title: str, bins: int = 10
) -> Path:
    """Observed positive rate against the mean predicted value in `bins` equal-count bins of each output (e.g. the
    raw score and the calibrated probability on the test rows), on linear and on log-log axes (bins with no
    positive are left off the log panel); a calibrated output lies on the diagonal."""
    y = np.asarray(y_true, dtype=np.float64).ravel()
    figure, axes = _pyplot().subplots(1, 2, figsize=(10, 4.2))
    for name, values in outputs.items():
        values = np.asarray(values, dtype=np.float64).ravel()
        order = np.argsort(values, kind="stable")
        groups = [g for g in np.array_split(order, bins) if len(g)]
        predicted = np.array([values[g].mean() for g in groups])
        observed = np.array([y[g].mean() for g in groups])
        for axis in axes:
            shown = observed > 0 if axis is axes[1] else np.ones(len(observed), bool)
            axis.plot(predicted[shown], observed[shown], "o-", label=f"{name} (mean {values.mean():.4f})")
    for axis, scale in zip(axes, ("linear", "log")):
        low = 1e-4 if scale == "log" else 0.0
        axis.plot([low, 1], [low, 1], color="gray", linestyle="--", label="calibrated")
        axis.set(xscale=scale, yscale=scale, xlabel="mean predicted (bin)", ylabel="observed positive rate (bin)")
    axes[0].set_title(f"reliability ({bins} equal-count bins)")
    axes[1].set_title("the same, log-log")
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    return _save(figure, path)


def class_confusion_figure(y: np.ndarray, decided: np.ndarray, names, path: Path, part: str) -> Path:
    """The confusion matrix of decisions among several classes on `part` of the data: counts and each true class's
    share."""
    matrix = np.bincount(
        np.asarray(y, dtype=np.int64) * len(names) + np.asarray(decided, dtype=np.int64), minlength=len(names) ** 2
    ).reshape(len(names), len(names))
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)

    def draw(axis) -> None:
        axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if shares[row, column] > 0.5 else "black"
            axis.text(column, row, f"{count}\n{shares[row, column]:.0%}", ha="center", va="center", color=colour)
        axis.set(xticks=range(len(names)), yticks=range(len(names)), xticklabels=names, yticklabels=names)
        axis.set(xlabel="decided class", ylabel="true class", title=f"confusion matrix ({part})")

    side = 2.2 + 0.9 * len(names)
    return plot(path, draw, figsize=(side, side))
