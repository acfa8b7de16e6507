"""Migration 0005 (platform taxonomies and category mappings) on a database as the code before it made one.

The database at revision 0004 is filled the way that code's ingest and curation wrote it: master nodes created from
the platform's paths, `platform` labels, a person's relabel (label + audit event), a retired category with its
redirect. After the upgrade every label, audit event and node is unchanged, each platform's own tree is rebuilt
from its platform labels, every product points at its category, each category has a confirmed mapping onto the
node, and the old relabel can still be undone. Run on SQLite and on its own PostgreSQL database.
"""

from __future__ import annotations

from sqlalchemy import select, text

from db import actions, repo
from db.models import CategoryMapping, Label, Platform, PlatformCategory, Product
from db.session import get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database

NODES = [  # id, parent, name, path, depth, status, redirect
    (1, None, "Apparel", "Apparel", 1, "active", None),
    (2, 1, "Topwear", "Apparel > Topwear", 2, "active", None),
    (3, 2, "Tshirts", "Apparel > Topwear > Tshirts", 3, "active", None),
    (4, 2, "Tops", "Apparel > Topwear > Tops", 3, "active", None),
    (5, 2, "Tees", "Apparel > Topwear > Tees", 3, "retired", 3),
]
PRODUCTS = {1: 3, 2: 3, 3: 4}  # product id: the node of its platform label
LABELS = [(1, 1, 3, "platform"), (2, 2, 3, "platform"), (3, 3, 4, "platform"), (4, 2, 4, "human")]
T = "2026-11-30 10:00:00"


def fill_at_0004(url: str) -> None:
    upgrade(url, "0004")
    with get_engine(url).begin() as conn:
        conn.execute(text(f"INSERT INTO platforms (id, name, root, created_at) VALUES (1, 'myntra', '/catalog', '{T}')"))
        for row in NODES:
            conn.execute(
                text(
                    "INSERT INTO taxonomy_nodes (id, parent_id, name, path, depth, status, redirect_id, created_at) "
                    "VALUES (:i, :p, :n, :pa, :d, :s, :r, :c)"
                ),
                dict(zip(("i", "p", "n", "pa", "d", "s", "r"), row, strict=True), c=T),
            )
        for pid in PRODUCTS:
            conn.execute(
                text(
                    "INSERT INTO products (id, platform_id, external_id, title, description, image_status, attributes, "
                    "content_hash, created_at, updated_at) VALUES (:i, 1, :e, :t, '', 'none', '{}', 'h', :c, :c)"
                ),
                {"i": pid, "e": f"p{pid}", "t": f"product {pid}", "c": T},
            )
        for row in LABELS:
            conn.execute(
                text("INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES (:i, :p, :n, :s, 'x', :c)"),
                dict(zip(("i", "p", "n", "s"), row, strict=True), c=T),
            )
        conn.execute(
            text(
                "INSERT INTO audit_events (id, time, actor, action, summary, before, after) VALUES (1, :c, 'ana', "
                "'relabel_product', 'Relabelled p2', :b, :a)"
            ),
            {
                "c": T,
                "b": '{"product_id": 2, "source": "human", "node_id": null}',
                "a": '{"product_id": 2, "source": "human", "node_id": 4}',
            },
        )
        if conn.dialect.name == "postgresql":  # rows written with explicit ids: move the id sequences past them
            for table in ("platforms", "taxonomy_nodes", "products", "labels", "audit_events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def snapshot(url: str) -> dict:
    with get_engine(url).connect() as conn:
        return {
            "labels": conn.execute(text("SELECT id, product_id, node_id, source FROM labels ORDER BY id")).all(),
            "audit": conn.execute(text("SELECT id, actor, action, summary FROM audit_events ORDER BY id")).all(),
            "nodes": conn.execute(text("SELECT id, parent_id, path, status, redirect_id FROM taxonomy_nodes ORDER BY id")).all(),
        }


def check_upgrade(url: str) -> None:
    fill_at_0004(url)
    before = snapshot(url)
    upgrade(url)
    assert snapshot(url) == before  # no label, audit event or node changed
    factory = get_sessionmaker(url)
    with factory() as s:
        plat = s.scalar(select(Platform))
        assert (plat.kind, plat.seeds_master) == ("shop", True)
        tree = {c.path: c for c in s.scalars(select(PlatformCategory))}
        # the platform's tree: the paths its platform labels point at, with their ancestors (Tees had no label)
        assert sorted(tree) == ["Apparel", "Apparel > Topwear", "Apparel > Topwear > Tops", "Apparel > Topwear > Tshirts"]
        assert tree["Apparel > Topwear > Tops"].parent_id == tree["Apparel > Topwear"].id
        node_path = {row[0]: row[3] for row in NODES}
        for pid, node_id in PRODUCTS.items():
            assert s.get(PlatformCategory, s.get(Product, pid).platform_category_id).path == node_path[node_id]
        mapped = {(m.platform_category_id, m.master_node_id, m.status, m.origin) for m in s.scalars(select(CategoryMapping))}
        assert mapped == {
            (tree["Apparel > Topwear > Tshirts"].id, 3, "confirmed", "migration"),
            (tree["Apparel > Topwear > Tops"].id, 4, "confirmed", "migration"),
        }
    with transaction(factory) as s:  # the relabel recorded before the migration is still undone by its handler
        actions.undo(s, event_id=1, actor="ana")
    with factory() as s:
        assert s.scalar(select(Label).where(Label.product_id == 2, Label.source == "human")) is None
        assert repo.product_label(s, 2)[0].path == "Apparel > Topwear > Tshirts"


def test_migration_0005_keeps_a_sqlite_database_and_builds_the_platform_tree(tmp_path):
    check_upgrade(f"sqlite:///{tmp_path / 'old.db'}")


def test_migration_0005_keeps_a_postgresql_database_and_builds_the_platform_tree():
    with scratch_pg_database() as url:
        check_upgrade(url)
