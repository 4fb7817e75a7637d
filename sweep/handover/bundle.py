"""An export bundle read back: best.json, the fitted table encoding and the Keras model (loaded in safe mode), and
predict() on new rows with it: tables, .npz arrays, or the same in memory. What each file and column means."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweep.data.preprocess import Preprocessor
from sweep.data.readers import ARRAY_SUFFIX, check_inputs, pd_frame, read_arrays, read_table
from sweep.errors import DataError
from sweep.handover.calibration import Calibration
from sweep.models.network import score
from sweep.multiclass import DecisionRule, prior_corrected, with_temperature
from sweep.runtime import tensorflow

BUNDLE_FILES = ("best.json", "model.keras", "preprocessor.json")  # an arrays bundle has no preprocessor.json

# What each column of `sweep predict` (and best.json's "outputs") means.
OUTPUTS = {
    "probability": "calibrated P(positive): the score's odds divided by the class weight, then the monotone map "
    "fitted on the trial's pooled validation scores (best.json 'calibration')",
    "score": "the network's raw output (an ensemble's: the average of its members'), inflated by the class weight; the "
    "threshold was searched on this scale",
    "decision": "1 when score >= threshold (the threshold chosen on the judged models' pooled validation scores, "
    "checked on the shipped models: best.json 'decision'; threshold_probability is its calibrated value)",
}


@dataclass(frozen=True)
class Bundle:
    """An export bundle loaded back: best.json, the fitted table encoding (None for arrays) and the Keras model.

    predict_proba / predict take what the model was trained on: a DataFrame (or a CSV/Parquet path) with the
    model's feature columns for a table, an array (or an .npz path holding x) of rows of `input_shape` for arrays.
    """

    best: dict
    preprocessor: Preprocessor | None
    model: object
    calibration: Calibration | None = None  # None: read from best.json

    def __post_init__(self) -> None:
        if self.calibration is None and not self.classes:
            object.__setattr__(self, "calibration", calibration_of(self.best))

    @property
    def classes(self) -> list[str]:
        """A bundle of three or more classes: their names, by class number (its decision is one of them); else []."""
        return self.best.get("classes", [])

    @property
    def rule(self) -> DecisionRule:
        """A bundle of several classes: its decision rule (argmax after per-class offsets)."""
        return DecisionRule.from_record(self.best["decision_rule"])

    @property
    def threshold(self) -> float:
        """The chosen threshold, on the raw score's scale: predict() flags score >= threshold."""
        if self.classes:
            raise DataError("a bundle of several classes has no threshold: its decision rule decides (Bundle.rule)")
        return float(self.best["threshold"])

    @property
    def threshold_probability(self) -> float:
        """The calibrated probability at the threshold."""
        return float(self.calibration(np.array([self.threshold]))[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.best.get("model", {}).get("input_shape") or (len(self.preprocessor.output_names),))

    @property
    def from_arrays(self) -> bool:
        """Whether the builtin network of this bundle learned from arrays (x0, x1, ... encoded as a table's columns)."""
        source = self.best.get("data", {}).get("source", "")
        return source == "arrays in memory" or source.lower().endswith(ARRAY_SUFFIX)

    def rows(self, data, source: str = "data") -> np.ndarray:
        """The model's input rows for `data` (encoded by the bundle's preprocessing for a table)."""
        import pandas as pd

        if isinstance(data, (str, Path)):
            source = str(data)
            data = (
                read_arrays(data, need_labels=False)[0]
                if Path(data).suffix.lower() == ARRAY_SUFFIX
                else read_table(data)
            )
        if self.preprocessor is not None:
            if self.from_arrays and not isinstance(data, pd.DataFrame):  # the builtin network's rows of arrays
                data = pd_frame(check_inputs(data, source))
            if not isinstance(data, pd.DataFrame):
                raise DataError(
                    "this bundle's model was trained on a table; pass a DataFrame (or a CSV/Parquet file) "
                    "with columns "
                    f"{', '.join(self.preprocessor.columns)}, not a {type(data).__name__}"
                )
            return self.preprocessor.transform(data, source)
        if isinstance(data, pd.DataFrame):
            data = data.to_numpy()
        x = np.asarray(data)
        if tuple(x.shape[1:]) != self.input_shape:
            raise DataError(
                f"{source!r} holds rows of shape {tuple(x.shape[1:])} (x is {x.shape}); "
                "this bundle's model takes rows of shape "
                f"{self.input_shape}: pass x of shape (N, {', '.join(map(str, self.input_shape))})"
            )
        return check_inputs(x, source)

    def score(self, data) -> np.ndarray:
        """The network's raw output for each row, in order (what the threshold was searched on; its odds are
        about class-weight times the true odds)."""
        return score(self.model, self.rows(data)).astype(np.float64)

    def predict_proba(self, data) -> np.ndarray:
        """The calibrated positive-class probability for each row, in order: the bundle's calibration of score(); for
        several classes, (rows, classes) probabilities that sum to 1 (the class weights' tilt undone)."""
        return self.predict_proba_of(self.score(data))

    def predict_proba_of(self, raw: np.ndarray) -> np.ndarray:
        """predict_proba of raw scores already computed."""
        if self.classes:
            calibration = self.best["calibration"]
            weights = {int(c): float(w) for c, w in calibration["class_weight"].items()}
            return with_temperature(prior_corrected(raw, weights), float(calibration.get("temperature", 1.0)))
        return self.calibration(raw)

    def decide(self, raw: np.ndarray) -> np.ndarray:
        """The decisions of raw scores: 1 when score >= the threshold; for several classes, each row's class name under
        the exported rule."""
        if self.classes:
            return np.asarray(self.classes, dtype=object)[self.rule.decide(raw)]
        return (raw >= self.threshold).astype(np.int8)

    def predict(self, data) -> np.ndarray:
        """Decisions, one per row, in order: 0/1, 1 when score() >= the exported threshold; for several classes, the
        class names the exported decision rule gives."""
        return self.decide(self.score(data))


def calibration_of(best: dict) -> Calibration:
    """A bundle's calibration, from best.json; a bundle exported by an earlier version (no calibration in best.json)
    gets the prior correction alone with its class weight."""
    if "calibration" in best:
        return Calibration.from_dict(best["calibration"])
    return Calibration("prior", float(best["class_weight"]["1"]))


def import_custom_objects(modules, beside: str = "builtin") -> None:
    """Import the modules that register a model's custom layers (keras.saving.register_keras_serializable), so
    that safe-mode loading finds them; nothing shipped inside a bundle is ever run. A module is looked for in the
    working directory, then beside the builder's file (`beside`, the study's model spec PATH.py:FUNCTION), where
    the sweep imported it from."""
    from sweep.models.builder import BuilderError, import_user_module, importable_beside

    target = beside.rpartition(":")[0]
    if modules and target.endswith(".py") and Path(target).parent.is_dir():
        importable_beside(Path(target), first=False)
    for name in modules or ():
        try:
            import_user_module(name)
        except BuilderError as exc:
            raise DataError(f"--custom-objects {name}: {str(exc).removeprefix('model ')}") from None


def load_bundle(bundle_dir: str | Path, custom_objects=()) -> Bundle:
    """Read an export bundle back. Nothing in it is pickled: JSON for the settings and the fitted preprocessing,
    the Keras format loaded in safe mode for the network (a Lambda layer's code is refused; a custom layer loads
    only when one of `custom_objects`, importable module names, registers it)."""
    tensorflow()
    import keras

    bundle_dir = Path(bundle_dir)
    if not (bundle_dir / "best.json").is_file():
        raise DataError(
            f"{str(bundle_dir)!r} is not an export bundle (no best.json); pass the --out directory of `sweep export`"
        )
    try:
        best = json.loads((bundle_dir / "best.json").read_text())
        table = best.get("model", {}).get("data_kind", "table") == "table"
        if "classes" in best:
            DecisionRule.from_record(best["decision_rule"])
            threshold, calibration = None, None  # no threshold: the decision rule decides
        else:
            threshold, calibration = float(best["threshold"]), calibration_of(best)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{str(bundle_dir / 'best.json')!r} is damaged ({type(exc).__name__}: {exc}); export the study again"
        ) from None
    if threshold is not None and not 0 <= threshold <= 1:
        raise DataError(
            f"{str(bundle_dir / 'best.json')!r} has threshold {threshold}, outside [0, 1]; export the study again"
        )
    needed = [name for name in BUNDLE_FILES[1:] if table or name != "preprocessor.json"]
    missing = [name for name in needed if not (bundle_dir / name).is_file()]
    if missing:
        raise DataError(
            f"{str(bundle_dir)!r} is not a whole export bundle (missing {', '.join(missing)}); "
            "pass the --out directory of `sweep export`"
        )
    preprocessor = Preprocessor.from_dict(json.loads((bundle_dir / "preprocessor.json").read_text())) if table else None
    import_custom_objects(custom_objects, beside=best.get("config", {}).get("model", "builtin"))
    try:
        # safe_mode (the default, spelled out): a .keras file with a Lambda layer's pickled code is refused.
        model = keras.saving.load_model(bundle_dir / "model.keras", safe_mode=True)
    except Exception as exc:
        raise DataError(_load_error(bundle_dir / "model.keras", exc)) from None
    return Bundle(best, preprocessor, model, calibration)


