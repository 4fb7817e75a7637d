"""A user's own Keras model: load the builder named by config.model (a file beside its own modules, an importable
module, or a function handed to the Python API), call it with a trial's params and the input shape, and check that
what it returns is a model sweep can train."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from sweep.errors import ConfigError, TrialFailed

logger = logging.getLogger(__name__)

# Builders handed to the Python API (sweep.api) by object, under config.model = "memory:NAME".
_IN_MEMORY: dict[str, Callable] = {}


class BuilderError(ConfigError):
    """The user's model builder cannot be used at all (checked before any trial starts): exit code 2."""


def register_builder(function: Callable) -> str:
    """Make a builder given by object (the Python API) loadable as config.model; returns that spec."""
    spec = f"memory:{getattr(function, '__name__', 'builder')}"
    _IN_MEMORY[spec] = function
    return spec


def load_builder(spec: str) -> Callable:
    """The function config.model names: PATH.py:FUNCTION (a file), package.module:FUNCTION (importable from the
    working directory too) or memory:NAME (registered by the Python API). Every failure is one BuilderError."""
    if spec in _IN_MEMORY:
        return _IN_MEMORY[spec]
    from sweep.runtime import tensorflow

    tensorflow()  # the builder's module imports Keras: TensorFlow first, quietly and with our thread settings
    target, _, name = spec.rpartition(":")
    if target == "memory":
        raise BuilderError(
            f"model {spec!r} was a Python function handed to sweep.api in another process; call the Python API with "
            "the same function again (export and predict included), or name an importable builder, PATH.py:FUNCTION"
        )
    module = import_user_file(target) if target.endswith(".py") else import_user_module(target)
    function = getattr(module, name, None)
    if function is None:
        found = sorted(
            n
            for n, v in vars(module).items()
            if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__
        )
        raise BuilderError(
            f"model {spec!r}: {target!r} has no function {name!r} "
            f"(it defines: {', '.join(found) or 'nothing callable'}); fix the name after ':'"
        )
    if not callable(function):
        raise BuilderError(
            f"model {spec!r}: {name!r} in {target!r} is a {type(function).__name__}, not a function; "
            "name the builder function"
        )
    return function


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def importable_beside(path: Path, first: bool) -> None:
    """Put the folder of the file `path` on sys.path (first, as `python PATH.py` does, or last), once."""
    folder = str(path.resolve().parent)
    if folder in sys.path:
        return
    if first:
        sys.path.insert(0, folder)
    else:
        sys.path.append(folder)


def import_user_file(path_text: str):
    """Import a builder's file as `python PATH.py` runs it: with its folder first on sys.path, so that a module
    beside it (custom layers) imports, in every worker and in export."""
    path = Path(path_text)
    if not path.is_file():
        raise BuilderError(
            f"model file {path_text!r} does not exist; pass --model PATH.py:FUNCTION with an existing file"
        )
    module_name = f"sweep_user_model_{path.stem}"
    if module_name in sys.modules and getattr(sys.modules[module_name], "__file__", None) == str(path):
        return sys.modules[module_name]
    importable_beside(
        path, first=True
    )  # as `python PATH.py` does: a module beside the file (its custom layers) imports
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # custom layers registered by it are then found by Keras
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise BuilderError(
            f"model file {path_text!r} failed to import ({_first_line(exc)}); fix the error in that file"
        ) from None
    return module


def import_user_module(name: str):
    import os

    if os.getcwd() not in sys.path:  # as `python -m` does: a package in the working directory is importable
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise BuilderError(
                f"model module {name!r} is not importable (no module {exc.name!r}); install it, run from the folder "
                "that holds it, or pass a file: --model PATH.py:FUNCTION"
            ) from None
        raise BuilderError(
            f"model module {name!r} failed to import ({_first_line(exc)}); fix the import in that module"
        ) from None
    except Exception as exc:
        raise BuilderError(
            f"model module {name!r} failed to import ({_first_line(exc)}); fix the error in that module"
        ) from None


