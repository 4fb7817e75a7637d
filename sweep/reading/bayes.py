"""The Bayes-optimal classifier of a make_classification recipe, recovered by replaying its random stream.

The seed data set is synthetic, so its generator is known exactly: two Gaussian clusters plus label-flip noise.
Replaying scikit-learn's draws in order gives the clusters' means, covariances and shares, and from them the
true P(y = 1 | x): a ceiling for the precision, recall, F1 and average precision any model can reach on this data.

The replay mirrors `make_classification` and `_generate_hypercube` of scikit-learn 1.9
(sklearn/datasets/_samples_generator.py); a test checks that it regenerates X and y exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from scipy.special import expit
from scipy.stats import multivariate_normal
from sklearn.utils.random import sample_without_replacement

# make_classification's keyword defaults (scikit-learn 1.9); a recipe may omit any of them.
MAKE_CLASSIFICATION_DEFAULTS = dict(
    n_samples=100,
    n_features=20,
    n_informative=2,
    n_redundant=2,
    n_repeated=0,
    n_classes=2,
    n_clusters_per_class=2,
    weights=None,
    flip_y=0.01,
    class_sep=1.0,
    hypercube=True,
    shift=0.0,
    scale=1.0,
    shuffle=True,
    random_state=None,
    return_X_y=True,
)
# _generate_hypercube draws the bits beyond this many dimensions with randint, the rest as integer codes.
HYPERCUBE_CODE_BITS = 30


@dataclass(frozen=True)
class GeneratorParameters:
    """The true two-Gaussian mixture behind a recipe's rows (final column order), and its label-flip noise."""

    means: np.ndarray
    covariances: np.ndarray
    priors: np.ndarray
    flip_y: float
    n_classes: int

    def __post_init__(self) -> None:
        for array in (self.means, self.covariances, self.priors):
            array.setflags(write=False)


def generator_parameters(recipe: dict | None = None) -> GeneratorParameters:
    """Return the generator's parameters for a recipe (the project's SEED_RECIPE by default), without the data."""
    if recipe is None:
        from sweep.data.readers import SEED_RECIPE

        recipe = SEED_RECIPE
    return replay(recipe)[0]


def posterior(params: GeneratorParameters, X_raw: np.ndarray) -> np.ndarray:
    """Return the Bayes-optimal P(y = 1 | x) for raw (unscaled) feature rows: the cluster posterior plus flip noise."""
    X_raw = np.atleast_2d(np.asarray(X_raw, dtype=float))
    n_features = params.means.shape[1]
    if X_raw.ndim != 2 or X_raw.shape[1] != n_features:
        raise ValueError(f"expected rows of {n_features} raw features, got an array of shape {X_raw.shape}")
    with np.errstate(divide="ignore"):  # an empty cluster has prior 0 and log-prior -inf, which expit handles
        log_priors = np.log(params.priors)
    log_joint = [
        np.atleast_1d(multivariate_normal(mean, covariance).logpdf(X_raw)) + log_prior
        for mean, covariance, log_prior in zip(params.means, params.covariances, log_priors)
    ]
    # P(cluster 1 | x) = sigmoid(log p(x, cluster 1) - log p(x, cluster 0)), stable far from either cluster.
    cluster_1_probability = expit(log_joint[1] - log_joint[0])
    # A flipped row (probability flip_y) gets a uniformly random class, whatever its cluster.
    return (1.0 - params.flip_y) * cluster_1_probability + params.flip_y / params.n_classes


def class_posteriors(params: GeneratorParameters, X_raw: np.ndarray) -> np.ndarray:
    """The Bayes-optimal P(y = k | x) of every class k for raw feature rows, (rows, classes): each class's Gaussian
    posterior, then the flip noise (a flipped row gets a uniformly random class)."""
    from scipy.special import softmax

    X_raw = np.atleast_2d(np.asarray(X_raw, dtype=float))
    with np.errstate(divide="ignore"):
        log_priors = np.log(params.priors)
    log_joint = np.column_stack(
        [
            np.atleast_1d(multivariate_normal(mean, covariance).logpdf(X_raw)) + log_prior
            for mean, covariance, log_prior in zip(params.means, params.covariances, log_priors)
        ]
    )
    return (1.0 - params.flip_y) * softmax(log_joint, axis=1) + params.flip_y / params.n_classes


