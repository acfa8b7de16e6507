from __future__ import annotations

import numpy as np
import pytest

from core.discover.clustering import purity_score, run_hdbscan
from core.discover.projection import PCAReducer, UMAPReducer, pca_project, project
from tests.core.discovery_helpers import blobs, single_thread


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with single_thread():
        yield


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return blobs(n_per=50, k=4, dim=32, spread=0.3)


def test_umap_cache_key_depends_on_bytes_shape_dtype_and_params(tmp_path):
    X = np.arange(12, dtype=np.float32).reshape(3, 4)
    key = lambda X, n=2: UMAPReducer(n_components=n, cache_dir=tmp_path).cache_path(X)  # noqa: E731
    assert key(X) == key(X.copy()) and key(X).name.startswith("umap-")
    assert key(X) != key(X.reshape(4, 3))
    assert key(X) != key(X + 1)
    assert key(X) != key(X, n=3)
    assert key(X) != key(X.astype(np.float64))
    assert UMAPReducer(n_components=2).cache_path(X) is None  # no cache folder, no cache


def test_pca_project_pads_when_input_is_small():
    out = pca_project(np.random.default_rng(0).standard_normal((3, 5)), n_components=4)
    assert out.shape == (3, 4) and out.dtype == np.float32
    assert np.all(out[:, 3] == 0)
    assert PCAReducer(n_components=8).fit_transform(np.eye(5)).shape == (5, 8)


def test_umap_keeps_clusters_and_is_seeded(data, tmp_path):
    X, y = data
    reducer = UMAPReducer(n_components=10, seed=1)
    a = reducer.fit_transform(X)
    assert a.shape == (200, 10) and a.dtype == np.float32 and reducer.init_ == "pca"
    assert purity_score(run_hdbscan(a, min_cluster_size=10), y) == 1.0
    b = UMAPReducer(n_components=10, seed=1).fit_transform(X)
    np.testing.assert_array_equal(a, b)


def test_umap_cache_is_keyed_by_content_and_params(data, tmp_path):
    X, _ = data
    first = UMAPReducer(n_components=2, cache_dir=tmp_path)
    coords = first.fit_transform(X)
    path = first.cache_path(X)
    assert path.exists() and path.suffix == ".npy" and not first.cache_hit_
    second = UMAPReducer(n_components=2, cache_dir=tmp_path)
    np.testing.assert_array_equal(second.fit_transform(X), coords)
    assert second.cache_hit_
    with pytest.raises(RuntimeError, match="loaded from cache"):
        second.transform(X)
    assert UMAPReducer(n_components=2, n_neighbors=5, cache_dir=tmp_path).cache_path(X) != path
    assert UMAPReducer(n_components=2, cache_dir=tmp_path).cache_path(X[:-1]) != path


def test_fitted_umap_places_new_points(data):
    X, _ = data
    reducer = UMAPReducer(n_components=2).fit(X)
    assert reducer.transform(X[:5]).shape == (5, 2)


def test_project_handles_tiny_inputs_and_caches(tmp_path):
    tiny = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    assert project(tiny, n_components=2).shape == (4, 2)
    project(tiny, n_components=10, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("umap-*.npy"))) == 1


def test_umap_stays_reproducible_when_the_spectral_start_fails():
    # 30 products, each listed 10 times: umap's eigensolver gives up and umap's own fallback is not reproducible
    X = np.repeat(np.random.default_rng(0).standard_normal((30, 16)), 10, axis=0).astype(np.float32)
    first, second = (UMAPReducer(n_components=10, seed=0, init="spectral") for _ in range(2))
    np.testing.assert_array_equal(first.fit_transform(X), second.fit_transform(X))
    assert first.init_ == second.init_ == "pca"
    same = first.embedding_[:10]  # copies of one product stay together
    assert np.abs(same - same.mean(0)).max() < np.abs(first.embedding_ - first.embedding_.mean(0)).max()


def test_umap_start_is_checked_and_part_of_the_cache_key(tmp_path):
    with pytest.raises(ValueError, match="init must be"):
        UMAPReducer(init="random")
    X = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    pca, spectral = UMAPReducer(cache_dir=tmp_path), UMAPReducer(cache_dir=tmp_path, init="spectral")
    assert pca.cache_path(X) != spectral.cache_path(X)
