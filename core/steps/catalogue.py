"""Read the catalogue out of the database as a `core.data.Catalogue` (texts, photo files, effective labels)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from core.data.dataset import PATH_SEP, Catalogue, product_text
from db.models import Platform, Product, TaxonomyNode
from db.repo import effective_labels_subquery, image_location


def load_catalogue(session, *, platform: str | None = None, max_description_chars: int = 300) -> Catalogue:
    """Every product (of `platform`, or all) with its text, photo file and effective label path."""
    eff = effective_labels_subquery()
    stmt = (
        select(
            Product.id,
            Product.external_id,
            Platform.name,
            Platform.root,
            Product.title,
            Product.description,
            Product.image,
            Product.image_status,
            TaxonomyNode.path,
            eff.c.source,
        )
        .join(Platform, Platform.id == Product.platform_id)
        .outerjoin(eff, eff.c.product_id == Product.id)
        .outerjoin(TaxonomyNode, TaxonomyNode.id == eff.c.node_id)
        .order_by(Product.id)
    )
    if platform:
        stmt = stmt.where(Platform.name == platform)
    cat = Catalogue(np.zeros(0, dtype=np.int64))
    ids = []
    for r in session.execute(stmt):
        ids.append(r.id)
        cat.external_ids.append(r.external_id)
        cat.platforms.append(r.name)
        cat.titles.append(r.title)
        cat.texts.append(product_text(r.title, r.description, max_description_chars=max_description_chars))
        cat.descriptions.append(" ".join((r.description or "").split())[:max_description_chars])
        cat.images.append(image_location(r.root, r.image) if r.image_status == "ok" else None)
        cat.labels.append(tuple(r.path.split(PATH_SEP)) if r.path else None)
        cat.label_sources.append(r.source)
    cat.product_ids = np.asarray(ids, dtype=np.int64)
    return cat


def catalogue_and_brands(factory) -> tuple[Catalogue, list[str | None]]:
    """The whole catalogue and each product's brand (aligned with `cat.product_ids`), in one session."""
    with factory() as s:
        cat = load_catalogue(s)
        brand_of = dict(s.execute(select(Product.id, Product.brand)).all())
    return cat, [brand_of.get(int(pid)) for pid in cat.product_ids]
