"""Read the catalogue out of the database as a `core.data.Catalogue` (texts, photo files, effective labels)."""

from __future__ import annotations

from array import array

import numpy as np
from sqlalchemy import select

from core.data.dataset import PATH_SEP, Catalogue, product_text
from db.models import LABEL_SOURCES, Label, Platform, Product, TaxonomyNode
from db.repo import image_location

CHUNK = 20_000  # rows a round trip: the products are streamed (a server-side cursor on PostgreSQL), never all held


def effective_labels(session, *, platform_id: int | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(product ids ascending, node id, source) of each labelled product's best label (`LABEL_SOURCES` order, as
    `db.repo.effective_labels_subquery`): the labels are streamed as three compact columns and ranked here."""
    stmt = select(Label.product_id, Label.node_id, Label.source)
    if platform_id is not None:
        stmt = stmt.join(Product, Product.id == Label.product_id).where(Product.platform_id == platform_id)
    names = list(LABEL_SOURCES)  # a source outside them ranks after them all
    rank_of = {name: i for i, name in enumerate(names)}
    pids, nodes, ranks = array("q"), array("q"), array("b")
    for pid, node, source in session.execute(stmt.execution_options(yield_per=CHUNK)):
        if source not in rank_of:
            rank_of[source] = len(names)
            names.append(source)
        pids.append(pid)
        nodes.append(node)
        ranks.append(rank_of[source])
    pid, node, rank = (np.frombuffer(a, dtype=a.typecode) if len(a) else np.zeros(0, np.int64) for a in (pids, nodes, ranks))
    order = np.lexsort((rank, pid))  # by product, its best label first
    pid, node, rank = pid[order], node[order], rank[order]
    first = np.ones(len(pid), dtype=bool)
    first[1:] = pid[1:] != pid[:-1]
    return pid[first].astype(np.int64), node[first].astype(np.int64), [names[r] for r in rank[first]]


def load_catalogue(session, *, platform: str | None = None, max_description_chars: int = 300) -> Catalogue:
    """Every product (of `platform`, or all) with its text, photo file and effective label path, by product id.

    Products are streamed in chunks of `CHUNK` rows with only the columns the catalogue keeps, and each chunk is
    filled in column by column; a label path is one tuple shared by the products of its category, a platform's name
    one string."""
    platforms = {pid: (name, root) for pid, name, root in session.execute(select(Platform.id, Platform.name, Platform.root))}
    platform_id = next((pid for pid, (name, _) in platforms.items() if name == platform), -1) if platform else None
    paths = {nid: tuple(path.split(PATH_SEP)) for nid, path in session.execute(select(TaxonomyNode.id, TaxonomyNode.path))}
    labels = effective_labels(session, platform_id=platform_id)
    columns = (Product.id, Product.external_id, Product.platform_id, Product.title, Product.description, Product.image)
    stmt = select(*columns, Product.image_status).order_by(Product.id)
    if platform_id is not None:
        stmt = stmt.where(Product.platform_id == platform_id)
    cat, ids = Catalogue(np.zeros(0, dtype=np.int64)), array("q")
    for rows in session.execute(stmt.execution_options(yield_per=CHUNK)).partitions():
        pid, external, plat, title, description, image, status = zip(*rows, strict=True)
        ids.extend(pid)
        cat.external_ids.extend(external)
        cat.platforms.extend(platforms[p][0] for p in plat)
        cat.titles.extend(title)
        short = [" ".join((d or "").split())[:max_description_chars] for d in description]
        cat.descriptions.extend(short)
        cat.texts.extend(product_text(t, d, max_description_chars=max_description_chars) for t, d in zip(title, description))
        cat.images.extend(
            image_location(platforms[p][1], im) if st == "ok" else None for p, im, st in zip(plat, image, status, strict=True)
        )
        _add_labels(cat, np.asarray(pid, dtype=np.int64), labels, paths)
    cat.product_ids = np.frombuffer(ids, dtype=np.int64).copy() if len(ids) else np.zeros(0, dtype=np.int64)
    return cat


def _add_labels(cat: Catalogue, pids: np.ndarray, labels: tuple[np.ndarray, np.ndarray, list[str]], paths: dict) -> None:
    """Append the effective label path and source of the products `pids` (ascending) to `cat`."""
    label_pids, label_nodes, sources = labels
    if not len(label_pids):
        cat.labels.extend([None] * len(pids))
        cat.label_sources.extend([None] * len(pids))
        return
    at = np.minimum(np.searchsorted(label_pids, pids), len(label_pids) - 1)
    found, nodes = (label_pids[at] == pids).tolist(), label_nodes[at].tolist()
    cat.labels.extend(paths[n] if hit else None for hit, n in zip(found, nodes, strict=True))
    cat.label_sources.extend(sources[i] if hit else None for hit, i in zip(found, at.tolist(), strict=True))


def catalogue_and_brands(factory) -> tuple[Catalogue, list[str | None]]:
    """The whole catalogue and each product's brand (aligned with `cat.product_ids`), in one session."""
    with factory() as s:
        cat = load_catalogue(s)
        brand_of = dict(s.execute(select(Product.id, Product.brand).execution_options(yield_per=CHUNK)).all())
    return cat, [brand_of.get(int(pid)) for pid in cat.product_ids]
