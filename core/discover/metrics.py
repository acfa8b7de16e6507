"""Scores of a discovered grouping against a hidden truth: ARI, NMI, purity, unassigned share, name accuracy.

ARI, NMI and purity are computed over the assigned products only (label != -1); the unassigned share is reported
beside them, so a grouping cannot buy agreement by leaving hard products out without it showing.
"""

from __future__ import annotations

import numpy as np

from core.discover.clustering import NOISE, majority_labels, purity_score
from core.discover.naming import name_key


def level_scores(labels: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """{"ari", "nmi", "purity", "n_groups", "share_unassigned"} of one grouping (nan scores when nothing is assigned)."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    labels, truth = np.asarray(labels), np.asarray(truth)
    kept = labels != NOISE
    if not kept.any():
        nan = float("nan")
        return {"ari": nan, "nmi": nan, "purity": nan, "n_groups": 0, "share_unassigned": 1.0 if len(labels) else 0.0}
    return {
        "ari": float(adjusted_rand_score(truth[kept], labels[kept])),
        "nmi": float(normalized_mutual_info_score(truth[kept], labels[kept])),
        "purity": purity_score(labels, truth),
        "n_groups": int(len(np.unique(labels[kept]))),
        "share_unassigned": float(1.0 - kept.mean()),
    }


def name_accuracy(labels: np.ndarray, names: dict[int, str], truth: np.ndarray) -> float:
    """Share of the assigned products whose group's name is its majority hidden type, case and plural endings
    ignored (`core.discover.naming.name_key`); nan when nothing is assigned.

    Args:
        labels: (N,) group of each product, -1 unassigned.
        names: {group: its top suggested name}.
        truth: (N,) hidden type of each product.
    """
    labels, truth = np.asarray(labels), np.asarray(truth)
    ids, majority, _ = majority_labels(labels, truth)
    sizes = np.array([(labels == g).sum() for g in ids])
    if not sizes.sum():
        return float("nan")
    right = np.array([name_key(names.get(int(g), "")) == name_key(str(m)) for g, m in zip(ids, majority)])
    return float((sizes * right).sum() / sizes.sum())


def unassigned_as_group(labels: np.ndarray) -> np.ndarray:
    """Labels with the unassigned products as one more group (for scores over every product)."""
    labels = np.asarray(labels).copy()
    labels[labels == NOISE] = labels.max() + 1 if len(labels) else 0
    return labels
