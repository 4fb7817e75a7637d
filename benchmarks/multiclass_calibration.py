"""Are sweep's probabilities of several classes calibrated, and should a map fitted on validation scores be added?

For targets of three or more classes sweep trains a softmax network with class weights w_c and ships the prior
correction (`sweep.multiclass.prior_corrected`: each class's output divided by its weight, rows renormalised). This
measures, on the builtin network (`sweep.models.network.train_model`, one hidden layer of 16), four ways to turn its
outputs into probabilities:

- raw: the softmax output as it is (reference);
- prior correction: what sweep ships today;
- + temperature: the prior-corrected probabilities, then p ~ exp(log p / T), one T fitted on the validation rows for
  log loss (bounded minimize_scalar on log T in [log 0.05, log 20]);
- + vector scaling: the prior-corrected probabilities, then p_c ~ exp(a_c log p_c + b_c), 2K numbers fitted on the
  validation rows for log loss plus 0.001 * (sum (a_c - 1)^2 + sum b_c^2) (L-BFGS-B with the exact gradient,
  a_c in [0.05, 20], b_c in [-20, 20]).

For each table and split seed: the stratified 60/20/20 split of multiclass_rules.py (same tables and encoding); the
network is trained on the first part with class weights `rarest_weighted(counts, W)` (counts from the first part) for
W = n_max / n_min (power 1) and W = sqrt(n_max / n_min) (power 1/2); each map is fitted on the second part's scores
only, and everything is scored on the third, which chooses nothing: log loss, multi-class Brier score (mean over rows
of sum_c (p_c - 1[y = c])^2) and the top class's expected calibration error (15 equal-width bins). Prints per-table
means and the fitted numbers, and paired 95% t intervals of each map minus the prior correction (and vector minus
temperature scaling) over the (table, split, weighting) triples: all of them, all but heating_system_5, each weighting
alone, and within each table. Network epochs: max(50, ceil(3000 / batches of 100 per epoch)), at least 3000 Adam steps.

    python benchmarks/multiclass_calibration.py --seeds $(seq 0 19)
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import interval_text, machine  # noqa: E402
from multiclass_rules import TABLES, encoder, split_rows  # noqa: E402

from sweep.multiclass import (  # noqa: E402  # the temperature map is the package's own
    class_counts,
    fit_temperature,
    prior_corrected,
    rarest_weighted,
    with_temperature,
)

FLOOR = 1e-12  # the least probability whose log is taken (maps and log loss alike)
VECTOR_PENALTY = 1e-3  # L2 on (a - 1) and b, added to the mean validation log loss
SLOPES, OFFSETS = (0.05, 20.0), (-20.0, 20.0)  # L-BFGS-B bounds of a_c and b_c
HIDDEN_WIDTH, BATCH, STEPS, MIN_EPOCHS = 16, 100, 3000, 50
WEIGHTINGS = {"power 1": 1.0, "power 1/2": 0.5}  # W = (n_max / n_min) ** power
MAPS = ("raw", "prior correction", "+ temperature", "+ vector scaling")
BASE = "prior correction"
# Pooled once more without this table: its network overfits most (500 epochs on 540 rows of a weak signal), so its
# large gains could carry the pooled means alone (added after the first run showed it).
LEFT_OUT = "heating_system_5"


def softmax(logits: np.ndarray) -> np.ndarray:
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), FLOOR, 1.0))


def mean_log_loss(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Mean over rows of -log p_y (p floored at FLOOR)."""
    return float(-log_probabilities(probabilities)[np.arange(len(y)), y].mean())


