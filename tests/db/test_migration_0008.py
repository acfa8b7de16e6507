"""Migration 0008 (read indexes) on a database as the code before it made one.

The database at revision 0007 holds two platforms' products with and without a photo, platform, mapping and a
person's labels, a retired category, a relabel in the audit log. After the upgrade every row of every table is
unchanged (only alembic_version moves to 0008), the new indexes exist and ix_labels_node_id is gone, the reads
that use them return what the rows say (worked out by hand below), and the old relabel can still be undone.
Downgrading puts the old indexes back and keeps every row. Run on SQLite and on its own PostgreSQL database.
"""

from __future__ import annotations

from alembic import command
from sqlalchemy import inspect, select, text

from db import actions, repo
from db.models import Label
from db.session import alembic_config, current_revision, get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database
from tests.db_rows import table_rows

T = "2026-11-30 10:00:00"
NODE = "INSERT INTO taxonomy_nodes (id, parent_id, name, path, depth, status, redirect_id, created_at) VALUES "
PRODUCT = (
    "INSERT INTO products (id, platform_id, external_id, title, description, image_status, attributes, content_hash, "
    "created_at, updated_at) VALUES "
)
LABEL = "INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES "
ROWS = [
    "INSERT INTO platforms (id, name, root, created_at, kind, seeds_master) VALUES (1, 'shop', '/c', :t, 'shop', true)",
    "INSERT INTO platforms (id, name, root, created_at, kind, seeds_master) VALUES (2, 'other', '/o', :t, 'shop', false)",
    NODE + "(1, NULL, 'Shoes', 'Shoes', 1, 'active', NULL, :t)",
    NODE + "(2, 1, 'Boots', 'Shoes > Boots', 2, 'active', NULL, :t)",
    NODE + "(3, 1, 'Wellies', 'Shoes > Wellies', 2, 'retired', 2, :t)",
    NODE + "(4, 1, 'Sandals', 'Shoes > Sandals', 2, 'active', NULL, :t)",
    PRODUCT + "(1, 1, 'p1', 'boot', '', 'ok', '{}', 'h', :t, :t)",
    PRODUCT + "(2, 1, 'p2', 'boot', '', 'none', '{}', 'h', :t, :t)",
    PRODUCT + "(3, 2, 'q3', 'sandal', '', 'ok', '{}', 'h', :t, :t)",
    PRODUCT + "(4, 2, 'q4', 'sandal', '', 'missing', '{}', 'h', :t, :t)",
    LABEL + "(1, 1, 2, 'platform', 'x', :t)",
    LABEL + "(2, 2, 2, 'platform', 'x', :t)",
    LABEL + "(3, 2, 4, 'human', 'ana', :t)",  # p2: a person moved it to Sandals
    LABEL + "(4, 3, 4, 'mapping', 'x', :t)",
    "INSERT INTO audit_events (id, time, actor, action, summary, before, after) VALUES (1, :t, 'ana', 'relabel_product', "
    """'Relabelled p2', '{"product_id": 2, "source": "human", "node_id": null}', """
    """'{"product_id": 2, "source": "human", "node_id": 4}')""",
]
NEW = {"ix_labels_node_product", "ix_labels_outranking", "ix_products_platform_status", "ix_products_status_id"}
NEW |= {"ix_products_platform_category"}


def fill_at_0007(url: str) -> None:
    upgrade(url, "0007")
    with get_engine(url).begin() as conn:
        for row in ROWS:
            conn.execute(text(row), {"t": T})
        if conn.dialect.name == "postgresql":  # rows written with explicit ids: move the id sequences past them
            for table in ("platforms", "taxonomy_nodes", "products", "labels", "audit_events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def indexes(url: str) -> set[str]:
    with get_engine(url).connect() as conn:
        found = inspect(conn)
        return {ix["name"] for table in ("labels", "products") for ix in found.get_indexes(table)}


def check_upgrade(url: str) -> None:
    fill_at_0007(url)
    before = table_rows(url)
    assert not NEW & indexes(url) and "ix_labels_node_id" in indexes(url)
    upgrade(url)
    after = table_rows(url)
    assert current_revision(url) == "0008" and after.pop("alembic_version") == [("0008",)]
    assert before.pop("alembic_version") == [("0007",)]
    assert after == before  # no row of any table written, changed or lost
    assert NEW <= indexes(url) and "ix_labels_node_id" not in indexes(url)
    factory = get_sessionmaker(url)
    with factory() as s:  # Boots: p1 (p2's platform label is outranked by the person's); Sandals: p2, q3
        counts = repo.node_counts(s)
        assert (counts[1], counts[2], counts[3], counts[4]) == ((0, 3), (1, 1), (0, 0), (2, 2))
        stats = {r["platform"]: (r["products"], r["labelled"]) for r in repo.catalogue_stats(s)}
        assert stats == {"shop": (2, 2), "other": (2, 1)}
        page, total = repo.products_in_node(s, node_id=1, limit=10)
        assert ([p.id for p in page], total) == ([1, 3, 2], 3)  # photos (p1, q3) first
    with transaction(factory) as s:  # the relabel recorded before the migration is still undone by its handler
        actions.undo(s, event_id=1, actor="ana")
    with factory() as s:
        assert s.scalar(select(Label).where(Label.product_id == 2, Label.source == "human")) is None
        assert repo.node_counts(s)[2] == (2, 2)
    command.downgrade(alembic_config(url), "0007")  # back down: the old index again, every row kept
    assert "ix_labels_node_id" in indexes(url) and not NEW & indexes(url)
    assert len(table_rows(url)["labels"]) == 3 and len(table_rows(url)["products"]) == 4


def test_migration_0008_keeps_every_row_of_a_sqlite_database_and_adds_the_read_indexes(tmp_path):
    check_upgrade(f"sqlite:///{tmp_path / 'old.db'}")


def test_migration_0008_keeps_every_row_of_a_postgresql_database_and_adds_the_read_indexes():
    with scratch_pg_database() as url:
        check_upgrade(url)
