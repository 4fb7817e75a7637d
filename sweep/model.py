"""Build the Keras model of one trial: Dense(width, relu) x layers -> Dense(1, sigmoid)."""

from __future__ import annotations


def build_model(n_features: int, hidden_width: int, hidden_layers: int = 1):
    """The tutorial's weighted network, widened to `hidden_width` and deepened to `hidden_layers`."""
    import keras

    layers = [keras.Input(shape=(n_features,))]
    layers += [keras.layers.Dense(hidden_width, activation="relu") for _ in range(hidden_layers)]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)
