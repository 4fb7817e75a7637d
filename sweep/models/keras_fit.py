"""One user-model trial through Keras' own fit: the trial's fold models trained one after another on indexed
rows (never a per-trial or per-fold copy of the data), with the callback that scores the validation rows after
every epoch (the dashboard's learning curve; the pruner may stop the trial there) and ends fit at the next
batch when the worker is asked to stop. The heartbeat comes from Optuna's own optimize loop, which keeps
stamping the trial while fit runs."""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable

import numpy as np

from sweep import stopping
from sweep.data.folds import Fold
from sweep.errors import TrialFailed, TrialTimedOut
from sweep.models.builder import build_user_model, load_builder
from sweep.models.network import TrainResult, TrainSettings, output_units
from sweep.runtime import device_label, tensorflow

# Rows scored per predict batch: scoring has no gradients, so larger batches than training's are cheap.
SCORE_BATCH = 1024
# The TensorFlow copy of each input array this worker trains on, made once and shared by every trial and fold.
_tensors: dict[int, tuple[weakref.ref, object]] = {}


def as_tensor(X: np.ndarray):
    """X as a TensorFlow constant, made once per array and worker (trials and folds gather their rows from it)."""
    key = id(X)
    cached = _tensors.get(key)
    if cached is not None and cached[0]() is X:
        return cached[1]
    for stale in [k for k, (ref, _) in _tensors.items() if ref() is None]:
        del _tensors[stale]  # the copy of an array that is gone (an earlier run's data): nothing can ask for it again
    tf = tensorflow()
    with tf.device("/CPU:0"):  # the input pipeline lives on the host; batches go to the device
        tensor = tf.constant(X)
    _tensors[key] = (weakref.ref(X), tensor)
    return tensor


def batches(X_tensor, y: np.ndarray, rows: np.ndarray, batch_size: int, seed: int | None, output_rank: int):
    """A tf.data pipeline of (x, y) batches of `rows`, reshuffled every epoch when `seed` is given (as fit's
    shuffle=True does), gathered from the shared tensor."""
    tf = tensorflow()
    labels = tf.constant(y.astype(np.float32).reshape((-1, 1) if output_rank == 2 else (-1,)))
    data = tf.data.Dataset.from_tensor_slices(np.asarray(rows, dtype=np.int64))
    if seed is not None:
        data = data.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size).map(lambda index: (tf.gather(X_tensor, index), tf.gather(labels, index)))
    return data.prefetch(2)


# Validation rows up to this many bytes are gathered from the shared tensor once per fold model rather than at every
# epoch's scoring: gathering cost more than a small model's forward pass (docs/benchmarks/user-model.md#overhead).
GATHER_ONCE_BYTES = 64 * 2**20


class ValidationInput:
    """A fold model's validation rows as predict batches of SCORE_BATCH rows: the fold's own X_val, or rows of the
    shared tensor, gathered once when they are small (GATHER_ONCE_BYTES) and batch by batch at every scoring when
    they are not, so that no fold model holds a copy of a large part of the data."""

    def __init__(self, X_tensor, fold: Fold) -> None:
        self.X_tensor, self.X_val = X_tensor, fold.X_val if fold.val_rows is None else None
        self.rows = None if fold.val_rows is None else np.asarray(fold.val_rows, dtype=np.int64)
        row_bytes = X_tensor.shape[1:].num_elements() * X_tensor.dtype.size
        self._gathered = None
        if self.rows is not None and len(self.rows) * row_bytes <= GATHER_ONCE_BYTES:
            self._gathered = [self._gather(start) for start in range(0, len(self.rows), SCORE_BATCH)]

    def _gather(self, start: int):
        tf = tensorflow()
        with tf.device("/CPU:0"):  # gathered where the shared tensor lives; the batch goes to the device
            return tf.gather(self.X_tensor, self.rows[start : start + SCORE_BATCH])

    def batches(self):
        if self.X_val is not None:
            return (self.X_val[start : start + SCORE_BATCH] for start in range(0, len(self.X_val), SCORE_BATCH))
        if self._gathered is not None:
            return iter(self._gathered)
        return (self._gather(start) for start in range(0, len(self.rows), SCORE_BATCH))


