"""The column mapping remembered per platform (db/platforms.py), on SQLite and PostgreSQL, and the migration that
adds it (0004) upgrading a database made at 0003 that holds data, on both backends."""

from __future__ import annotations

import pytest
from alembic.command import downgrade
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from db import platforms, repo
from db.models import Platform, Product
from db.session import alembic_config, current_revision, get_engine, get_sessionmaker, transaction, upgrade
from tests.db.conftest import scratch_pg_database

SHOP2 = {"id": "sku", "title": "name", "path": "category", "path_sep": ">>", "image": "photo_url"}


def test_a_mapping_is_remembered_per_platform_and_replaced_by_the_next(factory):
    with transaction(factory) as s:
        platforms.remember_column_map(s, platform="shop2", mapping=SHOP2)
        platforms.remember_column_map(s, platform="shop3", mapping={"id": "id", "title": "title", "levels": ["l1", "l2"]})
    with factory() as s:
        stored = platforms.column_map(s, platform="shop2")
        assert stored == {
            "id": "sku",
            "title": "name",
            "description": None,
            "brand": None,
            "image": "photo_url",
            "path": "category",
            "levels": [],
            "path_sep": ">>",
        }
        assert platforms.column_map(s, platform="shop3")["levels"] == ["l1", "l2"]
        assert platforms.column_map(s, platform="nobody") is None
        assert list(platforms.remembered_column_maps(s)) == ["shop2", "shop3"]
    with transaction(factory) as s:
        platforms.remember_column_map(s, platform="shop2", mapping={**SHOP2, "title": "title_en", "brand": "maker"})
    with factory() as s:
        stored = platforms.column_map(s, platform="shop2")
        assert (stored["title"], stored["brand"], stored["path"]) == ("title_en", "maker", "category")
        assert s.query(Platform).filter_by(name="shop2").count() == 1


def test_remembering_keeps_the_platforms_products_and_image_folder(factory):
    with transaction(factory) as s:
        plat = repo.get_or_create_platform(s, name="myntra", root="/catalog")
        s.add(Product(platform_id=plat.id, external_id="1", title="Blue shoe", content_hash="x"))
    with transaction(factory) as s:
        platforms.remember_column_map(s, platform="myntra", mapping={"id": "id", "title": "title"})
    with factory() as s:
        assert platforms.platform_root(s, platform="myntra") == "/catalog"
        assert platforms.platform_names(s) == ["myntra"]
        assert platforms.known_ids(s, platform="myntra", ids=["1", "2", "1"]) == 1
        assert platforms.known_ids(s, platform="other", ids=["1"]) == 0
        assert platforms.column_map(s, platform="myntra")["levels"] == []


@pytest.mark.parametrize(
    "mapping, message",
    [
        ({"title": "t"}, "needs a column for 'id'"),
        ({"id": "i", "title": " "}, "needs a column for 'title'"),
        ({"id": "i", "title": "t", "colour": "c"}, "unknown keys"),
        ({"id": "i", "title": "t", "levels": ["a"], "path": "p"}, "not both"),
        ({"id": "i", "title": "t", "levels": "a,b"}, "list of column names"),
        ({"id": "i", "title": "t", "path": "p", "path_sep": " "}, "separator"),
        ({"id": "i", "title": "t", "image": 3}, "column name or None"),
    ],
)
def test_a_bad_mapping_is_refused_and_nothing_is_stored(factory, mapping, message):
    with pytest.raises(ValueError, match=message), transaction(factory) as s:
        platforms.remember_column_map(s, platform="shop2", mapping=mapping)
    with factory() as s:
        assert platforms.platform_names(s) == []


def test_known_ids_counts_past_the_sqlite_parameter_limit(factory):
    with transaction(factory) as s:
        plat = repo.get_or_create_platform(s, name="big")
        s.add_all(Product(platform_id=plat.id, external_id=str(i), title=f"t{i}", content_hash="x") for i in range(2000))
    with factory() as s:
        assert platforms.known_ids(s, platform="big", ids=[str(i) for i in range(1500, 2600)]) == 500


def _fill_at_0003(url: str) -> None:
    """A database at revision 0003 holding a platform, a product, a label and a job."""
    upgrade(url, "0003")
    with get_engine(url).begin() as conn:
        conn.execute(text("INSERT INTO platforms (id, name, root, created_at) VALUES (1, 'myntra', '/catalog', '2026-01-01')"))
        conn.execute(
            text(
                "INSERT INTO products (id, platform_id, external_id, title, description, image_status, attributes,"
                " content_hash, created_at, updated_at) VALUES (1, 1, 'p1', 'Blue shoe', '', 'none', '{}', 'h',"
                " '2026-01-01', '2026-01-01')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO taxonomy_nodes (id, name, path, depth, status, created_at)"
                " VALUES (1, 'Footwear', 'Footwear', 1, 'active', '2026-01-01')"
            )
        )
        conn.execute(
            text("INSERT INTO labels (id, product_id, node_id, source, created_at) VALUES (1, 1, 1, 'platform', '2026-01-01')")
        )


def _upgraded_keeps_everything(url: str) -> None:
    upgrade(url)  # through 0004 and every later revision, to the models this test then uses
    assert current_revision(url) == ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT name, root, column_map FROM platforms")).one() == ("myntra", "/catalog", None)
        assert conn.execute(text("SELECT external_id, title FROM products")).one() == ("p1", "Blue shoe")
        assert conn.execute(text("SELECT count(*) FROM labels")).scalar_one() == 1
    factory = get_sessionmaker(url)
    with transaction(factory) as s:
        platforms.remember_column_map(s, platform="myntra", mapping={"id": "id", "title": "title", "levels": ["a", "b"]})
    with factory() as s:
        assert platforms.column_map(s, platform="myntra")["levels"] == ["a", "b"]
        assert platforms.platform_root(s, platform="myntra") == "/catalog"
    downgrade(alembic_config(url), "0003")  # and back: only the new column goes
    with get_engine(url).connect() as conn:
        assert conn.execute(text("SELECT name, root FROM platforms")).one() == ("myntra", "/catalog")
        assert conn.execute(text("SELECT count(*) FROM products")).scalar_one() == 1
        assert "column_map" not in [c["name"] for c in inspect(conn).get_columns("platforms")]


def test_migration_0004_upgrades_a_sqlite_database_with_data(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    _fill_at_0003(url)
    _upgraded_keeps_everything(url)


def test_migration_0004_upgrades_a_postgresql_database_with_data():
    """On its own database of the test server (created here, dropped after), so the shared test database is untouched."""
    with scratch_pg_database() as url:
        _fill_at_0003(url)
        _upgraded_keeps_everything(url)


def test_a_photo_only_mapping_needs_an_image_column_and_is_stored_without_a_title(factory):
    with pytest.raises(ValueError, match="or one for 'image'"), transaction(factory) as s:
        platforms.remember_column_map(s, platform="zalando", mapping={"id": "i", "title": None})
    with transaction(factory) as s:
        platforms.remember_column_map(s, platform="zalando", mapping={"id": "i", "title": None, "image": "p", "levels": ["c"]})
    with factory() as s:
        stored = platforms.column_map(s, platform="zalando")
        assert (stored["title"], stored["image"], stored["levels"]) == (None, "p", ["c"])
