"""Two model versions side by side on the same held-out products, against the current labels.

Both versions' stored predictions are read from the database (a retrain predicts every product), so the
comparison costs no inference. The held-out products are the newer version's (the split is a hash of the
product, so an older version trained with the same split never saw them either).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

PATH_SEP = " > "


def predicted_paths(session, *, model_version_id: int, product_ids: list[int]) -> dict[int, str]:
    """{product id: predicted full path} (the deepest predicted level's node path)."""
    from sqlalchemy import select

    from db.models import Prediction, TaxonomyNode

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
    from sqlalchemy import select

    from db.models import TaxonomyNode
    from db.repo import effective_labels_subquery

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


def level_scores(truth: dict[int, str], pred: dict[int, str]) -> list[dict[str, float]]:
    """Per level: accuracy and macro-F1 of the path prefixes, over products with a label that deep."""
    depth = max((len(p.split(PATH_SEP)) for p in truth.values()), default=0)
    out = []
    for level in range(1, depth + 1):
        pairs = []
        for pid, label in truth.items():
            parts = label.split(PATH_SEP)
            if len(parts) >= level:
                guess = pred.get(pid, "").split(PATH_SEP)
                pairs.append((PATH_SEP.join(parts[:level]), PATH_SEP.join(guess[:level]) if len(guess) >= level else ""))
        f1 = node_f1(pairs)
        out.append(
            {
                "level": level,
                "accuracy": round(sum(t == p for t, p in pairs) / len(pairs), 4) if pairs else float("nan"),
                "macro_f1": round(
                    sum(v["f1"] for k, v in f1.items() if v["support"]) / max(1, sum(1 for v in f1.values() if v["support"])), 4
                ),
                "n": len(pairs),
            }
        )
    return out


def node_f1(pairs: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """{path: {"f1", "support", "predicted"}} over (true, predicted) path pairs."""
    tp = Counter(t for t, p in pairs if t == p)
    n_true, n_pred = Counter(t for t, _ in pairs), Counter(p for _, p in pairs if p)
    out = {}
    for path in set(n_true) | set(n_pred):
        denom = n_true[path] + n_pred[path]
        out[path] = {"f1": round(2 * tp[path] / denom, 4) if denom else 0.0, "support": n_true[path], "predicted": n_pred[path]}
    return out


def compare_versions(session, *, old_id: int, new_id: int, min_change: float = 0.005) -> dict[str, Any]:
    """Per-level scores of both versions and the per-node F1 of the nodes that changed, on `new_id`'s held-out products.

    Returns:
        {"n": held-out products, "levels": [{level, old: {...}, new: {...}}], "nodes": [{path, old_f1, new_f1,
        delta, support, new_node}], sorted by |delta| (new nodes first), "same_split": bool}.
    """
    from sqlalchemy import select

    from db.models import ModelVersion

    old, new = session.get(ModelVersion, old_id), session.get(ModelVersion, new_id)
    if old is None or new is None:
        raise ValueError(f"unknown model version {old_id if old is None else new_id}")
    held_out = list(new.metrics.get("test_product_ids") or [])
    truth = current_labels(session, held_out)
    preds = {v.id: predicted_paths(session, model_version_id=v.id, product_ids=list(truth)) for v in (old, new)}
    levels_old, levels_new = level_scores(truth, preds[old.id]), level_scores(truth, preds[new.id])
    f1_old = node_f1([(t, preds[old.id].get(pid, "")) for pid, t in truth.items()])
    f1_new = node_f1([(t, preds[new.id].get(pid, "")) for pid, t in truth.items()])
    from db.models import TaxonomyNode

    # "new" by node id, not by path: a renamed category is the same category
    known_old = set(old.params.get("node_ids", {}).values())
    ids_now = {path: i for path, i in session.execute(select(TaxonomyNode.path, TaxonomyNode.id))}
    nodes = []
    for path in sorted(set(f1_old) | set(f1_new)):
        a, b = f1_old.get(path, {"f1": 0.0, "support": 0}), f1_new.get(path, {"f1": 0.0, "support": 0})
        is_new = bool(known_old) and ids_now.get(path) not in known_old
        if is_new or abs(b["f1"] - a["f1"]) >= min_change:
            nodes.append(
                {
                    "path": path,
                    "old_f1": a["f1"],
                    "new_f1": b["f1"],
                    "delta": round(b["f1"] - a["f1"], 4),
                    "support": max(a["support"], b["support"]),
                    "new_node": is_new,
                }
            )
    nodes.sort(key=lambda r: (not r["new_node"], -abs(r["delta"])))
    return {
        "n": len(truth),
        "levels": [{"level": o["level"], "old": o, "new": n} for o, n in zip(levels_old, levels_new)],
        "nodes": nodes,
        "same_split": (old.params.get("split"), old.params.get("seed")) == (new.params.get("split"), new.params.get("seed"))
        and old.params.get("split") is not None,
        "with_predictions": {v.id: len(preds[v.id]) for v in (old, new)},
    }
