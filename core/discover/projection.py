"""Low-dimensional projections: UMAP (2-D for the view, ~10-D for clustering) and PCA.

UMAP results are cached on disk as `.npy` under a cache folder, keyed (`core.keys.content_key`) by the input
array's dtype, shape and bytes and the parameters, so a re-run with nothing changed costs a file read. `umap` is
imported inside the function that runs it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.embed.cache import save_npy_atomic
from core.keys import content_key

SPECTRAL_FAILED = "Spectral initialisation failed"  # umap's warning when its eigensolver gives up

CACHE_VERSION = 1


def pca_project(X: np.ndarray, *, n_components: int, seed: int = 0) -> np.ndarray:
    """PCA projection, zero-padded when there are fewer samples or features than components.

    Args:
        X: (N, D) float array.
        n_components: output width d.
        seed: random state of the randomised solver.

    Returns:
        (N, d) float32.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float32)
    k = min(n_components, X.shape[0], X.shape[1])
    out = np.zeros((X.shape[0], n_components), np.float32)
    if k > 0 and X.shape[0] > 1:
        out[:, :k] = PCA(n_components=k, random_state=seed).fit_transform(X)
    return out


class PCAReducer:
    """PCA with the reducer interface (`fit`, `transform`, `fit_transform`, `embedding_`)."""

    def __init__(self, *, n_components: int = 10, seed: int = 0):
        self.n_components = n_components
        self.seed = seed
        self.model_ = None
        self.embedding_: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> PCAReducer:
        """Fit on X: (N, D); sets `embedding_`: (N, n_components) float32."""
        from sklearn.decomposition import PCA

        X = np.asarray(X, dtype=np.float32)
        k = min(self.n_components, *X.shape)
        self.model_ = PCA(n_components=k, random_state=self.seed).fit(X)
        self.embedding_ = self.transform(X)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Project X: (N, D) -> (N, n_components) float32 (zero-padded if D or N was small)."""
        out = np.zeros((len(X), self.n_components), np.float32)
        z = self.model_.transform(np.asarray(X, dtype=np.float32))
        out[:, : z.shape[1]] = z
        return out

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """`fit` then return `embedding_`."""
        return self.fit(X).embedding_


class UMAPReducer:
    """Seeded UMAP with an on-disk cache keyed by content.

    Args:
        n_components: output dimension (2 for the view, ~10 for clustering).
        n_neighbors: size of the local neighbourhood (clamped to N - 1).
        min_dist: minimum distance between embedded points (0.0 packs clusters tightly).
        metric: input-space metric.
        n_epochs: optimisation epochs (None: UMAP's default).
        seed: random state; makes results reproducible (UMAP then runs single-threaded).
        cache_dir: folder for cached `.npy` results, or None for no cache.
        init: the starting layout, "pca" or "spectral" (umap's default).

    The default start is PCA: umap's spectral start comes from ARPACK, whose answer for a nearly degenerate graph
    (a node of ~1,000 products) changed from run to run with the same seed, and with it the clusters. When a
    spectral start is asked for and its eigensolver gives up, umap falls back to a random start that is not
    reproducible either, so the projection is refitted from PCA. `init_` says which start was used.
    """

    def __init__(
        self,
        *,
        n_components: int = 10,
        n_neighbors: int = 15,
        min_dist: float = 0.0,
        metric: str = "cosine",
        n_epochs: int | None = None,
        seed: int = 42,
        cache_dir: str | Path | None = None,
        init: str = "pca",
    ):
        if init not in ("pca", "spectral"):
            raise ValueError(f"init must be 'pca' or 'spectral', not {init!r}")
        self.init = init
        self.n_components = n_components
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.metric = metric
        self.n_epochs = n_epochs
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.model_ = None
        self.embedding_: np.ndarray | None = None
        self.cache_hit_ = False

    def params(self) -> dict:
        """The settings that determine the projection (part of the cache key)."""
        keys = ("n_components", "n_neighbors", "min_dist", "metric", "n_epochs", "seed", "init")
        return {"method": "umap", **{k: getattr(self, k) for k in keys}}

    def cache_path(self, X: np.ndarray) -> Path | None:
        """Where the projection of X is (or would be) cached; None without a cache folder."""
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"umap-{content_key(CACHE_VERSION, self.params(), np.asarray(X), length=40)}.npy"

    def fit(self, X: np.ndarray) -> UMAPReducer:
        """Project X: (N, D) float32; sets `embedding_`: (N, n_components) float32.

        Reads the cache when present (then `model_` stays None and `transform` is unavailable).
        """
        path = self.cache_path(X)
        self.cache_hit_ = bool(path and path.exists())
        if self.cache_hit_:
            self.embedding_ = np.load(path, allow_pickle=False)
            return self
        self.embedding_ = self._run_umap(np.asarray(X, dtype=np.float32))
        if path is not None:
            save_npy_atomic(path, self.embedding_)
        return self

    def _run_umap(self, X: np.ndarray) -> np.ndarray:
        n = len(X)
        if n <= self.n_components + 2:  # too few points for a spectral layout
            return pca_project(X, n_components=self.n_components, seed=self.seed)
        import warnings

        self.init_ = self.init if n > 4 * self.n_components else "random"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = self._fit_umap(X, self.init_)
        failed = [w for w in caught if SPECTRAL_FAILED in str(w.message)]
        for w in caught:
            if w not in failed:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if failed and self.init_ == "spectral":
            # umap then starts from a random layout that is not reproducible (same seed, different map);
            # a PCA start is, and keeps the global structure that a spectral start would have given
            self.init_ = "pca"
            out = self._fit_umap(X, self.init_)
        return out

    def _fit_umap(self, X: np.ndarray, init: str) -> np.ndarray:
        import umap

        n = len(X)
        self.model_ = umap.UMAP(
            n_components=self.n_components,
            n_neighbors=max(2, min(self.n_neighbors, n - 1)),
            min_dist=self.min_dist,
            metric=self.metric,
            n_epochs=self.n_epochs,
            random_state=self.seed,
            transform_seed=self.seed,
            n_jobs=1,  # a seeded UMAP runs on one thread anyway
            init=init,
        )
        return self.model_.fit_transform(X).astype(np.float32)

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Place new points X: (M, D) into the fitted layout; returns (M, n_components) float32."""
        if self.model_ is None:
            raise RuntimeError("no fitted UMAP model (not fitted, loaded from cache, or tiny input)")
        return self.model_.transform(np.asarray(X, dtype=np.float32)).astype(np.float32)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """`fit` then return `embedding_`: (N, n_components) float32."""
        return self.fit(X).embedding_


def project(
    X: np.ndarray,
    *,
    n_components: int = 2,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    metric: str = "cosine",
    seed: int = 42,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """UMAP projection of X: (N, D) to (N, n_components) float32, cached when `cache_dir` is set."""
    reducer = UMAPReducer(
        n_components=n_components,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        metric=metric,
        seed=seed,
        cache_dir=cache_dir,
    )
    return reducer.fit_transform(X)
