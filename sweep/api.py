"""The Python API for notebooks: the same sweep as `sweep run`, called with a builder function and data in memory
(NumPy arrays, or a DataFrame and its target column) instead of paths, and the exported bundle loaded back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from sweep.config import DEFAULT_STORAGE, SweepConfig, resolve_config
from sweep.errors import ConfigError
from sweep.handover.bundle import Bundle, load_bundle
from sweep.handover.ensemble import DEFAULT_ENSEMBLE
from sweep.handover.export import export_best
from sweep.study.summary import SweepResult


class Sweep:
    """One study: `Sweep(build, x=x, y=y, space={...}, trials=20).run()`, then `.export(folder)` -> Bundle.

    `model` is a builder function (params, input_shape) -> keras.Model, "builtin", or a "PATH.py:FUNCTION" spec;
    data is `x` and `y` (arrays), `data` (a DataFrame, with `target`) or `data` as a path, as on the command line.
    Every other keyword is a config key (docs/reference/config.md), e.g. trials, epochs, cv, storage, study.
    A study of data or a builder in memory is resumed and exported from Python with the same data and function.
    """

    def __init__(
        self,
        model: Callable | str = "builtin",
        *,
        x=None,
        y=None,
        data=None,
        space: dict | None = None,
        **settings: Any,
    ) -> None:
        from sweep.models.builder import register_builder

        self._memory: dict = {}
        if x is not None or y is not None:
            if x is None or y is None or data is not None:
                raise ConfigError("pass arrays as x=... and y=... together (or a table as data=..., not both)")
            self._memory = {"arrays": (np.asarray(x), np.asarray(y))}
            settings["data"] = "memory"
        elif data is not None and not isinstance(data, (str, Path)):
            self._memory = {"frame": data}
            settings["data"] = "memory"
        elif data is not None:
            settings["data"] = str(data)
        if self._memory and settings.get("workers", 1) != 1:
            raise ConfigError(
                "workers > 1 start processes that cannot see data held in this notebook; save it to a file and pass "
                "its path"
            )
        settings["model"] = register_builder(model) if callable(model) else model
        if space:
            settings["space"] = space
        settings.setdefault("storage", DEFAULT_STORAGE)
        self.config: SweepConfig = resolve_config(settings, env={})

    def run(self) -> SweepResult:
        """Run (or resume) the study until it holds config.trials finished trials; returns its summary."""
        from sweep.data import load_dataset
        from sweep.study.runner import run_sweep, run_workers

        if not self._memory:
            return run_workers(self.config)
        return run_sweep(self.config, dataset=load_dataset(self.config, **self._memory))

    @property
    def study(self):
        """The Optuna study (for study.trials_dataframe(), Optuna's plots, ...)."""
        from sweep.study.storage import load_study, open_storage

        return load_study(open_storage(self.config.storage), self.config.study)

    def export(
        self,
        out_dir: str | Path,
        force: bool = False,
        pick=None,
        refit: str = "all",
        ensemble: str = DEFAULT_ENSEMBLE,
        threshold_rule: str = "auto",
    ) -> Bundle:
        """Export the best trial as `sweep export` does (retrain, then what `ensemble` names, refit on all non-test
        rows: "auto" (the default: "single"), "single", "seeds:K", "folds",
        "greedy:N"; the threshold as `threshold_rule` says: "auto", "trial" or "folds"; test once); returns the bundle
        loaded back."""
        from sweep.metrics import parse_pick

        export_best(
            self.config.storage,
            self.config.study,
            out_dir,
            force=force,
            pick=parse_pick(pick) if isinstance(pick, str) else pick,
            refit=refit,
            data=self._memory or None,
            ensemble=ensemble,
            threshold_rule=threshold_rule,
        )
        return load_bundle(out_dir)


def load(bundle_dir: str | Path, custom_objects=()) -> Bundle:
    """An exported bundle, loaded in Keras' safe mode: `.predict_proba(rows)`, `.predict(rows)`, `.best` (best.json)."""
    return load_bundle(bundle_dir, custom_objects)
