"""Population training: K trials' networks stacked into one compiled model and trained together.

The members' hidden layers sit side by side in one flat hidden layer of sum(widths) units: layer 1 is a
single (features, sum(widths)) matmul, and a segment sum adds each member's units into its own output
(segment_sum over the sorted unit owners, faster than unsorted_segment_sum, and every member owns at least one
unit, so the output has one row per member). Nothing is padded to the widest member: padding costs several times
this layout's epoch when the widths differ (docs/benchmarks/population.md#section-8). The loss is the sum of
the members' class-weighted losses, so each member's gradient is its own and Adam (element-wise) keeps the
members independent. Per-step overhead is paid once for all K members, which is where the time of these tiny
networks goes.

Members of a target of C >= 3 classes (`Member.class_weights`) end in a softmax of C like a single network's
(sweep.models.network): w2 is (S, C), b2 (members, C) and the logits (members, rows, C), classes last so that
softmax and log-softmax are one kernel each (classes in the middle would add a transpose around each).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from sweep.models.network import (
    FusedAdam,
    Network,
    TrainSettings,
    compiled_epoch,
    initial_layers,
    open_variable,
    per_thread,
    unload_rows,
)
from sweep.runtime import detect_device, tensorflow

if TYPE_CHECKING:
    from sweep.data import Dataset
    from sweep.data.folds import Validation

# Rows scored per step by Population.scores: keeps the (sum(widths), rows) hidden block in cache.
SCORE_CHUNK = 4096
# Hidden units (summed over members) past which a bigger population stops paying: on a CPU the cost per
# unit-epoch falls until about this many units and then stays flat (docs/benchmarks/population.md#section-8), so
# more members would only cost TPE rounds. The GPU figure is an assumption, not a measurement: measure it with
# benchmarks/population.py on one (docs/benchmarks/gpu.md).
UNITS_PER_POPULATION = {"cpu": 1024, "gpu": 16384}
# Automatic populations leave TPE at least this many rounds of the budget to learn from.
MIN_ROUNDS = 4
MAX_POPULATION = 512


@dataclass(frozen=True)
class Member:
    """One trial inside a population: its width, class weights and initialisation seed.

    A two-class member weights its positive rows by minority_weight (sigmoid output); one with `class_weights`
    (C >= 3 weights by class number) ends in a softmax of C and ignores minority_weight in training."""

    hidden_width: int
    minority_weight: float
    seed: int
    learning_rate: float | None = None  # None: the population's learning rate
    class_weights: tuple[float, ...] | None = None  # None: two classes

    def __post_init__(self) -> None:
        """class_weights as a tuple of floats (a list is accepted); fewer than 3 classes are refused."""
        if self.class_weights is None:
            return
        object.__setattr__(self, "class_weights", tuple(float(w) for w in self.class_weights))
        if len(self.class_weights) < 3:
            raise ValueError(
                f"class_weights of {len(self.class_weights)} classes: a member of two classes is a sigmoid member "
                "(minority_weight, class_weights None); a softmax member needs 3 or more"
            )

    @property
    def outputs(self) -> int:
        """Units of its last layer: 1 (a sigmoid) for two classes, C (a softmax) for C classes."""
        return 1 if self.class_weights is None else len(self.class_weights)


def population_outputs(members: list[Member]) -> int:
    """The output units every member shares (1: sigmoid, C: softmax of C); ValueError for a mixed population,
    whose members could not share one compiled program."""
    kinds = {member.outputs for member in members} or {1}
    if len(kinds) > 1:
        raise ValueError(
            f"a population's members must all be two-class or all of the same number of classes; got outputs "
            f"{sorted(kinds)}"
        )
    return kinds.pop()


def automatic_population(
    trials: int, hidden_width: tuple[int, int], hidden_layers: int, on_gpu: bool, workers: int = 1, fold_models: int = 1
) -> int:
    """K for population = 0: as many trials as fit UNITS_PER_POPULATION at the search space's mean width
    (each trial has `fold_models` networks when cross-validated), but at most a MIN_ROUNDS-th of each
    worker's share of the budget; 1 (single trials) for linear and deeper networks."""
    if hidden_layers != 1:
        return 1
    low, high = hidden_width
    mean_width = (high - low) / np.log(high / low) if high > low else float(low)  # mean of a log-uniform width
    by_machine = int(UNITS_PER_POPULATION["gpu" if on_gpu else "cpu"] // (mean_width * fold_models))
    by_budget = trials // (MIN_ROUNDS * workers)
    return max(1, min(by_machine, by_budget, MAX_POPULATION))


class Population:
    """K one-hidden-layer networks side by side: W1 (d, S), b1 (S,), w2 (S,), b2 (K,) with S = sum(widths);
    member k owns hidden units offsets[k]:offsets[k+1]. Softmax members of C classes: w2 (S, C), b2 (K, C).

    Members with their own learning rates: member k's weights are stored divided by c_k = its rate / the
    population's rate and multiplied by c_k where they are used. Adam's step is (up to its epsilon)
    unchanged by a gradient's scale, so a step of the shared rate on the stored weights moves the used
    weights c_k times as far: member k trains at its own rate, and the one fused Adam update per variable
    stays. With one rate for all (c = 1) nothing is scaled.

    While it trains, its stored weights are the variables of a cached PopulationProgram; afterwards they are
    a numpy copy (`release`), so a later population may reuse the program.
    """

    def __init__(self, n_features: int, members: list[Member], learning_rate: float | None = None) -> None:
        self.members = members
        self.outputs = population_outputs(members)
        widths = [m.hidden_width for m in members]
        self.offsets = np.concatenate([[0], np.cumsum(widths)]).astype(int)
        total = int(self.offsets[-1])
        classes = () if self.outputs == 1 else (self.outputs,)  # w2 and b2's trailing axis
        W1 = np.zeros((n_features, total), dtype=np.float32)
        w2 = np.zeros((total, *classes), dtype=np.float32)
        for k, member in enumerate(members):
            # A single network's start for the member's width and seed (Keras' Dense defaults, numpy draws).
            (kernel_1, _), (kernel_2, _) = initial_layers(n_features, member.hidden_width, 1, member.seed, self.outputs)
            units = slice(self.offsets[k], self.offsets[k + 1])
            W1[:, units], w2[units] = kernel_1, kernel_2.reshape(w2[units].shape)
        rates = np.array([m.learning_rate or learning_rate or 1.0 for m in members], dtype=np.float64)
        self.member_scale = np.ones(len(members), np.float32)
        self.scaled = learning_rate is not None and bool(np.any(rates != learning_rate))
        if self.scaled:
            self.member_scale = (rates / learning_rate).astype(np.float32)
        self.unit_scale = np.repeat(self.member_scale, widths)
        if self.scaled:
            W1, w2 = W1 / self.unit_scale, w2 / self.unit_scale.reshape(-1, *[1] * len(classes))
        b2 = np.zeros((len(members), *classes), np.float32)
        self.stored = {"W1": W1, "b1": np.zeros(total, np.float32), "w2": w2, "b2": b2}
        # Which member each hidden unit belongs to: the segment sum adds a member's units into its output in
        # O(units) work, where a (S, K) indicator matmul costs O(units * K).
        self.owner = np.repeat(np.arange(len(members)), widths).astype(np.int32)

    def release(self) -> None:
        """Keep the stored weights as numpy arrays, detached from the program that trained them."""
        self.stored = {name: np.asarray(value) for name, value in self.stored.items()}

    def weights(self) -> dict[str, np.ndarray]:
        """The weights the members use (numpy): stored weights times each member's learning-rate scale."""
        v = {name: np.asarray(value) for name, value in self.stored.items()}
        if not self.scaled:
            return v
        used = used_weights(v["W1"], v["b1"], v["w2"], v["b2"], self.unit_scale, self.member_scale, True)
        return dict(zip(("W1", "b1", "w2", "b2"), used))

    def scores(self, X: np.ndarray) -> np.ndarray:
        """(K, rows) predicted probabilities of the positive class; softmax members: (K, rows, C) of every class."""
        return self.block_scores(X, 0, len(self.members))

    def block_scores(self, X: np.ndarray, first: int, count: int) -> np.ndarray:
        """(count, rows) (softmax members: (count, rows, C)) predicted probabilities of members first .. first +
        count - 1 only."""
        X = np.asarray(X, dtype=np.float32)
        scorer = _block_scorer(self.outputs > 1)
        bounds = [int(self.offsets[first]), int(self.offsets[first + count]), first, count]
        state = [self.stored[name] for name in ("W1", "b1", "w2", "b2")] + [
            self.unit_scale,
            self.member_scale,
            self.owner,
        ]
        parts = [scorer(X[i : i + SCORE_CHUNK], *state, *bounds).numpy() for i in range(0, len(X), SCORE_CHUNK)]
        classes = () if self.outputs == 1 else (self.outputs,)
        return np.concatenate(parts, axis=1) if parts else np.empty((count, 0, *classes), np.float32)

    def member_model(self, k: int):
        """Member k as a plain Keras model of its own width (weights sliced out of the population): build_model's,
        with a softmax of C for softmax members."""
        return member_network(self, k).to_keras()


def used_weights(W1, b1, w2, b2, unit_scale, member_scale, scaled: bool):
    """The weights members use from the stored ones (TensorFlow or numpy; also d loss / d stored from d loss /
    d used): scaled by each member's rate when `scaled`. A softmax's w2 (S, C) and b2 (K, C) scale by row."""
    if not scaled:
        return W1, b1, w2, b2
    if len(w2.shape) == 2:
        return W1 * unit_scale, b1 * unit_scale, w2 * unit_scale[:, None], b2 * member_scale[:, None]
    return W1 * unit_scale, b1 * unit_scale, w2 * unit_scale, b2 * member_scale


def population_logits(x, W1, b1, w2, b2, owner):
    """(members, rows) logits of every member for rows x (rows, d): one matmul for all hidden units, then each
    member's units summed into its output (owner: each unit's member, sorted); softmax members: (members, rows, C)."""
    tf = tensorflow()
    hidden = tf.nn.relu(tf.matmul(W1, x, transpose_a=True, transpose_b=True) + b1[:, None])  # (S, rows)
    return tf.math.segment_sum(per_class(hidden, w2) * w2[:, None], owner) + b2[:, None]


def per_class(hidden, w2):
    """hidden (S, rows) as it multiplies w2: as it is for a sigmoid's w2 (S,), (S, rows, 1) for a softmax's (S, C)."""
    return hidden[:, :, None] if len(w2.shape) == 2 else hidden


def _block_scorer(softmax: bool = False):
    """One compiled scorer per process and thread for every population of sigmoid (or of softmax) members: all
    shapes open, bounds as tensors."""
    return per_thread(("population scorer", "softmax" if softmax else "sigmoid"), lambda: _make_block_scorer(softmax))


def _make_block_scorer(softmax: bool):
    tf = tensorflow()

    def probabilities(x, W1, b1, w2, b2, unit_scale, member_scale, owner, first_unit, last_unit, first, count):
        W1, b1, w2, b2 = used_weights(W1, b1, w2, b2, unit_scale, member_scale, True)
        units = slice(first_unit, last_unit)
        logits = population_logits(
            x, W1[:, units], b1[units], w2[units], b2[first : first + count], owner[units] - first
        )
        return tf.nn.softmax(logits) if softmax else tf.sigmoid(logits)

    matrix, vector, index = (
        tf.TensorSpec([None, None], tf.float32),
        tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([None], tf.int32),
    )
    bound = tf.TensorSpec([], tf.int32)
    output = matrix if softmax else vector  # w2 and b2
    spec = [matrix, matrix, vector, output, output, vector, vector, index, bound, bound, bound, bound]
    return tf.function(probabilities, input_signature=spec, autograph=False)


class PopulationProgram:
    """The compiled epoch of every population of one family (batch size, cross-validated or not, members with
    their own rates or not, sigmoid or softmax members), traced once per process: its variables have open shapes
    (a softmax's class count too) and each population loads its own start, rows and settings into them.

    A softmax program holds each label as a one-hot row and each member's class weights as a (members, C)
    setting: one matmul gathers the rows' weights, and softmax - one-hot needs the one-hot rows anyway."""

    def __init__(
        self, batch: int, cross_validated: bool, scaled: bool, softmax: bool = False, decay: bool = False
    ) -> None:
        tf = tensorflow()
        self.scaled, self.softmax = scaled, softmax
        output = 2 if softmax else 1  # rank of w2, b2, the labels and the members' class weights
        ranks = (("W1", 2), ("b1", 1), ("w2", output), ("b2", output))
        self.weights = {name: open_variable(rank, trainable=True) for name, rank in ranks}
        weighting = ("class_weights" if softmax else "positive", output)  # (members, C) or (members,)
        ranks = (weighting, ("active", 1), ("unit_scale", 1), ("member_scale", 1))
        self.settings = {name: open_variable(rank) for name, rank in ranks}
        self.settings["owner"] = open_variable(1, "int32")
        self.settings["folds_of"] = open_variable(1, "int32")
        self.rows = {"features": open_variable(2), "labels": open_variable(output)}
        if cross_validated:
            self.rows["keep"] = open_variable(2)
        self.adam = FusedAdam(list(self.weights.values()), self._decayed(decay, scaled, softmax))
        self.run_epoch = compiled_epoch(
            list(self.rows.values()),
            batch,
            self.adam,
            self._batch_gradients,
            lambda: tf.zeros(tf.shape(self.settings["active"])),
        )

    def _batch_gradients(self, xb, yb, kb=None):
        """Each member's weighted loss and the gradients of their active sum, back-propagated by hand
        as in sweep.models.network.EpochProgram: (sigmoid - label) or (softmax - one-hot) times weight / rows per
        member and row, gathered to each member's hidden units, through ReluGrad; times the members' rate scales
        when scaled."""
        tf = tensorflow()
        s = self.settings
        rows = tf.cast(tf.shape(xb)[0], tf.float32)
        W1, b1, w2, b2 = used_weights(*self.adam.variables, s["unit_scale"], s["member_scale"], self.scaled)
        hidden = tf.nn.relu(tf.matmul(W1, xb, transpose_a=True, transpose_b=True) + b1[:, None])  # (units, rows)
        expanded = per_class(hidden, w2)
        logits = tf.math.segment_sum(expanded * w2[:, None], s["owner"]) + b2[:, None]
        if self.softmax:
            weights = tf.matmul(s["class_weights"], yb, transpose_b=True)  # (members, rows): each label's weight
        else:
            weights = yb[None, :] * s["positive"][:, None] + (1.0 - yb[None, :])  # {0: 1.0, 1: minority_weight}
        if kb is not None:
            weights = weights * tf.transpose(tf.gather(kb, s["folds_of"], axis=1))  # (members, rows): 0 = held out
        member_loss, upstream = self._output_loss(logits, yb, weights, rows)
        per_unit = tf.gather(upstream, s["owner"])  # (units, rows) or (units, rows, C)
        back = per_unit * w2[:, None]
        if self.softmax:
            back = tf.reduce_sum(back, axis=2)
        back = tf.raw_ops.ReluGrad(gradients=back, features=hidden)
        gradients = [
            tf.matmul(xb, back, transpose_a=True, transpose_b=True),
            tf.reduce_sum(back, axis=1),
            tf.reduce_sum(expanded * per_unit, axis=1),
            tf.reduce_sum(upstream, axis=1),
        ]
        if self.scaled:  # d loss / d stored = d loss / d used * scale
            gradients = list(used_weights(*gradients, s["unit_scale"], s["member_scale"], True))
        return gradients, member_loss

    def _output_loss(self, logits, yb, weights, rows):
        """Each member's loss, sum(weight * loss) / rows, and the gradient of the active members' losses at the
        logits: (sigmoid - label) or (softmax - one-hot label) times weight * active / rows. A softmax's row loss
        is -log_softmax at the label, what SoftmaxCrossEntropyWithLogits gives a single network."""
        tf = tensorflow()
        active = self.settings["active"] / rows
        if not self.softmax:
            member_loss = tf.reduce_sum((tf.nn.softplus(logits) - logits * yb[None, :]) * weights, axis=1) / rows
            return member_loss, (tf.sigmoid(logits) - yb[None, :]) * weights * active[:, None]
        row_losses = -tf.reduce_sum(tf.nn.log_softmax(logits) * yb, axis=2)  # (members, rows)
        member_loss = tf.reduce_sum(row_losses * weights, axis=1) / rows
        return member_loss, (tf.nn.softmax(logits) - yb) * weights[:, :, None] * active[:, None, None]

    def _decayed(self, decay: bool, scaled: bool, softmax: bool) -> dict | None:
        """The kernels W1 and w2 that weight decay shrinks (FusedAdam), none without it. A member with its own rate
        shrinks its stored weights by its rate scale too, as it would shrink alone at its own rate."""
        if not decay:
            return None
        if not scaled:
            return {0: None, 2: None}
        unit = self.settings["unit_scale"]
        return {0: lambda: unit, 2: (lambda: unit[:, None]) if softmax else (lambda: unit)}

    def load(
        self, population: Population, X, y, learning_rate: float, keep=None, member_fold=None, weight_decay=0.0
    ) -> None:
        """Load the population's start and settings and the rows; reset Adam; the population's stored weights
        become this program's variables until it is released."""
        for name, variable in self.weights.items():
            variable.assign(population.stored[name])
        population.stored = dict(self.weights)
        size = len(population.members)
        values = {
            "active": np.ones(size, np.float32),
            "unit_scale": population.unit_scale,
            "member_scale": population.member_scale,
            "owner": population.owner,
            "folds_of": np.zeros(size, np.int32) if member_fold is None else np.asarray(member_fold, np.int32),
        }
        if self.softmax:
            values["class_weights"] = np.array([m.class_weights for m in population.members], np.float32)
            labels = np.eye(population.outputs, dtype=np.float32)[np.asarray(y, dtype=np.int64)]
        else:
            values["positive"] = np.array([m.minority_weight for m in population.members], np.float32)
            labels = np.asarray(y, dtype=np.float32)
        for name, value in values.items():
            self.settings[name].assign(value)
        self.rows["features"].assign(np.asarray(X, dtype=np.float32))
        self.rows["labels"].assign(labels)
        if "keep" in self.rows:
            self.rows["keep"].assign(np.asarray(keep, dtype=np.float32))
        self.adam.reset(learning_rate, weight_decay)


def population_program(
    device: str, batch: int, cross_validated: bool, scaled: bool, softmax: bool = False, decay: bool = False
) -> PopulationProgram:
    """The cached program of this family (made and traced once per process and thread); sigmoid and softmax
    members (any class count) are two families, with and without weight decay two more."""
    key = ("population", device, batch, cross_validated, scaled, "softmax" if softmax else "sigmoid", decay)
    return per_thread(key, lambda: PopulationProgram(batch, cross_validated, scaled, softmax, decay))


def train_population(
    X: np.ndarray,
    y: np.ndarray,
    members: list[Member],
    epochs: int,
    batch: int,
    learning_rate: float,
    shuffle_seed: int,
    on_epoch: Callable[[int, np.ndarray, Population, np.ndarray], np.ndarray] | None = None,
    keep: np.ndarray | None = None,
    member_fold: np.ndarray | None = None,
    weight_decay: float = 0.0,
):
    """Train the population; returns (population, epochs run per member, seconds, device). `weight_decay` shrinks
    every member's kernels as AdamW does (sweep.models.network.FusedAdam).

    Cross-validated trials: keep (rows, folds) is 1 where a row trains fold f's models and 0 where it is held
    out, and member_fold[k] is member k's fold; a held-out row adds nothing to that member's loss.

    on_epoch(epoch, member_losses, population, active) returns which members stay active; an inactive
    member's loss leaves the sum, so it gets no gradient from then on. A member's trajectory does not
    depend on the others (no sum across members reaches its gradient), so retraining reproduces it.
    """
    tf = tensorflow()
    device = detect_device()
    started = time.perf_counter()
    size = len(members)
    with tf.device(device):
        population = Population(X.shape[1], members, learning_rate)
        softmax, decay = population.outputs > 1, weight_decay > 0
        program = population_program(device, batch, keep is not None, population.scaled, softmax, decay)
        program.load(population, X, y, learning_rate, keep, member_fold, weight_decay)
        active = program.settings["active"]
        epochs_run = np.zeros(size, dtype=int)
        try:
            for epoch in range(epochs):
                still = active.numpy() > 0
                if not still.any():
                    break
                losses = program.run_epoch(tf.constant([shuffle_seed, epoch], dtype=tf.int64)).numpy()
                epochs_run[still] = epoch + 1
                if on_epoch is not None:
                    active.assign(np.asarray(on_epoch(epoch + 1, losses, population, still), dtype=np.float32))
        finally:
            population.release()
            unload_rows(program.rows)
    return population, epochs_run, time.perf_counter() - started, device


# Populations of fold models and trained again for export (sweep.models.builtin).


def population_scores(population, plan: Validation, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """(size, pooled rows) validation scores of a population's trials and each fold's (size, fold rows) block;
    the models of fold f are population members f*size .. (f+1)*size - 1. Softmax members: (size, pooled rows, C)
    and (size, fold rows, C) (the class axis moved out of the way while the rows are pooled)."""
    blocks = [population.block_scores(fold.X_val, f * size, size) for f, fold in enumerate(plan.folds)]
    if np.ndim(blocks[0]) == 2:
        return plan.pool(blocks), blocks
    pooled = plan.pool([np.moveaxis(block, 2, 1) for block in blocks])  # (size, C, pooled rows)
    return np.ascontiguousarray(np.moveaxis(pooled, 1, 2)), blocks


def fold_subnets(members: list, plan: Validation) -> tuple[list, np.ndarray | None, np.ndarray | None]:
    """The population's networks for `members` under `plan`: one per member and fold (fold-major), the
    (rows, folds) keep matrix and each network's fold (None for a single validation split)."""
    folds = len(plan.folds)
    subnets = [member for _ in range(folds) for member in members]
    if plan.kind == "holdout":
        return subnets, None, None
    keep = np.column_stack([fold.keep for fold in plan.folds])
    return subnets, keep, np.repeat(np.arange(folds), len(members))


def population_description(trial, trial_of: Callable | None = None) -> dict:
    """What retraining population member `trial` needs: its `population` attribute with the population's
    members, shuffle seed and rate. Those are on the trial itself for the first member, and for every member
    of a study stored by an earlier version (every member held them all); otherwise they are read from
    the population's first trial, `trial_of(number)` (one trial read, not the study's trials)."""
    described = trial.user_attrs["population"]
    if "members" in described:
        return described
    if trial_of is None:
        raise ValueError(
            f"trial #{trial.number} points to its population's trial #{described['first_trial']}: pass its study"
        )
    first = trial_of(described["first_trial"]).user_attrs["population"]
    return first | {"member": described["member"]}


def retrain_population_members(dataset: Dataset, trial, trial_of: Callable | None = None) -> dict:
    """Every trial of population member `trial`'s population, from one retraining of it: {trial number: (its
    fold networks in the plan's order, its pooled validation scores)}; what an ensemble of several trials needs."""
    population, _, size = _retrained_population(dataset, trial, trial_of)
    pooled = population_scores(population, dataset.validation, size)[0]
    described = population_description(trial, trial_of)["members"]
    folds = len(dataset.validation.folds)
    return {
        entry["trial"]: ([member_network(population, f * size + index) for f in range(folds)], pooled[index])
        for index, entry in enumerate(described)
    }


def member_network(population, index: int):
    """Network `index` of a trained population (member k of fold f is f * size + k) as a plain Network (a softmax
    of C outputs for softmax members)."""
    units = slice(int(population.offsets[index]), int(population.offsets[index + 1]))
    v = population.weights()
    if v["w2"].ndim == 2:
        return Network(((v["W1"][:, units], v["b1"][units]), (v["w2"][units], v["b2"][index])))
    return Network(((v["W1"][:, units], v["b1"][units]), (v["w2"][units, None], v["b2"][index : index + 1])))


def described_member(entry: dict) -> Member:
    """A Member from its stored description: hidden_width, minority_weight, seed, and the optional learning_rate
    and class_weights (a list of C weights by class number: a softmax member)."""
    fields = ("hidden_width", "minority_weight", "seed")
    return Member(*(entry[name] for name in fields), entry.get("learning_rate"), entry.get("class_weights"))


def _retrained_population(dataset: Dataset, trial, trial_of: Callable | None) -> tuple:
    """Population member `trial`'s population trained again from its stored description: (population, the
    trial's index in it, its size)."""
    settings = TrainSettings(**trial.user_attrs["train_settings"])
    plan = dataset.validation
    described = population_description(trial, trial_of)
    members = [described_member(m) for m in described["members"]]
    subnets, keep, member_fold = fold_subnets(members, plan)
    population, _, _, _ = train_population(
        plan.X_fit,
        plan.y_fit,
        subnets,
        settings.epochs,
        settings.batch_size,
        described.get("learning_rate", settings.learning_rate),
        described["shuffle_seed"],
        keep=keep,
        member_fold=member_fold,
        weight_decay=settings.weight_decay,
    )
    return population, described["member"], len(members)
