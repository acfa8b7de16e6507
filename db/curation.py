"""Curation actions on the taxonomy: add, rename, move, merge, retire, relabel, and undo.

Each action takes the session keyword-only, never commits (the caller's `transaction` is the one
transaction of the user's action), checks everything before it changes anything, writes one audit
event holding what its undo handler needs, and raises `CurationError` with a message a merchandiser can
act on. Nothing is ever orphaned: retire and merge move every product label to an active target.
The actions and their `undo_*` handlers are registered, and undo is dispatched, in db/actions.py.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import AuditEvent, CategoryMapping, Label, Prediction, Product, Proposal, ReviewItem, TaxonomyNode
from db.repo import (
    TAXONOMY,
    CurationError,
    active_node,
    bump_taxonomy_version,
    check_version,
    children_map,
    clean_name,
    get_node,
    join_path,
    lock,
    locked,
    repath,
    set_label,
    subtree,
    write_audit,
)

NODE_ACTIONS = ("add_node", "rename_node", "move_node", "merge_node", "retire_node", "accept_proposal")


def _structural(session: Session, **audit) -> AuditEvent:
    event = write_audit(session, **audit)
    bump_taxonomy_version(session, event=event)
    return event


def seen_node(session: Session, node_id: int, expected: int | None, *, role: str = "category") -> TaxonomyNode:
    """The node, read fresh and locked: refused when it changed since the caller saw it at version `expected`
    (None: not stated), or when it is not active."""
    node = locked(session, TaxonomyNode, node_id)
    if node is None:
        raise CurationError(f"Unknown category id {node_id}.")
    check_version(session, node, expected, what=f"Category {node.name!r}", actions=NODE_ACTIONS)
    if node.status != "active":
        raise CurationError(f"The {role} {node.path!r} is {node.status}; choose an active category.")
    return node


def stated(expected: dict | None, row_id: int) -> int | None:
    """The version `expected` states for `row_id` (keys may be ints or, after a JSON round trip, strings)."""
    expected = expected or {}
    return expected.get(row_id, expected.get(str(row_id)))


def add_node(
    session: Session,
    *,
    parent_id: int | None,
    name: str,
    actor: str,
    status: str = "active",
    expected_version: int | None = None,
) -> TaxonomyNode:
    """Add a category under `parent_id` (None: a new top-level category); `expected_version`: the parent's, as seen."""
    lock(session, TAXONOMY)
    parent = seen_node(session, parent_id, expected_version, role="parent") if parent_id is not None else None
    name = clean_name(name)
    path = join_path([parent.path, name]) if parent else name
    if session.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == path)) is not None:
        raise CurationError(f"A category {path!r} already exists.")
    node = TaxonomyNode(parent_id=parent_id, name=name, path=path, depth=(parent.depth + 1 if parent else 1), status=status)
    session.add(node)
    session.flush()
    _structural(session, actor=actor, action="add_node", summary=f"Added {path!r}", after={"node_id": node.id, "path": path})
    return node


def rename_node(
    session: Session, *, node_id: int, new_name: str, actor: str, expected_version: int | None = None
) -> TaxonomyNode:
    """Rename an active category (at the version the caller saw, when stated); its descendants' paths follow."""
    lock(session, TAXONOMY)
    node = seen_node(session, node_id, expected_version)
    new_name = clean_name(new_name)
    if new_name == node.name:
        raise CurationError(f"{node.path!r} already has that name.")
    before = {"node_id": node.id, "name": node.name, "path": node.path}
    node.name = new_name
    repath(session, node)
    _structural(
        session,
        actor=actor,
        action="rename_node",
        summary=f"Renamed {before['path']!r} to {node.path!r}",
        before=before,
        after={"node_id": node.id, "name": node.name, "path": node.path},
    )
    return node


def move_node(
    session: Session, *, node_id: int, new_parent_id: int | None, actor: str, expected_version: int | None = None
) -> TaxonomyNode:
    """Move an active category (with its subtree) under another active parent (None: top level)."""
    lock(session, TAXONOMY)
    node = seen_node(session, node_id, expected_version)
    if new_parent_id is not None:
        parent = active_node(session, new_parent_id, role="new parent")
        if parent.id in {n.id for n in subtree(session, node)}:
            raise CurationError(f"Cannot move {node.path!r} under its own descendant {parent.path!r}.")
    if new_parent_id == node.parent_id:
        raise CurationError(f"{node.path!r} is already there.")
    before = {"node_id": node.id, "parent_id": node.parent_id, "path": node.path}
    node.parent_id = new_parent_id
    repath(session, node)
    _structural(
        session,
        actor=actor,
        action="move_node",
        summary=f"Moved {before['path']!r} to {node.path!r}",
        before=before,
        after={"node_id": node.id, "parent_id": new_parent_id, "path": node.path},
    )
    return node