def fit_vector_scaling(probabilities: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a, b), K numbers each, minimising the mean log loss of apply_vector_scaling(probabilities, a, b) on these
    (validation) rows plus VECTOR_PENALTY * (sum (a - 1)^2 + sum b^2), by L-BFGS-B with the exact gradient."""
    from scipy.optimize import minimize

    logs = log_probabilities(probabilities)
    k = logs.shape[1]
    onehot = np.eye(k)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b = theta[:k], theta[k:]
        z = logs * a + b
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1, keepdims=True))
        residual = (np.exp(z - log_norm) - onehot) / len(y)  # d(mean log loss) / dz
        value = float(-((z - log_norm) * onehot).sum() / len(y))
        value += VECTOR_PENALTY * float(((a - 1) ** 2).sum() + (b**2).sum())
        slopes = (residual * logs).sum(axis=0) + 2 * VECTOR_PENALTY * (a - 1)
        return value, np.concatenate([slopes, residual.sum(axis=0) + 2 * VECTOR_PENALTY * b])

    start = np.concatenate([np.ones(k), np.zeros(k)])
    bounds = [SLOPES] * k + [OFFSETS] * k
    found = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds)
    return found.x[:k], found.x[k:]


def apply_vector_scaling(probabilities: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """p_c ~ exp(a_c log p_c + b_c), rows renormalised (a = 1, b = 0 leaves the probabilities as they are)."""
    return softmax(log_probabilities(probabilities) * np.asarray(a) + np.asarray(b))


def brier(probabilities: np.ndarray, y: np.ndarray) -> float:
    """Mean over rows of sum_c (p_c - 1[y = c])^2."""
    onehot = np.eye(probabilities.shape[1])[y]
    return float(((np.asarray(probabilities, dtype=np.float64) - onehot) ** 2).sum(axis=1).mean())


def top_class_ece(probabilities: np.ndarray, y: np.ndarray, bins: int = 15) -> float:
    """Expected calibration error of the top class: sum over equal-width confidence bins of the bin's share of rows
    times |accuracy - mean confidence| in it."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y).astype(np.float64)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def epochs_for(rows: int) -> int:
    """At least STEPS Adam steps and MIN_EPOCHS epochs: max(50, ceil(3000 / batches per epoch))."""
    return max(MIN_EPOCHS, math.ceil(STEPS / math.ceil(rows / BATCH)))


def encoded(X, train, val, test) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows of each part, encoded as multiclass_rules.py does (fitted on the training rows), dense float32."""
    prep = encoder(X).fit(X.iloc[train])

    def dense(rows):
        out = prep.transform(X.iloc[rows])
        return np.asarray(out.toarray() if hasattr(out, "toarray") else out, dtype=np.float32)

    return dense(train), dense(val), dense(test)


def one_split(X, y: np.ndarray, seed: int, k: int) -> dict[str, dict]:
    """Per weighting: each map's test metrics and the fitted numbers, for one split seed."""
    from sweep.models.network import TrainSettings, train_model

    train, val, test = split_rows(y, seed)
    x_train, x_val, x_test = encoded(X, train, val, test)
    counts = class_counts(y[train], k)
    settings = TrainSettings(epochs_for(len(train)), BATCH, 0.001, 1, seed)
    found = {}
    for label, power in WEIGHTINGS.items():
        weights = rarest_weighted(counts, float(counts.max() / counts.min()) ** power)
        network, _ = train_model(x_train, y[train], HIDDEN_WIDTH, weights, settings)
        raw_val, raw_test = network.scores(x_val), network.scores(x_test)
        val_p, test_p = prior_corrected(raw_val, weights), prior_corrected(raw_test, weights)
        temperature = fit_temperature(val_p, y[val])
        a, b = fit_vector_scaling(val_p, y[val])
        outputs = {
            "raw": raw_test.astype(np.float64) / raw_test.astype(np.float64).sum(axis=1, keepdims=True),
            "prior correction": test_p,
            "+ temperature": with_temperature(test_p, temperature),
            "+ vector scaling": apply_vector_scaling(test_p, a, b),
        }
        found[label] = {
            m: {
                "log loss": mean_log_loss(p, y[test]),
                "brier": brier(p, y[test]),
                "ece": top_class_ece(p, y[test]),
            }
            for m, p in outputs.items()
        }
        found[label]["fit"] = {"T": temperature, "a": a, "b": b}
    return found


