"""Targets of three or more classes: a weight for each class, the decision rule that turns K class probabilities
into one class (argmax after per-class offsets), and the objectives both are chosen for (issue 25's groundwork;
binary targets never come here and keep their threshold).

The decision rule is the multi-class threshold. Post-hoc logit adjustment (Menon et al., ICLR 2021) predicts
argmax_y log p_y - tau * log prior_y; free offsets move each class's cut on its own, found exactly, one class at a
time, on validation or out-of-fold probabilities."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from sweep.errors import ConfigError

CLASS_OBJECTIVE_SYNTAX = (
    "macro_f1 | balanced_accuracy | f1:CLASS | recall_at_precision:MIN_PRECISION:CLASS, each optionally followed "
    "by ',min_recall=FLOOR' (a floor on every class's recall)"
)
# Logit-adjustment strengths tried when choosing a rule: 0 is plain argmax, 1 is Bayes-optimal for the balanced
# error when the probabilities are calibrated.
TAUS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
_FLOOR = 1e-12  # log of a probability is taken of at least this


def class_counts(y: np.ndarray, classes: int) -> np.ndarray:
    """Rows of each class 0..classes-1 in the integer labels y."""
    return np.bincount(np.asarray(y, dtype=np.int64).ravel(), minlength=classes)[:classes]


def power_weights(counts: np.ndarray, exponent: float) -> dict[int, float]:
    """w_c = (n_max / n_c) ** exponent: 0 weighs every class alike, 1 makes each class weigh as much as the largest
    in the loss; one searched number for any number of classes."""
    counts = np.asarray(counts, dtype=np.float64)
    return {c: float(w) for c, w in enumerate((counts.max() / counts) ** exponent)}


def rarest_weighted(counts, rarest_weight: float) -> dict[int, float]:
    """power_weights whose exponent gives the rarest class `rarest_weight`: the binary minority weight's scale (the
    largest class weighs 1) carried to any number of classes, the classes between on a power law of their counts."""
    counts = np.asarray(counts, dtype=np.float64)
    spread = np.log(counts.max() / counts.min())
    return power_weights(counts, float(np.log(rarest_weight) / spread) if spread > 0 else 0.0)


def effective_number_weights(counts: np.ndarray, beta: float) -> dict[int, float]:
    """Cui et al. (CVPR 2019): w_c proportional to (1 - beta) / (1 - beta ** n_c), scaled so that the largest class
    weighs 1; beta -> 0 weighs every class alike, beta -> 1 approaches inverse frequency."""
    counts = np.asarray(counts, dtype=np.float64)
    raw = (1.0 - beta) / (1.0 - np.power(beta, counts))
    return {c: float(w) for c, w in enumerate(raw / raw[np.argmax(counts)])}


def balanced_weights(counts: np.ndarray) -> dict[int, float]:
    """scikit-learn's compute_class_weight("balanced"): n / (k * n_c), the comparison row's weights."""
    counts = np.asarray(counts, dtype=np.float64)
    return {c: float(w) for c, w in enumerate(counts.sum() / (len(counts) * counts))}


def prior_corrected(probabilities: np.ndarray, weights: dict[int, float]) -> np.ndarray:
    """Undo the class weights' tilt of a weighted model's probabilities: divide each class's output by its weight,
    then renormalise each row (the binary prior correction, for K classes)."""
    divided = np.asarray(probabilities, dtype=np.float64) / np.array([weights[c] for c in range(len(weights))])
    return divided / divided.sum(axis=1, keepdims=True)


# The bounds of a fitted temperature: T > 1 softens the probabilities, T < 1 sharpens them.
TEMPERATURES = (0.05, 20.0)


def fit_temperature(probabilities: np.ndarray, y: np.ndarray) -> float:
    """The T that minimises the log loss of with_temperature(probabilities, T) on these (pooled validation) rows: the
    one-number map measured better than the prior correction alone (docs/benchmarks/multiclass.md#probabilities)."""
    import math

    from scipy.optimize import minimize_scalar

    logs = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0))
    rows, y = np.arange(len(y)), np.asarray(y, dtype=np.int64)

    def loss(log_t: float) -> float:
        scaled = logs / math.exp(log_t)
        shifted = scaled - scaled.max(axis=1, keepdims=True)
        return float((np.log(np.exp(shifted).sum(axis=1)) - shifted[rows, y]).mean())

    found = minimize_scalar(loss, bounds=tuple(math.log(t) for t in TEMPERATURES), method="bounded")
    return math.exp(found.x)