def build_user_model(
    builder: Callable,
    params: dict,
    input_shape: tuple,
    learning_rate: float,
    spec: str,
    probe: bool = True,
    classes: int = 1,
):
    """Call the builder for one trial and check what it returns; compile it (binary cross-entropy, or sparse categorical
    cross-entropy for `classes` > 1 units, Adam at the trial's rate) unless the builder compiled it itself. Returns
    (model, compiled_by). A builder that raises or returns an unusable model raises TrialFailed with the reason
    (check_builder makes that exit 2 up front).

    With `probe`, two rows go through the model to check its output's shape and range; without it (every trial
    after check_builder's), a model whose symbolic output shape is known is checked by that shape alone, which
    saves a forward pass every trial (docs/benchmarks/user-model.md#section-12)."""
    import keras

    try:
        model = builder(dict(params), tuple(input_shape))
    except Exception as exc:
        raise TrialFailed(f"model builder {spec} rejected params {params}: {_first_line(exc)}") from None
    if not isinstance(model, keras.Model):
        raise TrialFailed(
            f"model builder {spec} returned a {type(model).__name__}, not a keras.Model; return the model "
            "(keras.Sequential, functional or subclassed)"
        )
    expected = _expected_output(classes)
    if len(model.outputs if hasattr(model, "outputs") and model.outputs is not None else [None]) != 1:
        raise TrialFailed(
            f"model builder {spec} returned a model with {len(model.outputs)} outputs; expected one, {expected}"
        )
    outputs = getattr(model, "outputs", None)
    shapes = ((), (1,)) if classes == 1 else ((classes,),)
    if not probe and outputs:
        shape = tuple(outputs[0].shape)
        if shape[1:] not in shapes:
            raise TrialFailed(f"model from {spec} outputs shape {(None, *shape[1:])} per batch; expected {expected}")
        return _compiled(model, learning_rate, classes)
    try:
        probe = np.asarray(model(np.zeros((2, *input_shape), dtype=np.float32), training=False))
    except Exception as exc:
        raise TrialFailed(
            f"model from {spec} cannot take rows of shape {tuple(input_shape)}: {_first_line(exc)}"
        ) from None
    if probe.shape[1:] not in shapes:
        raise TrialFailed(f"model from {spec} outputs shape {(None, *probe.shape[1:])} per batch; expected {expected}")
    if not np.all((probe >= 0) & (probe <= 1)) or (classes > 1 and not np.allclose(probe.sum(axis=1), 1, atol=1e-3)):
        raise TrialFailed(
            f"model from {spec} outputs {float(probe.ravel()[0]):.4g}, not a probability; expected {expected}"
        )
    return _compiled(model, learning_rate, classes)


def _expected_output(classes: int) -> str:
    """What a user's model must output, in words (with the layer that does it)."""
    if classes == 1:
        return (
            "(None, 1) or (None,): one sigmoid unit, the positive class's probability, Dense(1, activation='sigmoid') "
            "(a two-unit softmax: use Dense(1, activation='sigmoid'))"
        )
    return (
        f"(None, {classes}): one probability per class of the target's {classes}, "
        f"Dense({classes}, activation='softmax')"
    )


def _compiled(model, learning_rate: float, classes: int = 1) -> tuple:
    """The model compiled by its builder ("user"), or compiled here ("sweep"): binary cross-entropy (sparse categorical
    cross-entropy for several classes), Adam."""
    import keras

    if getattr(model, "compiled", False):
        return model, "user"
    loss = "binary_crossentropy" if classes == 1 else "sparse_categorical_crossentropy"
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate), loss=loss)
    return model, "sweep"


def check_builder(spec: str, params: dict, input_shape: tuple, learning_rate: float, classes: int = 1) -> None:
    """Before any trial: the builder loads, accepts typical params and returns a usable model, else one line, exit 2."""
    from sweep.runtime import tensorflow

    tensorflow()
    builder = load_builder(spec)
    try:
        model, _ = build_user_model(builder, params, input_shape, learning_rate, spec, classes=classes)
        if lambdas := lambda_layers(model):
            logger.warning(
                "warning: %s", lambda_refusal(spec, lambdas, "its trials train, but sweep export refuses to write")
            )
    except TrialFailed as failure:
        raise BuilderError(
            f"{failure} (checked before any trial starts); fix the builder or its --param ranges"
        ) from None
    finally:
        import keras

        keras.backend.clear_session()


def lambda_layers(model) -> list[str]:
    """Names of the Lambda layers in `model`, nested models included: their code is pickled into a .keras
    file, which Keras' safe mode (what every bundle is loaded with) refuses to run."""
    import keras

    found, pending = [], [model]
    while pending:
        layer = pending.pop()
        if isinstance(layer, keras.layers.Lambda):
            found.append(layer.name)
        pending.extend(getattr(layer, "layers", None) or ())
    return sorted(found)


def lambda_refusal(spec: str, names: list[str], consequence: str) -> str:
    """The one line for a model that holds Lambda layers."""
    return (
        f"the model from {spec} holds Lambda layer(s) {', '.join(map(repr, names))}: {consequence} a bundle whose "
        "model.keras Keras' safe mode cannot load; replace each Lambda with a registered custom layer "
        "(@keras.saving.register_keras_serializable) or a built-in layer"
    )
