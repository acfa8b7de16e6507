from __future__ import annotations

import numpy as np
import pytest

from core.discover.clustering import CascadeClusterer, density_validity, prefer_raw
from core.discover.naming import ClusterNamer
from core.discover.pipeline import ClusterScores, DiscoveryPipeline, Identity, plain_pipeline, score_clusters
from core.discover.projection import PCAReducer, UMAPReducer
from core.discover.simclr import SimCLRHead
from tests.core.discovery_helpers import CLASS_WORDS, blobs, docs_for, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def shop() -> tuple[np.ndarray, np.ndarray, list[str]]:
    X, y = blobs(n_per=60, k=4, dim=48, spread=0.6, seed=5)
    return X, y, docs_for(y)


def test_score_clusters_counts_purity_over_assigned_points():
    labels = np.array([0, 0, 0, 1, 1, -1, -1, -1])
    truth = np.array(["a", "a", "b", "c", "c", "a", "b", "c"])
    scores = score_clusters(labels, truth)
    assert isinstance(scores, ClusterScores)
    assert scores.purity == pytest.approx(4 / 5)
    assert scores.n_clusters == 2
    assert scores.share_unassigned == pytest.approx(3 / 8)
    assert 0 < scores.nmi < 1
    perfect = score_clusters(np.array([1, 1, 0, 0]), np.array(["x", "x", "y", "y"]))
    assert perfect == (1.0, 1.0, 2, 0.0)


def test_pipeline_finds_and_names_the_blobs(shop, tmp_path):
    X, y, docs = shop
    pipe = DiscoveryPipeline(head=SimCLRHead(out_dim=32, hidden=64, epochs=10, batch_size=64), cache_dir=tmp_path)
    labels = pipe.fit_predict(X, docs=docs, known_labels=y)
    scores = score_clusters(labels, y)
    assert scores.purity > 0.95 and scores.n_clusters >= 4 and scores.share_unassigned < 0.1
    assert pipe.embedding_.shape == (240, 32) and pipe.low_.shape == (240, 10)
    assert pipe.coords_.shape == (240, 2)
    assert set(pipe.timings_) == {"head", "reduce", "view", "cluster", "name"}
    assert len(pipe.summaries_) == scores.n_clusters
    for s in pipe.summaries_:
        assert set(s.name.split()) <= set(CLASS_WORDS[int(s.majority_label)])
        assert s.size == len(s.members) and np.all(labels[s.members] == s.cluster_id)
    assert len(list(tmp_path.glob("umap-*.npy"))) == 2


def test_pipeline_only_orders_the_stages_it_is_given(shop):
    X, y, _ = shop
    pipe = DiscoveryPipeline(
        head=Identity(),
        reducer=PCAReducer(n_components=5),
        view_reducer=PCAReducer(n_components=2),
        clusterer=CascadeClusterer(min_cluster_size=20, max_depth=0),
        namer=ClusterNamer(taxonomy_names=["Sports Shoes", "Heels"]),
    ).fit(X)
    np.testing.assert_allclose(pipe.embedding_, X / np.linalg.norm(X, axis=1, keepdims=True), atol=1e-6)
    np.testing.assert_allclose(pipe.coords_, pipe.low_[:, :2], atol=1e-5)
    assert score_clusters(pipe.labels_, y).purity == 1.0
    assert all(s.name.startswith("cluster ") for s in pipe.summaries_)


def test_plain_pipeline_is_umap_and_hdbscan_only(shop):
    X, y, docs = shop
    pipe = plain_pipeline(min_cluster_size=20)
    assert isinstance(pipe.head, Identity) and isinstance(pipe.reducer, UMAPReducer)
    assert pipe.clusterer.max_depth == 0 and pipe.clusterer.noise_radius is None and pipe.clusterer.max_unassigned is None
    pipe.fit(X, docs=docs)
    np.testing.assert_array_equal(pipe.labels_, pipe.clusterer.stage1_labels_)
    assert pipe.coords_ is None
    assert score_clusters(pipe.labels_, y).purity == 1.0


def test_pipeline_accepts_modality_views(shop):
    X, y, _ = shop
    views = {"text": X[:, :32], "image": X[:, 32:]}
    head = SimCLRHead(out_dim=16, hidden=32, epochs=3, batch_size=64)
    pipe = DiscoveryPipeline(head=head, reducer=PCAReducer(n_components=5), view_reducer=None).fit(None, views=views)
    assert head.blocks == (32, 16) and pipe.embedding_.shape == (240, 16)


class NoiseHead:
    """A head that forgets its input: seeded Gaussian noise, as a head that learnt nothing of the types would give."""

    def fit(self, X, *, views=None):
        return self

    def transform(self, X):
        return np.random.default_rng(0).standard_normal((len(X), 16)).astype(np.float32)


class CopyHead:
    """A head that gives the raw space itself (unit rows) without being `Identity`: the pipeline still weighs the raw
    space against it, and a tie keeps the head."""

    def fit(self, X, *, views=None):
        return self

    def transform(self, X):
        return Identity().transform(X)


def test_density_validity_scores_blobs_above_noise_and_prefer_raw_needs_a_win():
    X, _ = blobs(n_per=60, k=4, dim=8, spread=0.3, seed=1)
    noise = np.random.default_rng(1).uniform(-1, 1, size=X.shape).astype(np.float32)
    clear, unclear = density_validity(X, min_cluster_size=20), density_validity(noise, min_cluster_size=20)
    assert clear[0] > unclear[0] and clear[1] > unclear[1] and clear[2] == 4
    assert prefer_raw(unclear, clear) and not prefer_raw(clear, unclear)
    assert not prefer_raw(clear, clear)  # a tie keeps the head
    assert prefer_raw((0.5, 0.1, 6), (0.4, 0.2, 6)) and prefer_raw((0.5, 0.1, 6), (0.6, 0.0, 6))  # either score is enough
    assert not prefer_raw((0.3, 0.3, 6), (0.5, 0.4, 2))  # a raw space of too few clusters never wins


def test_pipeline_falls_back_to_the_raw_space_when_the_head_loses_the_structure(shop):
    X, y, _ = shop
    kw = {"reducer": PCAReducer(n_components=5), "view_reducer": None, "raw_fallback": PCAReducer(n_components=5)}
    clusterer = CascadeClusterer(min_cluster_size=20, max_unassigned=None)
    lost = DiscoveryPipeline(head=NoiseHead(), clusterer=clusterer, **kw).fit(X)
    assert lost.space_ == "raw" and set(lost.space_scores_) == {"head", "raw"}
    np.testing.assert_allclose(lost.embedding_, X / np.linalg.norm(X, axis=1, keepdims=True), atol=1e-6)
    assert score_clusters(lost.labels_, y).purity == 1.0 and "space" in lost.timings_
    kept = DiscoveryPipeline(head=CopyHead(), clusterer=CascadeClusterer(min_cluster_size=20), **kw).fit(X)
    assert kept.space_ == "head" and kept.embedding_.shape == X.shape
    none = DiscoveryPipeline(head=NoiseHead(), reducer=PCAReducer(n_components=5), view_reducer=None).fit(X)
    assert none.space_ == "head" and none.space_scores_ == {} and "space" not in none.timings_


def test_node_pipeline_weighs_the_raw_space_only_for_two_view_features(tmp_path):
    from core.discover.features import make_pipeline

    kw = {"brands": [], "taxonomy_names": [], "cache_dir": tmp_path, "n": 500}
    assert make_pipeline(blocks=(384, 384), **kw).raw_fallback is not None  # title | title + description
    assert make_pipeline(blocks=(1280,), **kw).raw_fallback is None  # photos only