def with_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """p ~ exp(log p / T), each row renormalised; the order of the classes within a row is kept."""
    logs = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0)) / temperature
    exps = np.exp(logs - logs.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class DecisionRule:
    """argmax over classes of log p_c + offsets[c]: plain argmax (all zero), logit adjustment (-tau * log prior)
    or free offsets."""

    offsets: tuple[float, ...]
    kind: str = "argmax"  # "argmax", "logit_adjusted" or "offsets"
    tau: float | None = None

    def decide(self, probabilities: np.ndarray) -> np.ndarray:
        """The class of each row of (rows, K) probabilities."""
        logits = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0))
        return np.argmax(logits + np.asarray(self.offsets), axis=1)

    def record(self) -> dict:
        """best.json's `decision_rule`."""
        found = {"kind": self.kind, "offsets": [round(float(o), 6) for o in self.offsets]}
        return found | ({} if self.tau is None else {"tau": self.tau})

    @classmethod
    def from_record(cls, record: dict) -> DecisionRule:
        return cls(tuple(float(o) for o in record["offsets"]), record["kind"], record.get("tau"))

    @classmethod
    def logit_adjusted(cls, priors: np.ndarray, tau: float) -> DecisionRule:
        offsets = tuple(float(o) for o in -tau * np.log(np.clip(priors, _FLOOR, 1.0)))
        return cls(offsets, "argmax" if tau == 0 else "logit_adjusted", None if tau == 0 else tau)


