"""Every row of every table of a database (the models' tables and alembic_version), for before/after comparisons;
products labelled under a node, for the db tests' fixtures."""

from __future__ import annotations

from sqlalchemy import inspect, text

from db import repo
from db.models import Base, Label, Product
from db.session import get_engine


def table_names() -> list[str]:
    """The models' tables, plus Alembic's own."""
    return [t.name for t in Base.metadata.sorted_tables] + ["alembic_version"]


def table_rows(url: str) -> dict[str, list[tuple]]:
    """{table: its rows as tuples of values, in primary-key order (all columns otherwise)}; JSON compared as
    read back, datetimes as stored."""
    engine = get_engine(url)
    out: dict[str, list[tuple]] = {}
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        for name in table_names():
            if name not in present:
                out[name] = ["<missing>"]
                continue
            table = Base.metadata.tables.get(name)
            if table is None:
                out[name] = [tuple(r) for r in conn.execute(text(f"SELECT * FROM {name} ORDER BY 1"))]
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            out[name] = [tuple(r) for r in conn.execute(table.select().order_by(*order))]
    return out


def labelled_products(session, n: int, *, path: tuple[str, ...] = ("Footwear", "Shoes"), platform: str = "shop"):
    """(the node at `path`, the ids of `n` new products labelled there by the platform: titles "shoe 0"...)."""
    plat = repo.get_or_create_platform(session, name=platform)
    node = repo.ensure_path(session, path)[0]
    ids = []
    for i in range(n):
        p = Product(platform_id=plat.id, external_id=str(i), title=f"shoe {i}", content_hash="h")
        session.add(p)
        session.flush()
        session.add(Label(product_id=p.id, node_id=node.id, source="platform"))
        ids.append(p.id)
    return node, ids


def platform_tree(session, paths: dict[str, tuple[str, ...]], products: dict[str, str], *, platform: str = "shop") -> dict:
    """The category `paths` ({key: path}) and `products` ({external id: key of the path it is labelled at by the
    platform}); returns {key: node id, external id: product id}."""
    plat = repo.get_or_create_platform(session, name=platform)
    ids = {key: repo.ensure_path(session, path)[0].id for key, path in paths.items()}
    for ext, key in products.items():
        product = Product(platform_id=plat.id, external_id=ext, title=f"title {ext}", content_hash="x")
        session.add(product)
        session.flush()
        session.add(Label(product_id=product.id, node_id=ids[key], source="platform"))
        ids[ext] = product.id
    return ids
