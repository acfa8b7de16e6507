"""The catalogue as arrays for the ML steps: texts, image paths and label paths, read from the database."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from db.models import PATH_SEP


@dataclass
class Catalogue:
    """Products in a fixed order (by product id). Lists are aligned with `product_ids`."""

    product_ids: np.ndarray  # (N,) int64
    external_ids: list[str] = field(default_factory=list)
    platforms: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # what the text encoder reads
    images: list[str | None] = field(default_factory=list)  # readable photo file, else None
    labels: list[tuple[str, ...] | None] = field(default_factory=list)  # effective label path
    label_sources: list[str | None] = field(default_factory=list)
    descriptions: list[str] = field(default_factory=list)  # the start of each description ("" when none)

    def __len__(self) -> int:
        return len(self.product_ids)

    @property
    def has_image(self) -> np.ndarray:
        """(N,) bool."""
        return np.array([img is not None for img in self.images], dtype=bool)

    @property
    def labelled(self) -> np.ndarray:
        """(N,) bool."""
        return np.array([lab is not None for lab in self.labels], dtype=bool)

    def subset(self, rows: np.ndarray) -> Catalogue:
        rows = np.asarray(rows)
        pick = lambda xs: [xs[i] for i in rows]  # noqa: E731
        return Catalogue(
            self.product_ids[rows],
            pick(self.external_ids),
            pick(self.platforms),
            pick(self.titles),
            pick(self.texts),
            pick(self.images),
            pick(self.labels),
            pick(self.label_sources),
            pick(self.descriptions) if self.descriptions else [],
        )


def product_text(title: str, description: str | None, *, max_description_chars: int = 300) -> str:
    """Title, then the start of the description (the text encoder's input)."""
    desc = " ".join((description or "").split())[:max_description_chars]
    return f"{title.strip()}. {desc}" if desc else title.strip()


def load_catalogue(session, *, platform: str | None = None, max_description_chars: int = 300) -> Catalogue:
    """Every product (of `platform`, or all) with its text, photo file and effective label path."""
    from sqlalchemy import select

    from db.models import Platform, Product, TaxonomyNode
    from db.repo import effective_labels_subquery, image_location

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


def stratified_split(labels: list[tuple[str, ...]], *, test_size: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split stratified by full label path; paths with a single product stay in train.

    Returns:
        (train_rows, test_rows): sorted int arrays of row indices.
    """
    rng = np.random.default_rng(seed)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, path in enumerate(labels):
        groups.setdefault(tuple(path), []).append(i)
    test = []
    for rows in groups.values():
        if len(rows) < 2:
            continue
        n_test = max(1, int(round(len(rows) * test_size)))
        test.extend(rng.choice(rows, size=min(n_test, len(rows) - 1), replace=False).tolist())
    test_rows = np.sort(np.asarray(test, dtype=np.int64))
    train_rows = np.setdiff1d(np.arange(len(labels)), test_rows)
    return train_rows, test_rows
