"""Standard taxonomies (the Google Product Taxonomy) and the mapping of master nodes onto them.

A standard is a platform of kind "standard": its categories (`PlatformCategory`, with the standard's own id in
`code`) and no products. `StandardMapping` says which standard category a master node goes to; a shopping feed
gives each product the standard category of its master node, or of the nearest ancestor that has a confirmed
mapping. Decisions (confirm, reject) are audited actions that `db.actions.undo` reverses. Functions take the
session keyword-only and never commit.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import mappings
from db.models import (
    PATH_SEP,
    AuditEvent,
    Platform,
    PlatformCategory,
    Product,
    StandardMapping,
    TaxonomyNode,
    utcnow,
)
from db.predictions import active_model_version, deepest_predictions
from db.repo import (
    TAXONOMY,
    CurationError,
    active_node,
    check_version,
    effective_labels_subquery,
    get_or_create_platform,
    lock,
    write_audit,
)

_FIELDS = ("category_id", "status", "confidence", "ambiguous", "origin", "decided_by")


def import_standard(session: Session, *, name: str, categories: list[tuple[str, tuple[str, ...]]], actor: str) -> dict[str, int]:
    """Create or update the standard `name` from (code, path) pairs; returns {"new", "updated", "unchanged"}."""
    plat = get_or_create_platform(session, name=name)
    if plat.kind != "standard" and session.scalar(select(func.count()).where(Product.platform_id == plat.id)):
        raise CurationError(f"{name!r} is a shop platform with products; import the standard under another name.")
    plat.kind = "standard"
    existing = {c.path: c for c in session.scalars(select(PlatformCategory).where(PlatformCategory.platform_id == plat.id))}
    counts = {"new": 0, "updated": 0, "unchanged": 0}
    cache: dict = {}
    for code, path in categories:
        old = existing.get(PATH_SEP.join(path))
        category = mappings.ensure_category(session, plat.id, path, cache)
        key = "new" if old is None else ("updated" if old.code != code else "unchanged")
        counts[key] += 1
        category.code = code
    session.flush()
    write_audit(
        session,
        actor=actor,
        action="import_standard",
        summary=f"Imported standard taxonomy {name!r}: {counts['new']} new, {counts['updated']} updated categories",
        after={"platform": name, **counts},
    )
    return counts


def standard_platform(session: Session, name: str) -> Platform:
    plat = mappings.get_platform(session, name)
    if plat.kind != "standard":
        raise CurationError(f"{name!r} is a shop platform, not a standard taxonomy; import one with `taxonomy import-google`.")
    return plat


def categories_of(session: Session, name: str) -> list[PlatformCategory]:
    plat = standard_platform(session, name)
    return list(
        session.scalars(select(PlatformCategory).where(PlatformCategory.platform_id == plat.id).order_by(PlatformCategory.path))
    )


def _mapping(session: Session, platform_id: int, node_id: int) -> StandardMapping:
    """The node's mapping onto the standard, read fresh and locked (created as an empty suggestion when it has none)."""
    row = session.scalar(
        select(StandardMapping)
        .where(StandardMapping.platform_id == platform_id, StandardMapping.master_node_id == node_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if row is None:
        row = StandardMapping(platform_id=platform_id, master_node_id=node_id, status="suggested", origin="human", candidates=[])
        session.add(row)
        session.flush()
    return row


def store_standard_suggestions(
    session: Session, *, standard: str, suggestions: list[dict[str, Any]], actor: str
) -> dict[str, int]:
    """Upsert suggestions [{node_id, category_id, confidence, ambiguous, candidates}]; decided rows keep their decision."""
    plat = standard_platform(session, standard)
    counts = {"new": 0, "updated": 0, "kept": 0}
    for item in suggestions:
        row = session.scalar(
            select(StandardMapping).where(
                StandardMapping.platform_id == plat.id, StandardMapping.master_node_id == item["node_id"]
            )
        )
        if row is None:
            row = StandardMapping(platform_id=plat.id, master_node_id=item["node_id"], status="suggested", origin="suggest")
            session.add(row)
            counts["new"] += 1
        else:
            counts["updated" if row.status == "suggested" else "kept"] += 1
        row.candidates = item["candidates"]
        if row.status == "suggested":
            row.category_id, row.confidence, row.ambiguous = item["category_id"], item["confidence"], item["ambiguous"]
            row.origin, row.updated_at = "suggest", utcnow()
    session.flush()
    write_audit(
        session,
        actor=actor,
        action="suggest_standard",
        summary=f"Suggested {standard!r} categories for {len(suggestions)} master categories ({counts['kept']} decided kept)",
        after={"standard": standard, **counts},
    )
    return counts


def _state(row: StandardMapping) -> dict[str, Any]:
    return {"node_id": row.master_node_id, **{f: getattr(row, f) for f in _FIELDS}}


def decide_standard(
    session: Session,
    *,
    standard: str,
    node_id: int,
    actor: str,
    category_id: int | None = None,
    reject: bool = False,
    expected_version: int | None = None,
) -> StandardMapping:
    """Confirm the master node's standard category (`category_id`, default its suggestion), or reject it.

    `expected_version`: the mapping's version as the caller saw it (0: the node had none yet)."""
    lock(session, TAXONOMY, shared=True)  # the master category stays active until this commits
    plat = standard_platform(session, standard)
    node = active_node(session, node_id, role="master category")
    if expected_version is not None:
        existing = session.scalar(
            select(StandardMapping)
            .where(StandardMapping.platform_id == plat.id, StandardMapping.master_node_id == node.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        what = f"The {standard} mapping of {node.path!r}"
        check_version(session, existing, expected_version, what=what, key=node.id, actions=("decide_standard",))
    row = _mapping(session, plat.id, node.id)
    before = _state(row)
    if reject:
        row.status = "rejected"
    else:
        target = category_id if category_id is not None else row.category_id
        category = session.get(PlatformCategory, target) if target is not None else None
        if category is None or category.platform_id != plat.id:
            raise CurationError(f"Choose a {standard!r} category for {node.path!r}: it has no suggestion yet.")
        if row.status == "confirmed" and row.category_id == category.id:
            raise CurationError(f"{node.path!r} is already mapped to {category.path!r}.")
        if category.id != row.category_id:
            row.origin = "human"
        row.category_id, row.status = category.id, "confirmed"
    row.decided_by, row.decided_at, row.updated_at = actor, utcnow(), utcnow()
    session.flush()
    what = "rejected" if reject else f"mapped to {session.get(PlatformCategory, row.category_id).path!r}"
    write_audit(
        session,
        actor=actor,
        action="decide_standard",
        summary=f"{node.path!r} {what} in {standard!r}",
        before={"standard": standard, **before},
        after={"standard": standard, **_state(row)},
    )
    return row


def undo_standard_decision(session: Session, event: AuditEvent) -> None:
    before, after = event.before, event.after
    plat = standard_platform(session, after["standard"])
    row = _mapping(session, plat.id, after["node_id"])
    if {"standard": after["standard"], **_state(row)} != after:
        raise CurationError(f"Cannot undo #{event.id} ({event.summary}): that mapping was changed again later.")
    for field in _FIELDS:
        setattr(row, field, before[field])
    row.updated_at = utcnow()


def standard_table(session: Session, *, standard: str) -> list[dict[str, Any]]:
    """Every active master node with its standard mapping (status, category path and code, confidence, candidates)."""
    plat = standard_platform(session, standard)
    rows = {r.master_node_id: r for r in session.scalars(select(StandardMapping).where(StandardMapping.platform_id == plat.id))}
    cats = {c.id: c for c in categories_of(session, standard)}
    out = []
    for node in session.scalars(select(TaxonomyNode).where(TaxonomyNode.status == "active").order_by(TaxonomyNode.path)):
        row = rows.get(node.id)
        category = cats.get(row.category_id) if row and row.category_id else None
        out.append(
            {
                "node_id": node.id,
                "master_path": node.path,
                "status": row.status if row else "unmapped",
                "category_id": category.id if category else None,
                "code": category.code if category else None,
                "standard_path": category.path if category else None,
                "confidence": row.confidence if row else None,
                "ambiguous": bool(row.ambiguous) if row else False,
                "candidates": list(row.candidates) if row else [],
                "version": row.version if row else 0,  # what a decision states it saw (0: no mapping yet)
            }
        )
    return out


def feed_rows(session: Session, *, standard: str) -> Iterator[dict[str, Any]]:
    """One row per shop product: id, title, master path (its label, else the active model's prediction), and the
    standard category of that master node or its nearest ancestor with a confirmed mapping ("" when none)."""
    plat = standard_platform(session, standard)
    confirmed = {
        r.master_node_id: r.category_id
        for r in session.scalars(
            select(StandardMapping).where(StandardMapping.platform_id == plat.id, StandardMapping.status == "confirmed")
        )
    }
    cats = {c.id: c for c in categories_of(session, standard)}
    nodes = {n.id: n for n in session.scalars(select(TaxonomyNode))}
    version = active_model_version(session)
    predicted = deepest_predictions(session, model_version_id=version.id) if version else {}
    eff = effective_labels_subquery()
    stmt = (
        select(Product.id, Product.external_id, Product.title, Platform.name, eff.c.node_id)
        .join(Platform, Platform.id == Product.platform_id)
        .outerjoin(eff, eff.c.product_id == Product.id)
        .where(Platform.kind == "shop")
        .order_by(Product.id)
    )
    for pid, external_id, title, platform, label_node in session.execute(stmt):
        node_id, source = (label_node, "label") if label_node is not None else (predicted.get(pid), "prediction")
        category = _nearest_mapped(nodes, confirmed, node_id)
        yield {
            "platform": platform,
            "id": external_id,
            "title": title,
            "master_path": nodes[node_id].path if node_id is not None else "",
            "master_from": source if node_id is not None else "",
            "google_product_category": cats[category].code if category else "",
            "google_product_category_path": cats[category].path if category else "",
        }


def _nearest_mapped(nodes: dict[int, TaxonomyNode], confirmed: dict[int, int], node_id: int | None) -> int | None:
    while node_id is not None:
        if node_id in confirmed:
            return confirmed[node_id]
        node_id = nodes[node_id].parent_id
    return None