def per_table(results: dict[str, list[dict]]) -> None:
    """Mean test log loss / Brier / ECE per table and weighting, and the fitted numbers' medians."""
    print("\n### Test log loss / Brier / top-class ECE per table and weighting (mean over splits)\n")
    print("| table | weighting | " + " | ".join(MAPS) + " | median T | median a range |")
    print("|---" * (len(MAPS) + 4) + "|")
    for name, runs in results.items():
        for label in WEIGHTINGS:
            cells = [
                " / ".join(
                    f"{statistics.mean(r[label][m][key] for r in runs):.3f}" for key in ("log loss", "brier", "ece")
                )
                for m in MAPS
            ]
            fits = [r[label]["fit"] for r in runs]
            temperature = statistics.median(f["T"] for f in fits)
            low = statistics.median(float(f["a"].min()) for f in fits)
            high = statistics.median(float(f["a"].max()) for f in fits)
            print(f"| {name} | {label} | " + " | ".join(cells) + f" | {temperature:.2f} | {low:.2f}-{high:.2f} |")


def pooled(triples: list[dict], title: str) -> None:
    """One table of paired differences (95% t intervals): each map minus the prior correction, and vector scaling
    minus temperature scaling."""
    print(f"\n### {title}, 95% t interval ({len(triples)} triples)\n")
    print("| difference | log loss | Brier | top-class ECE |")
    print("|---|---|---|---|")
    pairs = [(m, BASE) for m in MAPS if m != BASE] + [("+ vector scaling", "+ temperature")]
    for m, base in pairs:
        diffs = {key: [t[m][key] - t[base][key] for t in triples] for key in ("log loss", "brier", "ece")}
        print(
            f"| {m} - {base} | "
            + " | ".join(interval_text(diffs[key], 4) for key in ("log loss", "brier", "ece"))
            + " |"
        )


def paired(results: dict[str, list[dict]]) -> None:
    """Paired differences over every (table, split, weighting) triple, without LEFT_OUT, per weighting, and within
    each table."""
    every = [(name, label, run[label]) for name, runs in results.items() for run in runs for label in WEIGHTINGS]
    pooled([t for _, _, t in every], "Paired differences over every (table, split, weighting)")
    if LEFT_OUT in results and len(results) > 1:
        kept = [t for name, _, t in every if name != LEFT_OUT]
        pooled(kept, f"The same without {LEFT_OUT}")
    for label in WEIGHTINGS:
        pooled([t for _, w, t in every if w == label], f"Weighting {label} only")
    print("\n### Within each table: log loss (Brier) difference, 95% t interval over splits x weightings\n")
    shown = [(m, BASE) for m in MAPS if m != BASE] + [("+ vector scaling", "+ temperature")]
    print("| table | " + " | ".join(f"{m} - {base}" for m, base in shown) + " |")
    print("|---" * (len(shown) + 1) + "|")
    for name, runs in results.items():
        within = [run[label] for run in runs for label in WEIGHTINGS]
        cells = [
            f"{interval_text([t[m]['log loss'] - t[base]['log loss'] for t in within])} "
            f"({interval_text([t[m]['brier'] - t[base]['brier'] for t in within])})"
            for m, base in shown
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    args = parser.parse_args()
    print(f"{machine()}, scikit-learn {metadata.version('scikit-learn')}, scipy {metadata.version('scipy')}")
    started, cpu = time.perf_counter(), time.process_time()
    results: dict[str, list[dict]] = {}
    for name in args.tables:
        X, labels = TABLES[name]()
        names = sorted(labels.astype(str).unique(), key=lambda c: -int((labels.astype(str) == c).sum()))
        y = np.array([names.index(v) for v in labels.astype(str)])
        counts = class_counts(y, len(names))
        train_rows = len(split_rows(y, 0)[0])
        print(
            f"{name}: {len(y)} rows, classes {dict(zip(names, counts.tolist()))}, "
            f"{epochs_for(train_rows)} epochs on {train_rows} training rows",
            flush=True,
        )
        results[name] = [one_split(X, y, seed, len(names)) for seed in args.seeds]
    print(f"\nRun: {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    per_table(results)
    paired(results)


if __name__ == "__main__":
    main()