def score_rows(model, inputs: ValidationInput) -> np.ndarray:
    """The model's positive-class probability for each validation row, in order ((rows, classes) probabilities for
    several classes).

    Each batch goes through the model's own predict function (predict_on_batch): the forward pass model.predict runs on
    the same batches, without predict's per-call tf.data pipeline, iterator and epoch loop, whose cost a call is a large
    share of a small model's trial (docs/benchmarks/user-model.md#section-12)."""
    parts = [np.asarray(model.predict_on_batch(batch), dtype=np.float64) for batch in inputs.batches()]
    if not parts:
        return np.empty(0)
    scores = np.concatenate([part.reshape(len(part), -1) for part in parts])
    return scores.ravel() if scores.shape[1] == 1 else scores


def _fit_callback(
    on_epoch: Callable[[int, float, object], None] | None, state: dict, over: Callable[[int], str | None] | None = None
):
    """The Keras callback of a trial's fit: a stop request, or `over(epoch)` giving a reason (the trial ran past
    --trial-timeout), ends fit at the next batch, a NaN loss at the epoch's end, and `on_epoch(epoch, loss, model)`
    (1-based) runs after every epoch; it may raise to stop the trial."""
    import keras

    class TrialCallback(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            state["epoch"] = epoch + 1

        def on_train_batch_end(self, batch, logs=None):
            if stopping.requested():
                self.model.stop_training = True
                state["stopped"] = True
            elif over is not None and "timed_out" not in state:
                reason = over(state.get("epoch", 1))
                if reason is not None:
                    self.model.stop_training = True
                    state["timed_out"] = reason

        def on_epoch_end(self, epoch, logs=None):
            loss = float((logs or {}).get("loss", math.nan))
            state["epochs"] = epoch + 1
            if not math.isfinite(loss):
                state["nan_epoch"] = epoch + 1
                self.model.stop_training = True
                return
            if state.get("stopped") or "timed_out" in state:
                return
            reason = None if over is None else over(epoch + 1)
            if reason is not None:  # past the limit at the epoch's end: no report of it
                self.model.stop_training = True
                state["timed_out"] = reason
                return
            if on_epoch is not None:
                on_epoch(epoch + 1, loss, self.model)

    return TrialCallback()


def _build_optimizer(model) -> None:
    """Create the compiled optimizer's variables now, eagerly, as Keras' own symbolic build does
    (optimizer.build(model.trainable_variables)). Left to fit, they are created inside its first traced train step,
    where each variable's initialisation adds two cond branch functions to TensorFlow's eager context that clear_session
    never removes: most of the Python objects a trial would leave behind (docs/benchmarks/user-model.md#section-12).
    Same variables, same zeros: the trained weights are the same bit for bit."""
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None and not getattr(optimizer, "built", True):
        optimizer.build(model.trainable_variables)


def fit_user_model(
    builder: Callable,
    spec: str,
    params: dict,
    class_weight: dict,
    settings: TrainSettings,
    X: np.ndarray,
    y: np.ndarray,
    rows: Fold,
    on_epoch: Callable[[int, float, object], None] | None = None,
    over: Callable[[int], str | None] | None = None,
):
    """Build the trial's model (seeded: the same seed gives the same initial weights, dropout and batches) and fit it
    with Keras' fit(class_weight=...) on the training rows of X that `rows` names; returns (model, epochs run, final
    loss).

    Raises TrialFailed on a NaN loss or an error inside the builder or fit, KeyboardInterrupt on a stop request
    (the trial then ends FAIL with the reason), TrialTimedOut with over's reason once `over(epoch)` (checked at
    every batch and epoch end) gives one."""
    import keras

    keras.utils.set_random_seed(settings.seed)
    units = output_units(class_weight)
    model, compiled_by = build_user_model(builder, params, X.shape[1:], settings.learning_rate, spec, False, units)
    state: dict = {"compiled_by": compiled_by}
    rank = len(model.outputs[0].shape) if getattr(model, "outputs", None) else 2
    data = batches(as_tensor(X), y, rows.training_rows(len(y)), settings.batch_size, settings.seed, rank)
    try:
        _build_optimizer(model)
        history = model.fit(
            data,
            epochs=settings.epochs,
            class_weight={int(k): float(v) for k, v in class_weight.items()},
            shuffle=False,
            verbose=0,
            callbacks=[_fit_callback(on_epoch, state, over)],
        )
    except (TrialFailed, KeyboardInterrupt):
        raise
    except Exception as exc:
        import optuna

        if isinstance(exc, optuna.TrialPruned):
            raise
        text = str(exc).strip().splitlines()
        raise TrialFailed(
            f"fit of the model from {spec} failed: {type(exc).__name__}: {text[0] if text else ''}"
        ) from None
    if state.get("stopped"):
        stopping.check()
    if "timed_out" in state:
        raise TrialTimedOut(state["timed_out"])
    if "nan_epoch" in state:
        weight = class_weight[1] if len(class_weight) == 2 else max(class_weight.values())  # the rarest class's
        raise TrialFailed(
            f"training loss became NaN or infinite at epoch {state['nan_epoch']} (minority_weight {weight:.4g})"
        )
    losses = history.history.get("loss", [math.nan])
    return model, state.get("epochs", settings.epochs), float(losses[-1]), compiled_by


def train_user_models(
    spec: str,
    params: dict,
    class_weight: dict,
    settings: TrainSettings,
    X: np.ndarray,
    y: np.ndarray,
    folds: list[Fold],
    on_epoch: Callable[[int, int, float, np.ndarray], None] | None = None,
    clock=None,
):
    """Train a trial's fold models one after another and score each one's validation rows; returns (models,
    fold scores, TrainResult (epochs run per fold model), compiled_by). on_epoch(fold, epoch, loss, fold scores) runs
    after every epoch. With a clock (sweep.study.watchdog.TrialClock, started with the trial: every fold model's time
    counts), fit stops at the first batch or epoch end past its limit (TrialTimedOut)."""
    from sweep.runtime import custom_gradient_names, forget_custom_gradients

    builder = load_builder(spec)
    X_tensor = as_tensor(X)
    started = time.perf_counter()
    registered = custom_gradient_names()
    try:
        return _train_folds(
            builder, spec, params, class_weight, settings, X, y, folds, on_epoch, clock, X_tensor, started
        )
    finally:
        forget_custom_gradients(registered)  # the trial's train steps, kept by TensorFlow for ever otherwise


def _train_folds(builder, spec, params, class_weight, settings, X, y, folds, on_epoch, clock, X_tensor, started):
    """train_user_models' loop over the fold models."""
    models, fold_scores, ran, loss, compiled_by = [], [], 0, math.nan, "sweep"
    for index, fold in enumerate(folds):
        last: dict = {}  # the scores of the last epoch's report, which are the fold model's final scores
        inputs = ValidationInput(X_tensor, fold)
        report = None
        if on_epoch is not None:

            def report(epoch, epoch_loss, model, index=index, inputs=inputs, last=last):
                last["scores"], last["epoch"] = score_rows(model, inputs), epoch
                on_epoch(index, epoch, epoch_loss, last["scores"])

        over = (
            None
            if clock is None or clock.limit is None
            else (lambda epoch, fold_number=index + 1: clock.over(epoch, fold_number))
        )
        model, ran, loss, compiled_by = fit_user_model(
            builder, spec, params, class_weight, settings, X, y, fold, report, over
        )
        models.append(model)
        final = last.get("scores") if last.get("epoch") == ran else None
        fold_scores.append(final if final is not None else score_rows(model, inputs))
    result = TrainResult(ran, time.perf_counter() - started, loss, device_label())
    return models, fold_scores, result, compiled_by