def sample_generator(params: GeneratorParameters, rows: int, seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """Fresh rows from the recovered generator (Gaussian clusters, then label flips), for choosing thresholds
    without touching any split of the data."""
    rng = np.random.default_rng(seed)
    cluster = rng.choice(len(params.priors), size=rows, p=params.priors)
    X = np.empty((rows, params.means.shape[1]))
    for k in range(len(params.priors)):
        chosen = cluster == k
        X[chosen] = rng.multivariate_normal(params.means[k], params.covariances[k], size=int(chosen.sum()))
    flipped = rng.random(rows) < params.flip_y
    y = np.where(flipped, rng.integers(params.n_classes, size=rows), cluster)
    return X, y


def replay(recipe: dict) -> tuple[GeneratorParameters, np.ndarray, np.ndarray, np.ndarray]:
    """Replay make_classification's random draws; return its parameters, X, y and each row's pre-flip cluster."""
    settings = _supported_settings(recipe)
    n_samples, n_features = settings["n_samples"], settings["n_features"]
    n_informative, n_classes = settings["n_informative"], settings["n_classes"]
    class_sep, flip_y = float(settings["class_sep"]), float(settings["flip_y"])
    # generator = check_random_state(random_state)
    generator = np.random.RandomState(settings["random_state"])

    # n_samples_per_cluster = [int(n_samples * weights_[k % n_classes] / n_clusters_per_class) ...], then the
    # remainder goes one row at a time to clusters 0, 1, 0, ...
    weights = _class_weights(settings["weights"], n_classes)
    cluster_sizes = [int(n_samples * weights[k]) for k in range(n_classes)]
    for i in range(n_samples - sum(cluster_sizes)):
        cluster_sizes[i % n_classes] += 1

    X = np.zeros((n_samples, n_features))
    cluster = np.zeros(n_samples, dtype=int)

    # centroids = _generate_hypercube(n_clusters, n_informative, generator); centroids *= 2 * class_sep; -= class_sep
    centroids = _hypercube_vertices(n_classes, n_informative, generator).astype(float, copy=False)
    centroids *= 2 * class_sep
    centroids -= class_sep

    # X[:, :n_informative] = generator.standard_normal(size=(n_samples, n_informative)): drawn for all rows at once,
    # before any cluster's transform.
    X[:, :n_informative] = generator.standard_normal(size=(n_samples, n_informative))

    informative_covariances = _place_clusters(X, cluster, centroids, cluster_sizes, n_informative, generator)

    # X[:, -n_random:] = generator.standard_normal(size=(n_samples, n_random)): independent N(0, 1) noise columns.
    n_random = n_features - n_informative
    if n_random > 0:
        X[:, -n_random:] = generator.standard_normal(size=(n_samples, n_random))

    # flip_mask = generator.uniform(size=n_samples) < flip_y; y[flip_mask] = generator.randint(n_classes, size=...)
    # The uniform draw happens even when flip_y == 0 (sklearn tests `flip_y >= 0.0`).
    y = cluster.copy()
    flip_mask = generator.uniform(size=n_samples) < flip_y
    y[flip_mask] = generator.randint(n_classes, size=flip_mask.sum())

    # X += shift; X *= scale, with the only supported values 0.0 and 1.0 (kept for bit-identical X).
    X += 0.0
    X *= 1.0

    column_order = np.arange(n_features)
    if settings["shuffle"]:
        # X, y = util_shuffle(X, y, random_state=generator): indices = np.arange(n_samples); generator.shuffle(indices)
        row_order = np.arange(n_samples)
        generator.shuffle(row_order)
        X, y, cluster = X[row_order], y[row_order], cluster[row_order]
        # generator.shuffle(indices); X[:, :] = X[:, indices]
        generator.shuffle(column_order)
        X = X[:, column_order]

    params = _parameters(centroids, informative_covariances, cluster_sizes, column_order, n_features, flip_y)
    return params, X, y, cluster


def _place_clusters(X, cluster, centroids, cluster_sizes, n_informative: int, generator) -> list[np.ndarray]:
    """Per cluster k: A = 2 * generator.uniform(size=(n_informative, n_informative)) - 1; X_k = X_k @ A + centroid.
    A row is z @ A with z ~ N(0, I), so the cluster's covariance is A.T @ A (returned) and its mean the centroid."""
    n_classes = len(cluster_sizes)
    informative_covariances = []
    stop = 0
    for k, centroid in enumerate(centroids):
        start, stop = stop, stop + cluster_sizes[k]
        cluster[start:stop] = k % n_classes
        X_k = X[start:stop, :n_informative]
        transform = 2 * generator.uniform(size=(n_informative, n_informative)) - 1
        X_k[...] = np.dot(X_k, transform)
        X_k += centroid
        informative_covariances.append(transform.T @ transform)
    return informative_covariances


def _parameters(centroids, informative_covariances, cluster_sizes, column_order, n_features: int, flip_y: float):
    """The generator's per-class means, covariances and priors, in the final column order."""
    n_classes, n_informative = centroids.shape
    means = np.zeros((n_classes, n_features))
    means[:, :n_informative] = centroids
    covariances = np.tile(np.eye(n_features), (n_classes, 1, 1))
    covariances[:, :n_informative, :n_informative] = informative_covariances
    return GeneratorParameters(
        means=means[:, column_order],
        covariances=covariances[:, column_order][:, :, column_order],
        priors=np.asarray(cluster_sizes, dtype=float) / sum(cluster_sizes),
        flip_y=flip_y,
        n_classes=n_classes,
    )


def _supported_settings(recipe: dict) -> dict:
    """Merge a recipe with make_classification's defaults; raise ValueError for settings the replay cannot mirror."""
    unknown = sorted(set(recipe) - set(MAKE_CLASSIFICATION_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown make_classification setting(s): {', '.join(unknown)}")
    settings = {**MAKE_CLASSIFICATION_DEFAULTS, **recipe}

    def unsupported(name: str, requirement: str) -> ValueError:
        omitted = " (make_classification's default when omitted)" if name not in recipe else ""
        return ValueError(f"unsupported {name}={settings[name]!r}{omitted}: the Bayes replay needs {requirement}")

    for name in ("n_samples", "n_features", "n_informative"):
        if not isinstance(settings[name], Integral) or isinstance(settings[name], bool) or settings[name] < 1:
            raise unsupported(name, "a positive integer")
    # Two Gaussian clusters, one per class, on hypercube vertices; no derived columns, no random shift or scale.
    if (
        not isinstance(settings["n_classes"], Integral)
        or not 2 <= settings["n_classes"] <= 2 ** settings["n_informative"]
    ):
        raise unsupported("n_classes", f"2 to 2 ** n_informative = {2 ** settings['n_informative']} classes")
    requirements = {
        "n_clusters_per_class": (1, "n_clusters_per_class=1"),
        "n_redundant": (0, "n_redundant=0 (redundant columns make the covariance singular)"),
        "n_repeated": (0, "n_repeated=0 (repeated columns make the covariance singular)"),
    }
    for name, (required, requirement) in requirements.items():
        if settings[name] != required:
            raise unsupported(name, requirement)
    if settings["hypercube"] is not True:
        raise unsupported("hypercube", "hypercube=True (the centroids are then exact vertices)")
    if settings["shift"] is None or np.any(np.asarray(settings["shift"], dtype=float) != 0.0):
        raise unsupported("shift", "shift=0.0")
    if settings["scale"] is None or np.any(np.asarray(settings["scale"], dtype=float) != 1.0):
        raise unsupported("scale", "scale=1.0")
    if settings["n_informative"] > settings["n_features"]:
        raise unsupported("n_informative", f"n_informative <= n_features={settings['n_features']}")
    if not isinstance(settings["random_state"], Integral) or isinstance(settings["random_state"], bool):
        raise unsupported("random_state", "an integer seed (otherwise the stream cannot be replayed)")
    if not isinstance(settings["flip_y"], Real) or not 0.0 <= settings["flip_y"] <= 1.0:
        raise unsupported("flip_y", "a number in [0, 1]")
    if not isinstance(settings["class_sep"], Real) or not settings["class_sep"] > 0:
        raise unsupported("class_sep", "a positive number")
    if not isinstance(settings["shuffle"], bool):
        raise unsupported("shuffle", "True or False")
    return settings


def _class_weights(weights, n_classes: int) -> list[float]:
    """Complete `weights` to one share per class the way make_classification does (the last share is the rest)."""
    if weights is None:
        return [1.0 / n_classes] * n_classes
    if len(weights) not in (n_classes, n_classes - 1):
        raise ValueError(f"unsupported weights={weights!r}: give {n_classes - 1} or {n_classes} class shares")
    if len(weights) == n_classes:
        return [float(w) for w in weights]
    # weights_ = weights + [1.0 - sum(weights)] for a list, np.resize(...) with weights_[-1] = 1 - sum(...) otherwise;
    # both give the same floats.
    completed = [float(w) for w in weights]
    return completed + [1.0 - sum(completed)]


def _hypercube_vertices(n_vertices: int, dimensions: int, generator: np.random.RandomState) -> np.ndarray:
    """Draw distinct 0/1 vertices exactly as sklearn's _generate_hypercube does, consuming the same draws."""
    if dimensions > HYPERCUBE_CODE_BITS:
        return np.hstack(
            [
                generator.randint(2, size=(n_vertices, dimensions - HYPERCUBE_CODE_BITS)),
                _hypercube_vertices(n_vertices, HYPERCUBE_CODE_BITS, generator),
            ]
        )
    codes = sample_without_replacement(2**dimensions, n_vertices, random_state=generator).astype(">u4", copy=False)
    return np.unpackbits(codes.view(">u1")).reshape((-1, 32))[:, -dimensions:]
