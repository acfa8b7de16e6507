from __future__ import annotations

import numpy as np
import pytest

from core.discover.clustering import (
    CascadeClusterer,
    assign_noise,
    cluster_centroids,
    cluster_coherence,
    hdbscan_split,
    kmeans_split,
    majority_labels,
    purity_score,
    run_hdbscan,
)
from tests.core.discovery_helpers import blobs, nested


def test_centroids_and_coherence_ignore_noise():
    X = np.array([[1, 0], [1, 0], [0, 1], [1, 0], [-1, -1]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1, -1])
    ids, cents = cluster_centroids(X, labels)
    np.testing.assert_array_equal(ids, [0, 1])
    np.testing.assert_allclose(cents, [[1, 0], [0.5, 0.5]])
    _, coh = cluster_coherence(X, labels)
    np.testing.assert_allclose(coh, [1.0, np.sqrt(0.5)], atol=1e-6)


def test_majority_and_purity_count_only_assigned_points():
    labels = np.array([0, 0, 0, 1, 1, -1, -1])
    truth = np.array(["a", "a", "b", "c", "c", "b", "b"])
    ids, majority, share = majority_labels(labels, truth)
    assert list(majority) == ["a", "c"]
    np.testing.assert_allclose(share, [2 / 3, 1.0])
    assert purity_score(labels, truth) == 4 / 5
    assert np.isnan(purity_score(np.full(3, -1), truth[:3]))


def test_hdbscan_finds_separate_blobs():
    X, y = blobs(n_per=50, k=3, dim=5, spread=0.3)
    labels = run_hdbscan(X, min_cluster_size=10)
    assert len(set(labels) - {-1}) == 3
    assert purity_score(labels, y) == 1.0


def test_kmeans_split_picks_k_by_silhouette_and_refuses_one_blob():
    X, y = blobs(n_per=40, k=3, dim=8, spread=0.2)
    labels = kmeans_split(X, max_k=6, min_size=10)
    assert labels is not None and len(set(labels)) == 3
    assert purity_score(labels, y) == 1.0
    one = np.random.default_rng(0).standard_normal((120, 8))
    assert kmeans_split(one, max_k=6, min_size=10, min_silhouette=0.3) is None


def test_hdbscan_split_needs_at_least_two_clusters():
    X, _ = blobs(n_per=40, k=2, dim=4, spread=0.2)
    assert len(set(hdbscan_split(X, min_size=10)) - {-1}) == 2
    one = np.random.default_rng(0).standard_normal((100, 4))
    assert hdbscan_split(one, min_size=30) is None


def test_assign_noise_uses_distance_relative_to_cluster_spread():
    rng = np.random.default_rng(0)
    tight = rng.normal(0, 0.1, (50, 2))
    wide = rng.normal(0, 2.0, (50, 2)) + [20, 0]
    points = np.array([[0.15, 0.0], [23.0, 0.0], [10.0, 0.0], [1.5, 0.0]])
    X = np.vstack([tight, wide, points]).astype(np.float32)
    labels = np.r_[np.zeros(50, int), np.ones(50, int), [-1, -1, -1, -1]]
    out = assign_noise(X, labels, radius=2.0)
    # near the tight cluster, near the wide one, far from both, too far for the tight one
    assert list(out[-4:]) == [0, 1, -1, -1]
    # with a huge radius every point joins the cluster it is closest to relative to spread
    assert list(assign_noise(X, labels, radius=100.0)[-4:]) == [0, 1, 1, 1]


def test_cascade_splits_what_stage_one_merged():
    low, emb, y = nested(n_per=60)
    model = CascadeClusterer(min_cluster_size=15, max_share=0.3, noise_radius=None).fit(low, embeddings=emb)
    assert len(set(model.stage1_labels_) - {-1}) == 2
    assert len(model.cluster_ids_) == 4
    assert purity_score(model.labels_, y) > 0.95
    assert set(model.parent_.values()) == set(model.stage1_labels_) - {-1}
    assert model.coherence_.shape == (4,) and np.all(model.coherence_ > 0.8)
    stage1_coherence = cluster_coherence(emb, model.stage1_labels_)[1]
    assert model.threshold_ == pytest.approx(np.median(stage1_coherence))  # "auto" threshold


