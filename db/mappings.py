"""Platform category trees and their mappings onto the master taxonomy.

Each platform keeps its own category tree as ingested (`PlatformCategory`, reference data). A platform that seeds
the master taxonomy (`Platform.seeds_master`: the default catalogue, or the first one ingested) places its
categories in the master taxonomy directly; any other platform's products get master labels only through a
confirmed `CategoryMapping`: the mapping's master node becomes a `mapping` label (below `human`, above the rest) of
every product in that category, kept in step on re-ingest. A mapping onto an internal master node (a platform
category that spans several master leaves) labels its products at that node; the classifier places them below.

Every decision (confirm, change, reject, "no master equivalent", bulk confirm) is one audited action that
`db.actions.undo` reverses: the event keeps each touched mapping's previous state and each touched label's
previous node. Functions take the session keyword-only and never commit.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from db.models import (
    MAPPING_STATUSES,
    PATH_SEP,
    AuditEvent,
    CategoryMapping,
    Label,
    Platform,
    PlatformCategory,
    Product,
    Proposal,
    TaxonomyNode,
    utcnow,
)
from db.repo import (
    TAXONOMY,
    CurationError,
    active_node,
    check_version,
    clean_name,
    follow_redirects,
    get_node,
    lock,
    split_path,
    write_audit,
)

MAPPING_SOURCE = "mapping"  # the label source a confirmed mapping writes
_FIELDS = ("master_node_id", "status", "confidence", "ambiguous", "origin", "decided_by")
MAPPING_ACTIONS = ("confirm_mapping", "reject_mapping", "bulk_confirm_mappings")


# ---------------------------------------------------------------- platform trees


def get_platform(session: Session, name: str) -> Platform:
    platform = session.scalar(select(Platform).where(Platform.name == name))
    if platform is None:
        known = ", ".join(session.scalars(select(Platform.name).order_by(Platform.name))) or "none yet"
        raise CurationError(f"Unknown platform {name!r} (known: {known}).")
    return platform


def ensure_category(session: Session, platform_id: int, names: tuple[str, ...], cache: dict) -> PlatformCategory:
    """The platform's category at path `names`, created (with its ancestors) when missing."""
    parent: PlatformCategory | None = None
    for depth in range(1, len(names) + 1):
        key = (platform_id, names[:depth])
        category = cache.get(key)
        if category is None:
            path = PATH_SEP.join(names[:depth])
            category = session.scalar(
                select(PlatformCategory).where(PlatformCategory.platform_id == platform_id, PlatformCategory.path == path)
            )
            if category is None:
                category = PlatformCategory(
                    platform_id=platform_id,
                    parent_id=parent.id if parent else None,
                    name=names[depth - 1],
                    path=path,
                    depth=depth,
                )
                session.add(category)
                session.flush()
            cache[key] = category
        parent = category
    assert parent is not None
    return parent


def seed_mappings(session: Session, pairs: Iterable[tuple[int, int]]) -> int:
    """Confirmed identity mappings (origin "seed") for (platform category, master node) pairs that have none."""
    pairs = dict(pairs)
    have = set(
        session.scalars(select(CategoryMapping.platform_category_id).where(CategoryMapping.platform_category_id.in_(pairs)))
    )
    rows = [
        {
            "platform_category_id": c,
            "master_node_id": n,
            "status": "confirmed",
            "confidence": 1.0,
            "origin": "seed",
            "candidates": [],
        }
        for c, n in pairs.items()
        if c not in have
    ]
    if rows:
        session.execute(insert(CategoryMapping), rows)
    return len(rows)


# ---------------------------------------------------------------- labels that follow mappings


def mapped_targets(session: Session, category_ids: Iterable[int]) -> dict[int, int]:
    """{platform category id: master node id its products are labelled with} for confirmed mappings (redirects followed)."""
    rows = session.execute(
        select(CategoryMapping.platform_category_id, CategoryMapping.master_node_id).where(
            CategoryMapping.platform_category_id.in_(list(category_ids)),
            CategoryMapping.status == "confirmed",
            CategoryMapping.master_node_id.is_not(None),
        )
    ).all()
    return {c: follow_redirects(session, get_node(session, n)).id for c, n in rows}


