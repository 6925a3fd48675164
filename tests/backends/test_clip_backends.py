"""k-NN, k-means + target and GMM backends against brute-force references."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from kwsos.backends import GMMScorer, KMeansScorer, KNNScorer


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_knn_hand_worked():
    refs = np.array([[1.0, 0.0], [0.0, 2.0]])
    q = np.array([[1.0, 1.0], [3.0, 0.0], [-1.0, 0.0]])
    s1 = KNNScorer(1).fit(refs)
    # cosines: q0 -> (0.7071, 0.7071), q1 -> (1, 0), q2 -> (-1, 0)
    np.testing.assert_allclose(s1.distances(q), [1 - np.sqrt(0.5), 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(s1.score_samples(q), -s1.distances(q))
    s2 = KNNScorer(2).fit(refs)
    np.testing.assert_allclose(s2.distances(q), [1 - np.sqrt(0.5), 0.5, 1.5], atol=1e-12)
    # more neighbours than references: capped
    np.testing.assert_allclose(KNNScorer(5).fit(refs).distances(q), s2.distances(q))


def test_knn_checks(rng):
    s = KNNScorer(1).fit(rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match="dimension 2"):
        s.score_samples(rng.normal(size=(2, 2)))
    with pytest.raises(ValueError, match="non-empty"):
        KNNScorer().fit(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        KNNScorer().fit(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="n_neighbors"):
        KNNScorer(0).fit(np.ones((2, 2)))


def test_kmeans_keeps_every_target_sample(rng):
    src = _unit(rng.normal(size=(60, 8)) + np.eye(8)[0] * 3)
    tgt = _unit(rng.normal(size=(3, 8)) - np.eye(8)[0] * 3)
    s = KMeansScorer(4, seed=0).fit(np.vstack([src, tgt]), ["source"] * 60 + ["target"] * 3)
    assert s.n_source_centers_ == 4 and len(s.centers_) == 7
    # a target training sample is its own centre: distance 0
    np.testing.assert_allclose(s.distances(tgt), 0.0, atol=1e-12)
    # brute-force reference: min over the stored centres
    q = rng.normal(size=(5, 8))
    ref = (1 - _unit(q) @ s.centers_.T).min(axis=1)
    np.testing.assert_allclose(s.distances(q), ref)
    # source centres are unit means of the source cluster members
    assert np.allclose(np.linalg.norm(s.centers_, axis=1), 1.0)


def test_kmeans_caps_clusters_and_all_source(rng):
    x = rng.normal(size=(5, 4))
    s = KMeansScorer(16).fit(x)
    assert s.n_source_centers_ == 5 and len(s.centers_) == 5
    np.testing.assert_allclose(s.distances(x), 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="one domain per embedding"):
        KMeansScorer().fit(x, ["source"])


def test_gmm_single_component_matches_gaussian(rng):
    x = rng.normal(size=(400, 3)) * [1.0, 0.5, 0.2] + [2.0, 0.0, 0.0]
    s = GMMScorer(1, reg_covar=1e-3).fit(x)
    u = _unit(x)
    mean = u.mean(axis=0)
    cov = np.cov(u.T, bias=True) + 1e-3 * np.eye(3)
    q = rng.normal(size=(6, 3)) + [2.0, 0.0, 0.0]
    ref = multivariate_normal(mean, cov).logpdf(_unit(q))
    np.testing.assert_allclose(s.score_samples(q), ref, rtol=1e-6, atol=1e-6)


def test_gmm_outlier_scores_lower(rng):
    x = _unit(rng.normal(size=(200, 4)) * 0.1 + [1, 0, 0, 0])
    s = GMMScorer(2).fit(x)
    assert s.score_samples([[0, 1, 0, 0]])[0] < s.score_samples(x).min()
