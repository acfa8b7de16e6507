"""Cascade clustering: HDBSCAN, then splits of large or incoherent clusters, then noise assignment.

Stage 1 runs HDBSCAN on a low-dimensional projection. Stage 2 re-clusters each cluster that is
large (above a share of all points) or incoherent (mean cosine to its centroid, in the original
embedding space, below a threshold): its members are re-projected (PCA or UMAP) and split with
k-means (k chosen by silhouette) or HDBSCAN; a split is kept only if it is clean enough, and the
parts are split again up to a maximum depth. Stage 3 gives noise points to the nearest cluster
when they lie within a multiple of that cluster's spread. Stage 4 leaves unclear clusters unassigned:
those still less coherent than the stage-2 threshold (stage 2 could not split them cleanly), least
coherent first, while the unassigned share stays within a budget. Unassigned points keep the label -1.
"""

from __future__ import annotations

import numpy as np

from core.discover.projection import UMAPReducer, pca_project
from core.embed.encoders import l2_normalize

NOISE = -1


def cluster_ids(labels: np.ndarray) -> np.ndarray:
    """Sorted distinct cluster labels, noise (-1) excluded; (K,) int."""
    ids = np.unique(np.asarray(labels))
    return ids[ids != NOISE]


def cluster_centroids(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of each cluster's members.

    Args:
        X: (N, D) float array.
        labels: (N,) int, -1 for noise.

    Returns:
        ids: (K,) cluster labels; centroids: (K, D) float32 in the same order.
    """
    ids = cluster_ids(labels)
    cents = np.stack([X[labels == c].mean(axis=0) for c in ids]) if len(ids) else np.zeros((0, X.shape[1]))
    return ids, cents.astype(np.float32)


def cluster_coherence(emb: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean cosine similarity of each cluster's members to the cluster's centroid.

    Args:
        emb: (N, D) embeddings (the original space; rows need not be normalised).
        labels: (N,) int, -1 for noise.

    Returns:
        ids: (K,) cluster labels; coherence: (K,) float in [-1, 1].
    """
    unit = l2_normalize(emb)
    ids, cents = cluster_centroids(unit, labels)
    cents = l2_normalize(cents)
    coh = np.array([float((unit[labels == c] @ cents[i]).mean()) for i, c in enumerate(ids)])
    return ids, coh


def majority_labels(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Most common true label of each cluster and the share it holds.

    Args:
        labels: (N,) int cluster labels, -1 for noise.
        truth: (N,) known labels (any hashable dtype).

    Returns:
        ids: (K,) cluster labels; majority: (K,) the majority true label; purity: (K,) float, the
        share of the cluster's members that carry it.
    """
    labels, truth = np.asarray(labels), np.asarray(truth)
    ids = cluster_ids(labels)
    majority, share = [], []
    for c in ids:
        values, counts = np.unique(truth[labels == c], return_counts=True)
        majority.append(values[counts.argmax()])
        share.append(counts.max() / counts.sum())
    return ids, np.array(majority, dtype=truth.dtype), np.array(share, dtype=float)


def purity_score(labels: np.ndarray, truth: np.ndarray) -> float:
    """Share of assigned points (label != -1) whose true label is their cluster's majority label.

    Args:
        labels: (N,) int cluster labels, -1 for noise.
        truth: (N,) known labels.

    Returns:
        purity in [0, 1]; nan when no point is assigned.
    """
    labels = np.asarray(labels)
    ids, _, share = majority_labels(labels, truth)
    sizes = np.array([(labels == c).sum() for c in ids])
    return float((share * sizes).sum() / sizes.sum()) if len(ids) else float("nan")


def run_hdbscan(X: np.ndarray, *, min_cluster_size: int, min_samples: int | None = None, method: str = "eom") -> np.ndarray:
    """HDBSCAN labels of X: (N, d) -> (N,) int, -1 for noise."""
    import hdbscan

    if len(X) < max(min_cluster_size, 2):
        return np.full(len(X), NOISE)
    model = hdbscan.HDBSCAN(
        min_cluster_size=max(int(min_cluster_size), 2),
        min_samples=min_samples,
        cluster_selection_method=method,
        core_dist_n_jobs=1,
    )
    return model.fit_predict(np.asarray(X, dtype=np.float64)).astype(int)


def density_validity(X: np.ndarray, *, min_cluster_size: int) -> tuple[float, float, int]:
    """How well HDBSCAN's clusters stand out in X: (d, d) -> (DBCV, HDBSCAN's relative density-based validity;
    size-weighted mean cluster persistence; the number of clusters), the first two label-free and higher-is-better;
    (-1, 0, 0) when no cluster is found."""
    import hdbscan

    if len(X) < max(min_cluster_size, 2) * 2:
        return -1.0, 0.0, 0
    model = hdbscan.HDBSCAN(min_cluster_size=max(int(min_cluster_size), 2), gen_min_span_tree=True, core_dist_n_jobs=1)
    labels = model.fit_predict(np.asarray(X, dtype=np.float64))
    kept = labels[labels != NOISE]
    if not len(kept):
        return -1.0, 0.0, 0
    persistence = float(np.average(model.cluster_persistence_, weights=np.bincount(kept)))
    return float(model.relative_validity_), persistence, int(len(np.unique(kept)))


def prefer_raw(head: tuple[float, float, int], raw: tuple[float, float, int], *, min_clusters: int = 4) -> bool:
    """Whether the raw embeddings' projection clusters better than the head's (`density_validity` of each): it wins on
    either score (DBCV or persistence) and finds at least `min_clusters` clusters (the fewest proposals a default level
    shows: DBCV rates a space that merges the types into two clusters highly, as on Fashion-MNIST's footwear).
    Chosen on the held-out nodes (BENCHMARKS.md): the SimCLR head pulls a product's two views together, which on
    catalogues whose titles are style names ("Nils", H&M) learns the name rather than the type."""
    return (raw[0] > head[0] or raw[1] > head[1]) and raw[2] >= min_clusters


def kmeans_split(
    X: np.ndarray, *, max_k: int = 6, min_size: int = 10, min_silhouette: float = 0.15, seed: int = 0
) -> np.ndarray | None:
    """Split X: (n, d) with k-means, k in 2..max_k chosen by silhouette.

    Returns:
        (n,) labels 0..k-1 of the best split whose parts all hold at least `min_size` points and
        whose silhouette reaches `min_silhouette`; None when no k qualifies.
    """
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best, best_score = None, min_silhouette
    sample = min(len(X), 2000)
    for k in range(2, min(max_k, len(X) // max(min_size, 1)) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(X)
        if np.bincount(labels).min() < min_size:
            continue
        score = silhouette_score(X, labels, sample_size=sample, random_state=seed)
        if score >= best_score:
            best, best_score = labels, score
    return best


def hdbscan_split(
    X: np.ndarray,
    *,
    max_k: int = 6,
    min_size: int = 10,
    min_silhouette: float = 0.15,
    seed: int = 0,
) -> np.ndarray | None:
    """Split X: (n, d) with HDBSCAN.

    Returns:
        (n,) labels (-1 noise), or None when HDBSCAN finds fewer than two or more than `max_k`
        clusters, or their silhouette (noise left out) is below `min_silhouette`.
    """
    from sklearn.metrics import silhouette_score

    labels = run_hdbscan(X, min_cluster_size=min_size)
    kept = labels != NOISE
    if not 2 <= len(cluster_ids(labels)) <= max_k:
        return None
    score = silhouette_score(X[kept], labels[kept], sample_size=min(kept.sum(), 2000), random_state=seed)
    return labels if score >= min_silhouette else None


def _reproject_pca(X: np.ndarray, dims: int, seed: int) -> np.ndarray:
    return pca_project(X, n_components=dims, seed=seed)


def _reproject_umap(X: np.ndarray, dims: int, seed: int) -> np.ndarray:
    return UMAPReducer(n_components=dims, seed=seed).fit_transform(X)


def _reproject_none(X: np.ndarray, dims: int, seed: int) -> np.ndarray:
    return np.asarray(X, dtype=np.float32)


REPROJECT = {"pca": _reproject_pca, "umap": _reproject_umap, "none": _reproject_none}
SPLITTERS = {"kmeans": kmeans_split, "hdbscan": hdbscan_split}


def assign_noise(X: np.ndarray, labels: np.ndarray, *, radius: float = 2.0) -> np.ndarray:
    """Give each noise point to the nearest cluster centroid when close enough.

    A point at distance d from the centroid of cluster c joins c when d <= radius * spread_c,
    where spread_c is the root-mean-square distance of c's members to its centroid; among the
    clusters that qualify, the one with the smallest d / spread_c wins.

    Args:
        X: (N, d) the space the clusters were found in.
        labels: (N,) int, -1 for noise.
        radius: threshold as a multiple of each cluster's spread.

    Returns:
        (N,) new labels.
    """
    labels = np.asarray(labels).copy()
    ids, cents = cluster_centroids(X, labels)
    noise = np.flatnonzero(labels == NOISE)
    if len(ids) == 0 or len(noise) == 0:
        return labels
    spread = np.array([np.sqrt(((X[labels == c] - cents[i]) ** 2).sum(1).mean()) for i, c in enumerate(ids)])
    dist = np.sqrt(((X[noise, None, :] - cents[None, :, :]) ** 2).sum(-1))
    rel = dist / np.maximum(spread, 1e-12)
    best = rel.argmin(axis=1)
    ok = rel[np.arange(len(noise)), best] <= radius
    labels[noise[ok]] = ids[best[ok]]
    return labels


class CascadeClusterer:
    """Three-stage cascade clustering with `fit` / `fit_predict` and `labels_`.

    Args:
        min_cluster_size: HDBSCAN minimum cluster size; None picks max(10, 1% of N).
        min_samples: HDBSCAN min_samples (None: same as min_cluster_size).
        selection: HDBSCAN cluster selection method, "eom" or "leaf".
        max_depth: how many times a cluster may be split again (0 disables stage 2).
        max_share: a cluster holding more than this share of all points counts as large.
        coherence_threshold: a cluster whose coherence is below this counts as incoherent;
            "auto" uses the median coherence of the stage-1 clusters (coherence levels differ
            between encoders, so a fixed number does not carry over).
        split_method: "kmeans" (k by silhouette) or "hdbscan" (whose noise points leave the
            cluster and wait for stage 3).
        split_projection: how members are re-projected before a split: "pca", "umap", "none".
        split_dims: width of that re-projection.
        max_k: largest k tried by the k-means split.
        min_silhouette: a split is kept only when its silhouette reaches this.
        noise_radius: stage 3 radius as a multiple of cluster spread; None disables stage 3.
        max_unassigned: stage 4 budget: incoherent clusters (below the coherence threshold after
            stage 2) are left unassigned, least coherent first, while the share of unassigned points
            stays at or below this; None disables stage 4.
        seed: random state of the splits.
    """

    def __init__(
        self,
        *,
        min_cluster_size: int | None = None,
        min_samples: int | None = None,
        selection: str = "eom",
        max_depth: int = 2,
        max_share: float = 0.2,
        coherence_threshold: float | str = "auto",
        split_method: str = "kmeans",
        split_projection: str = "pca",
        split_dims: int = 10,
        max_k: int = 6,
        min_silhouette: float = 0.1,
        noise_radius: float | None = 2.0,
        max_unassigned: float | None = 0.2,
        seed: int = 0,
    ):
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.selection = selection
        self.max_depth = max_depth
        self.max_share = max_share
        self.coherence_threshold = coherence_threshold
        self.split_method = split_method
        self.split_projection = split_projection
        self.split_dims = split_dims
        self.max_k = max_k
        self.min_silhouette = min_silhouette
        self.noise_radius = noise_radius
        self.max_unassigned = max_unassigned
        self.seed = seed

    def fit(self, X: np.ndarray, *, embeddings: np.ndarray | None = None) -> CascadeClusterer:
        """Cluster the points.

        Args:
            X: (N, d) low-dimensional coordinates (e.g. a 10-D UMAP) that HDBSCAN runs on.
            embeddings: (N, D) original embeddings, for coherence and the stage-2 re-projection;
                None uses X.

        Sets:
            labels_: (N,) int, -1 unassigned. stage1_labels_, stage2_labels_, stage3_labels_: labels
            after those stages. cluster_ids_: (K,). coherence_: (K,) mean cosine to centroid in
            `embeddings`. parent_: {final cluster id: stage-1 cluster id it came from}. unclear_:
            [(stage-3 cluster id, coherence, size)] of the clusters stage 4 left unassigned.
        """
        X = np.asarray(X, dtype=np.float32)
        emb = X if embeddings is None else np.asarray(embeddings, dtype=np.float32)
        self.min_size_ = self.min_cluster_size or max(10, round(0.01 * len(X)))
        self.stage1_labels_ = run_hdbscan(X, min_cluster_size=self.min_size_, min_samples=self.min_samples, method=self.selection)
        self.threshold_ = self._threshold(self.stage1_labels_, emb)
        self.stage2_labels_, self.parent_ = self._split_all(self.stage1_labels_, emb)
        labels = self.stage2_labels_
        if self.noise_radius is not None:
            labels = assign_noise(X, labels, radius=self.noise_radius)
        self.stage3_labels_ = labels
        self.unclear_: list[tuple[int, float, int]] = []
        if self.max_unassigned is not None:
            labels = self._leave_unclear(labels, emb)
        self.labels_ = labels
        self.cluster_ids_, self.coherence_ = cluster_coherence(emb, labels)
        return self

    def _leave_unclear(self, labels: np.ndarray, emb: np.ndarray) -> np.ndarray:
        """Stage 4: unassign the least coherent clusters within the budget; relabel 0..K-1."""
        ids, coh = cluster_coherence(emb, labels)
        unassigned = int((labels == NOISE).sum())
        budget = self.max_unassigned * len(labels)
        out = labels.copy()
        for i in np.argsort(coh, kind="stable"):
            if coh[i] >= self.threshold_:
                break
            size = int((labels == ids[i]).sum())
            if unassigned + size > budget:
                break
            out[labels == ids[i]] = NOISE
            unassigned += size
            self.unclear_.append((int(ids[i]), round(float(coh[i]), 4), size))
        if not self.unclear_:
            return out
        kept = cluster_ids(out)
        self.parent_ = {new: self.parent_[int(old)] for new, old in enumerate(kept)}
        relabelled = np.full_like(out, NOISE)
        assigned = out != NOISE
        relabelled[assigned] = np.searchsorted(kept, out[assigned])
        return relabelled

    def fit_predict(self, X: np.ndarray, *, embeddings: np.ndarray | None = None) -> np.ndarray:
        """`fit` then return `labels_`: (N,) int."""
        return self.fit(X, embeddings=embeddings).labels_

    def _threshold(self, labels: np.ndarray, emb: np.ndarray) -> float:
        if self.coherence_threshold != "auto":
            return float(self.coherence_threshold)
        coh = cluster_coherence(emb, labels)[1]
        return float(np.median(coh)) if len(coh) else 1.0

    def _split_all(self, labels: np.ndarray, emb: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
        """Stage 2: recursively split large or incoherent clusters; relabel 0..K-1."""
        from threadpoolctl import threadpool_limits

        out = np.full(len(labels), NOISE)
        parent: dict[int, int] = {}
        with threadpool_limits(limits=1):  # many small problems: extra threads cost more than they save
            for c in cluster_ids(labels):
                for part in self._split(np.flatnonzero(labels == c), emb, len(labels), depth=0):
                    new = len(parent)
                    out[part] = new
                    parent[new] = int(c)
        return out, parent

    def _split(self, idx: np.ndarray, emb: np.ndarray, n_total: int, *, depth: int) -> list[np.ndarray]:
        """Member index arrays of the parts of one cluster (itself when it is not split)."""
        if not self._wants_split(idx, emb, n_total, depth):
            return [idx]
        Z = REPROJECT[self.split_projection](emb[idx], self.split_dims, self.seed)
        sub = SPLITTERS[self.split_method](
            Z, max_k=self.max_k, min_size=self.min_size_, min_silhouette=self.min_silhouette, seed=self.seed
        )
        if sub is None:
            return [idx]
        parts = []
        for c in cluster_ids(sub):
            parts += self._split(idx[sub == c], emb, n_total, depth=depth + 1)
        return parts

    def _wants_split(self, idx: np.ndarray, emb: np.ndarray, n_total: int, depth: int) -> bool:
        if depth >= self.max_depth or len(idx) < 2 * self.min_size_:
            return False
        if len(idx) > self.max_share * n_total:
            return True
        _, coh = cluster_coherence(emb[idx], np.zeros(len(idx), int))
        return float(coh[0]) < self.threshold_