def _move_labels(session: Session, node_ids: list[int], target_id: int) -> dict[str, int]:
    """Point every label on `node_ids` at `target_id`; returns {label_id: old node_id} (JSON keys)."""
    labels = session.scalars(select(Label).where(Label.node_id.in_(node_ids)).with_for_update()).all()
    moved = {str(label.id): label.node_id for label in labels}
    for label in labels:
        label.node_id, label.version = target_id, label.version + 1
    session.flush()  # before the categories retire: the database refuses a label on a retired category
    return moved


def merge_node(
    session: Session, *, source_id: int, target_id: int, actor: str, expected: dict[int, int] | None = None
) -> TaxonomyNode:
    """Merge `source` into `target`: its products and sub-categories go to target; source is retired.

    `expected`: {node id: version} of source and target as the caller saw them."""
    lock(session, TAXONOMY)
    source = seen_node(session, source_id, stated(expected, source_id), role="category to merge")
    target = seen_node(session, target_id, stated(expected, target_id), role="merge target")
    kids = children_map(session)
    if target.id in {n.id for n in subtree(session, source, kids)}:
        raise CurationError(f"Cannot merge {source.path!r} into itself or its own sub-category {target.path!r}.")
    children = [k for k in kids.get(source.id, []) if k.status != "retired"]
    clashes = sorted({k.name for k in children} & {k.name for k in kids.get(target.id, [])})
    if clashes:
        raise CurationError(f"{target.path!r} already has sub-categories named {clashes}; merge those first.")
    labels = _move_labels(session, [source.id], target.id)
    for child in children:
        child.parent_id = target.id
        repath(session, child)
    session.flush()
    source.status, source.redirect_id = "retired", target.id
    session.flush()
    _structural(
        session,
        actor=actor,
        action="merge_node",
        summary=f"Merged {source.path!r} into {target.path!r} ({len(labels)} labels)",
        before={"node_id": source.id, "labels": labels, "children": [c.id for c in children]},
        after={"node_id": source.id, "target_id": target.id},
    )
    return target


def retire_node(
    session: Session, *, node_id: int, target_id: int | None, actor: str, expected_version: int | None = None
) -> None:
    """Retire a category and its sub-categories; every product in them moves to `target`.

    `target_id` may be None only when no product is labelled anywhere in the subtree.
    """
    lock(session, TAXONOMY)
    node = seen_node(session, node_id, expected_version, role="category to retire")
    members = [n for n in subtree(session, node) if n.status != "retired"]
    ids = [n.id for n in members]
    n_labels = len(session.scalars(select(Label.id).where(Label.node_id.in_(ids))).all())
    if target_id is None and n_labels:
        raise CurationError(f"{node.path!r} holds {n_labels} product labels: choose where they go.")
    if target_id is not None:
        target = active_node(session, target_id, role="target")
        if target.id in ids:
            raise CurationError(f"The target {target.path!r} is inside {node.path!r}, which is being retired.")
    labels = _move_labels(session, ids, target_id) if target_id is not None else {}
    for member in reversed(members):  # children first: the database refuses a live category under a retired one
        member.status, member.redirect_id = "retired", target_id
        session.flush()
    where = f", {len(labels)} labels moved to {target.path!r}" if target_id is not None else ""
    _structural(
        session,
        actor=actor,
        action="retire_node",
        summary=f"Retired {node.path!r}{where}",
        before={"node_id": node.id, "nodes": ids, "labels": labels},
        after={"node_id": node.id, "target_id": target_id},
    )


def relabel_product(
    session: Session, *, product_id: int, node_id: int, actor: str, source: str = "human", expected_version: int | None = None
) -> None:
    """Set a product's label from `source` (default: a person's) to an active category.

    `expected_version`: that label's version as the caller saw it (0: it had none)."""
    lock(session, TAXONOMY, shared=True)  # the category stays active until this commits
    product = session.get(Product, product_id)
    if product is None:
        raise CurationError(f"Unknown product id {product_id}.")
    node = active_node(session, node_id)
    if expected_version is not None:
        label = session.scalar(select(Label).where(Label.product_id == product_id, Label.source == source))
        what = f"The {source} label of {product.external_id!r}"
        check_version(session, label, expected_version, what=what, key=product_id, actions=("relabel_product", "review_decision"))
    old = set_label(session, product_id=product_id, node_id=node.id, source=source, actor=actor)
    if old == node.id:
        raise CurationError(f"Product {product.external_id!r} is already labelled {node.path!r}.")
    write_audit(
        session,
        actor=actor,
        action="relabel_product",
        summary=f"Relabelled {product.external_id!r} ({product.title[:60]}) as {node.path!r}",
        before={"product_id": product_id, "source": source, "node_id": old},
        after={"product_id": product_id, "source": source, "node_id": node.id},
    )