def sync_mapping_labels(session: Session, category_ids: Iterable[int], *, actor: str | None) -> list[list[int | None]]:
    """Make the `mapping` labels of the categories' products match their confirmed mappings.

    Returns:
        [[product_id, previous node id or None], ...] for every label written, changed or removed (the audit
        event's record of what a decision touched).
    """
    category_ids = list(category_ids)
    targets = mapped_targets(session, category_ids)
    current = dict(
        session.execute(
            select(Product.id, Label.node_id)
            .join(Label, (Label.product_id == Product.id) & (Label.source == MAPPING_SOURCE))
            .where(Product.platform_category_id.in_(category_ids))
        ).all()
    )
    products = session.execute(
        select(Product.id, Product.platform_category_id).where(Product.platform_category_id.in_(category_ids))
    )
    new, changed, removed, touched = [], [], [], []
    for pid, category in products:
        want, have = targets.get(category), current.get(pid)
        if want == have:
            continue
        touched.append([pid, have])
        if want is None:
            removed.append(pid)
        elif have is None:
            new.append({"product_id": pid, "node_id": want, "source": MAPPING_SOURCE, "actor": actor})
        else:
            changed.append((pid, want))
    if new:
        session.execute(insert(Label), new)
    for pid, want in changed:
        session.execute(
            update(Label)
            .where(Label.product_id == pid, Label.source == MAPPING_SOURCE)
            .values(node_id=want, actor=actor, version=Label.version + 1)
        )
    if removed:
        session.execute(delete(Label).where(Label.product_id.in_(removed), Label.source == MAPPING_SOURCE))
    session.flush()
    return touched


# ---------------------------------------------------------------- decisions


