"""Nearest-neighbour search over product embeddings with FAISS.

Inner product on L2-normalised vectors (cosine). Exact search (IndexFlatIP) for small catalogues,
IVF above `ivf_threshold` vectors, HNSW on request; on a GPU when faiss sees one.

With a memory budget (`memory_mb`, or `$CURATOR_ANN_MEMORY_MB`), "auto" chooses by memory instead: exact flat
while the vectors and the id map fit in the budget, else IVF-PQ (`plan_ivfpq`: about 2 sqrt(N) lists, the largest
number of 8-bit sub-quantisers m dividing the width that fits the budget, and nprobe about nlist / 32, between 8
and 64), so 1M x 384 vectors take about 120 MB instead of 1.5 GB. The index is
saved as a `.faiss` file with the product ids beside it as `.ids.npy`. `faiss` is imported inside
the functions that use it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.embed.encoders import l2_normalize

IVF_THRESHOLD = 100_000
MEMORY_ENV = "CURATOR_ANN_MEMORY_MB"
MB = 1 << 20
PQ_CHOICES = (96, 64, 48, 32, 24, 16, 12, 8, 4)  # sub-quantisers tried, most first (each must divide the width)


def memory_budget_mb(explicit: float | None = None) -> float | None:
    """The memory budget: `explicit`, else `$CURATOR_ANN_MEMORY_MB`, else None (the size threshold decides)."""
    if explicit is not None:
        return float(explicit)
    value = os.environ.get(MEMORY_ENV, "").strip()
    return float(value) if value else None


def flat_bytes(n: int, dim: int) -> int:
    """Memory of the exact index: the float32 vectors and the int64 id map."""
    return n * (4 * dim + 8)


@dataclass(frozen=True)
class PqPlan:
    """An IVF-PQ index for a budget: lists, sub-quantisers, bits per code, lists probed, and its memory."""

    nlist: int
    m: int
    nbits: int
    nprobe: int
    bytes: int


def plan_ivfpq(n: int, dim: int, memory_mb: float) -> PqPlan:
    """The IVF-PQ parameters for n vectors of width dim within `memory_mb` (ValueError when even the smallest does
    not fit). Per vector: m code bytes, its id in the inverted list and in the direct map (for `neighbours`), and
    the id map (8 bytes each); fixed: the coarse centroids (nlist x dim float32) and the codebooks."""
    nlist = int(np.clip(round(2 * np.sqrt(n)), 1, max(n // 39, 1)))
    nbits = 8 if n >= 39 * 256 else max(1, min(8, int(np.log2(max(n // 39, 2)))))
    nprobe = int(np.clip(round(nlist / 32), min(8, nlist), 64))
    budget = memory_mb * MB
    for m in (m for m in PQ_CHOICES if dim % m == 0 and m <= dim):
        total = n * (m * nbits // 8 + 24) + nlist * dim * 4 + (1 << nbits) * dim * 4
        if total <= budget:
            return PqPlan(nlist=nlist, m=m, nbits=nbits, nprobe=nprobe, bytes=int(total))
    raise ValueError(f"{n:,} vectors of width {dim} do not fit in {memory_mb:g} MB even as IVF-PQ; raise the budget")


def _flat(dim: int, n: int, index: AnnIndex):
    import faiss

    return faiss.IndexFlatIP(dim)


def _ivf(dim: int, n: int, index: AnnIndex):
    import faiss

    nlist = index.nlist or int(np.clip(4 * np.sqrt(n), 1, max(n // 39, 1)))
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = index.seed
    ivf.nprobe = min(index.nprobe, nlist)
    return ivf


def _hnsw(dim: int, n: int, index: AnnIndex):
    import faiss

    hnsw = faiss.IndexHNSWFlat(dim, index.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efSearch = index.ef_search
    return hnsw


def _ivfpq(dim: int, n: int, index: AnnIndex):
    import faiss

    plan = index.plan_ = plan_ivfpq(n, dim, index.memory_mb or memory_budget_mb() or flat_bytes(n, dim) / MB / 4)
    nlist = index.nlist or plan.nlist
    pq = faiss.IndexIVFPQ(faiss.IndexFlatIP(dim), dim, nlist, index.pq_m or plan.m, plan.nbits, faiss.METRIC_INNER_PRODUCT)
    pq.cp.seed = index.seed
    pq.cp.niter = 10  # the coarse k-means: 10 rounds are enough for the lists; the codebooks keep faiss's 25
    pq.pq.cp.niter, pq.pq.cp.max_points_per_centroid = 15, 128  # codebooks: 32,768 points, 15 rounds each
    pq.nprobe = min(index.nprobe if index.nprobe_set else plan.nprobe, nlist)
    return pq


BUILDERS = {"flat": _flat, "ivf": _ivf, "hnsw": _hnsw, "ivfpq": _ivfpq}


def resolve_kind(
    kind: str, n: int, *, ivf_threshold: int = IVF_THRESHOLD, dim: int | None = None, memory_mb: float | None = None
) -> str:
    """The index kind to build for n vectors. "auto" without a budget: "flat" below `ivf_threshold`, else "ivf";
    with `memory_mb` (and the width `dim`): "flat" while `flat_bytes` fits the budget, else "ivfpq"."""
    if kind == "auto" and memory_mb is not None and dim:
        return "flat" if flat_bytes(n, dim) <= memory_mb * MB else "ivfpq"
    if kind == "auto":
        return "flat" if n < ivf_threshold else "ivf"
    if kind not in BUILDERS:
        raise ValueError(f"unknown index kind {kind!r}; expected auto, {', '.join(BUILDERS)}")
    return kind


def ids_path(path: str | Path) -> Path:
    """The id-map file that sits beside an index file: `x.faiss` -> `x.ids.npy`."""
    path = Path(path)
    return path.with_name(path.stem + ".ids.npy")


class AnnIndex:
    """Cosine nearest-neighbour index with a product-id map.

    Args:
        kind: "auto", "flat" (exact), "ivf", "ivfpq" or "hnsw".
        normalize: L2-normalise vectors and queries (inner product becomes cosine).
        ivf_threshold: "auto" switches from flat to IVF at this many vectors.
        nlist: IVF lists (None: about 4 * sqrt(N)).
        nprobe: IVF lists visited per query (default 16; IVF-PQ: its plan's, unless given).
        memory_mb: the memory budget "auto" chooses by, and IVF-PQ is sized for (default `$CURATOR_ANN_MEMORY_MB`).
        pq_m: IVF-PQ sub-quantisers (None: the plan's).
        hnsw_m, ef_search: HNSW graph degree and search breadth.
        use_gpu: move flat/IVF indexes to GPU 0; None does so when faiss sees a GPU.
        seed: random state of the IVF k-means and its training sample.
    """

    def __init__(
        self,
        *,
        kind: str = "auto",
        normalize: bool = True,
        ivf_threshold: int = IVF_THRESHOLD,
        nlist: int | None = None,
        nprobe: int | None = None,
        memory_mb: float | None = None,
        pq_m: int | None = None,
        hnsw_m: int = 32,
        ef_search: int = 128,
        use_gpu: bool | None = None,
        seed: int = 0,
    ):
        self.kind = kind
        self.normalize = normalize
        self.ivf_threshold = ivf_threshold
        self.nlist = nlist
        self.nprobe_set = nprobe is not None
        self.nprobe = 16 if nprobe is None else nprobe
        self.memory_mb = memory_budget_mb(memory_mb)
        self.pq_m = pq_m
        self.plan_: PqPlan | None = None
        self.hnsw_m = hnsw_m
        self.ef_search = ef_search
        self.use_gpu = use_gpu
        self.seed = seed
        self.index_ = None
        self.ids_: np.ndarray | None = None

    def _prep(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        return np.ascontiguousarray(l2_normalize(X)) if self.normalize else X

    def build(self, emb: np.ndarray, *, ids: np.ndarray | None = None) -> AnnIndex:
        """Index the vectors.

        Args:
            emb: (N, D) float32 embeddings.
            ids: (N,) int64 product ids returned by searches (default: 0..N-1).

        Returns:
            self, with `kind_` (the kind built), `index_` and `ids_` set.
        """
        X = self._prep(emb)
        self.ids_ = np.arange(len(X), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if len(self.ids_) != len(X):
            raise ValueError(f"{len(self.ids_)} ids for {len(X)} vectors")
        self.kind_ = resolve_kind(self.kind, len(X), ivf_threshold=self.ivf_threshold, dim=X.shape[1], memory_mb=self.memory_mb)
        cpu = BUILDERS[self.kind_](X.shape[1], len(X), self)
        if not cpu.is_trained:
            rng = np.random.default_rng(self.seed)
            wanted = 256 * cpu.nlist if self.kind_ == "ivf" else min(50 * cpu.nlist, 100_000)
            sample = rng.choice(len(X), size=min(len(X), wanted), replace=False)
            cpu.train(X[np.sort(sample)])
        cpu.add(X)
        self._set_index(cpu)
        return self

    def _set_index(self, cpu) -> None:
        """Keep the CPU index (for save and reconstruct) and, where wanted, a GPU copy for search."""
        import faiss

        self._cpu = cpu
        if faiss.try_extract_index_ivf(cpu) is not None:
            faiss.extract_index_ivf(cpu).make_direct_map()
        gpus = faiss.get_num_gpus() if hasattr(faiss, "StandardGpuResources") else 0
        if self.use_gpu and gpus == 0:
            raise RuntimeError(
                "use_gpu=True but faiss sees no GPU (faiss-cpu is installed, or no CUDA device is visible): "
                "install faiss-gpu on a CUDA host, or leave use_gpu=None to use a GPU only when there is one"
            )
        want_gpu = gpus > 0 if self.use_gpu is None else self.use_gpu
        if want_gpu and self.kind_ != "hnsw":
            self._gpu_res = faiss.StandardGpuResources()
            self.index_ = faiss.index_cpu_to_gpu(self._gpu_res, 0, cpu)
        else:
            self.index_ = cpu

    def index_bytes(self) -> int:
        """Bytes of the built index as written by `save` (vectors or codes, lists, centroids) plus the id map."""
        import faiss

        return int(faiss.serialize_index(self._cpu).nbytes) + (0 if self.ids_ is None else self.ids_.nbytes)

    def __len__(self) -> int:
        return 0 if self.ids_ is None else len(self.ids_)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest indexed products of each query.

        Args:
            queries: (Q, D) float32.
            k: neighbours per query.

        Returns:
            scores: (Q, k) float32 inner products (cosine when normalising), best first;
            ids: (Q, k) int64 product ids, -1 where fewer than k were found.
        """
        if self.index_ is None:
            raise RuntimeError("the index is empty: call build() or load() first")
        scores, rows = self.index_.search(self._prep(np.atleast_2d(queries)), k)
        ids = np.where(rows >= 0, self.ids_[np.maximum(rows, 0)], -1)
        return scores, ids

    def neighbours(self, product_idx: int | np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest products of indexed products, each excluding itself.

        Args:
            product_idx: a product id (or (Q,) ids) from the id map (row numbers by default).
            k: neighbours per product.

        Returns:
            scores: (Q, k) float32; ids: (Q, k) int64 (Q = 1 for a single id).
        """
        wanted = np.atleast_1d(np.asarray(product_idx, dtype=np.int64))
        rows = self._rows_of(wanted)
        vectors = np.stack([self._cpu.reconstruct(int(r)) for r in rows])
        scores, ids = self.search(vectors, k + 1)
        keep = ids != wanted[:, None]
        order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # drop self, keep rank order
        return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)

    def _rows_of(self, wanted: np.ndarray) -> np.ndarray:
        order = np.argsort(self.ids_, kind="stable")
        pos = np.searchsorted(self.ids_[order], wanted)
        pos = np.minimum(pos, len(order) - 1)
        rows = order[pos]
        if not np.array_equal(self.ids_[rows], wanted):
            raise KeyError(f"ids not in the index: {wanted[self.ids_[rows] != wanted].tolist()}")
        return rows

    def save(self, path: str | Path) -> Path:
        """Write the index to `path` (.faiss) and the id map beside it (.ids.npy); returns path."""
        import faiss

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._cpu, str(path))
        np.save(ids_path(path), self.ids_, allow_pickle=False)
        return path

    @classmethod
    def load(cls, path: str | Path, *, normalize: bool = True, use_gpu: bool | None = None) -> AnnIndex:
        """Read an index written by `save`."""
        import faiss

        cpu = faiss.read_index(str(path))
        index = cls(normalize=normalize, use_gpu=use_gpu)
        index.ids_ = np.load(ids_path(path), allow_pickle=False)
        index.kind_ = _kind_of(cpu)
        index.kind = index.kind_
        index._set_index(cpu)
        return index


def _kind_of(cpu) -> str:
    import faiss

    if isinstance(cpu, faiss.IndexIVFPQ):
        return "ivfpq"
    if faiss.try_extract_index_ivf(cpu) is not None:
        return "ivf"
    return "hnsw" if isinstance(cpu, faiss.IndexHNSW) else "flat"
