"""The taxonomy as arrays, and decoding per-level scores into valid root-to-leaf paths (numpy only).

A taxonomy is a set of label paths (tuples of names, variable depth). `TaxonomyTree` turns it into
arrays: per level a sorted list of nodes (a node is its path prefix, so equal names under different
parents stay distinct), the parent index of every node and a child mask per level. Because nodes are
sorted by prefix, the children of one parent are contiguous.

Node-index arrays, used throughout `core/`: `(N, depth) int64`, column `L` holds the node index at
level `L`, `-1` past the end of a path.

Decoding (`decode`) turns per-level log P(node | parent) (`conditional_log_probs`) into paths, greedily or
by beam search over path log-probabilities, so every prediction is a valid root-to-leaf path; the torch
heads and the teacher-forced loss that produce the logits are in `core.classify.heads`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Path_ = tuple[str, ...]


class TaxonomyTree:
    """A taxonomy as per-level arrays.

    Attributes:
        levels: per level, the node prefixes (tuples of names), sorted.
        parent: per level, `(n_L,) int64` index of each node's parent at level L-1 (-1 at level 0).
        has_children: per level, `(n_L,) bool`.
        depth: number of levels (length of the longest path).
    """

    def __init__(self, levels: Sequence[Sequence[Path_]]):
        self.levels = [sorted({tuple(p) for p in level}) for level in levels]
        self._index = [{p: i for i, p in enumerate(level)} for level in self.levels]
        self.parent = [self._parents(i) for i in range(len(self.levels))]
        self.has_children = [
            np.isin(np.arange(len(lv)), self.parent[i + 1]) if i + 1 < self.depth else np.zeros(len(lv), bool)
            for i, lv in enumerate(self.levels)
        ]

    def _parents(self, level: int) -> np.ndarray:
        if level == 0:
            return np.full(len(self.levels[0]), -1, dtype=np.int64)
        return np.array([self._index[level - 1][p[:-1]] for p in self.levels[level]], dtype=np.int64)

    @classmethod
    def from_paths(cls, paths: Sequence[Sequence[str]]) -> TaxonomyTree:
        """Builds the tree holding every prefix of every path.

        Args:
            paths: label paths, e.g. `("Footwear", "Shoes", "Heels")`; depths may differ.
        """
        paths = [tuple(p) for p in paths if len(p)]
        depth = max((len(p) for p in paths), default=0)
        return cls([[p[: d + 1] for p in paths if len(p) > d] for d in range(depth)])

    @property
    def depth(self) -> int:
        """Number of levels."""
        return len(self.levels)

    @property
    def sizes(self) -> list[int]:
        """Number of nodes per level."""
        return [len(level) for level in self.levels]

    def names(self, level: int) -> list[str]:
        """Display names (last path element) of the nodes at `level`."""
        return [p[-1] for p in self.levels[level]]

    def child_mask(self, level: int) -> np.ndarray:
        """`(n_{L-1}, n_L) bool`: `[p, c]` is True when node c at `level` is a child of p (level >= 1)."""
        mask = np.zeros((self.sizes[level - 1], self.sizes[level]), dtype=bool)
        mask[self.parent[level], np.arange(self.sizes[level])] = True
        return mask

    def encode(self, paths: Sequence[Sequence[str]]) -> np.ndarray:
        """Label paths to node indices.

        Args:
            paths: N label paths; each must be a path of this tree (KeyError otherwise).

        Returns:
            `(N, depth) int64`, -1 past the end of a path.
        """
        out = np.full((len(paths), self.depth), -1, dtype=np.int64)
        for row, path in enumerate(paths):
            path = tuple(path)
            if len(path) > self.depth:
                raise KeyError(f"path deeper than the taxonomy: {path}")
            for level in range(len(path)):
                out[row, level] = self._index[level][path[: level + 1]]
        return out

    def decode(self, nodes: np.ndarray) -> list[Path_]:
        """Node indices `(N, depth) int` to label paths (the deepest node's prefix per row)."""
        paths = []
        for row in np.asarray(nodes):
            valid = np.flatnonzero(row >= 0)
            paths.append(self.levels[valid[-1]][row[valid[-1]]] if len(valid) else ())
        return paths

    def within(self, labels: Sequence[Sequence[str] | None]) -> np.ndarray | None:
        """`(N, depth) int64` prefixes that predictions must stay below: the node of each label that is an inner node
        of this tree (a category mapped onto a common ancestor), -1 elsewhere; None when no label is one."""
        out = np.full((len(labels), self.depth), -1, dtype=np.int64)
        for row, label in enumerate(labels):
            path = tuple(label or ())
            if not path or len(path) > self.depth or path not in self._index[len(path) - 1]:
                continue
            if self.has_children[len(path) - 1][self._index[len(path) - 1][path]]:
                out[row] = self.encode([path])[0]
        return out if (out >= 0).any() else None

    def leaf_paths(self) -> np.ndarray:
        """All root-to-leaf paths as node indices, `(P, depth) int64`, -1 past the end."""
        leaves = [p for level in self.levels for p in level]
        leaves = [p for p in leaves if not self.has_children[len(p) - 1][self._index[len(p) - 1][p]]]
        return self.encode(leaves)

    def is_valid(self, nodes: np.ndarray) -> np.ndarray:
        """`(N,) bool`: each row of `(N, depth)` node indices is a full root-to-leaf path of the tree."""
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1, self.depth)
        present = nodes >= 0
        in_range = (nodes >= -1).all(1) & (nodes < np.array(self.sizes)).all(1)
        ok = present[:, 0] & in_range & _no_gaps(nodes)
        safe = np.where(ok[:, None] & present, nodes, 0)
        for level in range(1, self.depth):
            ok &= ~present[:, level] | (self.parent[level][safe[:, level]] == safe[:, level - 1])
        deepest = present.sum(1) - 1
        for level in range(self.depth):
            rows = deepest == level
            ok[rows] &= ~self.has_children[level][safe[rows, level]]
        return ok

    def to_json(self) -> dict:
        """JSON-ready form (lists of paths per level)."""
        return {"levels": [[list(p) for p in level] for level in self.levels]}

    @classmethod
    def from_json(cls, data: dict) -> TaxonomyTree:
        """Inverse of `to_json`."""
        return cls([[tuple(p) for p in level] for level in data["levels"]])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TaxonomyTree) and self.levels == other.levels

    __hash__ = None  # mutable-looking container; compare by value only


