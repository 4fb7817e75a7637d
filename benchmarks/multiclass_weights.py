"""Which class-weight parametrisation sweep should search for imbalanced targets of three or more classes.

Issue 25's next piece of groundwork after multiclass_rules.py: sweep searches one or a few numbers that set a weight for
every class, and this measures which numbers to search, on a multinomial logistic regression (a cheap stand-in for the
network sweep trains). Candidates (sweep.multiclass):

- power: w_c = (n_max / n_c) ** a, one number, exposed as the rarest class's weight W = (n_max / n_min) ** a and
  searched as sweep's `minority_weight` is, on a log scale over [1, 1000];
- power plus rarest: the same, times a second searched factor for the rarest class alone (log scale, [0.1, 10]);
- effective number (Cui et al. 2019): w_c proportional to (1 - beta) / (1 - beta ** n_c), beta in [0.9, 0.99999]
  searched on a log(1 - beta) scale;
- references, not searched: unweighted (a = 0) and scikit-learn's balanced weights.

For each table and split seed: a stratified 60/20/20 split (the same tables and splits as multiclass_rules.py). Each
searched candidate gets the same budget of Optuna TPE trials (seeded by the split seed); a trial fits the model on the
first part with its weights, chooses the logit adjustment's tau for macro-F1 on the second part
(`choose_rule`, priors = the training rows' class frequencies) and reports that validation macro-F1. The best trial's
model is scored on the third part with its own validation-chosen rule; the test rows choose nothing. Prints mean test
macro-F1 and balanced accuracy per table, the numbers chosen, and paired 95% t intervals over the (table, split) pairs.

    python benchmarks/multiclass_weights.py --seeds 0 1 2 3 4 5 6 7 8 9 --trials 12
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

from sweep.multiclass import (  # noqa: E402
    balanced_weights,
    choose_rule,
    class_counts,
    effective_number_weights,
    parse_class_goal,
    power_weights,
)

MINORITY_WEIGHT = (1.0, 1000.0)  # sweep's minority_weight range (config.py), searched on a log scale
RAREST_FACTOR = (0.1, 10.0)  # the second number of "power plus rarest", log scale
ONE_MINUS_BETA = (1e-5, 0.1)  # beta in [0.9, 0.99999], searched as log(1 - beta)
SEARCHED = ("power", "power plus rarest", "effective number")
REFERENCES = ("unweighted", "balanced")
ROWS = (*SEARCHED, *REFERENCES)


def exponent(minority_weight: float, counts: np.ndarray) -> float:
    """The power a that gives the rarest class the weight W: a = log W / log(n_max / n_min)."""
    return math.log(minority_weight) / math.log(counts.max() / counts.min())


def weights_of(candidate: str, params: dict[str, float], counts: np.ndarray) -> dict[int, float]:
    """Each class's weight for one candidate and its searched numbers."""
    if candidate == "unweighted":
        return power_weights(counts, 0.0)
    if candidate == "balanced":
        return balanced_weights(counts)
    if candidate == "effective number":
        return effective_number_weights(counts, 1.0 - params["one_minus_beta"])
    weights = power_weights(counts, exponent(params["minority_weight"], counts))
    if candidate == "power plus rarest":
        rarest = int(np.argmin(counts))
        weights[rarest] *= params["rarest_factor"]
    return weights


def suggest(trial, candidate: str) -> dict[str, float]:
    if candidate == "effective number":
        return {"one_minus_beta": trial.suggest_float("one_minus_beta", *ONE_MINUS_BETA, log=True)}
    params = {"minority_weight": trial.suggest_float("minority_weight", *MINORITY_WEIGHT, log=True)}
    if candidate == "power plus rarest":
        params["rarest_factor"] = trial.suggest_float("rarest_factor", *RAREST_FACTOR, log=True)
    return params


