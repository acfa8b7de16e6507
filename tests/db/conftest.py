"""Fixtures of the database tests: a small taxonomy with six platform-labelled products."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from db import repo
from db.session import get_engine, transaction
from tests.conftest import pg_url
from tests.db_rows import platform_tree

PATHS = {
    "casual": ("Footwear", "Shoes", "Casual Shoes"),
    "sports": ("Footwear", "Shoes", "Sports Shoes"),
    "flips": ("Footwear", "Flip Flops"),
    "tshirts": ("Apparel", "Topwear", "Tshirts"),
    "tops": ("Apparel", "Topwear", "Tops"),
}
PRODUCTS = {"p1": "casual", "p2": "casual", "p3": "sports", "p4": "flips", "p5": "tshirts", "p6": "tops"}


@pytest.fixture
def tree(factory):
    """A small taxonomy with six products labelled by the platform; returns {name: node_id or product_id}."""
    with transaction(factory) as s:
        ids = platform_tree(s, PATHS, PRODUCTS)
        for name in ("Footwear", "Footwear > Shoes", "Apparel", "Apparel > Topwear"):
            ids[name] = repo.node_by_path(s, name).id
    return ids


@contextmanager
def scratch_pg_database() -> Iterator[str]:
    """A new, empty database on the test PostgreSQL server (its URL), dropped afterwards: for migration tests, which
    must not touch the shared test database."""
    server = make_url(pg_url())
    name = f"curator_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()