@dataclass(frozen=True)
class ClassGoal:
    """A parsed multi-class objective (CLASS_OBJECTIVE_SYNTAX); always maximised. Values in [0, 1] meet every
    constraint; a value below 0 is how far the worst constraint falls short, so a sampler is still led towards it."""

    kind: str  # "macro_f1", "balanced_accuracy", "f1" or "recall_at_precision"
    target: int | None = None  # the class of interest, for f1 and recall_at_precision
    min_precision: float = 0.0
    min_recall: float = 0.0
    text: str = field(default="", compare=False)

    @property
    def name(self) -> str:
        """The metric name the dashboard shows (plain f1 on several classes is macro-F1: val_macro_f1)."""
        return class_goal_name("macro_f1" if self.text.strip().lower() == "f1" else self.text or self.kind)

    def value_of_counts(self, tp: np.ndarray, predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
        """The objective from per-class counts, arrays of shape (..., K): true positives, rows predicted as each class
        and rows of each class; vectorised, so a whole sweep of offsets is one call."""
        tp, predicted, actual = (np.asarray(a, dtype=np.float64) for a in (tp, predicted, actual))
        recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
        precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
        f1 = np.divide(2 * tp, predicted + actual, out=np.zeros_like(tp), where=predicted + actual > 0)
        if self.kind == "macro_f1":
            value = f1.mean(axis=-1)
        elif self.kind == "balanced_accuracy":
            value = recall.mean(axis=-1)
        elif self.kind == "f1":
            value = f1[..., self.target]
        else:
            shortfall = self.min_precision - precision[..., self.target]
            value = np.where(shortfall <= 0, recall[..., self.target], -shortfall)
        if self.min_recall > 0:
            worst = (self.min_recall - recall).max(axis=-1)
            value = np.where(worst > 0, np.minimum(value, -worst), value)
        return value

    def value(self, y: np.ndarray, predicted: np.ndarray, classes: int) -> float:
        return float(self.value_of_counts(*confusion_counts(y, predicted, classes)))


def confusion_counts(y: np.ndarray, predicted: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per class: true positives, rows predicted as it, rows of it."""
    y, predicted = np.asarray(y, dtype=np.int64).ravel(), np.asarray(predicted, dtype=np.int64).ravel()
    tp = np.bincount(y[y == predicted], minlength=classes)[:classes]
    return tp, class_counts(predicted, classes), class_counts(y, classes)


def per_class_metrics(y: np.ndarray, predicted: np.ndarray, names: list[str]) -> dict[str, dict[str, float]]:
    """Each class's recall, precision and flag rate (the share of rows predicted as it), by class name: what a
    trial stores for the dashboard."""
    tp, flagged, actual = confusion_counts(y, predicted, len(names))
    rows = max(len(np.asarray(y).ravel()), 1)
    return {
        name: {
            "recall": float(tp[c] / actual[c]) if actual[c] else 0.0,
            "precision": float(tp[c] / flagged[c]) if flagged[c] else 0.0,
            "flag_rate": float(flagged[c] / rows),
        }
        for c, name in enumerate(names)
    }


def bind_class_goal(goal, classes: tuple[str, ...]) -> ClassGoal | None:
    """The objective of a study whose target has `classes` (three or more names; () for a binary target): a parsed
    --objective (sweep.metrics.Goal) bound to the class names, or None for a binary target. Plain f1 on several classes
    is macro-F1; any other binary objective, or a class objective on a binary target, is one line."""
    if not classes:
        if goal.for_classes:
            raise ConfigError(
                f"objective {goal.text!r} is for a target of three or more classes, but the target has two; use a "
                "binary objective (f1, fbeta:BETA, ap, recall_at_precision:P, cost:..., pareto:...)"
            )
        return None
    if goal.for_classes:
        return parse_class_goal(goal.text, list(classes))
    if goal.kind == "f1":
        return ClassGoal("macro_f1", text="f1")
    raise ConfigError(
        f"objective {goal.text!r} is for a binary target, but the target has {len(classes)} classes "
        f"({', '.join(classes[:5])}); expected {CLASS_OBJECTIVE_SYNTAX}"
    )


def effective_priors(counts, weights: dict[int, float]) -> np.ndarray:
    """The class priors a model trained with `weights` on rows of `counts` learns: n_c * w_c, normalised. Logit
    adjustment by these undoes both the data's imbalance and the weights' tilt (tau = 1)."""
    mass = np.asarray(counts, dtype=np.float64) * np.array([weights[c] for c in range(len(counts))])
    return mass / mass.sum()


@dataclass(frozen=True)
class ClassJudge:
    """A trial's judge for three or more classes: its objective and the priors its rule adjusts by. What a trial's
    per-epoch reports and its result ask of an objective (sweep.metrics.Goal's is_multi, name, uses_threshold and
    value_of_scores), with the best logit adjustment chosen on the scores in place of a threshold."""

    goal: ClassGoal
    priors: np.ndarray
    name: str
    is_multi = False
    uses_threshold = False

    def choose(self, y: np.ndarray, probabilities: np.ndarray) -> tuple[DecisionRule, float]:
        return choose_rule(self.goal, y, probabilities, self.priors)

    def value_of_scores(self, y: np.ndarray, probabilities: np.ndarray, _threshold=None) -> float:
        return self.choose(y, probabilities)[1]


def class_metrics(y: np.ndarray, predicted: np.ndarray, names: tuple[str, ...]) -> dict[str, float]:
    """Flat metrics of decisions on several classes, as a trial stores them (the dashboard lists flat attributes):
    macro-F1, balanced accuracy, accuracy, and each class's recall, precision and flag rate."""
    tp, flagged, actual = confusion_counts(y, predicted, len(names))
    found = {
        "macro_f1": float(ClassGoal("macro_f1").value_of_counts(tp, flagged, actual)),
        "balanced_accuracy": float(ClassGoal("balanced_accuracy").value_of_counts(tp, flagged, actual)),
        "accuracy": float(tp.sum() / max(actual.sum(), 1)),
    }
    for name, values in per_class_metrics(y, predicted, list(names)).items():
        found |= {f"{metric}:{name}": round(value, 6) for metric, value in values.items()}
    return found


def _bad_class_objective(spec: str, source: str, why: str) -> ConfigError:
    return ConfigError(f"objective {spec!r} (from {source}) is invalid: {why}; expected {CLASS_OBJECTIVE_SYNTAX}")


def _fraction(text: str, spec: str, source: str, what: str) -> float:
    try:
        number = float(text)
    except ValueError:
        raise _bad_class_objective(spec, source, f"{what} {text!r} is not a number") from None
    if not 0 < number < 1:
        raise _bad_class_objective(spec, source, f"{what} must be between 0 and 1, got {text}")
    return number


def _class_index(name: str, names: list[str] | None, spec: str, source: str) -> int:
    """The named class's number; -1 while the target's classes are not known yet (a config read before its data)."""
    if names is None:
        return -1
    if name not in names:
        raise ConfigError(
            f"objective {spec!r} (from {source}) names class {name!r}, which the target does not have (its classes: "
            f"{', '.join(map(repr, names))}); name one of them"
        )
    return names.index(name)


def is_class_objective(spec: str) -> bool:
    """Whether an --objective is one of CLASS_OBJECTIVE_SYNTAX (not a binary objective's)."""
    main, _, extra = spec.strip().partition(",")
    kind, _, argument = main.partition(":")
    kind = kind.strip().lower()
    return (
        kind in ("macro_f1", "balanced_accuracy")
        or (kind == "f1" and bool(argument))
        or (kind == "recall_at_precision" and ":" in argument)
        or extra.strip().startswith("min_recall")
    )


def class_goal_name(spec: str) -> str:
    """The metric name the dashboard shows for a multi-class objective, e.g. val_macro_f1, val_f1:fraud."""
    main, _, extra = spec.strip().partition(",")
    kind, _, argument = main.partition(":")
    name = f"val_{kind.strip().lower()}" + (f":{argument.strip()}" if argument else "")
    return name + (f"({extra.strip()})" if extra else "")


def parse_class_goal(spec: str, names: list[str] | None, source: str = "--objective") -> ClassGoal:
    """Parse CLASS_OBJECTIVE_SYNTAX against the target's class names (None: its syntax only); errors say what was
    received and what is expected."""
    given = spec.strip()
    main, _, extra = given.partition(",")
    min_recall = 0.0
    if extra:
        key, _, floor = extra.partition("=")
        if key.strip() != "min_recall":
            raise _bad_class_objective(spec, source, f"unknown option {extra!r}")
        min_recall = _fraction(floor.strip(), spec, source, "min_recall")
    kind, _, argument = main.partition(":")
    kind = kind.strip().lower()
    if kind in ("macro_f1", "balanced_accuracy") and not argument:
        return ClassGoal(kind, min_recall=min_recall, text=given)
    if kind == "f1" and argument:
        return ClassGoal("f1", _class_index(argument, names, spec, source), min_recall=min_recall, text=given)
    if kind == "recall_at_precision" and ":" in argument:
        floor, _, name = argument.partition(":")
        precision = _fraction(floor, spec, source, "minimum precision")
        target = _class_index(name, names, spec, source)
        return ClassGoal("recall_at_precision", target, precision, min_recall, text=given)
    raise _bad_class_objective(spec, source, f"unknown objective {main!r}")


def choose_rule(
    goal: ClassGoal, y: np.ndarray, probabilities: np.ndarray, priors: np.ndarray, free: bool = False, passes: int = 3
) -> tuple[DecisionRule, float]:
    """The decision rule that maximises `goal` on (y, probabilities): the best logit adjustment of TAUS, the one
    nearest tau = 1 on ties (a few rare rows often leave several tied, and tau = 1 is the adjustment theory
    recommends); with `free`, then each class's offset in turn set to its exact best given the others (the largest
    class's stays, since only differences matter), for up to `passes` rounds while the value rises."""
    y = np.asarray(y, dtype=np.int64).ravel()
    classes = probabilities.shape[1]
    values = {
        tau: goal.value(y, DecisionRule.logit_adjusted(priors, tau).decide(probabilities), classes) for tau in TAUS
    }
    best_value = max(values.values())
    tau = min((t for t, v in values.items() if v >= best_value - 1e-12), key=lambda t: abs(t - 1.0))
    best = DecisionRule.logit_adjusted(priors, tau)
    if not free:
        return best, best_value
    logp = np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _FLOOR, 1.0))
    offsets = np.array(best.offsets)
    kept = int(np.argmax(class_counts(y, classes)))
    for _ in range(passes):
        improved = False
        for c in (c for c in range(classes) if c != kept):
            offset, value = _best_offset(goal, y, logp, offsets, c)
            if value > best_value + 1e-12:
                offsets[c], best_value, improved = offset, value, True
        if not improved:
            break
    return DecisionRule(tuple(float(o) for o in offsets), "offsets"), best_value


