"""Nearest-neighbour search over product embeddings with FAISS.

Inner product on L2-normalised vectors (cosine). Exact search (IndexFlatIP) for small catalogues,
IVF above `ivf_threshold` vectors, HNSW on request; on a GPU when faiss sees one. The index is
saved as a `.faiss` file with the product ids beside it as `.ids.npy`. `faiss` is imported inside
the functions that use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.embed.encoders import l2_normalize

IVF_THRESHOLD = 100_000


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


BUILDERS = {"flat": _flat, "ivf": _ivf, "hnsw": _hnsw}


def resolve_kind(kind: str, n: int, *, ivf_threshold: int = IVF_THRESHOLD) -> str:
    """The index kind to build for n vectors: "auto" is "flat" below `ivf_threshold`, else "ivf"."""
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
        kind: "auto", "flat" (exact), "ivf" or "hnsw".
        normalize: L2-normalise vectors and queries (inner product becomes cosine).
        ivf_threshold: "auto" switches from flat to IVF at this many vectors.
        nlist: IVF lists (None: about 4 * sqrt(N)).
        nprobe: IVF lists visited per query.
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
        nprobe: int = 16,
        hnsw_m: int = 32,
        ef_search: int = 128,
        use_gpu: bool | None = None,
        seed: int = 0,
    ):
        self.kind = kind
        self.normalize = normalize
        self.ivf_threshold = ivf_threshold
        self.nlist = nlist
        self.nprobe = nprobe
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
        self.kind_ = resolve_kind(self.kind, len(X), ivf_threshold=self.ivf_threshold)
        cpu = BUILDERS[self.kind_](X.shape[1], len(X), self)
        if not cpu.is_trained:
            rng = np.random.default_rng(self.seed)
            sample = rng.choice(len(X), size=min(len(X), 256 * cpu.nlist), replace=False)
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

    if faiss.try_extract_index_ivf(cpu) is not None:
        return "ivf"
    return "hnsw" if isinstance(cpu, faiss.IndexHNSW) else "flat"
