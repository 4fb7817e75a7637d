"""Tests for sweep.reading.bayes: the exact replay of make_classification and the Bayes-optimal posterior as a
ceiling."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.discriminant_analysis import QuadraticDiscriminantAnalysis
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.model_selection import train_test_split

from sweep.data import SEED_SPLIT_STATE, SEED_TEST_SIZE
from sweep.data.readers import SEED_CLASSES_RECIPE, SEED_RECIPE
from sweep.reading.bayes import class_posteriors, generator_parameters, posterior, replay, sample_generator

COMMON = dict(n_redundant=0, n_clusters_per_class=1)
RECIPES = {
    "seed": SEED_RECIPE,
    "seed-classes": SEED_CLASSES_RECIPE,
    "milder-imbalance": dict(
        n_samples=5000,
        n_features=2,
        n_informative=2,
        weights=[0.9, 0.1],
        class_sep=1.5,
        flip_y=0.05,
        random_state=7,
        **COMMON,
    ),
    # Noise columns and a one-element weights list; the column shuffle then moves the informative columns.
    "noise-columns": dict(
        n_samples=5000,
        n_features=5,
        n_informative=3,
        weights=[0.3],
        class_sep=0.8,
        flip_y=0.2,
        random_state=123,
        **COMMON,
    ),
    "unshuffled-one-feature": dict(
        n_samples=3001,
        n_features=1,
        n_informative=1,
        weights=None,
        flip_y=0.0,
        shuffle=False,
        random_state=3,
        **COMMON,
    ),
    # Over 30 informative dimensions, _generate_hypercube first draws the extra bits with randint.
    "wide-hypercube": dict(n_samples=400, n_features=33, n_informative=32, random_state=11, **COMMON),
}
# A deviation of this many standard errors fails a statistical check (about 1 in 15,000 by chance for a normal).
Z_LIMIT = 4.0
BOOTSTRAP_RESAMPLES = 200


@pytest.fixture(scope="module")
def seed_replay():
    return replay(SEED_RECIPE)


@pytest.fixture(scope="module")
def seed_test_scores(seed_replay):
    """The project's seed split; QDA, balanced logistic regression and the Bayes posterior scored on the test rows."""
    params, X, y, _ = seed_replay
    X_train, X_test, y_train, y_test = train_test_split(
        X,
        y,
        test_size=SEED_TEST_SIZE,
        random_state=SEED_SPLIT_STATE,
    )
    scores = {
        "bayes": posterior(params, X_test),
        "qda": QuadraticDiscriminantAnalysis().fit(X_train, y_train).predict_proba(X_test)[:, 1],
        "logistic": LogisticRegression(class_weight="balanced").fit(X_train, y_train).predict_proba(X_test)[:, 1],
    }
    return y_test, scores


def row_log_loss(y: np.ndarray, probability: np.ndarray) -> np.ndarray:
    return -np.where(y == 1, np.log(probability), np.log1p(-probability))


