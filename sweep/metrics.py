"""Goals (a parsed --objective) and validation metrics of a scored split: confusion counts, flag rate, F-scores, AP,
ROC-AUC."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from sweep.errors import ConfigError
from sweep.multiclass import class_goal_name, is_class_objective, parse_class_goal

OBJECTIVE_SYNTAX = (
    "f1 | fbeta:BETA | ap | recall_at_precision:MIN_PRECISION | cost:miss=COST,false_alarm=COST"
    " | pareto:METRIC,METRIC (of precision, recall, f1, flag_rate)"
)
PARETO_METRICS = ("precision", "recall", "f1", "flag_rate")
LOWER_IS_BETTER = ("flag_rate", "fp", "fn")
PICK_SYNTAX = "METRIC or METRIC:OTHER>=BOUND or METRIC:OTHER<=BOUND (e.g. recall:precision>=0.2)"


@dataclass(frozen=True)
class Goal:
    """A parsed --objective: what to compute on the validation part and which way is better."""

    kind: str
    pareto: tuple[str, ...] = ()
    beta: float = 1.0
    min_precision: float = 0.0
    miss_cost: float = 1.0
    false_alarm_cost: float = 1.0
    text: str = field(default="", compare=False)  # the --objective text it was parsed from, as stored

    @property
    def direction(self) -> str:
        return "minimize" if self.kind == "cost" else "maximize"

    @property
    def is_multi(self) -> bool:
        return self.kind == "pareto"

    @property
    def for_classes(self) -> bool:
        """An objective of a target with three or more classes (sweep.multiclass.ClassGoal, bound to its classes)."""
        return self.kind == "classes"

    @property
    def directions(self) -> list[str]:
        if self.is_multi:
            return ["minimize" if m in LOWER_IS_BETTER else "maximize" for m in self.pareto]
        return [self.direction]

    @property
    def names(self) -> list[str]:
        """Metric names for study.set_metric_names, one per objective."""
        return [f"val_{m}" for m in self.pareto] if self.is_multi else [self.name]

    @property
    def name(self) -> str:
        """Metric name shown by optuna-dashboard (study.set_metric_names)."""
        if self.kind == "fbeta":
            return f"val_f{self.beta:g}"
        if self.kind == "recall_at_precision":
            return f"val_recall_at_precision_{self.min_precision:g}"
        if self.kind == "cost":
            return f"val_cost_per_row(miss={self.miss_cost:g},false_alarm={self.false_alarm_cost:g})"
        if self.kind == "pareto":
            return "pareto(" + ",".join(self.pareto) + ")"
        if self.kind == "classes":
            return class_goal_name(self.text)
        return {"f1": "val_f1", "ap": "val_average_precision"}[self.kind]

    @property
    def uses_threshold(self) -> bool:
        return self.kind != "ap"

    def value_of_scores(self, y_true: np.ndarray, scores: np.ndarray, threshold: float) -> float:
        """The objective straight from scores, computing only what it needs (used after every epoch)."""
        if self.kind == "ap":
            return average_precision(y_true, scores)
        return self.value(threshold_metrics(y_true, scores, threshold))

    def value(self, metrics: dict):
        """The objective from metrics() (a tuple for pareto); docs/guides/objectives.md says how each kind prices
        errors."""
        if self.kind == "pareto":
            return tuple(float(metrics[m]) for m in self.pareto)
        if self.kind == "f1":
            return metrics["f1"]
        if self.kind == "fbeta":
            return fbeta(metrics["precision"], metrics["recall"], self.beta)
        if self.kind == "ap":
            return metrics["average_precision"]
        if self.kind == "recall_at_precision":
            # Feasible trials score their recall in [0, 1]; infeasible ones score how far precision falls
            # short (negative), so the sampler is still led towards the constraint.
            shortfall = self.min_precision - metrics["precision"]
            return metrics["recall"] if shortfall <= 0 else -shortfall
        total = metrics["tp"] + metrics["fp"] + metrics["tn"] + metrics["fn"]
        return (self.miss_cost * metrics["fn"] + self.false_alarm_cost * metrics["fp"]) / total


def _bad_objective(spec: str, source: str, why: str) -> ConfigError:
    return ConfigError(f"objective {spec!r} (from {source}) is invalid: {why}; expected {OBJECTIVE_SYNTAX}")


def _positive_number(text: str, spec: str, source: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _bad_objective(spec, source, f"{what} {text!r} is not a number") from None
    if not number > 0 or not np.isfinite(number):
        raise _bad_objective(spec, source, f"{what} must be a positive number, got {text}")
    return number


def parse_goal(spec: str, source: str = "--objective") -> Goal:
    """Parse the objective syntax (OBJECTIVE_SYNTAX, or a multi-class objective, checked against the target's classes
    once the data is read); errors say what was received and what is expected."""
    given = spec.strip()
    text = given.lower()
    kind, _, argument = text.partition(":")
    if is_class_objective(given):
        parse_class_goal(given, None, source)
        return Goal("classes", text=given)
    if kind == "f1" and not argument:
        return Goal("f1", text=given)
    if kind in ("ap", "average_precision") and not argument:
        return Goal("ap", text=given)
    if kind == "fbeta":
        return Goal("fbeta", beta=_positive_number(argument, spec, source, "beta"), text=given)
    if kind == "recall_at_precision":
        floor = _positive_number(argument, spec, source, "minimum precision")
        if floor >= 1:
            raise _bad_objective(spec, source, f"minimum precision must be below 1, got {argument}")
        return Goal("recall_at_precision", min_precision=floor, text=given)
    if kind == "pareto":
        chosen = tuple(m.strip() for m in (argument or "precision,recall").split(","))
        unknown = [m for m in chosen if m not in PARETO_METRICS]
        if unknown or len(chosen) < 2 or len(set(chosen)) != len(chosen):
            raise _bad_objective(
                spec, source, f"pareto needs two or more different metrics of {', '.join(PARETO_METRICS)}"
            )
        return Goal("pareto", pareto=chosen, text=given)
    if kind == "cost":
        costs = {}
        for part in filter(None, argument.split(",")):
            name, _, number = part.partition("=")
            if name.strip() not in ("miss", "false_alarm"):
                raise _bad_objective(spec, source, f"unknown cost {name.strip()!r} (use miss= and false_alarm=)")
            costs[name.strip()] = _positive_number(number.strip(), spec, source, f"cost {name.strip()}")
        if set(costs) != {"miss", "false_alarm"}:
            raise _bad_objective(spec, source, "both miss= and false_alarm= costs are needed")
        return Goal("cost", miss_cost=costs["miss"], false_alarm_cost=costs["false_alarm"], text=given)
    raise _bad_objective(spec, source, "unknown objective")


def fbeta(precision: float, recall: float, beta: float) -> float:
    """F-beta from precision and recall (0 when both are 0), as sklearn.metrics.fbeta_score defines it."""
    denominator = beta**2 * precision + recall
    return 0.0 if denominator == 0 else (1 + beta**2) * precision * recall / denominator


def threshold_metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """Confusion counts, precision, recall, F1 and flag rate at `threshold` (flag = score >= threshold).

    Plain numpy rather than sklearn.metrics.confusion_matrix: this runs after every epoch for pruning,
    where sklearn's input validation costs more than the counting (tests check both agree).
    """
    y_true = np.asarray(y_true).astype(bool).ravel()
    flagged = np.asarray(scores).ravel() >= threshold
    tp = int(np.count_nonzero(flagged & y_true))
    return _count_metrics(tp, int(np.count_nonzero(flagged)), int(np.count_nonzero(y_true)), len(y_true))


def metrics_at_thresholds(y_true: np.ndarray, scores: np.ndarray, thresholds) -> list[dict]:
    """threshold_metrics at each of many thresholds, with the scores sorted once (each threshold then costs two
    binary searches, not a pass over every row): what choosing a threshold on pooled scores needs."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()  # compared in float64, as `>=` does with float64 thresholds
    every, positives = np.sort(scores), np.sort(scores[y_true])
    cuts = np.asarray(thresholds, dtype=np.float64)
    flagged = len(every) - np.searchsorted(every, cuts, side="left")  # rows with score >= cut
    tps = len(positives) - np.searchsorted(positives, cuts, side="left")
    return [_count_metrics(int(tp), int(f), len(positives), len(every)) for tp, f in zip(tps, flagged)]


