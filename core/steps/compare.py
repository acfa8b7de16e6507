"""Two model versions side by side on the same held-out products, against the current labels.

Both versions' stored predictions are read from the database (a retrain predicts every product), so the
comparison costs no inference. The held-out products are the newer version's (the split is a hash of the
product, so an older version trained with the same split never saw them either). The scores themselves are
`core.classify.compare`'s.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.classify.compare import changed_nodes, level_scores, node_f1
from db.models import ModelVersion, Prediction, TaxonomyNode
from db.repo import effective_labels_subquery


def predicted_paths(session, *, model_version_id: int, product_ids: list[int]) -> dict[int, str]:
    """{product id: predicted full path} (the deepest predicted level's node path)."""
    out: dict[int, tuple[int, str]] = {}
    ids = list(product_ids)
    for start in range(0, len(ids), 5000):
        stmt = (
            select(Prediction.product_id, Prediction.level, TaxonomyNode.path)
            .join(TaxonomyNode, TaxonomyNode.id == Prediction.node_id)
            .where(Prediction.model_version_id == model_version_id, Prediction.product_id.in_(ids[start : start + 5000]))
        )
        for pid, level, path in session.execute(stmt):
            if pid not in out or level > out[pid][0]:
                out[pid] = (level, path)
    return {pid: path for pid, (_, path) in out.items()}


def current_labels(session, product_ids: list[int]) -> dict[int, str]:
    """{product id: its effective label's full path} of those of `product_ids` that have a label."""
    eff = effective_labels_subquery()
    out = {}
    ids = list(product_ids)
    for start in range(0, len(ids), 5000):
        stmt = (
            select(eff.c.product_id, TaxonomyNode.path)
            .join(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
            .where(eff.c.product_id.in_(ids[start : start + 5000]))
        )
        out.update(dict(session.execute(stmt).all()))
    return out


def compare_versions(session, *, old_id: int, new_id: int, min_change: float = 0.005) -> dict[str, Any]:
    """Per-level scores of both versions and the per-node F1 of the nodes that changed, on `new_id`'s held-out products.

    Returns:
        {"n": held-out products, "levels": [{level, old: {...}, new: {...}}], "nodes": [{path, old_f1, new_f1,
        delta, support, new_node}], sorted by |delta| (new nodes first), "same_split": bool}.
    """
    old, new = session.get(ModelVersion, old_id), session.get(ModelVersion, new_id)
    if old is None or new is None:
        raise ValueError(f"unknown model version {old_id if old is None else new_id}")
    held_out = list(new.metrics.get("test_product_ids") or [])
    truth = current_labels(session, held_out)
    preds = {v.id: predicted_paths(session, model_version_id=v.id, product_ids=list(truth)) for v in (old, new)}
    levels_old, levels_new = level_scores(truth, preds[old.id]), level_scores(truth, preds[new.id])
    f1_old = node_f1([(t, preds[old.id].get(pid, "")) for pid, t in truth.items()])
    f1_new = node_f1([(t, preds[new.id].get(pid, "")) for pid, t in truth.items()])
    # "new" by node id, not by path: a renamed category is the same category
    known_old = set(old.params.get("node_ids", {}).values())
    ids_now = {path: i for path, i in session.execute(select(TaxonomyNode.path, TaxonomyNode.id))}
    is_new = lambda path: bool(known_old) and ids_now.get(path) not in known_old
    nodes = changed_nodes(f1_old, f1_new, is_new=is_new, min_change=min_change)
    return {
        "n": len(truth),
        "levels": [{"level": o["level"], "old": o, "new": n} for o, n in zip(levels_old, levels_new)],
        "nodes": nodes,
        "same_split": (old.params.get("split"), old.params.get("seed")) == (new.params.get("split"), new.params.get("seed"))
        and old.params.get("split") is not None,
        "with_predictions": {v.id: len(preds[v.id]) for v in (old, new)},
    }
