"""Alembic migrations are the only schema path: they must produce exactly the models' schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from db.models import Base
from db.session import alembic_config, current_revision, get_engine, upgrade


def test_migrated_schema_matches_models(db_url):
    with get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    assert diff == []
    head = ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()
    assert head == "0008" and current_revision(db_url) == head


def test_upgrade_from_the_first_revision_keeps_the_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO platforms (id, name, created_at) VALUES (1, 'shop', '2026-01-01')"))
    upgrade(url)
    assert current_revision(url) == "0008"
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT name FROM platforms")).scalar_one() == "shop"
        assert conn.execute(text("SELECT count(*) FROM review_items")).scalar_one() == 0
