"""sweep: Optuna sweeps of the minority-class weight, hidden width and decision threshold of Keras classifiers.

The library is usable from Python; the `sweep` CLI is a thin layer over these names. They are imported on
first use, so `import sweep.config` (and the CLI's quick commands) do not pay for the runner and export.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "SweepConfig": "sweep.config",
    "resolve_config": "sweep.config",
    "ConfigError": "sweep.errors",
    "DataError": "sweep.errors",
    "ExportError": "sweep.errors",
    "StorageError": "sweep.errors",
    "StorageUnreachable": "sweep.errors",
    "SweepError": "sweep.errors",
    "TrialFailed": "sweep.errors",
    "export_best": "sweep.handover.export",
    "predict": "sweep.handover.bundle",
    "SweepResult": "sweep.study.summary",
    "run_sweep": "sweep.study.runner",
    "run_workers": "sweep.study.runner",
    "Sweep": "sweep.api",
    "load": "sweep.api",
    "Bundle": "sweep.handover.bundle",
    "load_bundle": "sweep.handover.bundle",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'sweep' has no attribute {name!r}")
    return getattr(importlib.import_module(_HOMES[name]), name)
