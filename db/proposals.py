"""Discovered subcategory proposals and the actions on them: accept (optionally with its sub-groups as child
categories), rename, merge, reject, move out, and showing another level of the run's tree (`choose_level`).

Each action takes the session keyword-only, never commits, writes one audit event, and can be undone
by its `undo_*` handler (registered, and undo dispatched, in db/actions.py).

Statuses: "open", "accepted" / "renamed" (a category was made of it), "rejected", "merged" (into another
proposal), "superseded" (set aside when another level of the tree was shown; `undo_choose_level` reopens it).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from db.models import AuditEvent, Label, Proposal, TaxonomyNode
from db.repo import (
    TAXONOMY,
    ConflictError,
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

PROPOSAL_ACTIONS = ("accept_proposal", "rename_proposal", "reject_proposal", "merge_proposals", "move_out", "choose_level")
EDITS = ("rename_proposal", "merge_proposals", "move_out")  # what changes an open proposal's name or members
FROM_DISCOVERY = or_(Proposal.run_key.is_(None), ~Proposal.run_key.startswith("mapping:"))


def child_names(session: Session, *, node_id: int) -> list[TaxonomyNode]:
    return list(session.scalars(select(TaxonomyNode).where(TaxonomyNode.parent_id == node_id, TaxonomyNode.status == "active")))


def replace_open_proposals(session: Session, *, parent_node_id: int, run_key: str, clusters: list[dict[str, Any]]) -> int:
    """Store a discovery run's clusters as open proposals under the node, dropping earlier open (and superseded) ones
    (not those made from a platform category, `db.mappings.propose_category`: run_key "mapping:<category id>")."""
    earlier = Proposal.status.in_(("open", "superseded"))
    session.execute(delete(Proposal).where(Proposal.parent_node_id == parent_node_id, earlier, FROM_DISCOVERY))
    session.add_all(_proposal(parent_node_id, run_key, cluster) for cluster in clusters)
    session.flush()
    return len(clusters)


def _proposal(parent_node_id: int, run_key: str, cluster: dict[str, Any]) -> Proposal:
    return Proposal(
        parent_node_id=parent_node_id,
        status="open",
        name=cluster["name"],
        run_key=run_key,
        suggested_names=cluster.get("suggested_names", []),
        members=cluster["members"],
        scores={**cluster.get("scores", {}), "coords": cluster.get("coords", [])},
    )


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
    session: Session,
    *,
    proposal_id: int,
    actor: str,
    name: str | None = None,
    expected_version: int | None = None,
    subgroups: list[str] | None = None,
) -> TaxonomyNode:
    """Create the proposed category under its parent and label its members there (source `human`).

    `subgroups`: names for the proposal's stored sub-groups (`scores["subgroups"]`, in that order): each becomes a
    child category of the new one and its members are labelled there (members in no sub-group at the new category).
    """
    lock(session, TAXONOMY)
    proposal = _open(session, proposal_id, expected_version)
    parent = active_node(session, proposal.parent_node_id, role="parent")
    final = clean_name(name or proposal.name)
    path = join_path([parent.path, final])
    if session.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == path)) is not None:
        raise CurationError(f"A category {path!r} already exists; rename the proposal first.")
    clash = next((c.path for c in child_names(session, node_id=parent.id) if c.name.casefold() == final.casefold()), None)
    if clash is not None:
        raise CurationError(f"{parent.path!r} already has a category {clash.rsplit(' > ', 1)[-1]!r}; rename the proposal first.")
    plan = _subgroup_plan(proposal, subgroups or [])
    node = _child(session, parent, final)
    children = [_child(session, node, sub) for sub, _ in plan]
    where = {pid: node.id for pid in proposal.members}
    for child, (_, members) in zip(children, plan):
        where.update((pid, child.id) for pid in members if where.get(pid) == node.id)
    previous = {str(pid): set_label(session, product_id=pid, node_id=where[pid], source="human", actor=actor) for pid in where}
    proposal.status = "accepted" if final == proposal.name else "renamed"
    proposal.created_node_id = node.id
    also = f" with {len(children)} sub-categories ({', '.join(repr(c.name) for c in children)})" if children else ""
    event = write_audit(
        session,
        actor=actor,
        action="accept_proposal",
        summary=f"Accepted proposal #{proposal.id} as {path!r}{also} ({len(previous)} products)",
        before={"proposal_id": proposal.id, "labels": previous},
        after={"node_id": node.id, "status": proposal.status, "children": [c.id for c in children]},
    )
    bump_taxonomy_version(session, event=event)
    return node


def _subgroup_plan(proposal: Proposal, names: list[str]) -> list[tuple[str, list[int]]]:
    """[(clean name, members still in the proposal)] of each named sub-group; a one-line CurationError when the names
    do not fit the proposal's sub-groups or two of them are the same."""
    if not names:
        return []
    stored = proposal.scores.get("subgroups") or []
    if len(names) != len(stored):
        raise ConflictError(f"Proposal #{proposal.id} has {len(stored)} sub-groups, not {len(names)}: reload.")
    plan, seen, current = [], {}, set(proposal.members)
    for i, (raw, sub) in enumerate(zip(names, stored), start=1):
        try:
            clean = clean_name(raw)
        except CurationError as exc:
            raise CurationError(f"Sub-group {i}: {exc}") from None
        if clean.casefold() in seen:
            raise CurationError(f"Sub-groups {seen[clean.casefold()]} and {i} are both named {clean!r}: give each its own name.")
        seen[clean.casefold()] = i
        plan.append((clean, [m for m in sub.get("members", []) if m in current]))
    return plan


