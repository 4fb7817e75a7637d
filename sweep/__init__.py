"""sweep: Optuna sweeps of the minority-class weight, hidden width and decision threshold of Keras classifiers.

The library is usable from Python; the `sweep` CLI is a thin layer over these names.
"""

from sweep.config import SweepConfig, resolve_config
from sweep.errors import ConfigError, DataError, ExportError, StorageError, SweepError, TrialFailed
from sweep.export import export_best, predict
from sweep.runner import SweepResult, run_sweep, run_workers

__all__ = [
    "ConfigError", "DataError", "ExportError", "StorageError", "SweepConfig", "SweepError", "SweepResult",
    "TrialFailed", "export_best", "predict", "resolve_config", "run_sweep", "run_workers",
]
