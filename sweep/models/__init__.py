"""Every kind of model behind one seam (sweep.models.seam): the builtin network (sweep.models.builtin) and a user's
own Keras model (sweep.models.user). `model_kind` is the one place that reads which kind a study trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweep.models.seam import EpochHooks, ModelKind, Practice, Refit, TrainedFolds, check_scores

if TYPE_CHECKING:
    from sweep.config import SweepConfig
    from sweep.data import Dataset

__all__ = ["EpochHooks", "ModelKind", "Practice", "Refit", "TrainedFolds", "check_scores", "model_kind"]


def model_kind(config: SweepConfig, dataset: Dataset | None = None) -> ModelKind:
    """The kind of model `config` trains: the one place that reads it. With the `dataset` it trains on, a target of
    three or more classes gives it its class counts (its trials' class weights)."""
    counts = () if dataset is None else dataset.class_counts
    if not config.user_model:
        from sweep.models.builtin import BuiltinNetwork

        return BuiltinNetwork(config, counts)
    from sweep.models.user import UserModel

    return UserModel(config, counts)