def _child(session: Session, parent: TaxonomyNode, name: str) -> TaxonomyNode:
    path, depth = join_path([parent.path, name]), parent.depth + 1
    node = TaxonomyNode(parent_id=parent.id, name=name, path=path, depth=depth, status="active")
    session.add(node)
    session.flush()
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


def choose_level(
    session: Session,
    *,
    parent_node_id: int,
    k: int,
    run_key: str,
    clusters: list[dict[str, Any]],
    actor: str,
    expected: dict[int, int] | None = None,
) -> list[Proposal]:
    """Make the proposals of the level of `k` groups of the node's discovery tree (`clusters`, as
    `replace_open_proposals` takes them: `core.steps.discover.level_clusters`) the node's open proposals.

    The open proposals from discovery are set aside as they are (status "superseded": names, members and all) and
    come back on undo; decided ones are untouched. `expected`: {open proposal id: version} as the caller saw them;
    refused when one of them changed, or one went or came, since.
    """
    node = active_node(session, parent_node_id, role="parent")
    if not clusters:
        raise CurationError(f"The level of {k} groups under {node.path!r} holds no proposals.")
    current = list(
        session.scalars(
            select(Proposal)
            .where(Proposal.parent_node_id == node.id, Proposal.status == "open", FROM_DISCOVERY)
            .order_by(Proposal.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    )
    if expected is not None:
        seen = {int(i): v for i, v in expected.items()}
        if set(seen) != {p.id for p in current}:
            raise ConflictError(f"The open proposals under {node.path!r} changed a moment ago: reload.")
        for p in current:
            check_version(session, p, seen[p.id], what=f"Proposal #{p.id} ({p.name!r})", actions=PROPOSAL_ACTIONS)
    for p in current:
        p.status = "superseded"
    created = [_proposal(node.id, run_key, cluster) for cluster in clusters]
    session.add_all(created)
    session.flush()
    write_audit(
        session,
        actor=actor,
        action="choose_level",
        summary=f"Showed the level of {k} groups under {node.path!r}: {len(created)} proposals for {len(current)} open ones",
        before={"parent_node_id": node.id, "superseded": [p.id for p in current]},
        after={"k": int(k), "created": [p.id for p in created]},
    )
    return created


def edited_proposals(session: Session, proposal_ids: list[int]) -> dict[int, str]:
    """{proposal id: the last audit action that changed it} of those among `proposal_ids` renamed, merged or moved out
    of since they were made (not undone)."""
    wanted, out = set(proposal_ids), {}
    events = select(AuditEvent).where(AuditEvent.action.in_(EDITS), AuditEvent.undone_by_id.is_(None)).order_by(AuditEvent.id)
    for event in session.scalars(events):
        for key in ("proposal_id", "source_id", "target_id"):
            if event.before.get(key) in wanted:
                out[event.before[key]] = event.action
    return out


# ---------------------------------------------------------------- undo handlers (registered in db.actions)


def undo_accept_proposal(session: Session, event: AuditEvent) -> None:
    """Delete the category an accepted proposal created (and its sub-categories), restore its members' labels, reopen it."""
    node = get_node(session, event.after["node_id"])
    created = [*(get_node(session, i) for i in event.after.get("children", [])), node]
    ids = {n.id for n in created}
    proposal = locked(session, Proposal, event.before["proposal_id"])
    members = {int(pid) for pid in event.before["labels"]}
    strangers = session.scalars(
        select(Label.id).where(Label.node_id.in_(ids), or_(Label.source != "human", Label.product_id.not_in(members))).limit(1)
    ).first()
    below = session.scalars(select(TaxonomyNode.id).where(TaxonomyNode.parent_id.in_(ids), TaxonomyNode.id.not_in(ids))).first()
    if any(n.status != "active" for n in created) or strangers is not None or below is not None:
        raise CurationError(f"Cannot undo #{event.id}: {node.path!r} was changed since; undo the later changes first.")
    for pid, old in event.before["labels"].items():
        label = session.scalar(select(Label).where(Label.product_id == int(pid), Label.source == "human"))
        if label is not None and label.node_id in ids:
            set_label(session, product_id=int(pid), node_id=old, source="human", actor=event.actor)
    proposal.status, proposal.created_node_id = "open", None
    session.flush()
    for n in created:  # the sub-categories first
        session.delete(n)
        session.flush()


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


def undo_choose_level(session: Session, event: AuditEvent) -> None:
    """Delete the level's proposals and reopen those it set aside; refused when one of the level's proposals was
    decided or changed since, or a later discovery run replaced the ones set aside."""
    made = [locked(session, Proposal, i) for i in event.after["created"]]
    earlier = [locked(session, Proposal, i) for i in event.before["superseded"]]
    level = f"the level of {event.after['k']} groups"
    if any(p is None or p.status != "open" for p in made) or edited_proposals(session, event.after["created"]):
        raise CurationError(f"Cannot undo #{event.id}: a proposal of {level} was decided or changed since; undo that first.")
    if any(p is None or p.status != "superseded" for p in earlier):
        raise CurationError(f"Cannot undo #{event.id}: a later discovery run replaced the proposals {level} set aside.")
    for p in made:
        session.delete(p)
    for p in earlier:
        p.status = "open"