def mapping_for(session: Session, category_id: int, expected: int | None = None) -> CategoryMapping:
    """The category's mapping row, read fresh and locked (created as an empty suggestion when it has none yet).

    Refused when it changed since the caller saw it at version `expected` (0: it had no mapping row; None: not stated).
    """
    category = session.get(PlatformCategory, category_id)
    if category is None:
        raise CurationError(f"Unknown platform category id {category_id}.")
    mapping = session.scalar(
        select(CategoryMapping)
        .where(CategoryMapping.platform_category_id == category_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if expected is not None:
        what = f"The mapping of {_describe(session, category_id)}"
        check_version(session, mapping, expected, what=what, key=category_id, actions=MAPPING_ACTIONS)
    if mapping is None:
        mapping = CategoryMapping(platform_category_id=category_id, status="suggested", origin="human", candidates=[])
        session.add(mapping)
        session.flush()
    return mapping


def _state(mapping: CategoryMapping) -> dict[str, Any]:
    return {"category_id": mapping.platform_category_id, **{f: getattr(mapping, f) for f in _FIELDS}}


def _decide(session: Session, mapping: CategoryMapping, *, status: str, node_id: int | None, actor: str) -> dict[str, Any]:
    """Set one mapping's decision and its products' labels; returns its before-state with the labels touched."""
    if status not in MAPPING_STATUSES:
        raise CurationError(f"Unknown mapping status {status!r}; use one of {MAPPING_STATUSES}.")
    before = _state(mapping)
    if node_id is not None and node_id != mapping.master_node_id:
        mapping.origin = "human"
    mapping.master_node_id = node_id
    mapping.status, mapping.decided_by, mapping.decided_at, mapping.updated_at = status, actor, utcnow(), utcnow()
    session.flush()
    before["labels"] = sync_mapping_labels(session, [mapping.platform_category_id], actor=actor)
    return before


def _describe(session: Session, category_id: int) -> str:
    category = session.get(PlatformCategory, category_id)
    platform = session.get(Platform, category.platform_id)
    return f"{platform.name}: {category.path!r}"


def confirm_mapping(
    session: Session, *, category_id: int, actor: str, node_id: int | None = None, expected_version: int | None = None
) -> CategoryMapping:
    """Confirm the category's mapping onto `node_id` (default: its suggestion); its products get that master label."""
    lock(session, TAXONOMY, shared=True)  # the master category stays active until this commits
    mapping = mapping_for(session, category_id, expected_version)
    target = node_id if node_id is not None else mapping.master_node_id
    if target is None:
        raise CurationError(f"{_describe(session, category_id)} has no suggestion yet: choose a master category to map it to.")
    node = active_node(session, target, role="master category")
    if mapping.status == "confirmed" and mapping.master_node_id == node.id:
        raise CurationError(f"{_describe(session, category_id)} is already mapped to {node.path!r}.")
    before = _decide(session, mapping, status="confirmed", node_id=node.id, actor=actor)
    write_audit(
        session,
        actor=actor,
        action="confirm_mapping",
        summary=f"Mapped {_describe(session, category_id)} to {node.path!r} ({len(before['labels'])} products labelled)",
        before={"mappings": [before]},
        after={"mappings": [_state(mapping)]},
    )
    return mapping


def reject_mapping(
    session: Session, *, category_id: int, actor: str, no_equivalent: bool = False, expected_version: int | None = None
) -> CategoryMapping:
    """Reject the suggestion (or, with `no_equivalent`, say the master taxonomy has no such category); labels go."""
    lock(session, TAXONOMY, shared=True)
    mapping = mapping_for(session, category_id, expected_version)
    status = "no_equivalent" if no_equivalent else "rejected"
    if mapping.status == status:
        raise CurationError(f"{_describe(session, category_id)} is already marked {status.replace('_', ' ')}.")
    node_id = None if no_equivalent else mapping.master_node_id
    before = _decide(session, mapping, status=status, node_id=node_id, actor=actor)
    what = "has no master equivalent" if no_equivalent else "suggestion rejected"
    write_audit(
        session,
        actor=actor,
        action="reject_mapping",
        summary=f"{_describe(session, category_id)}: {what} ({len(before['labels'])} product labels removed)",
        before={"mappings": [before]},
        after={"mappings": [_state(mapping)]},
    )
    return mapping


def bulk_confirm(session: Session, *, platform: str, min_confidence: float, actor: str) -> int:
    """Confirm every still-suggested mapping of `platform` with confidence >= `min_confidence`, in one action.

    The mappings are read fresh and locked: one that someone decided meanwhile is no longer suggested, and stays."""
    lock(session, TAXONOMY, shared=True)
    plat = get_platform(session, platform)
    mappings = list(
        session.scalars(
            select(CategoryMapping)
            .join(PlatformCategory, PlatformCategory.id == CategoryMapping.platform_category_id)
            .where(
                PlatformCategory.platform_id == plat.id,
                CategoryMapping.status == "suggested",
                CategoryMapping.master_node_id.is_not(None),
                CategoryMapping.confidence >= min_confidence,
            )
            .order_by(CategoryMapping.id)
            .with_for_update(of=CategoryMapping)
            .execution_options(populate_existing=True)
        )
    )
    if not mappings:
        raise CurationError(f"No suggested mapping of {platform!r} has confidence >= {min_confidence:.2f}.")
    befores = []
    for mapping in mappings:
        node = active_node(session, mapping.master_node_id, role="master category")
        befores.append(_decide(session, mapping, status="confirmed", node_id=node.id, actor=actor))
    n_labels = sum(len(b["labels"]) for b in befores)
    write_audit(
        session,
        actor=actor,
        action="bulk_confirm_mappings",
        summary=(
            f"Confirmed {len(mappings)} mappings of {platform!r} with confidence >= {min_confidence:.2f} "
            f"({n_labels} products labelled)"
        ),
        before={"mappings": befores},
        after={"mappings": [_state(m) for m in mappings]},
    )
    return len(mappings)


def undo_mapping_decision(session: Session, event: AuditEvent) -> None:
    """Reverse confirm / reject / bulk confirm: each mapping back to its state, each label back to its node."""
    lock(session, TAXONOMY, shared=True)  # labels go back onto categories that must stay active
    after = {m["category_id"]: m for m in event.after["mappings"]}
    for before in reversed(event.before["mappings"]):
        mapping = mapping_for(session, before["category_id"])
        if _state(mapping) != after[before["category_id"]]:
            raise CurationError(
                f"Cannot undo #{event.id} ({event.summary}): the mapping of {_describe(session, before['category_id'])} "
                "was changed again later; undo the later change first."
            )
        for field in _FIELDS:
            setattr(mapping, field, before[field])
        mapping.updated_at = utcnow()
        session.flush()
        # the labels follow the restored mapping: also those of products a later ingest added to the category
        sync_mapping_labels(session, [before["category_id"]], actor=event.actor)


# ---------------------------------------------------------------- suggestions (written by core.steps.mapping)


def store_suggestions(session: Session, *, platform: str, suggestions: list[dict[str, Any]], actor: str) -> dict[str, int]:
    """Upsert suggested mappings [{category_id, node_id, confidence, ambiguous, candidates}]; decided ones keep their
    decision (their candidates are refreshed). Writes one 'suggest_mappings' audit event."""
    counts = {"new": 0, "updated": 0, "kept": 0}
    for item in suggestions:
        mapping = session.scalar(select(CategoryMapping).where(CategoryMapping.platform_category_id == item["category_id"]))
        if mapping is None:
            mapping = CategoryMapping(platform_category_id=item["category_id"], status="suggested", origin="suggest")
            session.add(mapping)
            counts["new"] += 1
        elif mapping.status == "suggested":
            counts["updated"] += 1
        else:
            counts["kept"] += 1
        mapping.candidates = item["candidates"]
        if mapping.status == "suggested":
            mapping.master_node_id, mapping.confidence = item["node_id"], item["confidence"]
            mapping.ambiguous, mapping.origin, mapping.updated_at = item["ambiguous"], "suggest", utcnow()
    session.flush()
    write_audit(
        session,
        actor=actor,
        action="suggest_mappings",
        summary=(
            f"Suggested mappings for {len(suggestions)} categor{'y' if len(suggestions) == 1 else 'ies'} of {platform!r} "
            f"({counts['new']} new, {counts['kept']} already decided)"
        ),
        after={"platform": platform, **counts},
    )
    return counts


# ---------------------------------------------------------------- reading


def category_table(session: Session, *, platform: str) -> list[dict[str, Any]]:
    """The platform's categories that hold products (directly), with counts and their mapping, sorted by path."""
    plat = get_platform(session, platform)
    counts = dict(
        session.execute(
            select(Product.platform_category_id, func.count())
            .where(Product.platform_id == plat.id)
            .group_by(Product.platform_category_id)
        ).all()
    )
    stmt = (
        select(PlatformCategory, CategoryMapping, TaxonomyNode.path)
        .outerjoin(CategoryMapping, CategoryMapping.platform_category_id == PlatformCategory.id)
        .outerjoin(TaxonomyNode, TaxonomyNode.id == CategoryMapping.master_node_id)
        .where(PlatformCategory.platform_id == plat.id)
        .order_by(PlatformCategory.path)
    )
    rows = []
    for category, mapping, master_path in session.execute(stmt):
        if not counts.get(category.id):
            continue
        rows.append(
            {
                "category_id": category.id,
                "path": category.path,
                "products": counts[category.id],
                "status": mapping.status if mapping else "unmapped",
                "master_node_id": mapping.master_node_id if mapping else None,
                "master_path": master_path,
                "confidence": mapping.confidence if mapping else None,
                "ambiguous": bool(mapping.ambiguous) if mapping else False,
                "origin": mapping.origin if mapping else None,
                "candidates": list(mapping.candidates) if mapping else [],
                "version": mapping.version if mapping else 0,  # what a decision states it saw (0: no mapping yet)
            }
        )
    return rows


def coverage(session: Session) -> list[dict[str, Any]]:
    """Per shop platform: products, products in a category with a confirmed mapping, and categories by status."""
    out = []
    for plat in session.scalars(select(Platform).where(Platform.kind == "shop").order_by(Platform.name)):
        rows = category_table(session, platform=plat.name)
        by_status: dict[str, int] = {}
        for row in rows:
            by_status[row["status"]] = by_status.get(row["status"], 0) + 1
        products = session.scalar(select(func.count()).where(Product.platform_id == plat.id)) or 0
        mapped = sum(r["products"] for r in rows if r["status"] == "confirmed")
        out.append(
            {
                "platform": plat.name,
                "seeds_master": plat.seeds_master,
                "products": products,
                "mapped_products": mapped,
                "categories": len(rows),
                **by_status,
            }
        )
    return out


def node_sources(session: Session) -> dict[int, list[str]]:
    """{master node id: ["platform: category path", ...]} of the confirmed mappings onto each node."""
    stmt = (
        select(CategoryMapping.master_node_id, Platform.name, PlatformCategory.path)
        .join(PlatformCategory, PlatformCategory.id == CategoryMapping.platform_category_id)
        .join(Platform, Platform.id == PlatformCategory.platform_id)
        .where(CategoryMapping.status == "confirmed", Platform.seeds_master.is_(False))
        .order_by(Platform.name, PlatformCategory.path)
    )
    out: dict[int, list[str]] = {}
    for node_id, platform, path in session.execute(stmt):
        out.setdefault(node_id, []).append(f"{platform}: {path}")
    return out


def node_by_path_or_error(session: Session, path: str) -> TaxonomyNode:
    node = session.scalar(select(TaxonomyNode).where(TaxonomyNode.path == PATH_SEP.join(split_path(path))))
    if node is None:
        raise CurationError(f"No master category {path!r}.")
    return node


# ---------------------------------------------------------------- "no master equivalent" -> a proposed master category

PROPOSAL_RUN = "mapping:"  # run_key prefix of proposals made from a platform category (discovery keeps them)


def category_proposal(session: Session, category_id: int) -> Proposal | None:
    """The latest proposal made from platform category `category_id` (any status), or None."""
    return session.scalar(
        select(Proposal).where(Proposal.run_key == f"{PROPOSAL_RUN}{category_id}").order_by(Proposal.id.desc()).limit(1)
    )


def propose_category(session: Session, *, category_id: int, parent_node_id: int, actor: str, name: str | None = None) -> Proposal:
    """Propose a platform category that has no master equivalent as a new master category under `parent_node_id`.

    The proposal (name: the category's own, unless `name` is given; members: all its products) goes through the
    proposal flow like a discovered one: the Clusters page lists it under its parent, where it is accepted (the
    node is created and its products labelled there), renamed, merged or rejected. Discovery runs keep it.
    """
    mapping = mapping_for(session, category_id)
    if mapping.status != "no_equivalent":
        raise CurationError(
            f"{_describe(session, category_id)} is {mapping.status}: mark it 'no master equivalent' before proposing "
            "it as a new master category."
        )
    earlier = category_proposal(session, category_id)
    if earlier is not None and earlier.status == "open":
        raise CurationError(f"{_describe(session, category_id)} is already proposed (open proposal #{earlier.id}).")
    parent = active_node(session, parent_node_id, role="parent")
    category = session.get(PlatformCategory, category_id)
    final = clean_name(name or category.name)
    if session.scalar(select(TaxonomyNode.id).where(TaxonomyNode.path == PATH_SEP.join([parent.path, final]))) is not None:
        raise CurationError(f"A master category {PATH_SEP.join([parent.path, final])!r} already exists: map onto it instead.")
    members = list(session.scalars(select(Product.id).where(Product.platform_category_id == category_id).order_by(Product.id)))
    if not members:
        raise CurationError(f"{_describe(session, category_id)} holds no product: nothing to propose.")
    platform = session.get(Platform, category.platform_id)
    proposal = Proposal(
        parent_node_id=parent.id,
        status="open",
        name=final,
        run_key=f"{PROPOSAL_RUN}{category_id}",
        suggested_names=[final],
        members=members,
        scores={"origin": "mapping", "platform": platform.name, "platform_path": category.path, "coords": []},
    )
    session.add(proposal)
    session.flush()
    write_audit(
        session,
        actor=actor,
        action="propose_category",
        summary=f"Proposed {_describe(session, category_id)} as new master category {PATH_SEP.join([parent.path, final])!r} "
        f"(proposal #{proposal.id}, {len(members)} products)",
        before={"category_id": category_id},
        after={"proposal_id": proposal.id},
    )
    return proposal


def undo_propose_category(session: Session, event: AuditEvent) -> None:
    """Withdraw the proposal, while it is still open (once decided, undo that decision first)."""
    proposal = session.get(Proposal, event.after["proposal_id"])
    if proposal is None:
        return
    if proposal.status != "open":
        raise CurationError(
            f"Cannot undo #{event.id}: proposal #{proposal.id} ({proposal.name!r}) is {proposal.status}; undo that first."
        )
    session.delete(proposal)
    session.flush()
