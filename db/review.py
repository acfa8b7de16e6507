"""The label review queue: stored label-issue scores and the decisions people take on them.

`replace_open_items` stores a scoring run's queue (decided items are kept as history). A decision
(accept the suggested path, keep the label, or choose another path) is one audited transaction that
writes the product's `human` label and closes the item; `undo_review_decision` restores the label and reopens it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import AuditEvent, Label, Platform, Product, ReviewItem, TaxonomyNode
from db.repo import (
    TAXONOMY,
    CurationError,
    active_node,
    effective_labels_subquery,
    follow_redirects,
    image_location,
    lock,
    set_label,
    subtree,
    write_audit,
)

DECISIONS = {"accept": "accepted", "keep": "kept", "choose": "relabelled"}


def replace_open_items(session: Session, *, run_key: str, rows: list[dict[str, Any]]) -> int:
    """Replace the open queue by `rows` (dicts of ReviewItem columns); products already decided are skipped.

    Returns:
        how many items were stored.
    """
    session.execute(delete(ReviewItem).where(ReviewItem.status == "open"))
    decided = set(session.scalars(select(ReviewItem.product_id).where(ReviewItem.status != "open")))
    rows = [{**r, "run_key": run_key, "status": "open"} for r in rows if r["product_id"] not in decided]
    for start in range(0, len(rows), 5000):
        session.execute(insert(ReviewItem), rows[start : start + 5000])
    return len(rows)


def queue(
    session: Session,
    *,
    status: str = "open",
    node_id: int | None = None,
    platform: str | None = None,
    min_score: float = 0.0,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Review items, highest score first, with what a reviewer needs to decide.

    Args:
        node_id: only products currently labelled in this category or below it.
        platform: only products of this platform.
    """
    stmt = _queue_statement(session, status=status, node_id=node_id, platform=platform, min_score=min_score)
    rows = session.execute(stmt.limit(limit)).all()
    # every suggested node (and what a retired one redirects to) in the session at once: one query, not one per item
    nodes = session.scalars(select(TaxonomyNode)).all()  # noqa: F841 - held so the identity map keeps them
    return [_queue_row(session, r) for r in rows]


def _queue_statement(session: Session, *, status: str, node_id: int | None, platform: str | None, min_score: float):
    """The SELECT of `queue`: items with their product, platform, current label and suggested path."""
    eff = effective_labels_subquery(select(ReviewItem.product_id).where(ReviewItem.status == status))  # their labels only
    label_node = TaxonomyNode.__table__.alias("label_node")
    suggested = TaxonomyNode.__table__.alias("suggested")
    stmt = (
        select(
            ReviewItem,
            Product.external_id,
            Product.title,
            Product.description,
            Product.image,
            Product.image_status,
            Platform.name.label("platform"),
            Platform.root,
            label_node.c.path.label("label_path"),
            label_node.c.id.label("label_id"),
            suggested.c.path.label("suggested_path"),
        )
        .join(Product, Product.id == ReviewItem.product_id)
        .join(Platform, Platform.id == Product.platform_id)
        .outerjoin(eff, eff.c.product_id == Product.id)
        .outerjoin(label_node, label_node.c.id == eff.c.node_id)
        .join(suggested, suggested.c.id == ReviewItem.suggested_node_id)
        .where(ReviewItem.status == status, ReviewItem.score >= min_score)
        .order_by(ReviewItem.score.desc(), ReviewItem.id)
    )
    if platform:
        stmt = stmt.where(Platform.name == platform)
    if node_id is not None:
        if session.get(TaxonomyNode, node_id) is None:
            raise CurationError(f"Unknown category id {node_id}.")
        node = session.get(TaxonomyNode, node_id)
        stmt = stmt.where(label_node.c.id.in_([n.id for n in subtree(session, node)]))
    return stmt