def _no_gaps(nodes: np.ndarray) -> np.ndarray:
    """Rows whose valid entries form a prefix (no node after a -1)."""
    valid = nodes >= 0
    return (np.cumsum(~valid, axis=1) * valid).sum(1) == 0


@dataclass
class HierarchicalPrediction:
    """Predicted paths.

    Attributes:
        nodes: `(N, depth) int64` node index per level, -1 past the end of the path.
        level_conf: `(N, depth) float32` P(node | predicted parent); 1.0 past the end of the path.
        path_conf: `(N,) float32` product of the level confidences.
    """

    nodes: np.ndarray
    level_conf: np.ndarray
    path_conf: np.ndarray

    def take(self, rows: np.ndarray) -> HierarchicalPrediction:
        """The predictions of the given rows (indices or boolean mask)."""
        return HierarchicalPrediction(self.nodes[rows], self.level_conf[rows], self.path_conf[rows])

    def __len__(self) -> int:
        return len(self.nodes)


def conditional_log_probs(level_logits: Sequence[np.ndarray], tree: TaxonomyTree) -> list[np.ndarray]:
    """Per-level logits to log P(node | parent), a softmax within each group of siblings.

    Args:
        level_logits: per level `(N, n_L)` float logits.
        tree: the taxonomy.

    Returns:
        per level `(N, n_L) float64`; within the children of any parent, exp sums to 1.
    """
    out = []
    for level, logits in enumerate(level_logits):
        logits = np.asarray(logits, dtype=np.float64)
        starts = np.flatnonzero(np.r_[True, np.diff(tree.parent[level]) != 0])
        sizes = np.diff(np.r_[starts, logits.shape[1]])
        group_max = np.repeat(np.maximum.reduceat(logits, starts, axis=1), sizes, axis=1)
        shifted = logits - group_max
        group_sum = np.repeat(np.add.reduceat(np.exp(shifted), starts, axis=1), sizes, axis=1)
        out.append(shifted - np.log(group_sum))
    return out