def paired_bootstrap_sd(y: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """The bootstrap standard deviation of AP(a) - AP(b) over resampled test rows: the noise of the comparison."""
    rng = np.random.default_rng(0)
    differences = []
    for _ in range(BOOTSTRAP_RESAMPLES):
        rows = rng.integers(0, len(y), len(y))
        differences.append(
            average_precision_score(y[rows], scores_a[rows]) - average_precision_score(y[rows], scores_b[rows])
        )
    return float(np.std(differences))


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_replay_regenerates_make_classification(recipe):
    """Check that the replay gives make_classification's X and y for the seed recipe and for unrelated ones."""
    _, X, y, cluster = replay(recipe)
    X_expected, y_expected = make_classification(**recipe)
    assert np.array_equal(y, y_expected)
    np.testing.assert_allclose(X, X_expected, rtol=0, atol=1e-12)
    assert cluster.shape == y.shape and set(np.unique(cluster)) <= set(range(recipe.get("n_classes", 2)))


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_parameters_describe_the_regenerated_clusters(recipe):
    """Check that each cluster's rows have the returned share exactly and the returned mean and covariance."""
    params, X, _, cluster = replay(recipe)
    assert np.array_equal(np.bincount(cluster, minlength=2) / len(cluster), params.priors)
    for k in (0, 1):
        rows = X[cluster == k]
        n_rows, mean, covariance = len(rows), params.means[k], params.covariances[k]
        variances = np.diag(covariance)
        # Standard errors of a sample mean and of a sample covariance entry for Gaussian rows.
        mean_error = np.sqrt(variances / n_rows)
        covariance_error = np.sqrt((covariance**2 + np.outer(variances, variances)) / n_rows)
        assert np.all(np.abs(rows.mean(axis=0) - mean) <= Z_LIMIT * mean_error)
        sample_covariance = np.cov(rows, rowvar=False).reshape(covariance.shape)
        assert np.all(np.abs(sample_covariance - covariance) <= Z_LIMIT * covariance_error)


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_flipped_labels_are_about_half_of_flip_y(recipe):
    """Check that labels differ from clusters on about flip_y / 2 of rows (a flip may redraw the same class)."""
    params, _, y, cluster = replay(recipe)
    expected_share = params.flip_y * (1 - 1 / params.n_classes)
    binomial_error = np.sqrt(expected_share * (1 - expected_share) / len(y))
    assert abs(np.mean(y != cluster) - expected_share) <= Z_LIMIT * binomial_error


def test_seed_flip_share_and_parameters():
    """Check that the seed recipe has 500 cluster-1 rows on vertices (+-0.5, 0.5) and 0.538% mismatched labels."""
    params = generator_parameters()
    _, _, y, cluster = replay(SEED_RECIPE)
    np.testing.assert_array_equal(params.priors, [0.995, 0.005])
    np.testing.assert_array_equal(params.means, [[-0.5, 0.5], [0.5, 0.5]])
    assert np.count_nonzero(y != cluster) == 538  # expected 500 +- 22 (binomial) for flip_y / 2 = 0.5%
    assert y.sum() == 1030


def test_posterior_is_calibrated_in_the_large(seed_replay):
    """Check that the posterior's mean over all seed rows matches the share of positive labels."""
    params, X, y, _ = seed_replay
    probability = posterior(params, X)
    assert probability.min() >= params.flip_y / 2 and probability.max() <= 1 - params.flip_y / 2
    # y_i ~ Bernoulli(p_i) given the rows, so sum(y) - sum(p) has variance sum(p (1 - p)).
    error = np.sqrt(np.sum(probability * (1 - probability)))
    assert abs(y.sum() - probability.sum()) <= Z_LIMIT * error
    assert posterior(params, X[0]).shape == (1,)


def test_class_posteriors_of_four_classes_are_calibrated_in_the_large():
    """Check that the reference data of several classes has posteriors whose rows sum to 1 and whose column means match
    each class's share of the labels, and that two classes give the binary posterior in their second column."""
    params, X, y, _ = replay(SEED_CLASSES_RECIPE)
    probabilities = class_posteriors(params, X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    for k in range(params.n_classes):
        p = probabilities[:, k]
        assert abs(np.sum(y == k) - p.sum()) <= Z_LIMIT * np.sqrt(np.sum(p * (1 - p)))
    binary, X_binary, _, _ = replay(SEED_RECIPE)
    np.testing.assert_allclose(class_posteriors(binary, X_binary[:500])[:, 1], posterior(binary, X_binary[:500]))


def test_sampled_rows_follow_the_generator():
    """Check that fresh rows drawn from the recovered generator are reproducible and have its share of positive
    labels."""
    params = generator_parameters()
    X, y = sample_generator(params, 200_000)
    again, _ = sample_generator(params, 200_000)
    assert X.shape == (200_000, 2) and np.array_equal(X, again)
    # A row is positive when it comes from cluster 1 and is not flipped, or is flipped to class 1.
    expected_share = params.priors[1] * (1 - params.flip_y) + params.flip_y / params.n_classes
    binomial_error = np.sqrt(expected_share * (1 - expected_share) / len(y))
    assert abs(y.mean() - expected_share) <= Z_LIMIT * binomial_error


@pytest.mark.parametrize("model", ["qda", "logistic"])
def test_posterior_average_precision_is_a_ceiling(seed_test_scores, model):
    """Check that no fitted model beats the posterior's test AP by more than the comparison's bootstrap noise."""
    y_test, scores = seed_test_scores
    assert y_test.sum() == 213
    bayes_ap = average_precision_score(y_test, scores["bayes"])
    model_ap = average_precision_score(y_test, scores[model])
    # Observed: Bayes 0.0712, QDA 0.0696 (noise sd 0.0016), balanced logistic 0.0474 (noise sd 0.0095).
    tolerance = 2 * paired_bootstrap_sd(y_test, scores["bayes"], scores[model])
    assert bayes_ap >= model_ap - tolerance
    if model == "qda":
        # QDA fits the right model family (one Gaussian per class), so it should nearly reach the ceiling.
        assert model_ap >= bayes_ap - 0.02


def test_posterior_log_loss_is_at_most_qdas(seed_test_scores):
    """Check that the posterior's test log-loss is no worse than QDA's beyond the paired per-row noise."""
    y_test, scores = seed_test_scores
    bayes_losses, qda_losses = row_log_loss(y_test, scores["bayes"]), row_log_loss(y_test, scores["qda"])
    # Observed: Bayes 0.05525, QDA 0.05545 per row.
    difference = bayes_losses - qda_losses
    tolerance = 2 * difference.std() / np.sqrt(len(difference))
    assert bayes_losses.mean() <= qda_losses.mean() + tolerance


@pytest.mark.parametrize(
    "override, named_setting",
    [
        (dict(n_redundant=1, n_features=3), "n_redundant"),
        (dict(n_repeated=1, n_features=3), "n_repeated"),
        (dict(n_clusters_per_class=2), "n_clusters_per_class"),
        (dict(n_classes=5), "n_classes"),
        (dict(hypercube=False), "hypercube"),
        (dict(shift=None), "shift"),
        (dict(shift=1.0), "shift"),
        (dict(scale=None), "scale"),
        (dict(scale=2.0), "scale"),
        (dict(random_state=None), "random_state"),
        (dict(n_informative=3), "n_informative"),
        (dict(weights=[0.5, 0.3, 0.2]), "weights"),
        (dict(noise=0.1), "noise"),
    ],
)
def test_unsupported_recipes_raise(override, named_setting):
    """Check that a recipe the replay cannot mirror raises ValueError naming the offending setting."""
    with pytest.raises(ValueError, match=named_setting):
        replay({**SEED_RECIPE, **override})


def test_omitted_settings_take_make_classifications_defaults():
    """Check that an omitted setting is judged by make_classification's default (n_redundant=2 is unsupported)."""
    recipe = {key: value for key, value in SEED_RECIPE.items() if key != "n_redundant"}
    with pytest.raises(ValueError, match="n_redundant=2 \\(make_classification's default when omitted\\)"):
        replay(recipe)
