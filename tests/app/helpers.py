"""Helpers of the page tests: run a page, read the database, and the taxonomy the test's catalogue slice makes.

Expected values come from the slice file itself (`CatalogueTree`), never from the functions the pages render with.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from db import repo
from db.models import Product, ReviewItem, TaxonomyNode
from db.session import get_sessionmaker

ROOT = Path(__file__).resolve().parents[2]
LEVELS = ("master_category", "sub_category", "article_type")  # the columns the myntra catalogue's paths are made of


@dataclass(frozen=True)
class CatalogueTree:
    """The category paths of a catalogue slice and how many products each holds (descendants included)."""

    counts: dict[tuple[str, ...], int]

    @classmethod
    def of(cls, frame) -> CatalogueTree:
        counts: Counter[tuple[str, ...]] = Counter()
        for cells in zip(*(frame[c] for c in LEVELS)):
            names = tuple(n for n in (" ".join(str(c).split()) for c in cells) if n)
            for depth in range(1, len(names) + 1):
                counts[names[:depth]] += 1
        return cls(dict(counts))

    def products(self, path: str) -> int:
        return self.counts[tuple(path.split(" > "))]

    def paths(self, depth: int | None = None) -> list[str]:
        """Every category path (of `depth` only, when given) in tree order: parents first, names sorted."""
        return [" > ".join(p) for p in sorted(self.counts) if depth is None or len(p) == depth]

    def leaves(self) -> list[str]:
        """Paths without sub-categories, in tree order."""
        inner = {p[:-1] for p in self.counts}
        return [" > ".join(p) for p in sorted(self.counts) if p not in inner]


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(ROOT / "pages" / f"{name}.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def node_id(url: str, path: str) -> int:
    with get_sessionmaker(url)() as s:
        return repo.node_by_path(s, path).id


def node_ids(url: str) -> dict[str, int]:
    """{path: id} of every category."""
    with get_sessionmaker(url)() as s:
        return dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())


def label_path(url: str, product_id: int) -> tuple[str, str]:
    with get_sessionmaker(url)() as s:
        node, source = repo.product_label(s, product_id)
        return node.path, source


def repo_title(url: str, product_id: int) -> str:
    with get_sessionmaker(url)() as s:
        return s.get(Product, product_id).title


def item_id(url: str, product_id: int) -> int:
    with get_sessionmaker(url)() as s:
        return s.scalar(select(ReviewItem.id).where(ReviewItem.product_id == product_id))


def chart_traces(at: AppTest) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]