# ---------------------------------------------------------------- undo handlers (registered in db.actions)


def _check(condition: bool, event: AuditEvent) -> None:
    if not condition:
        raise CurationError(
            f"Cannot undo #{event.id} ({event.summary}): what it changed was changed again later; undo the later changes first."
        )


def undo_add_node(session: Session, event: AuditEvent) -> None:
    """Delete a category added by `add_node`, refused while anything refers to it."""
    node = get_node(session, event.after["node_id"])
    _check(node.status != "retired", event)
    in_use = [
        ("sub-categories", select(TaxonomyNode.id).where(TaxonomyNode.parent_id == node.id)),
        ("product labels", select(Label.id).where(Label.node_id == node.id)),
        ("predictions", select(Prediction.id).where(Prediction.node_id == node.id)),
        ("proposals", select(Proposal.id).where((Proposal.parent_node_id == node.id) | (Proposal.created_node_id == node.id))),
        (
            "review items",
            select(ReviewItem.id).where((ReviewItem.label_node_id == node.id) | (ReviewItem.suggested_node_id == node.id)),
        ),
        ("category mappings", select(CategoryMapping.id).where(CategoryMapping.master_node_id == node.id)),
    ]
    for what, stmt in in_use:
        if session.scalars(stmt.limit(1)).first() is not None:
            raise CurationError(f"Cannot undo adding {node.path!r}: it now has {what}; move or retire them first.")
    session.delete(node)


def undo_rename_node(session: Session, event: AuditEvent) -> None:
    """Give a renamed category (and its descendants' paths) the old name back."""
    node = get_node(session, event.after["node_id"])
    _check(node.name == event.after["name"] and node.status == "active", event)
    node.name = event.before["name"]
    repath(session, node)


def undo_move_node(session: Session, event: AuditEvent) -> None:
    """Put a moved category back under its former parent."""
    node = get_node(session, event.after["node_id"])
    _check(node.parent_id == event.after["parent_id"] and node.status == "active", event)
    if event.before["parent_id"] is not None:
        active_node(session, event.before["parent_id"], role="former parent")
    node.parent_id = event.before["parent_id"]
    repath(session, node)


def _restore_labels(session: Session, labels: dict[str, int], target_id: int | None) -> None:
    for label_id, old_node in labels.items():
        label = session.get(Label, int(label_id))
        if label is not None and label.node_id == target_id:  # a label relabelled since stays put
            label.node_id, label.version = old_node, label.version + 1


def undo_merge_node(session: Session, event: AuditEvent) -> None:
    """Reactivate a merged category and give it back its sub-categories and labels."""
    source = get_node(session, event.after["node_id"])
    target_id = event.after["target_id"]
    _check(source.status == "retired" and source.redirect_id == target_id, event)
    source.status, source.redirect_id = "active", None
    session.flush()  # active again before its sub-categories come back under it
    for child_id in event.before["children"]:
        child = get_node(session, child_id)
        if child.parent_id == target_id:
            child.parent_id = source.id
            repath(session, child)
    _restore_labels(session, event.before["labels"], target_id)


def undo_retire_node(session: Session, event: AuditEvent) -> None:
    """Reactivate a retired subtree and move its labels back."""
    node = get_node(session, event.after["node_id"])
    target_id = event.after["target_id"]
    _check(node.status == "retired" and node.redirect_id == target_id, event)
    for node_id in event.before["nodes"]:  # parents first: the database refuses a live category under a retired one
        member = get_node(session, node_id)
        member.status, member.redirect_id = "active", None
        session.flush()
    _restore_labels(session, event.before["labels"], target_id)


def undo_relabel_product(session: Session, event: AuditEvent) -> None:
    """Restore the product's label from that source as it was before the relabel."""
    before, after = event.before, event.after
    label = session.scalar(select(Label).where(Label.product_id == after["product_id"], Label.source == after["source"]))
    _check(label is not None and label.node_id == after["node_id"], event)
    set_label(session, product_id=before["product_id"], node_id=before["node_id"], source=before["source"], actor=event.actor)
