"""Subcategory discovery: SimCLR head -> UMAP -> cascade clustering -> named cluster summaries.

`DiscoveryPipeline` only orders its stages, each a small object handed to the constructor:

    head      fit(X, views=...) / transform(X)      SimCLRHead, or Identity for raw embeddings
    reducer   fit_transform(X)                       UMAPReducer (~10-D) for clustering
    view      fit_transform(X)                       UMAPReducer (2-D) for the map in the app
    clusterer fit(X_low, embeddings=...) / labels_   CascadeClusterer
    namer     fit(docs, labels, ...) / summaries_    ClusterNamer

`plain_pipeline` is the baseline (UMAP + HDBSCAN on raw embeddings) and `score_clusters`
compares labels with a hidden truth.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from core.discover.clustering import NOISE, CascadeClusterer, density_validity, prefer_raw, purity_score
from core.discover.naming import ClusterNamer, ClusterSummary
from core.discover.projection import UMAPReducer
from core.discover.simclr import SimCLRHead
from core.embed.encoders import l2_normalize

log = logging.getLogger(__name__)


class Identity:
    """A head that passes embeddings through (L2-normalised): no SimCLR."""

    def fit(self, X: np.ndarray | None, *, views: dict[str, np.ndarray] | None = None) -> Identity:
        """Nothing to learn; returns self."""
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """(N, D) -> (N, D) float32 with unit-length rows."""
        return l2_normalize(X)


class ClusterScores(NamedTuple):
    """Agreement of discovered clusters with a hidden truth."""

    purity: float
    nmi: float
    n_clusters: int
    share_unassigned: float


def score_clusters(labels: np.ndarray, hidden_truth: np.ndarray) -> ClusterScores:
    """Purity, NMI, cluster count and unassigned share of a clustering.

    Purity and NMI are computed over assigned points only (label != -1); the share of
    unassigned points is reported beside them, so a clustering cannot buy purity by leaving
    hard points out without it showing.

    Args:
        labels: (N,) int cluster labels, -1 unassigned.
        hidden_truth: (N,) true labels (never seen by the pipeline).

    Returns:
        ClusterScores(purity, nmi, n_clusters, share_unassigned); purity and nmi are nan when
        nothing is assigned.
    """
    from sklearn.metrics import normalized_mutual_info_score

    labels, truth = np.asarray(labels), np.asarray(hidden_truth)
    kept = labels != NOISE
    nmi = normalized_mutual_info_score(truth[kept], labels[kept]) if kept.any() else float("nan")
    return ClusterScores(
        purity=purity_score(labels, truth),
        nmi=float(nmi),
        n_clusters=int(len(np.unique(labels[kept]))),
        share_unassigned=float(1.0 - kept.mean()) if len(labels) else 0.0,
    )


class DiscoveryPipeline:
    """Orders the discovery stages; every stage has a default.

    Args:
        head: learns the representation (default SimCLRHead()); Identity() skips it.
        reducer: low-dimensional projection for clustering (default 10-D UMAP).
        view_reducer: 2-D projection for the map (default 2-D UMAP); None skips it.
        clusterer: default CascadeClusterer().
        namer: default ClusterNamer().
        cache_dir: where default UMAP stages cache their results (None: no cache).
        seed: seed of the default stages.
        raw_fallback: also project the raw embeddings (no head) and, when they cluster better by a label-free
            score (`core.discover.clustering.prefer_raw`), cluster those as the plain pipeline does (HDBSCAN only)
            instead; "default" (a 10-D UMAP), a reducer, or None (always the head's space; the default, and so the
            catalogue map's; node discovery turns it on: `core.discover.features.make_pipeline`).

    After `fit`: `embedding_` (N, d_head; the unit raw embeddings when the raw space was chosen), `low_` (N, d_low),
    `coords_` (N, 2) or None, `labels_` (N,), `summaries_` (list of ClusterSummary), `timings_` {stage: seconds},
    `space_` ("head" or "raw"), `space_scores_` {space: (DBCV, persistence)} ({} without a fallback), and when the
    raw space was chosen `head_space_` (the head's embedding and projection it set aside).
    """

    def __init__(
        self,
        *,
        head=None,
        reducer=None,
        view_reducer="default",
        clusterer=None,
        namer=None,
        cache_dir: str | Path | None = None,
        seed: int = 0,
        raw_fallback=None,
    ):
        self.head = head if head is not None else SimCLRHead(seed=seed)
        if raw_fallback == "default":
            raw_fallback = UMAPReducer(n_components=10, seed=seed, cache_dir=cache_dir)
        self.raw_fallback = raw_fallback
        self.reducer = reducer or UMAPReducer(n_components=10, seed=seed, cache_dir=cache_dir)
        if view_reducer == "default":
            view_reducer = UMAPReducer(n_components=2, min_dist=0.1, seed=seed, cache_dir=cache_dir)
        self.view_reducer = view_reducer
        self.clusterer = clusterer or CascadeClusterer(seed=seed)
        self.namer = namer or ClusterNamer()

    def fit(
        self,
        emb: np.ndarray | None,
        *,
        views: dict[str, np.ndarray] | None = None,
        docs: list[str] | None = None,
        known_labels: np.ndarray | None = None,
    ) -> DiscoveryPipeline:
        """Discover clusters among one taxonomy node's products.

        Args:
            emb: (N, D) float32 embeddings (or None with `views`).
            views: optional {modality: (N, D_m)} arrays, concatenated when `emb` is None.
            docs: N texts (title + description) for naming.
            known_labels: (N,) existing labels, only for the purity / majority label shown.

        Returns:
            self.
        """
        self.timings_: dict[str, float] = {}
        X = emb if emb is not None else np.concatenate(list(views.values()), axis=1)
        self.embedding_ = self._timed("head", lambda: self.head.fit(emb, views=views).transform(X))
        self.low_ = self._timed("reduce", lambda: self.reducer.fit_transform(self.embedding_))
        clusterer = self._choose_space(X) if self.raw_fallback is None else self._timed("space", lambda: self._choose_space(X))
        self.coords_ = self._timed("view", self._view) if self.view_reducer is not None else None
        self.labels_ = self._timed("cluster", lambda: clusterer.fit(self.low_, embeddings=X).labels_)
        self.clusterer_ = clusterer  # the fitted one: `clusterer`, or the raw space's when that was chosen
        self.summaries_: list[ClusterSummary] = self._timed(
            "name",
            lambda: self.namer.fit(docs, self.labels_, embeddings=X, known_labels=known_labels).summaries_,
        )
        return self

    def fit_predict(self, emb: np.ndarray | None, **kwargs) -> np.ndarray:
        """`fit` then return `labels_`: (N,) int, -1 unassigned."""
        return self.fit(emb, **kwargs).labels_

    def _choose_space(self, X: np.ndarray):
        """The clusterer for the chosen space; switches `embedding_` and `low_` to the raw space when it wins."""
        self.space_, self.space_scores_ = ("raw" if isinstance(self.head, Identity) else "head"), {}
        if self.raw_fallback is None or isinstance(self.head, Identity):
            return self.clusterer
        raw = Identity().transform(X)
        raw_low = self.raw_fallback.fit_transform(raw)
        size = self.clusterer.min_cluster_size or max(10, round(0.01 * len(X)))
        self.space_scores_ = {
            "head": density_validity(self.low_, min_cluster_size=size),
            "raw": density_validity(raw_low, min_cluster_size=size),
        }
        if not prefer_raw(self.space_scores_["head"], self.space_scores_["raw"]):
            return self.clusterer
        self.head_space_ = (self.embedding_, self.low_)  # what was set aside, for a benchmark to score it too
        self.space_, self.embedding_, self.low_ = "raw", raw, raw_low
        return CascadeClusterer(
            min_cluster_size=size, max_depth=0, noise_radius=None, max_unassigned=None, seed=self.clusterer.seed
        )

    def _view(self) -> np.ndarray:
        return self.view_reducer.fit_transform(self.embedding_)

    def _timed(self, stage: str, fn):
        start = time.perf_counter()
        out = fn()
        self.timings_[stage] = time.perf_counter() - start
        log.info("discovery %s: %.1fs", stage, self.timings_[stage])
        return out


def plain_pipeline(
    *,
    min_cluster_size: int | None = None,
    n_components: int = 10,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    namer: ClusterNamer | None = None,
) -> DiscoveryPipeline:
    """The baseline: UMAP + HDBSCAN on the raw embeddings (no SimCLR, no splits, no noise
    assignment, no unclear clusters left out), built from the same stages so that only those
    choices differ."""
    return DiscoveryPipeline(
        head=Identity(),
        reducer=UMAPReducer(n_components=n_components, seed=seed, cache_dir=cache_dir),
        view_reducer=None,
        clusterer=CascadeClusterer(
            min_cluster_size=min_cluster_size, max_depth=0, noise_radius=None, max_unassigned=None, seed=seed
        ),
        namer=namer,
        seed=seed,
    )