def _queue_row(session: Session, r) -> dict[str, Any]:
    """One row of `queue` as the dict a reviewer's page shows (the suggestion follows retire/merge redirects)."""
    item = r.ReviewItem
    suggested_node = follow_redirects(session, session.get(TaxonomyNode, item.suggested_node_id))
    return {
        "id": item.id,
        "product_id": item.product_id,
        "external_id": r.external_id,
        "platform": r.platform,
        "title": r.title,
        "description": " ".join((r.description or "").split())[:280],
        "image": image_location(r.root, r.image) if r.image_status == "ok" else None,
        "label": r.label_path,
        "label_id": r.label_id,
        "label_changed": r.label_id != item.label_node_id,  # relabelled elsewhere since scoring
        "suggested": suggested_node.path,
        "suggested_id": suggested_node.id,
        "suggested_confidence": item.suggested_confidence,
        "score": item.score,
        "self_confidence": item.self_confidence,
        "margin": item.margin,
        "flagged": item.flagged,
        "levels": item.levels,
        "status": item.status,
        "decided_by": item.decided_by,
    }


def counts(session: Session) -> dict[str, int]:
    """Items per status."""
    return dict(session.execute(select(ReviewItem.status, func.count()).group_by(ReviewItem.status)).all())


def decide(session: Session, *, item_id: int, decision: str, actor: str, node_id: int | None = None) -> ReviewItem:
    """Close a review item: "accept" the suggested path, "keep" the current label, or "choose" `node_id`.

    The product's `human` label is set to the decided category (so the next training run learns it, and
    a later scoring run does not queue it again); audited, undoable.
    """
    if decision not in DECISIONS:
        raise CurationError(f"Unknown review decision {decision!r}; use one of {', '.join(DECISIONS)}.")
    lock(session, TAXONOMY, shared=True)  # the decided category stays active until this commits
    item = session.get(ReviewItem, item_id)
    if item is None:
        raise CurationError(f"Unknown review item {item_id}.")
    if item.status != "open":
        raise CurationError(f"Review item {item_id} was already decided ({item.status} by {item.decided_by}).")
    product = session.get(Product, item.product_id)
    if decision == "accept":
        target = follow_redirects(session, session.get(TaxonomyNode, item.suggested_node_id))
    elif decision == "keep":
        eff = effective_labels_subquery()
        current = session.scalar(select(eff.c.node_id).where(eff.c.product_id == item.product_id))
        if current is None:
            raise CurationError(f"Product {product.external_id!r} has no label to keep.")
        target = session.get(TaxonomyNode, current)
    else:
        if node_id is None:
            raise CurationError("Choose a category for the product first.")
        target = active_node(session, node_id)
    if target.status != "active":
        raise CurationError(f"{target.path!r} is {target.status}; choose an active category.")
    # claim the item atomically: of two people deciding it at the same time, one wins, the other is told
    claimed = session.execute(
        update(ReviewItem)
        .where(ReviewItem.id == item_id, ReviewItem.status == "open")
        .values(status=DECISIONS[decision], decided_by=actor, decided_at=datetime.now(UTC))
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise CurationError(f"Review item {item_id} was just decided by someone else; the queue has moved on.")
    session.refresh(item)
    old = set_label(session, product_id=item.product_id, node_id=target.id, source="human", actor=actor)
    verb = {"accept": "Accepted the suggestion", "keep": "Kept the label", "choose": "Chose"}[decision]
    write_audit(
        session,
        actor=actor,
        action="review_decision",
        summary=f"{verb} {target.path!r} for {product.external_id!r} ({product.title[:60]})",
        before={"item_id": item.id, "product_id": item.product_id, "human_node_id": old},
        after={"item_id": item.id, "product_id": item.product_id, "human_node_id": target.id, "status": item.status},
    )
    return item


def undo_review_decision(session: Session, event: AuditEvent) -> None:
    """Restore the product's earlier human label and reopen the review item."""
    before, after = event.before, event.after
    item = session.get(ReviewItem, after["item_id"])
    label = session.scalar(select(Label).where(Label.product_id == after["product_id"], Label.source == "human"))
    if item is None or item.status != after["status"] or label is None or label.node_id != after["human_node_id"]:
        raise CurationError(
            f"Cannot undo #{event.id} ({event.summary}): the product was relabelled again later; undo that first."
        )
    if before["human_node_id"] is not None:
        previous = session.get(TaxonomyNode, before["human_node_id"])
        if previous is None or previous.status != "active":
            where = previous.path if previous else f"category {before['human_node_id']}"
            raise CurationError(f"Cannot undo #{event.id}: the product's earlier category {where!r} has been retired since.")
    set_label(session, product_id=before["product_id"], node_id=before["human_node_id"], source="human", actor=event.actor)
    item.status, item.decided_by, item.decided_at = "open", None, None
