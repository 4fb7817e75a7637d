"""Import TensorFlow once, lazily and quietly, and say which device trials run on."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sweep.config import DeviceSpec

# TF's C++ runtime prints CUDA probing and oneDNN notices straight to file descriptor 2 before its logging is
# configured, so TF_CPP_MIN_LOG_LEVEL cannot hide them; set SWEEP_TF_LOGS=1 to see them.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def _quiet_stderr():
    if os.environ.get("SWEEP_TF_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


# Thread counts asked for (0 = automatic); TensorFlow fixes them when its runtime starts.
_requested_threads = {"intra_op": 0, "inter_op": 0}


def available_cores() -> int:
    """Cores this process may run on (respects taskset/cgroup affinity, unlike os.cpu_count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def automatic_threads() -> dict[str, int]:
    """Defaults for these tiny networks (docs/benchmarks/trial-speed.md#section-3): ops are too small to split, so
    one thread per op; a second inter-op thread overlaps the validation scoring with nothing useful."""
    return {"intra_op": 1, "inter_op": 1}


def configure_threads(intra_op: int = 0, inter_op: int = 0) -> None:
    """Ask for TensorFlow's intra-/inter-op thread counts (0 = automatic) before TensorFlow starts."""
    _requested_threads.update(intra_op=intra_op, inter_op=inter_op)
    if tensorflow.cache_info().currsize:
        _apply_threads(tensorflow())


def _apply_threads(tf) -> None:
    wanted = {k: v or automatic_threads()[k] for k, v in _requested_threads.items()}
    try:
        tf.config.threading.set_intra_op_parallelism_threads(wanted["intra_op"])
        tf.config.threading.set_inter_op_parallelism_threads(wanted["inter_op"])
    except RuntimeError:
        pass  # the runtime already started in this process; thread_settings() reports what is in force


def thread_settings() -> dict[str, int]:
    """The thread counts TensorFlow runs with (recorded on every trial; 0 would mean TF's own default)."""
    threading = tensorflow().config.threading
    return {
        "intra_op": threading.get_intra_op_parallelism_threads() or available_cores(),
        "inter_op": threading.get_inter_op_parallelism_threads() or available_cores(),
    }


@functools.cache
def tensorflow():
    """The tensorflow module, imported on first use with the start-up noise silenced and threads set."""
    with _quiet_stderr():
        import tensorflow as tf

        _apply_threads(tf)
        tf.get_logger().setLevel("ERROR")
        tf.config.list_physical_devices("GPU")  # probes CUDA now, while stderr is silenced
    # TensorFlow's import leaves hundreds of thousands of objects that live as long as the process; every full garbage
    # collection would walk them all, a pause in the middle of a sweep (docs/benchmarks/trial-speed.md#section-11).
    # Frozen, collections skip them; what is made later is collected as usual.
    gc.freeze()
    return tf


def choose_device(requested: DeviceSpec, worker_index: int, gpus: list) -> str:
    """Which device worker `worker_index` uses: "cpu" or "gpu:K", K indexing `gpus` (the physical GPUs).

    auto: GPU (worker i -> GPU i mod n) when there is one, else the CPU; gpu: the same but an error without
    a GPU; gpu:N: that GPU for every worker; cpu: the CPU even when GPUs exist.
    """
    from sweep.errors import ConfigError

    if requested.kind == "cpu" or (requested.kind == "auto" and not gpus):
        return "cpu"
    if not gpus:
        raise ConfigError(
            f"device = {requested.text!r} but TensorFlow sees no GPU; install the gpu extra (pip install '.[gpu]') "
            "on a machine with an NVIDIA driver, or use --device cpu"
        )
    if requested.index is not None:
        if requested.index >= len(gpus):
            raise ConfigError(
                f"device = {requested.text!r} but TensorFlow sees {len(gpus)} GPU(s) (gpu:0 to gpu:{len(gpus) - 1}); "
                "pick one of those"
            )
        return requested.text
    return f"gpu:{worker_index % len(gpus)}"


_device = {"label": None}


def select_device(requested: DeviceSpec | None = None, worker_index: int = 0) -> str:
    """Make only the chosen device visible to TensorFlow (memory growth on, so workers can share a GPU);
    `requested` is config.device_spec (None: auto)."""
    if requested is None:
        from sweep.config import parse_device

        requested = parse_device("auto")
    tf = tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    label = choose_device(requested, worker_index, gpus)
    try:
        if label == "cpu":
            tf.config.set_visible_devices([], "GPU")
        else:
            gpu = gpus[int(label.split(":")[1])]
            tf.config.set_visible_devices([gpu], "GPU")
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        pass  # TensorFlow already started in this process: it keeps the devices it has
    _device["label"] = label
    return label


def detect_device() -> str:
    """The TensorFlow device string a trial runs on: the (one visible) GPU when there is one, else the CPU."""
    return "/GPU:0" if tensorflow().config.list_logical_devices("GPU") else "/CPU:0"


def device_label() -> str:
    """What a trial records as its device: "cpu" or "gpu:K" (physical index), as chosen by select_device."""
    return _device["label"] or ("gpu:0" if detect_device() == "/GPU:0" else "cpu")


# Where a cluster placed this worker (Dask worker address, GPU resource, CUDA_VISIBLE_DEVICES), set by
# sweep.study.cluster for the duration of a task; every trial records it next to its device.
_placement: dict[str, object] = {}


def set_placement(**attrs: object) -> None:
    """Record where this process's trials run (replaces what was there; no arguments clears it)."""
    _placement.clear()
    _placement.update(attrs)


def placement() -> dict[str, object]:
    """The user attributes set_placement recorded (empty outside a cluster task)."""
    return dict(_placement)


# TensorFlow 2.21: `tensorflow.python.framework.ops._gradient_registry` (a `Registry` whose `_registry` dict maps
# op-type names to gradient functions). Keras' TensorFlow optimizer sums gradients through a `tf.custom_gradient`,
# and each trace of a fit's train step registers a `CustomGradient-N` entry there for ever, holding that step's
# graph: memory every user-model trial adds that clear_session never frees (docs/benchmarks/user-model.md#memory).
CUSTOM_GRADIENT_PREFIX = "CustomGradient-"


def _gradient_entries() -> dict:
    from tensorflow.python.framework import ops

    return ops._gradient_registry._registry


def custom_gradient_names() -> set[str]:
    """The CustomGradient-N names now in TensorFlow's global gradient registry."""
    return {name for name in _gradient_entries() if name.startswith(CUSTOM_GRADIENT_PREFIX)}


def forget_custom_gradients(keep: set[str]) -> int:
    """Remove the CustomGradient-N entries registered since `keep` was read (a finished trial's train steps, which
    nothing will differentiate again); returns how many were removed."""
    entries = _gradient_entries()
    added = [name for name in list(entries) if name.startswith(CUSTOM_GRADIENT_PREFIX) and name not in keep]
    for name in added:
        del entries[name]
    return len(added)