def test_max_depth_zero_is_plain_hdbscan():
    low, emb, _ = nested(n_per=60)
    model = CascadeClusterer(min_cluster_size=15, max_depth=0, noise_radius=None).fit(low, embeddings=emb)
    np.testing.assert_array_equal(model.labels_, model.stage1_labels_)
    assert len(model.cluster_ids_) == 2


def test_coherent_small_clusters_are_left_alone():
    low, emb, _ = nested(n_per=60)
    model = CascadeClusterer(min_cluster_size=15, max_share=1.0, coherence_threshold=0.0, noise_radius=None)
    assert len(model.fit(low, embeddings=emb).cluster_ids_) == 2


def test_hdbscan_split_method_and_noise_assignment():
    low, emb, y = nested(n_per=60)
    model = CascadeClusterer(min_cluster_size=15, max_share=0.3, split_method="hdbscan", noise_radius=3.0)
    labels = model.fit_predict(low, embeddings=emb)
    assert len(model.cluster_ids_) == 4
    assert (labels == -1).mean() <= (model.stage2_labels_ == -1).mean()
    assert purity_score(labels, y) > 0.9


def test_default_min_cluster_size_scales_with_n():
    X, _ = blobs(n_per=500, k=4, dim=8, spread=0.1)
    model = CascadeClusterer(max_depth=0).fit(X)
    assert model.min_size_ == 20
    assert len(model.cluster_ids_) == 4


def _three_clear_one_unclear(seed: int = 0):
    """Four well-separated groups in 2-D; in the embedding space three are tight blobs and the last (50 of 350
    points) is a diffuse mix: an 'unclear' cluster."""
    rng = np.random.default_rng(seed)
    sizes = [100, 100, 100, 50]
    y = np.repeat(np.arange(4), sizes)
    low = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])[y] + rng.standard_normal((len(y), 2))
    emb, _ = blobs(n_per=100, k=3, dim=16, spread=0.1, seed=seed)
    emb = np.vstack([emb, rng.standard_normal((50, 16))]).astype(np.float32)
    return low.astype(np.float32), emb, y


def test_stage_four_leaves_unclear_clusters_unassigned_within_the_budget():
    low, emb, y = _three_clear_one_unclear()
    kw = dict(min_cluster_size=20, max_depth=0, noise_radius=None, coherence_threshold=0.5)
    kept = CascadeClusterer(**kw, max_unassigned=None).fit(low, embeddings=emb)
    assert len(kept.cluster_ids_) == 4 and kept.unclear_ == []
    model = CascadeClusterer(**kw, max_unassigned=0.2).fit(low, embeddings=emb)
    assert np.all(model.labels_[y == 3] == -1) and np.all(model.labels_[y < 3] >= 0)
    assert [size for _, _, size in model.unclear_] == [50] and model.unclear_[0][1] < 0.5
    np.testing.assert_array_equal(model.cluster_ids_, [0, 1, 2])  # relabelled without gaps
    assert sorted(model.parent_) == [0, 1, 2] and purity_score(model.labels_, y) == 1.0
    assert np.all(model.coherence_ > 0.5)
    # over budget: 50 of 350 points is 14%, more than 10% may not be left out
    tight = CascadeClusterer(**kw, max_unassigned=0.1).fit(low, embeddings=emb)
    assert tight.unclear_ == [] and len(tight.cluster_ids_) == 4
    # coherent clusters are never left out, whatever the budget
    lax = CascadeClusterer(**{**kw, "coherence_threshold": 0.0}, max_unassigned=0.9).fit(low, embeddings=emb)
    assert lax.unclear_ == [] and len(lax.cluster_ids_) == 4
