from __future__ import annotations

import numpy as np
import pytest

from core.ann import AnnIndex, ids_path, resolve_kind
from tests.core.discovery_helpers import blobs


def brute_force(X: np.ndarray, Q: np.ndarray, k: int) -> np.ndarray:
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    Qn = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    return np.argsort(-(Qn @ Xn.T), axis=1, kind="stable")[:, :k]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    X, _ = blobs(n_per=400, k=25, dim=32, spread=1.0, seed=3)
    return X


def test_resolve_kind_switches_at_threshold():
    assert resolve_kind("auto", 99_999) == "flat"
    assert resolve_kind("auto", 100_000) == "ivf"
    assert resolve_kind("auto", 50, ivf_threshold=10) == "ivf"
    assert resolve_kind("hnsw", 10) == "hnsw"
    with pytest.raises(ValueError, match="unknown index kind"):
        resolve_kind("lsh", 10)


def test_flat_search_is_exact_cosine(data):
    index = AnnIndex().build(data)
    assert index.kind_ == "flat" and len(index) == len(data)
    queries = data[:50] + 0.01
    scores, ids = index.search(queries, 10)
    assert scores.shape == ids.shape == (50, 10) and ids.dtype == np.int64
    np.testing.assert_array_equal(ids[:, 0], np.arange(50))
    assert recall(ids, brute_force(data, queries, 10)) == 1.0
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_ivf_recall_against_flat(data):
    queries = data[::37]
    _, exact = AnnIndex(kind="flat").build(data).search(queries, 10)
    ivf = AnnIndex(kind="ivf", nprobe=8).build(data)
    assert ivf.kind_ == "ivf"
    _, approx = ivf.search(queries, 10)
    assert recall(approx, exact) >= 0.9
    _, one_probe = AnnIndex(kind="ivf", nlist=100, nprobe=1).build(data).search(queries, 10)
    assert recall(one_probe, exact) < recall(approx, exact)  # probing fewer lists loses neighbours


def test_hnsw_recall_against_flat(data):
    queries = data[::37]
    _, exact = AnnIndex(kind="flat").build(data).search(queries, 10)
    _, approx = AnnIndex(kind="hnsw").build(data).search(queries, 10)
    assert recall(approx, exact) >= 0.95


def test_auto_builds_ivf_above_threshold(data):
    assert AnnIndex(ivf_threshold=1000).build(data).kind_ == "ivf"


def test_neighbours_exclude_the_product_and_use_the_id_map(data):
    ids = np.arange(len(data), dtype=np.int64) * 10 + 5
    index = AnnIndex().build(data, ids=ids)
    scores, found = index.neighbours([5, 105], 5)
    assert found.shape == (2, 5)
    assert 5 not in found[0] and 105 not in found[1]
    np.testing.assert_array_equal(found, index.search(data[[0, 10]], 6)[1][:, 1:])
    with pytest.raises(KeyError):
        index.neighbours(7, 3)


def test_search_more_than_indexed_pads_with_minus_one():
    index = AnnIndex().build(np.eye(3, dtype=np.float32), ids=np.array([7, 8, 9]))
    _, ids = index.search(np.eye(3, dtype=np.float32)[:1], 5)
    assert list(ids[0, :1]) == [7] and list(ids[0, 3:]) == [-1, -1]


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_save_load_round_trip(tmp_path, data, kind):
    index = AnnIndex(kind=kind).build(data, ids=np.arange(len(data)) + 1000)
    path = index.save(tmp_path / "shoes.faiss")
    assert path.exists() and ids_path(path).exists()
    loaded = AnnIndex.load(path)
    assert loaded.kind_ == kind
    np.testing.assert_array_equal(loaded.search(data[:20], 5)[1], index.search(data[:20], 5)[1])
    np.testing.assert_array_equal(loaded.neighbours(1003, 4)[1], index.neighbours(1003, 4)[1])


def test_build_rejects_mismatched_ids():
    with pytest.raises(ValueError, match="ids for"):
        AnnIndex().build(np.ones((3, 2), np.float32), ids=np.arange(2))
