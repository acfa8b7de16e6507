"""Discovered subcategory proposals and the actions on them: accept, rename, merge, reject.

Each action takes the session keyword-only, never commits, writes one audit event, and can be undone
by its `undo_*` handler (registered, and undo dispatched, in db/actions.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from db.models import AuditEvent, Label, Proposal, TaxonomyNode
from db.repo import (
    TAXONOMY,
    CurationError,
    active_node,
    bump_taxonomy_version,
    check_version,
    clean_name,
    get_node,
    join_path,
    lock,
    locked,
    set_label,
    write_audit,
)

PROPOSAL_ACTIONS = ("accept_proposal", "rename_proposal", "reject_proposal", "merge_proposals", "move_out")


def child_names(session: Session, *, node_id: int) -> list[TaxonomyNode]:
    return list(session.scalars(select(TaxonomyNode).where(TaxonomyNode.parent_id == node_id, TaxonomyNode.status == "active")))


def replace_open_proposals(session: Session, *, parent_node_id: int, run_key: str, clusters: list[dict[str, Any]]) -> int:
    """Store a discovery run's clusters as open proposals under the node, dropping earlier open ones (not those made
    from a platform category, `db.mappings.propose_category`: run_key "mapping:<category id>")."""
    from_discovery = or_(Proposal.run_key.is_(None), ~Proposal.run_key.startswith("mapping:"))
    session.execute(delete(Proposal).where(Proposal.parent_node_id == parent_node_id, Proposal.status == "open", from_discovery))
    for cluster in clusters:
        scores = {**cluster.get("scores", {}), "coords": cluster.get("coords", [])}
        session.add(
            Proposal(
                parent_node_id=parent_node_id,
                status="open",
                name=cluster["name"],
                run_key=run_key,
                suggested_names=cluster.get("suggested_names", []),
                members=cluster["members"],
                scores=scores,
            )
        )
    session.flush()
    return len(clusters)


def list_proposals(session: Session, *, parent_node_id: int | None = None, status: str | None = None) -> list[Proposal]:
    stmt = select(Proposal).order_by(Proposal.id)
    if parent_node_id is not None:
        stmt = stmt.where(Proposal.parent_node_id == parent_node_id)
    if status is not None:
        stmt = stmt.where(Proposal.status == status)
    return list(session.scalars(stmt))


def _open(session: Session, proposal_id: int, expected: int | None = None) -> Proposal:
    """The open proposal, read fresh and locked; refused when it changed since the caller saw it at version `expected`."""
    proposal = locked(session, Proposal, proposal_id)
    if proposal is None:
        raise CurationError(f"Unknown proposal #{proposal_id}.")
    what = f"Proposal #{proposal.id} ({proposal.name!r})"
    check_version(session, proposal, expected, what=what, actions=PROPOSAL_ACTIONS)
    if proposal.status != "open":
        raise CurationError(f"Proposal #{proposal_id} ({proposal.name!r}) is already {proposal.status}.")
    return proposal


def accept_proposal(
    session: Session, *, proposal_id: int, actor: str, name: str | None = None, expected_version: int | None = None
) -> TaxonomyNode:
    """Create the proposed category under its parent and label its members there (source `human`)."""
    lock(session, TAXONOMY)
    proposal = _open(session, proposal_id, expected_version)
    parent = active_node(session, proposal.parent_node_id, role="parent")
    final = clean_name(name or proposal.name)
    path = join_path([parent.path, final])
    if session.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == path)) is not None:
        raise CurationError(f"A category {path!r} already exists; rename the proposal first.")
    node = TaxonomyNode(parent_id=parent.id, name=final, path=path, depth=parent.depth + 1, status="active")
    session.add(node)
    session.flush()
    previous = {
        str(pid): set_label(session, product_id=pid, node_id=node.id, source="human", actor=actor) for pid in proposal.members
    }
    proposal.status = "accepted" if final == proposal.name else "renamed"
    proposal.created_node_id = node.id
    event = write_audit(
        session,
        actor=actor,
        action="accept_proposal",
        summary=f"Accepted proposal #{proposal.id} as {path!r} ({len(previous)} products)",
        before={"proposal_id": proposal.id, "labels": previous},
        after={"node_id": node.id, "status": proposal.status},
    )
    bump_taxonomy_version(session, event=event)
    return node


def rename_proposal(
    session: Session, *, proposal_id: int, name: str, actor: str, expected_version: int | None = None
) -> Proposal:
    proposal = _open(session, proposal_id, expected_version)
    before = proposal.name
    proposal.name = clean_name(name)
    write_audit(
        session,
        actor=actor,
        action="rename_proposal",
        summary=f"Renamed proposal #{proposal.id} {before!r} -> {proposal.name!r}",
        before={"proposal_id": proposal.id, "name": before},
        after={"name": proposal.name},
    )
    return proposal


def reject_proposal(session: Session, *, proposal_id: int, actor: str, expected_version: int | None = None) -> Proposal:
    proposal = _open(session, proposal_id, expected_version)
    proposal.status = "rejected"
    write_audit(
        session,
        actor=actor,
        action="reject_proposal",
        summary=f"Rejected proposal #{proposal.id} ({proposal.name!r})",
        before={"proposal_id": proposal.id},
        after={"status": "rejected"},
    )
    return proposal


def merge_proposals(
    session: Session, *, source_id: int, target_id: int, actor: str, expected: dict[int, int] | None = None
) -> Proposal:
    """Fold proposal `source` into `target` (same parent): its members join target; source is 'merged'.

    `expected`: {proposal id: version} as the caller saw them."""
    if source_id == target_id:
        raise CurationError("Choose two different proposals to merge.")
    expected = {int(k): v for k, v in (expected or {}).items()}
    first, second = sorted((source_id, target_id))  # locked in id order: two crossed merges wait, not deadlock
    opened = {i: _open(session, i, expected.get(i)) for i in (first, second)}
    source, target = opened[source_id], opened[target_id]
    if source.parent_node_id != target.parent_node_id:
        raise CurationError("Only proposals under the same category can be merged.")
    before_members = list(target.members)
    target.members = sorted(set(target.members) | set(source.members))
    source.status = "merged"
    write_audit(
        session,
        actor=actor,
        action="merge_proposals",
        summary=f"Merged proposal #{source.id} ({source.name!r}) into #{target.id} ({target.name!r})",
        before={"source_id": source.id, "target_id": target.id, "members": before_members},
        after={"members": target.members},
    )
    return target


def move_out(
    session: Session, *, proposal_id: int, product_ids: list[int], actor: str, expected_version: int | None = None
) -> Proposal:
    """Remove selected products from an open proposal."""
    proposal = _open(session, proposal_id, expected_version)
    before = list(proposal.members)
    proposal.members = [p for p in proposal.members if p not in set(product_ids)]
    write_audit(
        session,
        actor=actor,
        action="move_out",
        summary=f"Moved {len(before) - len(proposal.members)} products out of proposal #{proposal.id}",
        before={"proposal_id": proposal.id, "members": before},
        after={"members": proposal.members},
    )
    return proposal


# ---------------------------------------------------------------- undo handlers (registered in db.actions)


def undo_accept_proposal(session: Session, event: AuditEvent) -> None:
    """Delete the category an accepted proposal created, restore its members' labels, reopen it."""
    node = get_node(session, event.after["node_id"])
    proposal = locked(session, Proposal, event.before["proposal_id"])
    others = session.scalars(select(Label.id).where(Label.node_id == node.id, Label.source != "human").limit(1)).first()
    if (
        node.status != "active"
        or others is not None
        or session.scalars(select(TaxonomyNode.id).where(TaxonomyNode.parent_id == node.id).limit(1)).first()
    ):
        raise CurationError(f"Cannot undo #{event.id}: {node.path!r} was changed since; undo the later changes first.")
    for pid, old in event.before["labels"].items():
        label = session.scalar(select(Label).where(Label.product_id == int(pid), Label.source == "human"))
        if label is not None and label.node_id == node.id:
            set_label(session, product_id=int(pid), node_id=old, source="human", actor=event.actor)
    proposal.status, proposal.created_node_id = "open", None
    session.flush()
    session.delete(node)


def undo_rename_proposal(session: Session, event: AuditEvent) -> None:
    """Give the proposal its earlier name back."""
    locked(session, Proposal, event.before["proposal_id"]).name = event.before["name"]


def undo_reject_proposal(session: Session, event: AuditEvent) -> None:
    """Reopen a rejected proposal."""
    locked(session, Proposal, event.before["proposal_id"]).status = "open"


def undo_merge_proposals(session: Session, event: AuditEvent) -> None:
    """Reopen the merged proposal and give the target its earlier members."""
    locked(session, Proposal, event.before["source_id"]).status = "open"
    locked(session, Proposal, event.before["target_id"]).members = event.before["members"]


def undo_move_out(session: Session, event: AuditEvent) -> None:
    """Give the proposal back the products moved out of it."""
    locked(session, Proposal, event.before["proposal_id"]).members = event.before["members"]
