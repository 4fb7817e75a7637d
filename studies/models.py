"""Example model builders for `sweep run --model studies/models.py:FUNCTION` (see docs/guides/own-model.md).

Each is called as FUNCTION(params, input_shape): `params` holds the trial's values of the [space] / --param
entries (not minority_weight or threshold, which sweep owns), `input_shape` one row's shape. Each returns an
uncompiled keras.Model with one sigmoid output, so sweep compiles it (binary cross-entropy, Adam at the
trial's learning rate); compile it yourself to keep your own optimizer and loss.
"""

import keras


def digits_cnn(params, input_shape):
    """A small Conv2D network for 8 x 8 digit images (pixel values 0-16, rescaled inside the model)."""
    filters = int(params.get("filters", 8))
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Rescaling(1 / 16),
            keras.layers.Conv2D(filters, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(2 * filters, 3, padding="same", activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dropout(float(params.get("dropout", 0.0))),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def sequence_conv1d(params, input_shape):
    """A Conv1D network for sensor windows (time steps x channels): it looks for a short pattern anywhere."""
    filters, kernel = int(params.get("filters", 8)), int(params.get("kernel_size", 5))
    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Conv1D(filters, kernel, padding="same", activation=params.get("activation", "relu")),
            keras.layers.Conv1D(filters, kernel, padding="same", activation=params.get("activation", "relu")),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )


def tabular_mlp(params, input_shape):
    """A deeper tabular network: `depth` Dense layers of `units`, each followed by dropout."""
    layers = [keras.Input(shape=input_shape)]
    for _ in range(int(params.get("depth", 2))):
        layers += [
            keras.layers.Dense(int(params.get("units", 32)), activation="relu"),
            keras.layers.Dropout(float(params.get("dropout", 0.0))),
        ]
    layers.append(keras.layers.Dense(1, activation="sigmoid"))
    return keras.Sequential(layers)
