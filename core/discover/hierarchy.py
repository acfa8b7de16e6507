"""The clusters of a discovery run merged into a tree, cut at any number of groups.

`build_tree` merges leaf clusters agglomeratively, each represented by the sum of its members' unit vectors and
its size (so that a merge of clusters is exact, not an average of averages):

- "average": size-weighted average linkage on cosine similarity; the mean cosine between the members of two sets
  of unit vectors is `(S_a . S_b) / (n_a n_b)` for member sums S, so it is exact from the sums;
- "ward": size-weighted Ward on the centroids, `n_a n_b / (n_a + n_b) * |c_a - c_b|^2`, what Ward on the points
  would pay had each cluster been collapsed to its centroid.

The vectors may be any per-product representation (the embeddings, the SimCLR space) or, for c-TF-IDF trees as
BERTopic's `hierarchical_topics` builds them, one row per cluster (then `leaf_vectors` holds the rows and `sizes`
the cluster sizes).

`ClusterTree.cut(k)` gives the k groups left after the first K - k merges; `default_k` picks k without labels (the
largest relative gap between successive merge heights, or the silhouette of the products at each cut).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.discover.clustering import NOISE, cluster_ids
from core.embed.encoders import l2_normalize

LINKAGES = ("average", "ward")


@dataclass
class ClusterTree:
    """A binary merge tree over K leaf clusters.

    Node i < K is the leaf cluster `leaf_ids[i]`; node K + j is the j-th merge, joining `children[j]` at
    `heights[j]` (non-decreasing). `sizes` holds every node's number of products (2K - 1 entries).
    """

    leaf_ids: np.ndarray
    children: list[tuple[int, int]]
    heights: np.ndarray
    sizes: np.ndarray
    parent: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.leaf_ids)
        self.parent = {int(c): k + j for j, pair in enumerate(self.children) for c in pair}

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_ids)

    @property
    def root(self) -> int:
        return self.n_leaves + len(self.children) - 1 if self.children else 0

    def leaves_under(self, node: int) -> list[int]:
        """Leaf positions (0..K-1) under `node`, in increasing order."""
        stack, out = [int(node)], []
        while stack:
            n = stack.pop()
            if n < self.n_leaves:
                out.append(n)
            else:
                stack.extend(self.children[n - self.n_leaves])
        return sorted(out)

    def level(self, k: int) -> list[int]:
        """The node ids of the k groups left after the first K - k merges, largest first (k clipped to 1..K)."""
        k = int(min(max(k, 1), self.n_leaves))
        alive = set(range(self.n_leaves))
        for j in range(self.n_leaves - k):
            a, b = self.children[j]
            alive -= {a, b}
            alive.add(self.n_leaves + j)
        return sorted(alive, key=lambda n: (-int(self.sizes[n]), n))

    def cut(self, k: int) -> np.ndarray:
        """(K,) group index 0..k-1 of each leaf at the level of k groups (0 = the largest group)."""
        out = np.empty(self.n_leaves, dtype=int)
        for g, node in enumerate(self.level(k)):
            out[self.leaves_under(node)] = g
        return out

    def labels_at(self, labels: np.ndarray, k: int) -> np.ndarray:
        """Product labels at the level of k groups: each leaf cluster label replaced by its group (noise stays -1)."""
        labels = np.asarray(labels)
        group = self.cut(k)
        lookup = {int(c): int(g) for c, g in zip(self.leaf_ids, group)}
        return np.array([lookup.get(int(v), NOISE) for v in labels], dtype=int)

    def subgroups(self, node: int, *, max_parts: int = 8) -> list[int]:
        """The parts a group splits into: its subtree cut at the largest relative gap between merge heights
        (2..max_parts parts); [] for a leaf."""
        if node < self.n_leaves:
            return []
        merges = sorted(j for j in range(len(self.children)) if self.n_leaves + j in self._internal_under(node))
        heights = self.heights[merges]
        n_leaves = len(merges) + 1
        best_parts = min(2, n_leaves)
        if n_leaves > 2:
            candidates = range(2, min(max_parts, n_leaves) + 1)
            best_parts = max(candidates, key=lambda p: _relative_gap(heights, n_leaves - p))
        alive = {int(node)}
        for j in reversed(merges[n_leaves - best_parts :]):
            top = self.n_leaves + j
            if top in alive:
                alive.remove(top)
                alive.update(self.children[j])
        return sorted(alive, key=lambda n: (-int(self.sizes[n]), n))

    def _internal_under(self, node: int) -> set[int]:
        stack, out = [int(node)], set()
        while stack:
            n = stack.pop()
            if n >= self.n_leaves:
                out.add(n)
                stack.extend(self.children[n - self.n_leaves])
        return out

    def as_dict(self) -> dict:
        """JSON-ready: leaf cluster ids, merges [[a, b, height], ...] and node sizes."""
        return {
            "leaf_ids": [int(c) for c in self.leaf_ids],
            "merges": [[int(a), int(b), round(float(h), 6)] for (a, b), h in zip(self.children, self.heights)],
            "sizes": [int(s) for s in self.sizes],
        }

    @classmethod
    def from_dict(cls, data: dict) -> ClusterTree:
        merges = data["merges"]
        return cls(
            leaf_ids=np.asarray(data["leaf_ids"], dtype=int),
            children=[(int(a), int(b)) for a, b, _ in merges],
            heights=np.asarray([h for *_, h in merges], dtype=float),
            sizes=np.asarray(data["sizes"], dtype=int),
        )


def _relative_gap(heights: np.ndarray, applied: int) -> float:
    """How much the next merge (after `applied` merges) jumps over the last one applied, relative to it."""
    if applied >= len(heights):
        return -np.inf
    last = heights[applied - 1] if applied > 0 else 0.0
    return float((heights[applied] - last) / max(heights[applied], 1e-12))


def leaf_sums(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(leaf ids (K,), sums of the members' unit vectors (K, D), sizes (K,)) of each cluster of `labels`."""
    unit = l2_normalize(np.asarray(X, dtype=np.float32))
    labels = np.asarray(labels)
    ids = cluster_ids(labels)
    sums = np.stack([unit[labels == c].sum(axis=0) for c in ids]) if len(ids) else np.zeros((0, unit.shape[1]))
    sizes = np.array([(labels == c).sum() for c in ids], dtype=int)
    return ids, sums.astype(np.float64), sizes


