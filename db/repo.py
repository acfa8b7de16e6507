"""Repository functions over the taxonomy database.

Every function takes the session keyword-only and never commits: the caller owns the transaction
(`with db.session.transaction(factory) as s: ...`), so one user action is one transaction.
Curation functions write an audit event that `db.actions.undo` can reverse; see db/actions.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from sqlalchemy import case, exists, func, select, text
from sqlalchemy.orm import Session, aliased

from db.models import (
    LABEL_SOURCES,
    PATH_SEP,
    AuditEvent,
    Label,
    Platform,
    Product,
    TaxonomyNode,
    TaxonomyVersion,
)


class CurationError(ValueError):
    """A curation action that cannot be done as asked; the message says what and why."""


class ConflictError(CurationError):
    """Someone else changed what the action is about, since the page showed it or at the same moment: reload, retry."""


# ---------------------------------------------------------------- concurrency: locks and versions
#
# Two curators acting at once are serialised, and the second is told when what it saw has changed:
# - on SQLite every write transaction (`db.session.transaction`) begins IMMEDIATE, so writers take turns;
# - on PostgreSQL an action takes the advisory lock of what it changes first (`lock`): the taxonomy exclusively for
#   a change of its shape, shared for a label onto a category (which must stay active until commit); model
#   activation its own. Rows it reads and then writes are read fresh and locked (`locked`);
# - an action may state the version it saw (`expected_version`, or `expected={id: version}`); `check_version`
#   refuses it when the row changed since, naming who changed it. Versioned rows (db/models.py `version_id_col`)
#   also refuse an UPDATE of a row changed since it was read, and the database's own invariants (migration 0007)
#   refuse what no check above caught; `db.session.transaction` turns both into a one-line ConflictError.

TAXONOMY = "taxonomy"
MODELS = "model-activation"


def lock(session: Session, name: str, *, shared: bool = False) -> None:
    """Take the advisory lock `name` until the transaction ends (PostgreSQL; SQLite writers are serialised anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        session.execute(text(f"SELECT {function}(hashtext(:k))"), {"k": f"curator:{name}"})


def without_jit(session: Session) -> None:
    """No JIT compilation for the rest of this transaction (PostgreSQL): a page read that stops after a few rows is
    costed as if it read them all, and compiling it took 300 ms where running it took 6 (1M products)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL jit = off"))


def locked(session: Session, model, row_id: Any):
    """The row `row_id` of `model` read fresh (not from the session's memory) and locked FOR UPDATE; None if absent."""
    stmt = select(model).where(model.id == row_id).with_for_update().execution_options(populate_existing=True)
    return session.scalar(stmt)


_VERBS = {
    "add_node": "changed",
    "rename_node": "renamed",
    "move_node": "moved",
    "merge_node": "merged",
    "retire_node": "retired",
    "accept_proposal": "accepted",
    "rename_proposal": "renamed",
    "reject_proposal": "rejected",
    "merge_proposals": "merged",
    "move_out": "changed",
    "confirm_mapping": "confirmed",
    "reject_mapping": "rejected",
    "bulk_confirm_mappings": "confirmed",
    "decide_standard": "decided",
    "activate_model": "activated",
    "relabel_product": "relabelled",
    "review_decision": "relabelled",
    "undo": "changed by an undo",
}
_TRACE_KEYS = {  # the audit keys that name a row of each table
    "taxonomy_nodes": ("node_id", "target_id", "source_id", "nodes", "children"),
    "proposals": ("proposal_id", "source_id", "target_id"),
    "category_mappings": ("category_id",),
    "standard_mappings": ("node_id",),
    "model_versions": ("version_id",),
    "labels": ("product_id",),
}


def _mentions(data: Any, keys: tuple[str, ...], row_id: Any) -> bool:
    if isinstance(data, list):
        return any(_mentions(item, keys, row_id) for item in data)
    if not isinstance(data, dict):
        return False
    for key, value in data.items():
        if key in keys and (value == row_id or (isinstance(value, list) and row_id in value)):
            return True
        if isinstance(value, dict | list) and _mentions(value, keys, row_id):
            return True
    return False


def last_change(session: Session, table: str, row_id: Any, *, actions: tuple[str, ...] | None = None) -> AuditEvent | None:
    """The newest audit event (of the last 200) that names row `row_id` of `table`."""
    keys = _TRACE_KEYS[table]
    for event in audit_history(session, limit=200):
        if (actions is None or event.action in actions or event.action == "undo") and (
            _mentions(event.before, keys, row_id) or _mentions(event.after, keys, row_id)
        ):
            return event
    return None


def check_version(
    session: Session, row: Any, expected: int | None, *, what: str, key: Any = None, actions: tuple[str, ...] | None = None
) -> None:
    """Refuse (ConflictError) when `row` is no longer at the version the caller saw (`expected`; None: not stated).

    `what` names the row for a person ("Category 'Shoes'"); the message says who changed it, from the audit log
    (`key`: the id the audit events name it by, default its id; `actions`: the audit actions that change it).
    """
    have = getattr(row, "version", 0) if row is not None else 0
    if expected is None or have == expected:
        return
    event = last_change(session, row.__tablename__, row.id if key is None else key, actions=actions) if row is not None else None
    if event is None:
        raise ConflictError(f"{what} was changed by someone else a moment ago: reload.")
    raise ConflictError(f"{what} was {_VERBS.get(event.action, 'changed')} by {event.actor} a moment ago: reload.")


# ---------------------------------------------------------------- names and paths


def clean_name(name: str) -> str:
    """A valid node name: trimmed, non-empty, without the path separator '>'."""
    cleaned = " ".join(str(name).split())
    if not cleaned:
        raise CurationError("A category name cannot be empty.")
    if ">" in cleaned:
        raise CurationError(f"A category name cannot contain '>': {cleaned!r}.")
    if len(cleaned) > 200:
        raise CurationError(f"A category name is limited to 200 characters: {cleaned[:40]!r}...")
    return cleaned


def join_path(names: Iterable[str]) -> str:
    return PATH_SEP.join(names)


def split_path(path: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in path.split(">"))


# ---------------------------------------------------------------- platforms


def get_or_create_platform(session: Session, *, name: str, root: str | None = None) -> Platform:
    platform = session.scalar(select(Platform).where(Platform.name == name))
    if platform is None:
        platform = Platform(name=name, root=root)
        session.add(platform)
        session.flush()
    elif root is not None and platform.root != root:
        platform.root = root
    return platform


# ---------------------------------------------------------------- nodes


def get_node(session: Session, node_id: int) -> TaxonomyNode:
    node = session.get(TaxonomyNode, node_id)
    if node is None:
        raise CurationError(f"Unknown category id {node_id}.")
    return node


def node_by_path(session: Session, path: str) -> TaxonomyNode | None:
    return session.scalar(select(TaxonomyNode).where(TaxonomyNode.path == join_path(split_path(path))))


def active_node(session: Session, node_id: int, *, role: str = "category") -> TaxonomyNode:
    """The node with `node_id`, which must exist and be active."""
    node = get_node(session, node_id)
    if node.status != "active":
        raise CurationError(f"The {role} {node.path!r} is {node.status}; choose an active category.")
    return node


def follow_redirects(session: Session, node: TaxonomyNode) -> TaxonomyNode:
    """Where a retired or merged node's products now go (the node itself when active)."""
    seen = set()
    while node.status == "retired" and node.redirect_id is not None and node.id not in seen:
        seen.add(node.id)
        node = get_node(session, node.redirect_id)
    return node


def ensure_path(session: Session, names: tuple[str, ...], cache: dict | None = None) -> tuple[TaxonomyNode, int]:
    """The node at path `names`, created (with its ancestors) when missing; redirects followed.

    Returns:
        (node, created): how many nodes were added.
    """
    cache = {} if cache is None else cache
    parent: TaxonomyNode | None = None
    created = 0
    for depth in range(1, len(names) + 1):
        key = names[:depth]
        node = cache.get(key)
        if node is None:
            node = node_by_path(session, join_path(key))
            if node is None:
                if parent is not None and parent.status == "retired":  # a new category goes where the old one's went
                    parent = follow_redirects(session, parent)
                    if parent.status == "retired":
                        raise CurationError(f"{parent.path!r} is retired: {join_path(key)!r} cannot be added under it.")
                    node = node_by_path(session, join_path([parent.path, key[-1]]))
            if node is None:
                node = TaxonomyNode(
                    parent_id=parent.id if parent else None,
                    name=clean_name(key[-1]),
                    path=join_path([parent.path, key[-1]]) if parent else join_path(key),
                    depth=parent.depth + 1 if parent else depth,
                    status="active",
                )
                session.add(node)
                session.flush()
                created += 1
            cache[key] = node
        parent = node
    return follow_redirects(session, parent), created


def children_map(session: Session) -> dict[int | None, list[TaxonomyNode]]:
    kids: dict[int | None, list[TaxonomyNode]] = defaultdict(list)
    for node in session.scalars(select(TaxonomyNode).order_by(TaxonomyNode.name)):
        kids[node.parent_id].append(node)
    return kids


def subtree(session: Session, node: TaxonomyNode, kids: dict | None = None) -> list[TaxonomyNode]:
    """`node` and all its descendants (any status), parents before children."""
    kids = children_map(session) if kids is None else kids
    out, stack = [], [node]
    while stack:
        current = stack.pop()
        out.append(current)
        stack.extend(reversed(kids.get(current.id, [])))
    return out


def repath(session: Session, node: TaxonomyNode) -> None:
    """Recompute path and depth of `node` and its descendants after a rename or move."""
    parent = session.get(TaxonomyNode, node.parent_id) if node.parent_id else None
    new_path = join_path([parent.path, node.name]) if parent else node.name
    clash = node_by_path(session, new_path)
    if clash is not None and clash.id != node.id:
        raise CurationError(f"A category {new_path!r} already exists ({clash.status}); merge into it instead.")
    kids = children_map(session)
    old_prefix = node.path
    for member in subtree(session, node, kids):
        member.path = new_path + member.path[len(old_prefix) :]
        member.depth = member.path.count(PATH_SEP) + 1
    session.flush()


def taxonomy_version(session: Session) -> int:
    return session.scalar(select(func.max(TaxonomyVersion.id))) or 0


def bump_taxonomy_version(session: Session, *, event: AuditEvent) -> None:
    session.add(TaxonomyVersion(audit_event_id=event.id, note=event.summary))


# ---------------------------------------------------------------- labels


def _priority(source):
    """A label source's rank (0 wins), as a SQL expression over the column `source`."""
    return case({src: i for i, src in enumerate(LABEL_SOURCES)}, value=source)


def _source_priority():
    return _priority(Label.source)


def effective_labels_subquery(products=None):
    """One row per labelled product: (product_id, node_id, source) of its best label.

    Human labels win over model labels, which win over the platform's own. `products` (a list of product ids, or a
    SELECT of them) ranks the labels of those products only: a page of cards does not rank the whole catalogue's.
    """
    rank = func.row_number().over(partition_by=Label.product_id, order_by=_source_priority())
    ranked = select(Label.product_id, Label.node_id, Label.source, rank.label("rank"))
    if products is not None:
        ranked = ranked.where(Label.product_id.in_(products))
    ranked = ranked.subquery()
    return select(ranked.c.product_id, ranked.c.node_id, ranked.c.source).where(ranked.c.rank == 1).subquery("effective")


# product ids per statement of `child_shares`: SQLite allows 32,766 bound parameters, psycopg 65,535, and a proposal
# of a large node can hold more members than either
SHARES_CHUNK = 10_000


def child_shares(session: Session, product_ids: list[int], parent_id: int) -> list[tuple[str, int]]:
    """[(child name, products)] of `product_ids` under each active child of `parent_id`, by each product's effective
    label (the child itself or a category below it), most products first; products labelled elsewhere (the parent
    itself, another branch) or not at all are not counted. What the Clusters page shows of a proposal: which
    existing categories its products already sit in."""
    if not product_ids:
        return []
    parent = get_node(session, parent_id)
    children = session.scalars(
        select(TaxonomyNode).where(TaxonomyNode.parent_id == parent.id, TaxonomyNode.status == "active")
    ).all()
    if not children:
        return []
    ids = sorted(set(product_ids))
    below: dict[str, int] = defaultdict(int)
    for start in range(0, len(ids), SHARES_CHUNK):  # bound parameters per statement stay under the limits
        eff = effective_labels_subquery(ids[start : start + SHARES_CHUNK])
        for path, n in session.execute(
            select(TaxonomyNode.path, func.count())
            .join(eff, eff.c.node_id == TaxonomyNode.id)
            .where(TaxonomyNode.path.startswith(parent.path + PATH_SEP, autoescape=True))
            .group_by(TaxonomyNode.path)
        ):
            below[path] += n
    by_path = {child.path: child.name for child in children}
    counts: dict[str, int] = defaultdict(int)
    for path, n in below.items():
        top = join_path(split_path(path)[: len(split_path(parent.path)) + 1])
        if top in by_path:
            counts[by_path[top]] += n
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def product_label(session: Session, product_id: int) -> tuple[TaxonomyNode, str] | None:
    eff = effective_labels_subquery()
    row = session.execute(select(eff.c.node_id, eff.c.source).where(eff.c.product_id == product_id)).first()
    return (session.get(TaxonomyNode, row.node_id), row.source) if row else None


def set_label(session: Session, *, product_id: int, node_id: int | None, source: str, actor: str | None) -> int | None:
    """Write (or with node_id=None delete) the product's label from `source`; returns the old node id.

    The label is read fresh and locked, and its version bumped, so two writers of one label take turns."""
    label = session.scalar(
        select(Label)
        .where(Label.product_id == product_id, Label.source == source)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    old = label.node_id if label else None
    if node_id is None:
        if label is not None:
            session.delete(label)
    elif label is None:
        session.add(Label(product_id=product_id, node_id=node_id, source=source, actor=actor))
    else:
        label.node_id, label.actor, label.version = node_id, actor, label.version + 1
    session.flush()
    return old


def effective_node(product_id):
    """The node id of the product's effective label, as a correlated scalar subquery (NULL when it has none).

    It reads the product's own labels only (at most one a source, through the (product_id, source) unique index),
    so a page of products does not rank the whole catalogue's labels."""
    best = aliased(Label)
    return select(best.node_id).where(best.product_id == product_id).order_by(_priority(best.source)).limit(1).scalar_subquery()


def _outranked_counts(session: Session) -> dict[int, int]:
    """{node_id: labels there that another label of the same product outranks} (a person's over the platform's)."""
    lower, better = aliased(Label), aliased(Label)
    outranked = exists().where(better.product_id == lower.product_id, _priority(better.source) < _priority(lower.source))
    # only a product with a label from a source above the lowest can have an outranked label (migration 0008's index)
    others = select(Label.product_id).where(Label.source != LABEL_SOURCES[-1])
    stmt = select(lower.node_id, func.count()).where(lower.product_id.in_(others), outranked).group_by(lower.node_id)
    return dict(session.execute(stmt).all())


def direct_counts(session: Session) -> dict[int, int]:
    """{node_id: products whose effective label is there} (nodes without any left out).

    Every labelled product has exactly one effective label and its other labels are outranked, so this is every
    label counted by node (an index-only scan) less the outranked ones (few: curated and mapped products)."""
    counts = dict(session.execute(select(Label.node_id, func.count()).group_by(Label.node_id)).all())
    for node_id, n in _outranked_counts(session).items():
        counts[node_id] -= n
    return {node_id: n for node_id, n in counts.items() if n}


def node_counts(session: Session) -> dict[int, tuple[int, int]]:
    """Products per node by effective label: {node_id: (direct, including descendants)}."""
    direct = direct_counts(session)
    parents = dict(session.execute(select(TaxonomyNode.id, TaxonomyNode.parent_id)).all())
    total: dict[int, int] = defaultdict(int)
    for node_id, n in direct.items():
        current: int | None = node_id
        while current is not None:
            total[current] += n
            current = parents.get(current)
    return {node_id: (direct.get(node_id, 0), total.get(node_id, 0)) for node_id in parents}


def taxonomy_rows(session: Session, *, include_retired: bool = False) -> list[dict[str, Any]]:
    """Every node with its product counts, in tree order (parents before children, names sorted)."""
    counts = node_counts(session)
    kids = children_map(session)
    rows = []
    for root in kids.get(None, []):
        for node in subtree(session, root, kids):
            if node.status == "retired" and not include_retired:
                continue
            direct, total = counts.get(node.id, (0, 0))
            rows.append(
                {
                    "id": node.id,
                    "parent_id": node.parent_id,
                    "name": node.name,
                    "path": node.path,
                    "depth": node.depth,
                    "status": node.status,
                    "direct": direct,
                    "products": total,
                    "children": sum(1 for k in kids.get(node.id, []) if k.status != "retired"),
                    "version": node.version,  # what an action on it states it saw (`expected_version`)
                }
            )
    return rows


PHOTO_FIRST = case((Product.image_status == "ok", 0), else_=1)  # the order of a node's products: photos first, then id


def page_key(image_status: str, product_id: int) -> tuple[int, int]:
    """Where a product stands in that order; `products_in_node(after=...)` starts after it."""
    return (0 if image_status == "ok" else 1, int(product_id))


def products_in_node(
    session: Session,
    *,
    node_id: int,
    limit: int = 24,
    offset: int = 0,
    descendants: bool = True,
    after: tuple[int, int] | None = None,
    total: int | None = None,
) -> tuple[list[Product], int]:
    """Products whose effective label is `node_id` (or below it), those with a photo first, then by id; returns
    (page, total).

    `after` (a `page_key`) pages by keyset: the page starts after that product, read in index order without
    skipping the rows before it (offset is ignored then); offset 0 reads the same way. `total`: the node's product
    count when the caller already has it (the Taxonomy page's node counts), so it is not counted again."""
    node = get_node(session, node_id)
    ids = [n.id for n in subtree(session, node)] if descendants else [node.id]
    without_jit(session)
    where = (
        exists().where(Label.product_id == Product.id, Label.node_id.in_(ids)),  # any label there: a candidate
        effective_node(Product.id).in_(ids),
    )
    if total is None:  # from the node counts, which read labels only (counting the candidates joins products)
        direct = direct_counts(session)
        total = sum(direct.get(i, 0) for i in ids)
    if after is None and offset:
        return (_offset_page(session, where, offset, limit) if offset < total else []), total
    return _keyset_page(session, where, after or (0, 0), limit), total


def _keyset_page(session: Session, where, after: tuple[int, int], limit: int) -> list[Product]:
    """Up to `limit` products after `after` in photo-first order: the photo run, then the rest, each by id."""
    photo, last = after
    page: list[Product] = []
    if photo == 0:
        stmt = select(Product).where(*where, Product.image_status == "ok", Product.id > last).order_by(Product.id)
        page = list(session.scalars(stmt.limit(limit)))
        last = 0
    if len(page) < limit:
        stmt = select(Product).where(*where, Product.image_status != "ok", Product.id > last).order_by(Product.id)
        page += list(session.scalars(stmt.limit(limit - len(page))))
    return page


def _offset_page(session: Session, where, offset: int, limit: int) -> list[Product]:
    """Up to `limit` products from position `offset` in photo-first order: each run read in index order, skipping
    only the rows before the page (the photo run counted when the page starts past it)."""
    photo = (*where, Product.image_status == "ok")
    page = list(session.scalars(select(Product).where(*photo).order_by(Product.id).offset(offset).limit(limit)))
    if len(page) == limit:
        return page
    skip = 0
    if not page:  # the page starts after the photos: skip what is left of the offset in the rest
        skip = offset - (session.scalar(select(func.count()).select_from(Product).where(*photo)) or 0)
    rest = select(Product).where(*where, Product.image_status != "ok").order_by(Product.id)
    return page + list(session.scalars(rest.offset(skip).limit(limit - len(page))))


def catalogue_stats(session: Session) -> list[dict[str, Any]]:
    """Per platform: products, labelled products, and image statuses.

    Two grouped counts over indexes (migration 0008): products by (platform, image status), and those with any
    label (a product with a label has an effective one)."""
    groups = (Product.platform_id, Product.image_status)
    products = session.execute(select(*groups, func.count()).group_by(*groups)).all()
    has_label = exists().where(Label.product_id == Product.id)
    labelled = {(p, s): n for p, s, n in session.execute(select(*groups, func.count()).where(has_label).group_by(*groups))}
    names = dict(session.execute(select(Platform.id, Platform.name)).all())
    stats: dict[str, dict[str, Any]] = {}
    for platform_id, image_status, n in sorted(products, key=lambda r: (names[r[0]], r[1])):
        row = stats.setdefault(names[platform_id], {"platform": names[platform_id], "products": 0, "labelled": 0})
        row["products"] += n
        row["labelled"] += labelled.get((platform_id, image_status), 0)
        row[f"images_{image_status}"] = row.get(f"images_{image_status}", 0) + n
    return list(stats.values())


def audit_history(session: Session, *, limit: int = 50, actions: tuple[str, ...] | None = None) -> list[AuditEvent]:
    """The newest audit events (of the given actions only, when given)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actions:
        stmt = stmt.where(AuditEvent.action.in_(actions))
    return list(session.scalars(stmt))


def write_audit(
    session: Session,
    *,
    actor: str,
    action: str,
    summary: str,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> AuditEvent:
    event = AuditEvent(actor=actor, action=action, summary=summary, before=before or {}, after=after or {})
    session.add(event)
    session.flush()
    return event


def image_location(root: str | None, image: str | None) -> str | None:
    """An image's file path (under the platform's root) or URL, or None."""
    if not image:
        return None
    if image.startswith(("http://", "https://")) or root is None:
        return image
    return str(PurePath(root) / image)


def product_cards(session: Session, *, product_ids: list[int]) -> list[dict[str, Any]]:
    """Display data for products, in the given order: title, brand, image location and status, label."""
    eff = effective_labels_subquery(product_ids)
    stmt = (
        select(Product, Platform.name, Platform.root, TaxonomyNode.path, eff.c.source)
        .join(Platform, Platform.id == Product.platform_id)
        .outerjoin(eff, eff.c.product_id == Product.id)
        .outerjoin(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
        .where(Product.id.in_(product_ids))
    )
    cards = {}
    for product, platform, root, path, source in session.execute(stmt):
        cards[product.id] = {
            "id": product.id,
            "external_id": product.external_id,
            "platform": platform,
            "title": product.title,
            "brand": product.brand,
            "description": product.description,
            "image_status": product.image_status,
            "image": image_location(root, product.image),
            "label": path,
            "label_source": source,
        }
    return [cards[i] for i in product_ids if i in cards]
