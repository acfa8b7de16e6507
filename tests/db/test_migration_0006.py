"""Migration 0006 (users) on a database as the code before it made one.

The database at revision 0005 holds a platform, a category, a product with its label and an audit event, written
the way that code wrote them. After the upgrade every row is unchanged, the users table exists and is empty (no
default user, no default password), and a user can be added and signs in. Run on SQLite and on its own PostgreSQL
database.
"""

from __future__ import annotations

from sqlalchemy import select, text

from db import users
from db.models import User
from db.session import get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database

T = "2026-11-30 10:00:00"
ROWS = [
    "INSERT INTO platforms (id, name, root, created_at, kind, seeds_master) VALUES (1, 'shop', '/c', :t, 'shop', true)",
    "INSERT INTO taxonomy_nodes (id, parent_id, name, path, depth, status, created_at) VALUES (1, NULL, 'Shoes', 'Shoes', 1, "
    "'active', :t)",
    "INSERT INTO products (id, platform_id, external_id, title, description, image_status, attributes, content_hash, "
    "created_at, updated_at) VALUES (1, 1, 'p1', 'a shoe', '', 'none', '{}', 'h', :t, :t)",
    "INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES (1, 1, 1, 'human', 'ana', :t)",
    "INSERT INTO audit_events (id, time, actor, action, summary, before, after) VALUES (1, :t, 'ana', 'relabel_product', "
    "'Relabelled p1', '{}', '{}')",
]


def snapshot(url: str) -> dict:
    with get_engine(url).connect() as conn:
        return {
            table: conn.execute(text(f"SELECT * FROM {table} ORDER BY id")).all()
            for table in ("platforms", "taxonomy_nodes", "products", "labels", "audit_events")
        }


def check_upgrade(url: str) -> None:
    upgrade(url, "0005")
    with get_engine(url).begin() as conn:
        for sql in ROWS:
            conn.execute(text(sql), {"t": T})
        if conn.dialect.name == "postgresql":  # rows written with explicit ids: move the id sequences past them
            for table in ("platforms", "taxonomy_nodes", "products", "labels", "audit_events"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))
    before = snapshot(url)
    assert all(before.values())  # every table holds its row
    upgrade(url, "0006")
    assert snapshot(url) == before  # nothing changed or lost
    factory = get_sessionmaker(url)
    with factory() as s:
        assert s.scalars(select(User)).all() == []  # no default user
    with transaction(factory) as s:
        users.add_user(s, name="ana", password="a long passphrase", role="curator", actor="test")
    with transaction(factory) as s:
        assert users.authenticate(s, "ana", "a long passphrase").user == users.Identity("ana", "curator")


def test_migration_0006_keeps_a_sqlite_database_and_adds_an_empty_users_table(tmp_path):
    check_upgrade(f"sqlite:///{tmp_path / 'old.db'}")


def test_migration_0006_keeps_a_postgresql_database_and_adds_an_empty_users_table():
    with scratch_pg_database() as url:
        check_upgrade(url)
