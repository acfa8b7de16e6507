"""The memory budget of the neighbour index (`core.discover.ann`): exact flat under it, IVF-PQ sized for it above."""

from __future__ import annotations

import numpy as np
import pytest

from core.discover.ann import MB, AnnIndex, flat_bytes, plan_ivfpq, resolve_kind
from tests.core.discovery_helpers import blobs

N, DIM = 3000, 16


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    X, _ = blobs(n_per=N // 25, k=25, dim=DIM, spread=1.0, seed=5)
    return X


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_flat_memory_is_the_vectors_and_the_id_map():
    assert flat_bytes(N, DIM) == N * (DIM * 4 + 8) == 216_000


def test_the_budget_chooses_flat_under_it_and_ivfpq_over_it():
    assert resolve_kind("auto", N, dim=DIM, memory_mb=216_000 / MB) == "flat"  # exactly fits
    assert resolve_kind("auto", N, dim=DIM, memory_mb=215_999 / MB) == "ivfpq"
    assert resolve_kind("auto", N, dim=DIM, memory_mb=None) == "flat"  # no budget: the size threshold, as before
    assert resolve_kind("auto", 200_000, dim=DIM, memory_mb=None) == "ivf"


def test_plan_takes_the_most_sub_quantisers_that_fit():
    # by hand for 3,000 x 16: nlist = min(round(2 sqrt(3000)) = 110, 3000 // 39 = 76) = 76; 6-bit codes
    # (log2 76 = 6.2: too few vectors to train 256 centroids); nprobe = max(8, round(76 / 32)) = 8;
    # fixed bytes 76*16*4 + 64*16*4 = 8,960; per vector m*6/8 code bytes + 24 (list id, direct map, id map)
    fixed = 76 * DIM * 4 + 64 * DIM * 4
    need = {m: N * (m * 6 // 8 + 24) + fixed for m in (16, 8, 4)}
    assert need == {16: 116_960, 8: 98_960, 4: 89_960}
    plan = plan_ivfpq(N, DIM, 0.12)  # 125,829 bytes: m = 16 fits
    assert (plan.nlist, plan.m, plan.nbits, plan.nprobe, plan.bytes) == (76, 16, 6, 8, need[16])
    assert plan_ivfpq(N, DIM, 0.1).m == 8  # 104,857 bytes: 16 does not fit, 8 does
    assert plan_ivfpq(N, DIM, 90_000 / MB).m == 4
    with pytest.raises(ValueError, match="do not fit"):
        plan_ivfpq(N, DIM, 89_000 / MB)


def test_ivfpq_under_the_budget_keeps_recall_above_a_weaker_index(data):
    queries = data[::23] + 0.01
    _, exact = AnnIndex(kind="flat").build(data).search(queries, 10)
    index = AnnIndex(memory_mb=0.12).build(data)
    assert index.kind_ == "ivfpq" and index.plan_.m == 16
    assert index.index_bytes() <= 0.12 * MB < flat_bytes(N, DIM)
    _, found = index.search(queries, 10)
    weaker = AnnIndex(memory_mb=0.12, pq_m=4, nprobe=1).build(data)  # a quarter of the codes, one list probed
    _, rough = weaker.search(queries, 10)
    assert recall(found, exact) >= 0.75
    assert recall(found, exact) > recall(rough, exact) + 0.1


def test_ivfpq_saves_loads_and_finds_neighbours_by_product_id(data, tmp_path):
    ids = np.arange(N, dtype=np.int64) * 3 + 1
    index = AnnIndex(memory_mb=0.12).build(data, ids=ids)
    path = index.save(tmp_path / "pq.faiss")
    loaded = AnnIndex.load(path)
    assert loaded.kind_ == "ivfpq"
    np.testing.assert_array_equal(loaded.search(data[:5], 10)[1], index.search(data[:5], 10)[1])
    _, found = index.neighbours([1, 4], 5)
    assert found.shape == (2, 5) and 1 not in found[0] and 4 not in found[1]
    assert set(found.ravel()) <= set(ids.tolist())