def build_tree(
    leaf_ids: np.ndarray, leaf_vectors: np.ndarray, sizes: np.ndarray, *, linkage: str = "average", sums: bool = True
) -> ClusterTree:
    """Merge K leaf clusters into a binary tree.

    Args:
        leaf_ids: (K,) cluster labels.
        leaf_vectors: (K, D) the sum of each cluster's members' unit vectors (`sums=True`, see `leaf_sums`), or one
            vector per cluster (`sums=False`: e.g. c-TF-IDF rows; each is normalised and weighted by its size).
        sizes: (K,) products per cluster.
        linkage: "average" (cosine) or "ward".

    Returns:
        ClusterTree whose merge heights are non-decreasing.
    """
    if linkage not in LINKAGES:
        raise ValueError(f"unknown linkage {linkage!r}; one of {LINKAGES}")
    sizes = np.asarray(sizes, dtype=float)
    vec = np.asarray(leaf_vectors, dtype=np.float64)
    if not sums:
        vec = l2_normalize(vec.astype(np.float32)).astype(np.float64) * sizes[:, None]
    k = len(sizes)
    total = list(vec)
    count = list(sizes)
    alive = list(range(k))
    children, heights = [], []
    while len(alive) > 1:
        S = np.stack([total[n] for n in alive])
        n = np.array([count[m] for m in alive])
        cost = _costs(S, n, linkage)
        i, j = np.unravel_index(np.argmin(cost), cost.shape)
        a, b = alive[i], alive[j]
        children.append((a, b))
        heights.append(float(cost[i, j]))
        total.append(total[a] + total[b])
        count.append(count[a] + count[b])
        alive = [m for m in alive if m not in (a, b)] + [len(total) - 1]
    heights = np.maximum.accumulate(np.asarray(heights)) if heights else np.zeros(0)
    return ClusterTree(leaf_ids=np.asarray(leaf_ids, dtype=int), children=children, heights=heights, sizes=np.array(count, int))


def _costs(S: np.ndarray, n: np.ndarray, linkage: str) -> np.ndarray:
    """(m, m) merge cost of every pair of alive nodes (inf on the diagonal)."""
    if linkage == "average":
        cost = 1.0 - (S @ S.T) / np.outer(n, n)
    else:
        cents = S / n[:, None]
        sq = (cents**2).sum(1)
        dist2 = np.maximum(sq[:, None] + sq[None, :] - 2 * cents @ cents.T, 0.0)
        cost = np.sqrt(2 * np.outer(n, n) / (n[:, None] + n[None, :]) * dist2)
    np.fill_diagonal(cost, np.inf)
    return cost


def gap_k(tree: ClusterTree, *, k_min: int = 2, k_max: int = 12) -> int:
    """The number of groups just before the largest relative jump in merge height, searched in k_min..k_max."""
    k_max = min(k_max, tree.n_leaves)
    if k_max <= k_min:
        return max(min(k_min, tree.n_leaves), 1)
    return max(range(k_min, k_max + 1), key=lambda k: (_relative_gap(tree.heights, tree.n_leaves - k), -k))


def silhouette_k(
    tree: ClusterTree, X: np.ndarray, labels: np.ndarray, *, k_min: int = 2, k_max: int = 12, sample: int = 2000, seed: int = 0
) -> int:
    """The number of groups whose cut has the highest cosine silhouette of the products (a sample of them)."""
    from sklearn.metrics import silhouette_score

    labels = np.asarray(labels)
    kept = np.flatnonzero(labels != NOISE)
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(kept, min(sample, len(kept)), replace=False)) if len(kept) else kept
    k_max = min(k_max, tree.n_leaves)
    best, best_score = max(min(k_min, tree.n_leaves), 1), -np.inf
    for k in range(k_min, k_max + 1):
        grouped = tree.labels_at(labels[pick], k)
        if len(np.unique(grouped)) < 2:
            continue
        score = silhouette_score(X[pick], grouped, metric="cosine")
        if score > best_score:
            best, best_score = k, score
    return best


DEFAULT_K = {"gap": gap_k, "silhouette": silhouette_k}