def _best_offset(goal: ClassGoal, y: np.ndarray, logp: np.ndarray, offsets: np.ndarray, c: int) -> tuple[float, float]:
    """Class c's offset that maximises `goal` with the other offsets fixed, and its value. Row i goes to c exactly when
    the offset passes b_i = (its best other class's adjusted logit) - log p_ic, so sorting the b_i gives every
    distinct decision; their counts come from cumulative sums, all at once."""
    classes = logp.shape[1]
    others = logp + offsets
    others[:, c] = -np.inf
    other_class = np.argmax(others, axis=1)
    cuts = others[np.arange(len(y)), other_class] - logp[:, c]
    order = np.argsort(cuts, kind="stable")
    cuts, y_sorted, other_sorted = cuts[order], y[order], other_class[order]
    one_hot = np.eye(classes)[other_sorted]  # the class each row takes while c's offset is below its cut
    hits = one_hot * (y_sorted == other_sorted)[:, None]
    # State j: the first j rows (lowest cuts) go to c, the rest to their other class.
    tail_predicted = np.vstack([np.cumsum(one_hot[::-1], axis=0)[::-1], np.zeros((1, classes))])
    tail_tp = np.vstack([np.cumsum(hits[::-1], axis=0)[::-1], np.zeros((1, classes))])
    taken = np.arange(len(y) + 1, dtype=np.float64)
    taken_tp = np.concatenate([[0.0], np.cumsum(y_sorted == c)])
    predicted, tp = tail_predicted.copy(), tail_tp.copy()
    predicted[:, c] += taken
    tp[:, c] += taken_tp
    values = goal.value_of_counts(tp, predicted, np.broadcast_to(class_counts(y, classes), tp.shape))
    # Only states between distinct cuts are reachable; a tie of cuts moves its rows together.
    reachable = np.concatenate([[True], cuts[1:] > cuts[:-1], [True]])
    values = np.where(reachable, values, -np.inf)
    j = int(np.argmax(values))
    low = cuts[j - 1] if j > 0 else cuts[0] - 1.0
    high = cuts[j] if j < len(cuts) else cuts[-1] + 1.0
    return float((low + high) / 2), float(values[j])
