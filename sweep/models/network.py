"""Train one trial's network: the tutorial's fit (weighted BCE, Adam, shuffled mini-batches), compiled per epoch; a
target of three or more classes trains a softmax head on weighted categorical cross-entropy the same way.

The compiled epoch is traced once per process and shape family (features, depth, batch size, sigmoid or softmax),
not once per trial: its variables have an open width (and class count), and each trial loads its own start into them,
so no trial pays for a trace or for clearing Keras' session (docs/benchmarks/trial-speed.md#section-11).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweep.errors import TrialFailed
from sweep.runtime import detect_device, tensorflow


@dataclass(frozen=True)
class TrainSettings:
    """What besides the params decides the trained weights; stored on each trial so export can retrain it."""

    epochs: int
    batch_size: int
    learning_rate: float
    hidden_layers: int
    seed: int
    weight_decay: float = 0.0  # decoupled, as AdamW: each kernel shrinks by learning_rate * weight_decay per step


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    seconds: float
    final_loss: float
    device: str


@dataclass(frozen=True)
class Network:
    """A trained Dense network as numpy arrays: Dense(width, relu) x layers -> Dense(1, sigmoid), or Dense(K, softmax)
    for K classes.

    Scoring it needs no Keras and no graph (a few small matmuls); `to_keras()` builds the Keras model that
    export saves and `sweep predict` loads.
    """

    layers: tuple  # ((kernel, bias), ...), float32

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Predicted probability of the positive class for each row, in row order; for K classes, (rows, K)
        probabilities of every class (a softmax taken in float64, so no row overflows)."""
        x = np.asarray(X, dtype=np.float32)
        for kernel, bias in self.layers[:-1]:
            x = np.maximum(x @ kernel + bias, 0)
        kernel, bias = self.layers[-1]
        if self.outputs == 1:
            logits = (x @ kernel + bias).ravel()
            return (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
        logits = (x @ kernel + bias).astype(np.float64)
        exps = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (exps / exps.sum(axis=1, keepdims=True)).astype(np.float32)

    @property
    def hidden_width(self) -> int | None:
        """Units of each hidden layer; None for a linear network (no hidden layer)."""
        return int(self.layers[0][0].shape[1]) if len(self.layers) > 1 else None

    @property
    def outputs(self) -> int:
        """Units of the last layer: 1 (a sigmoid) for two classes, K (a softmax) for K classes."""
        return int(self.layers[-1][0].shape[1])

    def columns(self) -> list[Network]:
        """A linear network of K sigmoid outputs as K linear networks of one (linear fold models trained stacked)."""
        ((kernel, bias),) = self.layers
        return [Network(((kernel[:, [k]], bias[[k]]),)) for k in range(kernel.shape[1])]

    def to_keras(self):
        """The same network as a Keras model (what `build_model` makes), with these weights."""
        model = build_model(int(self.layers[0][0].shape[0]), self.hidden_width, len(self.layers) - 1, self.outputs)
        model.set_weights([array for pair in self.layers for array in pair])
        return model


def build_model(n_features: int, hidden_width: int, hidden_layers: int = 1, outputs: int = 1):
    """The tutorial's weighted network, widened to `hidden_width` and deepened to `hidden_layers`; `outputs` > 1
    ends it in a softmax over that many classes instead of the sigmoid."""
    import keras

    layers = [keras.Input(shape=(n_features,))]
    layers += [keras.layers.Dense(hidden_width, activation="relu") for _ in range(hidden_layers)]
    layers.append(keras.layers.Dense(outputs, activation="sigmoid" if outputs == 1 else "softmax"))
    return keras.Sequential(layers)


def initial_layers(
    n_features: int, hidden_width: int, hidden_layers: int, seed: int, outputs: int = 1
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Keras' Dense defaults (Glorot-uniform kernels, zero biases), drawn from numpy seeded by the trial.

    The same draws, in the same order, as a population member with this seed (sweep.models.population), so a trial
    starts where it would start inside a population; `outputs` is the last layer's width.
    """
    rng = np.random.default_rng(seed)
    sizes = [n_features] + [hidden_width] * hidden_layers + [outputs]
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6 / (fan_in + fan_out))
        kernel = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        layers.append((kernel, np.zeros(fan_out, dtype=np.float32)))
    return layers


def train_model(
    X: np.ndarray,
    y: np.ndarray,
    hidden_width: int,
    class_weight: dict[int, float],
    settings: TrainSettings,
    on_epoch: Callable[[int, float, object], None] | None = None,
):
    """Build and train one network on every row; returns (Network, TrainResult). See train_models."""
    adapted = None if on_epoch is None else (lambda epoch, loss, networks: on_epoch(epoch, loss, networks[0]))
    networks, result = train_models(X, y, hidden_width, class_weight, settings, (None,), adapted)
    return networks[0], result


def output_units(class_weight: dict[int, float]) -> int:
    """The last layer's width for these class weights: one sigmoid unit for two classes, one softmax unit per class
    for three or more."""
    return len(class_weight) if len(class_weight) > 2 else 1


def label_weights(y: np.ndarray, class_weight: dict[int, float]) -> np.ndarray:
    """Each row's weight, its label's class weight: what Keras' fit makes of class_weight."""
    if len(class_weight) <= 2:
        return np.where(np.asarray(y) == 1, class_weight[1], class_weight[0])
    per_class = np.array([class_weight[c] for c in range(len(class_weight))], dtype=np.float64)
    return per_class[np.asarray(y, dtype=np.int64)]


def on_cadence(epoch: int, every: int, epochs: int) -> bool:
    """Whether 1-based `epoch` of `epochs` is reported at cadence `every`: every `every`-th epoch and the last (one
    rule for single trials here and population members in sweep.study.rounds)."""
    return epoch % every == 0 or epoch >= epochs


def train_models(
    X: np.ndarray,
    y: np.ndarray,
    hidden_width: int,
    class_weight: dict[int, float],
    settings: TrainSettings,
    keeps=(None,),
    on_epoch: Callable[[int, float, list], None] | None = None,
    every: int = 1,
):
    """Train one network per entry of `keeps` epoch by epoch side by side (fold models of one trial), all
    from the trial's start; returns (networks, TrainResult). Raises TrialFailed on a NaN/infinite loss.

    keeps[k] weights network k's rows (0 = held out, None = every row): a held-out row contributes no loss, so
    network k learns from the others only, with the batches (and Adam steps) of training on all rows.
    on_epoch(epoch, mean_loss, networks) runs after every `every`-th epoch (1-based) and the last, with the networks
    as they are then; it may raise to stop training (optuna.TrialPruned does). Linear fold models train stacked, as
    the columns of one program.

    Same mathematics as model.fit(X, y, class_weight=..., batch_size=..., epochs=..., shuffle=True) with
    binary cross-entropy and Adam (see EpochProgram); what differs is that each epoch is one compiled call
    with no Python per step, which makes a trial cost a second instead of a minute. A class_weight of K >= 3
    classes (labels 0..K-1) makes the last layer a softmax of K trained on categorical cross-entropy.
    """
    tf = tensorflow()
    device = detect_device()
    started = time.perf_counter()
    outputs = output_units(class_weight)
    start = initial_layers(X.shape[1], hidden_width, settings.hidden_layers, settings.seed, outputs)
    weights = label_weights(y, class_weight)
    rows_weights = [weights if keep is None else weights * keep for keep in keeps]
    decay = settings.weight_decay > 0
    stacked = settings.hidden_layers == 0 and outputs == 1 and len(keeps) > 1
    with tf.device(device):
        if stacked:
            # Linear fold models as the columns of one (features, K) kernel: they see the same shuffled batches, and
            # each column's gradient is its own (Adam is element-wise), so this is K separate trainings in one
            # compiled call per epoch instead of K; per-call overhead is the cost of these networks.
            program = epoch_program(device, X.shape[1], 0, settings.batch_size, 0, outputs, decay)
            ((kernel, bias),) = start
            stacked_start = [(np.repeat(kernel, len(keeps), axis=1), np.repeat(bias, len(keeps)))]
            program.load(
                X, y, np.stack(rows_weights, axis=1), stacked_start, settings.learning_rate, settings.weight_decay
            )
            programs = [program]
        else:
            programs = []
            for slot, row_weights in enumerate(rows_weights):
                program = epoch_program(
                    device, X.shape[1], settings.hidden_layers, settings.batch_size, slot, outputs, decay
                )
                program.load(X, y, row_weights, start, settings.learning_rate, settings.weight_decay)
                programs.append(program)

        def networks() -> list[Network]:
            return programs[0].network().columns() if stacked else [program.network() for program in programs]

        loss = float("nan")
        epochs_run = 0
        for epoch in range(settings.epochs):
            seed = tf.constant([settings.seed, epoch], dtype=tf.int64)
            loss = sum(float(program(seed)) for program in programs) / len(keeps)  # the fold models' mean
            epochs_run = epoch + 1
            if not np.isfinite(loss):
                raise TrialFailed(f"training loss became {loss} at epoch {epochs_run}")
            if on_epoch is not None and on_cadence(epochs_run, every, settings.epochs):
                on_epoch(epochs_run, loss, networks())
        trained = networks()
        for program in programs:
            unload_rows(program.rows)
    return trained, TrainResult(epochs_run, time.perf_counter() - started, loss, device)


class FusedAdam:
    """Keras' Adam (beta_1 0.9, beta_2 0.999, epsilon 1e-7) as one ResourceApplyAdam op per variable:
    the update keras.optimizers.Adam.update_step computes, in a fraction of its ops.

    The learning rate is a variable, so one compiled epoch serves every rate; `reset` starts a new run.

    `decayed` ({variable index: None, or a function giving a per-element factor}) makes it Keras' AdamW for those
    variables: before each step, variable -= variable * learning_rate * weight_decay (* the factor). A program
    without it traces no decay at all, so a run without weight decay is Adam's exactly.
    """

    def __init__(self, variables: list, decayed: dict | None = None) -> None:
        tf = tensorflow()
        self.variables = variables
        self.moments = [(open_variable(len(v.shape)), open_variable(len(v.shape))) for v in variables]
        self.iterations = tf.Variable(0.0, trainable=False)
        self.learning_rate = tf.Variable(0.001, trainable=False)
        self.decayed = decayed or {}
        self.weight_decay = tf.Variable(0.0, trainable=False)

    def reset(self, learning_rate: float, weight_decay: float = 0.0) -> None:
        """Zero the moments (shaped like the variables' current values) and the step count; set the rate and decay."""
        tf = tensorflow()
        for variable, (m, v) in zip(self.variables, self.moments):
            m.assign(tf.zeros_like(variable))
            v.assign(tf.zeros_like(variable))
        self.iterations.assign(0.0)
        self.learning_rate.assign(learning_rate)
        self.weight_decay.assign(weight_decay)

    def apply(self, gradients) -> None:
        """One step; call inside a tf.function."""
        tf = tensorflow()
        self.iterations.assign_add(1.0)
        beta_1_power, beta_2_power = tf.pow(0.9, self.iterations), tf.pow(0.999, self.iterations)
        rate = self.learning_rate.read_value()
        if self.decayed:
            shrink = rate * self.weight_decay.read_value()
            for index, factor in self.decayed.items():
                variable = self.variables[index]
                variable.assign_sub(variable * (shrink if factor is None else shrink * factor()))
        for variable, gradient, (m, v) in zip(self.variables, gradients, self.moments):
            tf.raw_ops.ResourceApplyAdam(
                var=variable.handle,
                m=m.handle,
                v=v.handle,
                beta1_power=beta_1_power,
                beta2_power=beta_2_power,
                lr=rate,
                beta1=0.9,
                beta2=0.999,
                epsilon=1e-7,
                grad=gradient,
            )


def unload_rows(rows: dict) -> None:
    """Empty a cached program's row variables after training (its next load sets them again): no copy of the
    training rows stays with the program in between (an export trains twice, on two sets of rows)."""
    tf = tensorflow()
    for variable in rows.values():
        variable.assign(tf.zeros([0] * len(variable.shape), dtype=variable.dtype))


def open_variable(rank: int, dtype: str = "float32", trainable: bool = False):
    """A variable of known rank whose dimensions are all open, so one compiled function serves every shape."""
    tf = tensorflow()
    return tf.Variable(
        tf.zeros([0] * rank, dtype=dtype), shape=tf.TensorShape([None] * rank), dtype=dtype, trainable=trainable
    )


class EpochProgram:
    """One compiled epoch of mini-batch Adam for a Dense network of `hidden_layers` hidden layers, with open
    widths and row counts: traced on its first call, reused by every later trial of the same family.

    The maths of Keras' fit with class_weight and Adam, written with raw ops because per-op overhead, not
    arithmetic, is the cost of these tiny networks (docs/benchmarks/trial-speed.md#section-3):
    - rows shuffled every epoch (stateless, seeded by the epoch), consecutive mini-batches of `batch`;
    - Dense = matmul + bias, relu between, the loss from the last layer's logits with
      sigmoid_cross_entropy_with_logits: what keras.losses.binary_crossentropy computes for a sigmoid
      output (it recovers the logits); with `softmax`, softmax cross-entropy on one-hot label rows, what
      keras.losses.sparse_categorical_crossentropy computes for a softmax output (the class count is open too);
    - the batch loss is sum(weight * loss) / rows in the batch, Keras' "sum_over_batch_size";
    - Adam with Keras' defaults as one fused ResourceApplyAdam per variable (FusedAdam).
    """

    def __init__(self, hidden_layers: int, batch: int, softmax: bool = False, decay: bool = False) -> None:
        self.softmax = softmax
        self.layers = [
            (open_variable(2, trainable=True), open_variable(1, trainable=True)) for _ in range(hidden_layers + 1)
        ]
        self.variables = [variable for pair in self.layers for variable in pair]
        self.rows = {name: open_variable(2) for name in ("features", "labels", "weights")}
        kernels = {index: None for index in range(0, len(self.variables), 2)} if decay else None
        self.adam = FusedAdam(self.variables, kernels)
        self.run_epoch = compiled_epoch(list(self.rows.values()), batch, self.adam, self._batch_gradients)

    def _output_loss(self, logits, yb, scale):
        """The batch's weighted loss and its gradient with respect to the logits: (sigmoid - label) or
        (softmax - one-hot label), times weight / rows. For a softmax, one fused op gives both the per-row
        loss (logsumexp(logits) - logit of the label) and softmax - one-hot."""
        tf = tensorflow()
        if not self.softmax:
            loss = tf.reduce_sum((tf.nn.softplus(logits) - logits * yb) * scale)
            return loss, (tf.sigmoid(logits) - yb) * scale
        row_losses, backprop = tf.raw_ops.SoftmaxCrossEntropyWithLogits(features=logits, labels=yb)
        return tf.reduce_sum(row_losses * scale[:, 0]), backprop * scale

    def _batch_gradients(self, xb, yb, wb):
        """The batch's weighted loss and its gradients, back-propagated by hand: the gradient at the logits
        (_output_loss), passed through each hidden layer by ReluGrad. A GradientTape builds the same numbers
        from about twice the ops, and ops, not arithmetic, are the cost here (a quarter of the epoch;
        tests/test_train.py checks the weights against Keras' fit)."""
        tf = tensorflow()
        scale = wb / tf.cast(tf.shape(xb)[0], tf.float32)
        inputs = [xb]
        for kernel, bias in self.layers[:-1]:
            inputs.append(tf.nn.relu(tf.matmul(inputs[-1], kernel) + bias))
        kernel, bias = self.layers[-1]
        loss, upstream = self._output_loss(tf.matmul(inputs[-1], kernel) + bias, yb, scale)
        gradients = []
        for layer in reversed(range(len(self.layers))):
            gradients[:0] = [tf.matmul(inputs[layer], upstream, transpose_a=True), tf.reduce_sum(upstream, 0)]
            if layer:
                back = tf.matmul(upstream, self.layers[layer][0], transpose_b=True)
                upstream = tf.raw_ops.ReluGrad(gradients=back, features=inputs[layer])
        return gradients, loss

    def load(
        self, X: np.ndarray, y: np.ndarray, row_weights: np.ndarray, start, learning_rate: float, weight_decay=0.0
    ) -> None:
        """Set the rows, their weights and the network's starting weights; reset Adam. A softmax program holds
        each label as a one-hot row as wide as the start's last layer (fewer ops per batch than class indices).
        Row weights of shape (rows, K) with a last layer of K sigmoid units train K networks at once, one per column
        (linear fold models stacked: train_models)."""
        if self.softmax:
            labels = np.eye(start[-1][0].shape[1], dtype=np.float32)[np.asarray(y, dtype=np.int64)]
        else:
            labels = np.asarray(y, dtype=np.float32).reshape(-1, 1)
        self.rows["features"].assign(np.asarray(X, dtype=np.float32))
        self.rows["labels"].assign(labels)
        row_weights = np.asarray(row_weights, dtype=np.float32)
        self.rows["weights"].assign(row_weights.reshape(-1, 1) if row_weights.ndim == 1 else row_weights)
        for (kernel, bias), (kernel_start, bias_start) in zip(self.layers, start):
            kernel.assign(kernel_start)
            bias.assign(bias_start)
        self.adam.reset(learning_rate, weight_decay)

    def __call__(self, shuffle_seed):
        """Train one epoch; returns the mean batch loss."""
        return self.run_epoch(shuffle_seed)

    def network(self) -> Network:
        """The weights as they are now."""
        return Network(tuple((kernel.numpy(), bias.numpy()) for kernel, bias in self.layers))


_per_thread = threading.local()  # two threads training at once must not share variables


def per_thread(key: tuple, make: Callable[[], object]):
    """What make() made for `key` in this thread, made on first use: the compiled programs (and their
    variables) of single trials and populations, each traced once per process and thread."""
    cache = _per_thread.__dict__.setdefault("cache", {})
    if key not in cache:
        cache[key] = make()
    return cache[key]


def epoch_program(
    device: str, n_features: int, hidden_layers: int, batch: int, slot: int = 0, outputs: int = 1, decay: bool = False
) -> EpochProgram:
    """The compiled epoch for this family, made (and traced) once per process and thread; `slot` tells apart
    the networks one trial trains side by side (its fold models). A sigmoid (outputs 1) and a softmax (outputs
    > 1, any number of classes) are two families, and with and without weight decay two more: they never share a
    trace."""
    softmax = outputs > 1
    return per_thread(
        ("epoch", device, n_features, hidden_layers, batch, slot, "softmax" if softmax else "sigmoid", decay),
        lambda: EpochProgram(hidden_layers, batch, softmax, decay),
    )


def compiled_epoch(rows: list, batch: int, adam: FusedAdam, batch_gradients, tracked_zeros=None):
    """A tf.function(shuffle_seed) that runs one epoch of mini-batch Adam and returns the mean of what
    batch_gradients tracks over the epoch's batches.

    The variables in `rows` (one entry per training row each) are shuffled together, stateless and seeded by
    the epoch, and cut into consecutive batches of `batch`; batch_gradients(*batch_rows) returns (the
    gradients of adam's variables, the value to track, shaped like tracked_zeros() (default: a scalar)).
    Shared by single trials and populations. The loop is a plain tf.while_loop (no autograph), which
    halves the one-time trace.
    """
    tf = tensorflow()

    def run_epoch(shuffle_seed):
        n_rows = tf.shape(rows[0])[0]
        n_batches = (n_rows + batch - 1) // batch
        order = tf.argsort(tf.random.stateless_uniform(tf.reshape(n_rows, [1]), seed=shuffle_seed))

        def step(index, total):
            # Each batch gathers its rows from the variables: a shuffled copy of every row per epoch would
            # double the memory the rows take (docs/benchmarks/memory.md#section-15).
            chosen = order[index * batch : (index + 1) * batch]
            gradients, tracked = batch_gradients(*[tf.gather(row, chosen) for row in rows])
            adam.apply(gradients)
            return index + 1, total + tracked

        total = tf.zeros([]) if tracked_zeros is None else tracked_zeros()
        _, total = tf.while_loop(lambda index, _total: index < n_batches, step, (tf.constant(0), total))
        return total / tf.cast(n_batches, tf.float32)

    return tf.function(run_epoch, autograph=False)


def score(model, X: np.ndarray, chunk: int = 65_536) -> np.ndarray:
    """Predicted probability of the positive class for each row, in row order (a Network or a Keras model); a
    model with K > 1 output units gives (rows, K) class probabilities."""
    if isinstance(model, Network):
        return model.scores(X)
    parts = [model(X[i : i + chunk], training=False).numpy() for i in range(0, len(X), chunk)]
    if not parts:
        return np.empty(0)
    scores = np.concatenate([part.reshape(len(part), -1) for part in parts])
    return scores.ravel() if scores.shape[1] == 1 else scores
