"""Hierarchical classification metrics.

Inputs are either

- node-index arrays `(N, depth) int` as produced by `TaxonomyTree.encode` / `HierarchicalPrediction.nodes`
  (-1 past the end of a path; a node index identifies its whole prefix), or
- sequences of N label paths (tuples of names, any depth), e.g. from a flat baseline.

Hierarchical precision/recall/F1 follow Kiritchenko et al. (2005): every path is augmented with its
ancestors (its set of prefixes), and micro-averaged over products:
hP = sum |P_i & T_i| / sum |P_i|, hR = sum |P_i & T_i| / sum |T_i|, hF1 = 2 hP hR / (hP + hR).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _kind(y) -> str:
    return "array" if isinstance(y, np.ndarray) and y.dtype.kind in "iu" else "paths"


def _counts_arrays(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[int, int, int]:
    if y_true.shape != y_pred.shape:
        raise ValueError(f"shape mismatch: {y_true.shape} vs {y_pred.shape}")
    both = (y_true == y_pred) & (y_true >= 0)
    return int(both.sum()), int((y_pred >= 0).sum()), int((y_true >= 0).sum())


def _prefixes(path: Sequence[str]) -> set[tuple[str, ...]]:
    path = tuple(path)
    return {path[: i + 1] for i in range(len(path))}


def _counts_paths(y_true: Sequence, y_pred: Sequence) -> tuple[int, int, int]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"length mismatch: {len(y_true)} vs {len(y_pred)}")
    inter = n_pred = n_true = 0
    for t, p in zip(y_true, y_pred):
        tp, pp = _prefixes(t), _prefixes(p)
        inter, n_pred, n_true = inter + len(tp & pp), n_pred + len(pp), n_true + len(tp)
    return inter, n_pred, n_true


_COUNTERS = {"array": _counts_arrays, "paths": _counts_paths}


def hierarchical_prf(y_true, y_pred) -> dict[str, float]:
    """Micro hierarchical precision, recall and F1 on ancestor-augmented label sets.

    Args:
        y_true: `(N, depth) int` node indices or N label paths.
        y_pred: same kind and length as `y_true`.

    Returns:
        `{"hP": float, "hR": float, "hF1": float}` (0.0 where undefined).
    """
    kind = _kind(y_true)
    if kind != _kind(y_pred):
        raise TypeError("y_true and y_pred must both be node-index arrays or both be path sequences")
    inter, n_pred, n_true = _COUNTERS[kind](y_true, y_pred)
    hp = inter / n_pred if n_pred else 0.0
    hr = inter / n_true if n_true else 0.0
    hf = 2 * hp * hr / (hp + hr) if hp + hr else 0.0
    return {"hP": hp, "hR": hr, "hF1": hf}


def hierarchical_f1(y_true, y_pred) -> float:
    """Micro hierarchical F1 (see `hierarchical_prf`)."""
    return hierarchical_prf(y_true, y_pred)["hF1"]


def per_level_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Accuracy per level over the products whose true path reaches that level.

    Args:
        y_true: `(N, depth) int` node indices, -1 past the end.
        y_pred: `(N, depth) int`.

    Returns:
        `(depth,) float64`; NaN for a level no true path reaches.
    """
    return _per_level(y_true, y_pred, lambda t, p: float(np.mean(p == t)))


def _per_level(y_true, y_pred, score) -> np.ndarray:
    """`score(true, pred)` of each level over the rows whose true path reaches it; NaN where none does."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    out = np.full(y_true.shape[1], np.nan)
    for level in range(y_true.shape[1]):
        rows = y_true[:, level] >= 0
        if rows.any():
            out[level] = score(y_true[rows, level], y_pred[rows, level])
    return out


def per_level_macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Macro-F1 per level over the products whose true path reaches that level.

    Classes are the true nodes at that level (a prediction of another node, or -1, counts as a miss
    for the true class and a false positive for the predicted one if it is a true class elsewhere).

    Args:
        y_true: `(N, depth) int` node indices, -1 past the end.
        y_pred: `(N, depth) int`.

    Returns:
        `(depth,) float64`; NaN for a level no true path reaches.
    """
    from sklearn.metrics import f1_score

    return _per_level(y_true, y_pred, lambda t, p: f1_score(t, p, labels=np.unique(t), average="macro", zero_division=0))


def path_validity_rate(y_pred: np.ndarray, tree) -> float:
    """Share of predicted rows `(N, depth) int` that are full root-to-leaf paths of `tree`."""
    y_pred = np.asarray(y_pred)
    return float(tree.is_valid(y_pred).mean()) if len(y_pred) else 1.0


def hierarchical_report(y_true: np.ndarray, y_pred: np.ndarray, *, tree=None) -> dict:
    """All metrics for node-index arrays `(N, depth) int`, as plain Python types (JSON-ready).

    Returns:
        dict with hP, hR, hF1, level_accuracy (list), level_macro_f1 (list) and, with `tree`,
        path_validity.
    """
    report = hierarchical_prf(np.asarray(y_true), np.asarray(y_pred))
    report["level_accuracy"] = per_level_accuracy(y_true, y_pred).tolist()
    report["level_macro_f1"] = per_level_macro_f1(y_true, y_pred).tolist()
    if tree is not None:
        report["path_validity"] = path_validity_rate(y_pred, tree)
    return report
