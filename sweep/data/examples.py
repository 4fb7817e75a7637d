"""The example data sets of studies/*.toml, made from what scikit-learn ships or seeded noise (nothing is
downloaded): `python -m sweep.data.examples studies/data` writes them. See docs/guides/own-model.md."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# Digits: one digit against the rest, its rows subsampled so positives are about 3% of all rows.
DIGIT = 8
DIGIT_SHARE = 0.03


def digits_arrays(seed: int = 0, digit: int = DIGIT, share: float = DIGIT_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8 x 8 digits as images (N x 8 x 8 x 1, values 0-16) and 0/1 labels (1 = `digit`),
    made imbalanced: a seeded subsample of the digit's rows keeps them at `share` of all rows."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, labels = digits.images.astype(np.float32)[..., None], (digits.target == digit).astype(np.int8)
    rng = np.random.default_rng(seed)
    negatives, positives = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
    kept = rng.choice(positives, size=round(share / (1 - share) * len(negatives)), replace=False)
    rows = rng.permutation(np.concatenate([negatives, kept]))
    return images[rows], labels[rows]


# Digits of several classes: 0-4, with 3 and 4 kept at these shares of the rows of each common digit.
RARE_DIGITS = {3: 0.2, 4: 0.1}


def digit_classes_arrays(seed: int = 0, rare: dict[int, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits 0-4 as rows of 64 pixel values (0-16) and the digit as label, made imbalanced: a
    seeded subsample keeps each digit of `rare` at that share of a common digit's rows (the target of several classes of
    docs/guides/classes.md)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rare = RARE_DIGITS if rare is None else rare
    rng = np.random.default_rng(seed)
    chosen = []
    for digit in range(5):
        rows = np.flatnonzero(digits.target == digit)
        keep = round(rare[digit] * len(rows)) if digit in rare else len(rows)
        chosen.append(rng.choice(rows, size=keep, replace=False))
    rows = rng.permutation(np.concatenate(chosen))
    return digits.data[rows].astype(np.float32), digits.target[rows].astype(np.int8)


def sequence_arrays(
    rows: int = 3000, steps: int = 48, positive_share: float = 0.04, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Synthetic sensor windows (N x steps x 2): smooth noise on two channels; a positive window also holds a
    short burst (a few steps of a sine on channel 0, a step on channel 1) at a random place, weak against the noise."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(rows, steps, 2)).astype(np.float32)
    x = np.cumsum(noise, axis=1) * 0.15 + noise * 0.6  # drifting, noisy channels
    y = (rng.random(rows) < positive_share).astype(np.int8)
    width = 6
    for row in np.flatnonzero(y):
        start = rng.integers(0, steps - width)
        x[row, start : start + width, 0] += 1.2 * np.sin(np.linspace(0, np.pi, width))
        x[row, start : start + width, 1] += 0.8
    return x.astype(np.float32), y


def tabular_frame(rows: int = 4000, seed: int = 0):
    """A table as people have them: 8 numeric features (two with gaps), a text column, ~5% positives."""
    import pandas as pd
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=8,
        n_informative=5,
        n_redundant=1,
        weights=[0.95, 0.05],
        class_sep=0.8,
        flip_y=0.01,
        random_state=seed,
    )
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(8)])
    rng = np.random.default_rng(seed)
    frame.loc[rng.random(rows) < 0.1, "f2"] = np.nan
    frame.loc[rng.random(rows) < 0.05, "f5"] = np.nan
    frame["region"] = np.where(
        X[:, 0] + rng.normal(size=rows) > 0, "north", rng.choice(["south", "east", "west"], size=rows)
    )
    frame["label"] = y
    return frame


def write_examples(folder: str | Path) -> list[Path]:
    """Write digits.npz, digit-classes.npz, sequences.npz and tabular.csv to `folder`; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    arrays = {
        "digits.npz": digits_arrays(),
        "digit-classes.npz": digit_classes_arrays(),
        "sequences.npz": sequence_arrays(),
    }
    for name, (x, y) in arrays.items():
        np.savez_compressed(folder / name, x=x, y=y)
        written.append(folder / name)
    tabular_frame().to_csv(folder / "tabular.csv", index=False)
    return [*written, folder / "tabular.csv"]


if __name__ == "__main__":
    for path in write_examples(sys.argv[1] if len(sys.argv) > 1 else "studies/data"):
        print(f"wrote {path}")