def _load_error(path: Path, exc: Exception) -> str:
    """One line for a model.keras Keras cannot load: a custom class it cannot find, unsafe code, or a damaged file."""
    text = " ".join(str(exc).split())
    if "safe_mode" in text or "Lambda" in text:
        return (
            f"{str(path)!r} holds code (a Lambda layer) that Keras' safe mode refuses to run; "
            "rebuild the model without Lambda layers (a registered custom layer instead) and export again"
        )
    if "Could not locate" in text or "custom_objects" in text or "Unknown layer" in text:
        return (
            f"{str(path)!r} uses a custom class Keras cannot find ({text[:160]}); "
            "pass --custom-objects MODULE, the importable module that registers it with "
            "keras.saving.register_keras_serializable"
        )
    return (
        f"{str(path)!r} cannot be loaded ({type(exc).__name__}: {text[:160]}); "
        "the file is damaged or not a Keras model: export again"
    )


def predict(bundle_dir: str | Path, data, custom_objects=()):
    """Score rows with a bundle: one output row per input row, in order, columns probability (calibrated), decision
    (score >= threshold) and score (the network's raw output), see OUTPUTS; for several classes, probability_<class>,
    decision (a class name) and score_<class>, see sweep.handover.classes.CLASS_OUTPUTS. A table (a CSV/Parquet path or
    a DataFrame) may have missing values and levels the model never saw (encoded as the preprocessing says); arrays (an
    .npz path holding x, or an array) must have the model's row shape."""
    import pandas as pd

    bundle = load_bundle(bundle_dir, custom_objects)
    raw = bundle.score(data)
    index = data.index if isinstance(data, pd.DataFrame) else None
    if bundle.classes:
        probabilities = bundle.predict_proba_of(raw)
        columns = {f"probability_{name}": probabilities[:, c] for c, name in enumerate(bundle.classes)}
        columns["decision"] = bundle.decide(raw)
        columns |= {f"score_{name}": raw[:, c] for c, name in enumerate(bundle.classes)}
        return pd.DataFrame(columns, index=index)
    return pd.DataFrame(
        {"probability": bundle.calibration(raw), "decision": bundle.decide(raw), "score": raw}, index=index
    )