def one_split(X, y: np.ndarray, seed: int, goal, names: list[str], trials: int) -> dict[str, dict]:
    """Per candidate: test macro-F1, test balanced accuracy, validation macro-F1 and the chosen numbers."""
    import optuna
    from sklearn.linear_model import LogisticRegression

    train, val, test = split_rows(y, seed)
    k = len(names)
    balanced_accuracy = parse_class_goal("balanced_accuracy", names)
    counts = class_counts(y[train], k)
    priors = counts / len(train)
    # The preprocessing does not depend on the weights: fitted once per split, on the training rows.
    prep = encoder(X).fit(X.iloc[train])
    x_train, x_val, x_test = (prep.transform(X.iloc[rows]) for rows in (train, val, test))

    def evaluate(candidate: str, params: dict[str, float]) -> tuple[float, object]:
        model = LogisticRegression(max_iter=2000, class_weight=weights_of(candidate, params, counts))
        model.fit(x_train, y[train])
        rule, value = choose_rule(goal, y[val], model.predict_proba(x_val), priors)
        return value, (model, rule)

    found = {}
    for candidate in ROWS:
        if candidate in REFERENCES:
            params: dict[str, float] = {}
            value, (model, rule) = evaluate(candidate, params)
        else:
            fitted = {}

            def objective(trial, candidate=candidate, fitted=fitted):
                value, fitted[trial.number] = evaluate(candidate, suggest(trial, candidate))
                return value

            study = optuna.create_study(
                direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed, multivariate=True)
            )
            study.optimize(objective, n_trials=trials)
            best = study.best_trial
            params, value, (model, rule) = dict(best.params), best.value, fitted[best.number]
        decided = rule.decide(model.predict_proba(x_test))
        if "minority_weight" in params:
            params["a"] = exponent(params["minority_weight"], counts)
        found[candidate] = {
            "f1": goal.value(y[test], decided, k),
            "ba": balanced_accuracy.value(y[test], decided, k),
            "val": value,
            "tau": rule.tau or 0.0,
            "params": params,
        }
    return found


def chosen_numbers(runs: list[dict]) -> str:
    """Medians of the numbers each searched candidate chose on one table, and of the rule's tau."""

    def median(candidate: str, key: str) -> float:
        return statistics.median(run[candidate]["params"][key] for run in runs)

    def tau(candidate: str) -> str:
        return f"{statistics.median(run[candidate]['tau'] for run in runs):.2f}"

    return " | ".join(
        [
            f"W {median('power', 'minority_weight'):.3g}, a {median('power', 'a'):.2f}, tau {tau('power')}",
            f"a {median('power plus rarest', 'a'):.2f}, x{median('power plus rarest', 'rarest_factor'):.2f}, "
            f"tau {tau('power plus rarest')}",
            f"beta {1 - median('effective number', 'one_minus_beta'):.5f}, tau {tau('effective number')}",
            f"tau {tau('unweighted')}",
            f"tau {tau('balanced')}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=12, help="Optuna trials for each searched candidate")
    parser.add_argument("--tables", nargs="+", choices=list(TABLES), default=list(TABLES))
    args = parser.parse_args()
    print(f"{machine()}, scikit-learn {metadata.version('scikit-learn')}")
    started, cpu = time.perf_counter(), time.process_time()
    results: dict[str, list[dict]] = {}
    for name in args.tables:
        X, labels = TABLES[name]()
        names = sorted(labels.astype(str).unique(), key=lambda c: -int((labels.astype(str) == c).sum()))
        y = np.array([names.index(v) for v in labels.astype(str)])
        goal = parse_class_goal("macro_f1", names)
        counts = class_counts(y, len(names))
        print(f"{name}: {len(y)} rows, classes {dict(zip(names, counts.tolist()))}", flush=True)
        results[name] = [one_split(X, y, seed, goal, names, args.trials) for seed in args.seeds]
    print(f"\nRun: {time.perf_counter() - started:.0f} s wall, {time.process_time() - cpu:.0f} s CPU")
    splits = len(args.seeds)
    print(f"\n### Test macro-F1 (balanced accuracy) per table, mean over {splits} splits, {args.trials} trials\n")
    print("| table | " + " | ".join(ROWS) + " |")
    print("|---" * (len(ROWS) + 1) + "|")
    for name, runs in results.items():
        cells = [
            f"{statistics.mean(r[c]['f1'] for r in runs):.3f} ({statistics.mean(r[c]['ba'] for r in runs):.3f})"
            for c in ROWS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n### Numbers chosen on validation (medians over the splits)\n")
    print("| table | " + " | ".join(ROWS) + " |")
    print("|---" * (len(ROWS) + 1) + "|")
    for name, runs in results.items():
        print(f"| {name} | {chosen_numbers(runs)} |")
    pairs = [run for runs in results.values() for run in runs]
    print(f"\n### Paired differences over every (table, split), 95% t interval ({len(pairs)} pairs)\n")
    print(
        "| candidate | macro-F1 - power | balanced accuracy - power | macro-F1 - unweighted | "
        "balanced accuracy - unweighted | validation macro-F1 - power |"
    )
    print("|---|---|---|---|---|---|")
    for c in ROWS:
        print(
            f"| {c} | {interval_text([p[c]['f1'] - p['power']['f1'] for p in pairs])} | "
            f"{interval_text([p[c]['ba'] - p['power']['ba'] for p in pairs])} | "
            f"{interval_text([p[c]['f1'] - p['unweighted']['f1'] for p in pairs])} | "
            f"{interval_text([p[c]['ba'] - p['unweighted']['ba'] for p in pairs])} | "
            f"{interval_text([p[c]['val'] - p['power']['val'] for p in pairs])} |"
        )


if __name__ == "__main__":
    main()
