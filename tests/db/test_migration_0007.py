"""Migration 0007 (versions and invariants) on a database as the code before it made one, races included.

The database at revision 0006 holds what two curators racing on that code could leave: a label on a retired
category (which redirects to an active one), two active model versions, one event undone twice. After the upgrade
no label, audit event, node or model version is lost; every versioned row is at version 1; the label followed the
redirect; the newest active model stays active and the other is archived; the event keeps the undo it names and the
other undo event loses only its link. The invariants then hold for every new write, and the old relabel can still
be undone. Run on SQLite and on its own PostgreSQL database.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from db import actions, users
from db.models import Label
from db.repo import ConflictError
from db.session import get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database

T = "2026-11-30 10:00:00"
NODE = "INSERT INTO taxonomy_nodes (id, parent_id, name, path, depth, status, redirect_id, created_at) VALUES "
ROWS = [
    "INSERT INTO platforms (id, name, root, created_at, kind, seeds_master) VALUES (1, 'shop', '/c', :t, 'shop', true)",
    NODE + "(1, NULL, 'Shoes', 'Shoes', 1, 'active', NULL, :t)",
    NODE + "(2, 1, 'Boots', 'Shoes > Boots', 2, 'active', NULL, :t)",
    NODE + "(3, 1, 'Wellies', 'Shoes > Wellies', 2, 'retired', 2, :t)",
    *(
        "INSERT INTO products (id, platform_id, external_id, title, description, image_status, attributes, content_hash, "
        f"created_at, updated_at) VALUES ({i}, 1, 'p{i}', 'a shoe', '', 'none', '{{}}', 'h', :t, :t)"
        for i in (1, 2)
    ),
    "INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES (1, 1, 1, 'platform', 'x', :t)",
    "INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES (2, 1, 2, 'human', 'ana', :t)",
    "INSERT INTO labels (id, product_id, node_id, source, actor, created_at) VALUES (3, 2, 3, 'platform', 'x', :t)",
    *(
        "INSERT INTO model_versions (id, name, status, metrics, params, created_at) "
        f"VALUES ({i}, 'm{i}', '{status}', '{{}}', '{{}}', :t)"
        for i, status in ((1, "active"), (2, "active"), (3, "candidate"))
    ),
    "INSERT INTO audit_events (id, time, actor, action, summary, before, after) VALUES (1, :t, 'ana', 'relabel_product', "
    """'Relabelled p1', '{"product_id": 1, "source": "human", "node_id": null}', """
    """'{"product_id": 1, "source": "human", "node_id": 2}')""",
    "INSERT INTO audit_events (id, time, actor, action, summary, before, after) VALUES (2, :t, 'ana', 'rename_proposal', "
    "'Renamed', '{}', '{}')",
    *(
        "INSERT INTO audit_events (id, time, actor, action, summary, before, after, undo_of_id) "
        f"VALUES ({i}, :t, '{who}', 'undo', 'Undid #2', '{{}}', '{{}}', 2)"
        for i, who in ((3, "ana"), (4, "bob"))
    ),
    "UPDATE audit_events SET undone_by_id = 4 WHERE id = 2",
]
TABLES = ("taxonomy_nodes", "labels", "model_versions", "audit_events")


def snapshot(url: str) -> dict:
    with get_engine(url).connect() as conn:
        return {
            "nodes": conn.execute(text("SELECT id, parent_id, path, status, redirect_id FROM taxonomy_nodes ORDER BY id")).all(),
            "labels": conn.execute(text("SELECT id, product_id, node_id, source FROM labels ORDER BY id")).all(),
            "models": conn.execute(text("SELECT id, name, status FROM model_versions ORDER BY id")).all(),
            "audit": conn.execute(text("SELECT id, actor, action, undo_of_id, undone_by_id FROM audit_events ORDER BY id")).all(),
        }


def fill_at_0006(url: str) -> None:
    upgrade(url, "0006")
    with get_engine(url).begin() as conn:
        for sql in ROWS:
            conn.execute(text(sql), {"t": T})
        if conn.dialect.name == "postgresql":  # rows written with explicit ids: move the id sequences past them
            for table in ("platforms", "products", *TABLES):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"))


def check_upgrade(url: str) -> None:
    fill_at_0006(url)
    before = snapshot(url)
    upgrade(url, "0007")
    after = snapshot(url)
    assert after["nodes"] == before["nodes"]
    assert [row[:2] + row[3:] for row in after["labels"]] == [row[:2] + row[3:] for row in before["labels"]]  # all kept
    assert {row[0]: row[2] for row in after["labels"]} == {1: 1, 2: 2, 3: 2}  # p2's label followed Wellies -> Boots
    assert [row[2] for row in after["models"]] == ["archived", "active", "candidate"]  # the newest active stays
    assert [row[:3] for row in after["audit"]] == [row[:3] for row in before["audit"]]
    assert [row[3:] for row in after["audit"]] == [(None, None), (None, 4), (None, None), (2, None)]  # #4 is #2's undo
    with get_engine(url).connect() as conn:
        for table in TABLES[:3]:  # the tables with rows here
            assert set(conn.execute(text(f"SELECT version FROM {table}")).scalars()) == {1}, table
    factory = get_sessionmaker(url)
    with pytest.raises(ConflictError, match="no product label on a retired category"):
        with transaction(factory) as s:
            s.add(Label(product_id=2, node_id=3, source="human"))
    with transaction(factory) as s:  # the relabel recorded before the migration is still undone by its handler
        actions.perform(s, "undo", user=users.operator("ana"), event_id=1)
    with factory() as s:
        assert s.scalar(select(Label).where(Label.product_id == 1, Label.source == "human")) is None


def test_migration_0007_keeps_a_raced_sqlite_database_and_repairs_what_blocks_its_invariants(tmp_path):
    check_upgrade(f"sqlite:///{tmp_path / 'old.db'}")


def test_migration_0007_keeps_a_raced_postgresql_database_and_repairs_what_blocks_its_invariants():
    with scratch_pg_database() as url:
        check_upgrade(url)