def constrain(cond_log_probs: Sequence[np.ndarray], within: np.ndarray | None) -> list[np.ndarray]:
    """`cond_log_probs` with every node off the forced prefix `within (N, depth)` (-1: free) at -inf."""
    if within is None:
        return list(cond_log_probs)
    out = []
    for level, logp in enumerate(cond_log_probs):
        forced = within[:, level]
        keep = (forced[:, None] < 0) | (np.arange(logp.shape[1])[None, :] == forced[:, None])
        out.append(np.where(keep, logp, -np.inf))
    return out


def decode(
    cond_log_probs: Sequence[np.ndarray], tree: TaxonomyTree, *, beam_width: int = 1, within: np.ndarray | None = None
) -> HierarchicalPrediction:
    """Best valid path per row, greedy (`beam_width=1`) or by beam search over path log-probability.

    A path ends at a node without children. With `beam_width` at least the number of leaves the search
    is exact: it returns the root-to-leaf path of largest summed log-probability.

    Args:
        cond_log_probs: per level `(N, n_L)` log P(node | parent), from `conditional_log_probs`.
        tree: the taxonomy.
        beam_width: number of partial paths kept per row.
        within: `(N, depth)` node prefix each row's path must start with (-1: free), see `TaxonomyTree.within`.

    Returns:
        `HierarchicalPrediction`, every row a valid path of `tree`.
    """
    cond_log_probs = constrain(cond_log_probs, within)
    n = len(cond_log_probs[0])
    first = cond_log_probs[0]
    k = min(beam_width, first.shape[1])
    top = np.argsort(-first, axis=1, kind="stable")[:, :k]
    beams = np.full((n, k, tree.depth), -1, dtype=np.int64)
    beams[:, :, 0] = top
    scores = np.take_along_axis(first, top, axis=1)
    for level in range(1, tree.depth):
        beams, scores = _beam_step(beams, scores, cond_log_probs[level], tree, level, beam_width)
    best = np.argmax(scores, axis=1)
    nodes = beams[np.arange(n), best]
    return _with_confidence(nodes, cond_log_probs)


def _beam_step(beams, scores, logp, tree, level, width):
    """Extends every beam by one level (or carries it over if it has ended); keeps the top `width`."""
    n, k, _ = beams.shape
    size = logp.shape[1]
    prev = beams[:, :, level - 1]
    alive = np.isfinite(scores)
    expand = alive & (prev >= 0) & tree.has_children[level - 1][np.maximum(prev, 0)]
    is_child = tree.parent[level][None, None, :] == prev[:, :, None]
    cand = np.where(expand[:, :, None] & is_child, scores[:, :, None] + logp[:, None, :], -np.inf)
    carried = np.where(alive & ~expand, scores, -np.inf)
    flat = np.concatenate([cand.reshape(n, k * size), carried], axis=1)
    width = min(width, flat.shape[1])
    top = np.argsort(-flat, axis=1, kind="stable")[:, :width]
    new_scores = np.take_along_axis(flat, top, axis=1)
    source = np.where(top < k * size, top // size, top - k * size)
    new_beams = np.take_along_axis(beams, source[:, :, None], axis=1).copy()
    new_beams[:, :, level] = np.where(top < k * size, top % size, -1)
    return new_beams, new_scores


def _with_confidence(nodes: np.ndarray, cond_log_probs: Sequence[np.ndarray]) -> HierarchicalPrediction:
    conf = np.ones(nodes.shape, dtype=np.float64)
    for level, logp in enumerate(cond_log_probs):
        picked = nodes[:, level]
        vals = np.take_along_axis(logp, np.maximum(picked, 0)[:, None], axis=1)[:, 0]
        conf[:, level] = np.where(picked >= 0, np.exp(vals), 1.0)
    return HierarchicalPrediction(nodes, conf.astype(np.float32), conf.prod(axis=1).astype(np.float32))


def marginal_probs(cond_log_probs: Sequence[np.ndarray], tree: TaxonomyTree) -> list[np.ndarray]:
    """Per level `(N, n_L) float32` P(node) = P(node | parent) * P(parent)."""
    out = [np.exp(cond_log_probs[0])]
    for level in range(1, tree.depth):
        out.append(np.exp(cond_log_probs[level]) * out[-1][:, tree.parent[level]])
    return [p.astype(np.float32) for p in out]
