"""Two small platforms for the page tests of category mapping: `shop` (ingested first: it seeds the master taxonomy)
and `hm` (its own tree; one category name and title carry markdown and HTML characters), and hand-written
suggestions for hm's categories. Expected values in the tests come from these tables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from core.data.ingest import ColumnMap
from core.steps.ingest import ingest
from db import mappings
from db.models import Platform, PlatformCategory, Product, TaxonomyNode
from db.session import get_sessionmaker, transaction, upgrade
from tests.app.helpers import add_people

MAP = ColumnMap.parse(["id=sku", "title=name", "levels=l1,l2,l3", "description=none", "brand=none", "image=none"])
SHOP = [  # sku, title, master path
    ("M1", "Red tee", "Apparel > Topwear > Tshirts"),
    ("M2", "Blue tee", "Apparel > Topwear > Tshirts"),
    ("M3", "White shirt", "Apparel > Topwear > Shirts"),
    ("M4", "Runner", "Footwear > Shoes > Sports Shoes"),
    ("M5", "Loafer", "Footwear > Shoes > Casual Shoes"),
]
# a category name and a title a platform file could carry; they must show as these characters (a category name may not
# hold '>', the path separator, so its HTML is in the title)
MARKUP = "**bold** _it_ [x](http://e.com) :red[y]"
MARKUP_TITLE = "**bold** <b>x</b> tee"
HM = [  # sku, title, hm's own path
    ("H1", "Basic tee", "Garment Upper body > T-shirt"),
    ("H2", "Slim tee", "Garment Upper body > T-shirt"),
    ("H3", "Trainer", "Shoes > Sneakers"),
    ("H4", "Moccasin", "Shoes > Slip-on"),
    ("H5", "Desk lamp", "Furniture > Lamp"),
    ("H6", MARKUP_TITLE, f"Odd > {MARKUP}"),
    *[(f"T{k}", f"Chino trouser {k}", "Garment Lower body > Trousers") for k in range(1, 11)],  # more than a page shows
]
# hm category -> (suggested master path or None for "no master equivalent", confidence, ambiguous, runner-up path)
SUGGESTED = {
    "Garment Upper body > T-shirt": ("Apparel > Topwear > Tshirts", 0.95, False, "Apparel > Topwear > Shirts"),
    "Shoes > Sneakers": ("Footwear > Shoes > Sports Shoes", 0.92, False, "Footwear > Shoes > Casual Shoes"),
    "Shoes > Slip-on": ("Footwear > Shoes > Casual Shoes", 0.55, True, "Footwear > Shoes > Sports Shoes"),
    "Furniture > Lamp": (None, 0.7, False, "Apparel > Topwear > Shirts"),
    f"Odd > {MARKUP}": ("Apparel > Topwear > Shirts", 0.3, False, None),
}


def hm_products(category: str) -> list[str]:
    """The skus of hm's products in `category` (from the table above)."""
    return [sku for sku, _, path in HM if path == category]


def write_csv(folder: Path, name: str, rows) -> Path:
    import pandas as pd

    levels = lambda path: (path.split(" > ") + ["", ""])[:3]  # noqa: E731 - a two-level path leaves l3 empty
    frame = pd.DataFrame([(sku, title, *levels(path)) for sku, title, path in rows], columns=["sku", "name", "l1", "l2", "l3"])
    path = folder / name
    frame.to_csv(path, index=False)
    return path


@dataclass(frozen=True)
class MappingWorld:
    url: str
    cats: dict[str, int]  # hm category path -> platform category id
    nodes: dict[str, int]  # master path -> node id
    pids: dict[str, int]  # sku -> product id


def make_world(folder: Path, *, suggest: bool = True, second: bool = True) -> MappingWorld:
    """A SQLite database with `shop` then (when `second`) `hm` ingested, and (when `suggest`) the SUGGESTED mappings."""
    url = f"sqlite:///{folder / 'mapping.db'}"
    upgrade(url)
    add_people(url)  # the pages run signed in (run_page)
    ingest(write_csv(folder, "shop.csv", SHOP), platform="shop", db_url=url, mapping=MAP)
    if second:
        ingest(write_csv(folder, "hm.csv", HM), platform="hm", db_url=url, mapping=MAP)
    with get_sessionmaker(url)() as s:
        cats = {c.path: c.id for c in s.scalars(select(PlatformCategory).join(Platform).where(Platform.name == "hm"))}
        nodes = dict(s.execute(select(TaxonomyNode.path, TaxonomyNode.id)).all())
        pids = dict(s.execute(select(Product.external_id, Product.id)).all())
    world = MappingWorld(url, cats, nodes, pids)
    if suggest and second:
        with transaction(get_sessionmaker(url)) as s:
            mappings.store_suggestions(s, platform="hm", suggestions=suggestion_rows(world), actor="test")
    return world


def suggestion_rows(world: MappingWorld) -> list[dict]:
    """SUGGESTED in the shape `db.mappings.store_suggestions` takes (what `core.steps.mapping` computes)."""
    rows = []
    for category, (path, conf, ambiguous, runner_up) in SUGGESTED.items():
        node = world.nodes[path] if path else None
        candidates = [{"node_id": node, "path": path, "confidence": conf, "vote": 0.8, "name": 0.6, "centroid": 0.7}]
        if runner_up:
            candidates.append(
                {
                    "node_id": world.nodes[runner_up],
                    "path": runner_up,
                    "confidence": round(1 - conf, 4),
                    "vote": 0.1,
                    "name": 0.2,
                    "centroid": 0.3,
                }
            )
        rows.append(
            {
                "category_id": world.cats[category],
                "node_id": node,
                "confidence": conf,
                "ambiguous": ambiguous,
                "candidates": candidates,
            }
        )
    return rows