def _count_metrics(tp: int, flagged: int, positives: int, rows: int) -> dict:
    """threshold_metrics' dict from its counts: true positives, flagged rows, positive rows, all rows."""
    fp, fn = flagged - tp, positives - tp
    tn = rows - tp - fp - fn
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": fbeta(precision, recall, 1.0),
        "flag_rate": (tp + fp) / rows if rows else 0.0,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
    }


def ranking_metrics(y_true: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """sklearn's average precision and ROC AUC from one sort (NaN when only one class is present).

    By hand rather than average_precision_score and roc_auc_score: every trial computes both on the validation rows,
    where sklearn's input checks and its two sorts cost several times this one sort
    (docs/benchmarks/trial-speed.md#section-11; tests check both agree, ties included). Both step at each distinct
    score, highest first.
    """
    y = np.asarray(y_true).astype(np.float64).ravel()
    positives = y.sum()
    if not 0 < positives < len(y):
        return {"average_precision": float("nan"), "roc_auc": float("nan")}
    scores = np.asarray(scores, dtype=np.float64).ravel()
    cum_tp, cum_all = _score_steps(y, scores, np.ones((1, len(y))))
    recall = np.r_[0.0, cum_tp[0] / positives]
    false_rate = np.r_[0.0, (cum_all[0] - cum_tp[0]) / (len(y) - positives)]
    return {
        "average_precision": float(_average_precision(cum_tp, cum_all, np.array([positives]))[0]),
        "roc_auc": float(np.sum(np.diff(false_rate) * (recall[1:] + recall[:-1]) / 2)),
    }


def _score_order(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows by score, highest first; the last of each run of tied scores in that order): what _score_steps
    needs of the scores, computed once for every block of a bootstrap."""
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    return order, np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])


def _score_steps(y: np.ndarray, scores: np.ndarray, weights: np.ndarray, steps=None) -> tuple[np.ndarray, np.ndarray]:
    """(positives, rows) flagged at each distinct score, highest first, summed with each row of `weights`
    (row multiplicities): the steps of sklearn's precision-recall and ROC curves. `steps`: _score_order(scores)."""
    order, ends = _score_order(scores) if steps is None else steps
    sorted_weights = weights[:, order]
    return np.cumsum(sorted_weights * y[order], axis=1)[:, ends], np.cumsum(sorted_weights, axis=1)[:, ends]


def _average_precision(cum_tp: np.ndarray, cum_all: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """sklearn's average precision (the recall steps times the precision there) for each row of _score_steps."""
    step_tp = np.diff(np.concatenate([np.zeros((len(cum_tp), 1)), cum_tp], axis=1), axis=1)
    step_precision = np.where(cum_all > 0, cum_tp / cum_all, 0.0)
    return np.where(positives > 0, (step_tp * step_precision).sum(axis=1) / positives, np.nan)


def average_precision(y_true: np.ndarray, scores: np.ndarray) -> float:
    """sklearn's average precision; NaN when only one class is present."""
    return ranking_metrics(y_true, scores)["average_precision"]


def metrics(y_true: np.ndarray, scores: np.ndarray, threshold: float) -> dict:
    """All validation or test metrics of scores flagged at `threshold`: threshold_metrics plus AP and ROC-AUC."""
    y_int = np.asarray(y_true).astype(int).ravel()
    return threshold_metrics(y_int, scores, threshold) | ranking_metrics(y_int, scores)


@dataclass(frozen=True)
class Pick:
    """How to pick one trial from a Pareto front: the best `metric`, among trials meeting a bound on another."""

    metric: str = "f1"
    other: str | None = None
    at_least: bool = True
    bound: float = 0.0

    def allows(self, values: dict) -> bool:
        if self.other is None:
            return True
        found = values.get(self.other)
        return found is not None and (found >= self.bound if self.at_least else found <= self.bound)

    def key(self, values: dict) -> float:
        found = values.get(self.metric, float("nan"))
        return -found if self.metric in LOWER_IS_BETTER else found

    def __str__(self) -> str:
        if self.other is None:
            return f"best {self.metric}"
        return f"best {self.metric} with {self.other} {'>=' if self.at_least else '<='} {self.bound:g}"


def parse_pick(spec: str | None) -> Pick:
    """Parse a --pick rule (PICK_SYNTAX); metrics are validation metrics (precision, recall, f1, flag_rate, ...)."""
    if spec is None:
        return Pick()
    known = ("precision", "recall", "f1", "flag_rate", "average_precision", "roc_auc")
    metric, _, constraint = spec.strip().lower().partition(":")
    match = re.fullmatch(r"\s*(\w+)\s*(>=|<=)\s*([0-9.eE+-]+)\s*", constraint) if constraint else None
    if metric not in known or (constraint and (match is None or match.group(1) not in known)):
        raise ConfigError(f"--pick {spec!r} is invalid: expected {PICK_SYNTAX} with metrics from {', '.join(known)}")
    if match is None:
        return Pick(metric)
    return Pick(metric, match.group(1), match.group(2) == ">=", float(match.group(3)))


# Metrics that get a bootstrap interval on the test part (confusion counts are plain counts).
INTERVAL_METRICS = ("precision", "recall", "f1", "average_precision", "flag_rate")
BOOTSTRAP_RESAMPLES = 1000
# Resamples scored per numpy block: bounds memory to about chunk x rows floats.
_BOOTSTRAP_CHUNK = 50
# Multiplicities (resamples x rows) held at once: past this many, fewer resamples a block (_count_blocks), so a
# test part of millions of rows needs no (1000 x rows) array. Scoring a block makes several copies of it (sorted,
# cumulative sums), so this bounds the bootstrap's memory: 2**20 (8 MB a copy) keeps a big export's peak below that
# of larger blocks, in the same time (docs/benchmarks/memory.md#section-15).
_BOOTSTRAP_CELLS = 2**20


def _stratified_counts(y: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(resamples, rows) multiplicities of a stratified bootstrap: positives and negatives are each drawn
    with replacement from their own rows, so every resample keeps the class counts of the original."""
    return np.concatenate(list(_count_blocks(y, resamples, seed, block=resamples)))


def _count_blocks(y: np.ndarray, resamples: int, seed: int, block: int | None = None):
    """_stratified_counts(y, resamples, seed) as consecutive blocks of resamples: the same multiplicities.

    A block holds at most _BOOTSTRAP_CELLS multiplicities (and at most _BOOTSTRAP_CHUNK resamples), so a test
    part of millions of rows needs no (1000 x rows) array. Each class draws from a stream of its own, seeded
    from (seed, class), one resample at a time: blocks of any size give the same resamples.

    A resample is each class's rows drawn with replacement as integers and counted (np.bincount): the multinomial
    with equal shares that Generator.multinomial draws, at O(rows) a resample where multinomial makes a binomial
    draw per row, most of a big export's time (docs/benchmarks/memory.md)."""
    if block is None:
        block = max(1, min(_BOOTSTRAP_CHUNK, _BOOTSTRAP_CELLS // max(len(y), 1)))
    classes = [np.flatnonzero(y == label) for label in (0, 1)]
    streams = [np.random.default_rng([seed, label]) for label in (0, 1)]
    draw_type = np.int32 if len(y) < np.iinfo(np.int32).max else np.int64
    for start in range(0, resamples, block):
        size = min(block, resamples - start)
        counts = np.empty((size, len(y)), dtype=np.float64)
        for resample in range(size):
            drawn = [
                rows[stream.integers(0, len(rows), size=len(rows), dtype=draw_type)]
                for rows, stream in zip(classes, streams)
                if len(rows)
            ]
            counts[resample] = np.bincount(np.concatenate(drawn), minlength=len(y))
        yield counts


def _weighted_metrics(
    y: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    weights: np.ndarray,
    with_ap: bool = True,
    steps=None,
) -> dict[str, np.ndarray]:
    """precision, recall, f1, flag_rate and (with_ap) average precision for each row of `weights` (row
    multiplicities); `steps`: _score_order(scores), when the caller scores many blocks of the same rows.

    Average precision is sklearn's (steps at each distinct score, highest first), computed for every
    resample at once from cumulative sums in score order; with unit weights it equals average_precision
    (tests check both). It is the costly part (a sort and two cumulative sums), so F1-only callers skip it.
    """
    flagged = scores >= threshold
    positives = weights @ y
    tp = weights @ (y * flagged)
    fp = weights @ ((1 - y) * flagged)
    total = weights.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(positives > 0, tp / positives, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
        found = {"precision": precision, "recall": recall, "f1": f1, "flag_rate": (tp + fp) / total}
        if not with_ap:
            return found
        found["average_precision"] = _average_precision(*_score_steps(y, scores, weights, steps), positives)
    return found


def _bootstrap(y: np.ndarray, statistics, resamples: int, seed: int) -> dict[str, np.ndarray]:
    """Every resample's values of statistics(weights block) -> {name: (block,) values}, over one stratified
    bootstrap of y's rows, computed in blocks of at most _BOOTSTRAP_CHUNK resamples (_count_blocks)."""
    blocks = [statistics(counts) for counts in _count_blocks(y, resamples, seed)]
    return {name: np.concatenate([block[name] for block in blocks]) for name in blocks[0]}


def bootstrap_intervals(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of INTERVAL_METRICS under a stratified, seeded bootstrap of the rows.

    Hand-written rather than sklearn/scipy: scipy.stats.bootstrap resamples one statistic at a time and is
    not stratified; here all metrics of a resample come from one multiplicity vector, so they stay paired.
    """
    y = np.asarray(y_true).astype(np.float64).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    steps = _score_order(s)
    draws = _bootstrap(y, lambda weights: _weighted_metrics(y, s, threshold, weights, steps=steps), resamples, seed)
    tail = (1 - level) / 2 * 100
    return {
        name: tuple(float(v) for v in np.nanpercentile(draws[name], [tail, 100 - tail])) for name in INTERVAL_METRICS
    }


def paired_f1_difference(
    y_true: np.ndarray,
    scores_a: np.ndarray,
    threshold_a: float,
    scores_b: np.ndarray,
    threshold_b: float,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """F1(a) - F1(b) on the same rows, with a percentile interval from one stratified bootstrap that resamples
    the same rows for both models (paired): {"difference", "low", "high"}."""
    y = np.asarray(y_true).astype(np.float64).ravel()
    a, b = (np.asarray(scores, dtype=np.float64).ravel() for scores in (scores_a, scores_b))

    def difference(weights):
        f1 = [_weighted_metrics(y, s, t, weights, with_ap=False)["f1"] for s, t in ((a, threshold_a), (b, threshold_b))]
        return {"f1": f1[0] - f1[1]}

    tail = (1 - level) / 2 * 100
    low, high = np.percentile(_bootstrap(y, difference, resamples, seed)["f1"], [tail, 100 - tail])
    observed = threshold_metrics(y, scores_a, threshold_a)["f1"] - threshold_metrics(y, scores_b, threshold_b)["f1"]
    return {"difference": float(observed), "low": float(low), "high": float(high)}


def bootstrap_mean_intervals(
    y_true: np.ndarray,
    losses: dict[str, np.ndarray],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the mean of each per-row loss in `losses` (e.g. Brier, log loss), under the same
    stratified, seeded bootstrap of the rows as bootstrap_intervals (all losses of a resample from one draw)."""
    y = np.asarray(y_true).astype(np.float64).ravel()
    rows = {name: np.asarray(values, dtype=np.float64).ravel() for name, values in losses.items()}
    draws = _bootstrap(
        y, lambda weights: {name: weights @ v / weights.sum(axis=1) for name, v in rows.items()}, resamples, seed
    )
    tail = (1 - level) / 2 * 100
    return {name: tuple(float(v) for v in np.percentile(draws[name], [tail, 100 - tail])) for name in rows}


# Thresholds tried when one is chosen on pooled scores (evenly spaced in rank among the distinct scores).
THRESHOLD_CANDIDATES = 1000


def candidate_cuts(scores: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """The thresholds tried on pooled scores: the range's ends and the midpoints between distinct scores within it,
    at most THRESHOLD_CANDIDATES of them (evenly spaced in rank)."""
    low, high = bounds
    distinct = np.unique(np.asarray(scores, dtype=np.float64))
    cuts = np.concatenate([[low], (distinct[1:] + distinct[:-1]) / 2, [high]])
    cuts = np.unique(cuts[(cuts >= low) & (cuts <= high)])
    if len(cuts) > THRESHOLD_CANDIDATES:
        cuts = cuts[np.linspace(0, len(cuts) - 1, THRESHOLD_CANDIDATES).round().astype(int)]
    return cuts


def _values_at(goal, y_true: np.ndarray, scores: np.ndarray, cuts: np.ndarray) -> np.ndarray:
    return np.array([goal.value(found) for found in metrics_at_thresholds(y_true, scores, cuts)], dtype=np.float64)


def _best_cut(goal, cuts: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    best = int(np.argmin(values) if goal.direction == "minimize" else np.argmax(values))
    return float(cuts[best]), float(values[best])


def choose_threshold(goal, y_true: np.ndarray, scores: np.ndarray, bounds: tuple[float, float]) -> tuple[float, float]:
    """The threshold within `bounds` (the study's threshold range) whose flags score best by `goal` on these
    (pooled out-of-fold) scores, and that value: the trials' own rule (flag = score >= threshold), tried at
    the midpoints between distinct scores. An objective without a threshold (ap) keeps the range's middle."""
    low, high = bounds
    if not goal.uses_threshold:
        return (low + high) / 2, float(goal.value_of_scores(y_true, scores, low))
    cuts = candidate_cuts(scores, bounds)
    return _best_cut(goal, cuts, _values_at(goal, y_true, scores, cuts))


def fold_mean_threshold(
    goal, y_true: np.ndarray, scores: np.ndarray, folds, bounds: tuple[float, float]
) -> tuple[float, float]:
    """The threshold within `bounds` whose objective, computed on each fold's own rows (`folds`: each fold's
    positions in the pooled arrays) and averaged over the folds, is best, and that mean: how scikit-learn's
    TunedThresholdClassifierCV chooses its cut. One fold (a single validation split) is choose_threshold."""
    y_true, scores = np.asarray(y_true), np.asarray(scores, dtype=np.float64)
    cuts = candidate_cuts(scores, bounds)
    values = np.mean([_values_at(goal, y_true[rows], scores[rows], cuts) for rows in folds], axis=0)
    return _best_cut(goal, cuts, values)


def balanced_class_weight(y: np.ndarray) -> dict[int, float]:
    """scikit-learn's compute_class_weight("balanced") of 0/1 labels, as Keras' class_weight dict: n / (2 n_c)."""
    from sklearn.utils.class_weight import compute_class_weight

    weights = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    return {0: float(weights[0]), 1: float(weights[1])}
