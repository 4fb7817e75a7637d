"""Import TensorFlow once, lazily and quietly, and say which device trials run on."""

from __future__ import annotations

import contextlib
import functools
import os
import sys

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


@functools.cache
def tensorflow():
    """The tensorflow module, imported on first use with the start-up noise silenced."""
    with _quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # probes CUDA now, while stderr is silenced
    return tf


def detect_device() -> str:
    """The TensorFlow device a trial runs on: the first GPU when one is visible, else the CPU."""
    return "/GPU:0" if tensorflow().config.list_logical_devices("GPU") else "/CPU:0"
