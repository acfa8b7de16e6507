from __future__ import annotations

import numpy as np
import pytest

from core.discover.ann import AnnIndex, ids_path, resolve_kind
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


class FakeGpuFaiss:
    """Stands in for faiss-gpu's three entry points that core.ann calls, recording what it moves to the GPU."""

    def __init__(self, gpus: int):
        self.gpus = gpus
        self.moved: list[str] = []

    def get_num_gpus(self) -> int:
        return self.gpus

    def StandardGpuResources(self):  # noqa: N802 (faiss' name)
        return object()

    def index_cpu_to_gpu(self, resources, device: int, cpu):
        assert device == 0
        self.moved.append(type(cpu).__name__)
        return cpu  # searches still run (on the CPU index), so results stay checkable


@pytest.fixture
def fake_gpu(monkeypatch):
    import faiss

    fake = FakeGpuFaiss(gpus=1)
    for name in ("get_num_gpus", "StandardGpuResources", "index_cpu_to_gpu"):
        monkeypatch.setattr(faiss, name, getattr(fake, name), raising=False)  # faiss-cpu lacks the GPU names
    return fake


def test_flat_and_ivf_go_to_the_gpu_when_faiss_sees_one(fake_gpu, data, tmp_path):
    flat = AnnIndex().build(data)
    ivf = AnnIndex(kind="ivf").build(data)
    assert fake_gpu.moved == ["IndexFlatIP", "IndexIVFFlat"]
    AnnIndex(kind="hnsw").build(data[:500])  # faiss has no GPU HNSW: stays on the CPU
    AnnIndex(use_gpu=False).build(data)  # forced off
    assert fake_gpu.moved == ["IndexFlatIP", "IndexIVFFlat"]
    assert flat._cpu is not None and ivf.neighbours(3, 5)[1].shape == (1, 5)  # reconstruct reads the CPU copy
    AnnIndex.load(ivf.save(tmp_path / "x.faiss"))
    assert fake_gpu.moved[-1] == "IndexIVFFlat"  # a loaded index goes back to the GPU


def test_use_gpu_true_without_a_gpu_fails_loudly(monkeypatch, data):
    import faiss

    monkeypatch.setattr(faiss, "get_num_gpus", FakeGpuFaiss(gpus=0).get_num_gpus)
    assert type(AnnIndex().build(data).index_).__name__ == "IndexFlatIP"  # auto: the CPU
    with pytest.raises(RuntimeError, match="faiss sees no GPU"):
        AnnIndex(use_gpu=True).build(data)
