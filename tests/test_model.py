"""Tests for sweep.model: the network's shape for one set of parameters."""

import pytest

from sweep.model import build_model
from sweep.runtime import tensorflow


@pytest.mark.parametrize("width, layers", [(1, 1), (2, 1), (16, 3)])
def test_layers_and_widths(width, layers):
    """Check that the model has `layers` relu layers of `width` units and one sigmoid output."""
    tensorflow()
    model = build_model(n_features=5, hidden_width=width, hidden_layers=layers)
    dense = model.layers
    assert [layer.units for layer in dense] == [width] * layers + [1]
    assert [layer.activation.__name__ for layer in dense] == ["relu"] * layers + ["sigmoid"]
    assert model.count_params() == 5 * width + width + (layers - 1) * (width * width + width) + width + 1
