"""Shared fixtures: databases on SQLite and on the real PostgreSQL server, catalogue slices."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import text

from core import config
from db import users
from db.models import Base
from db.session import get_engine, get_sessionmaker, upgrade

BACKENDS = ["sqlite", "postgresql"]
CATALOG = config.catalog_dir()


def pg_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        raise RuntimeError(
            "TEST_DATABASE_URL is not set: run the suite with `make test`, which starts PostgreSQL (.ci/pg-start) and sets it."
        )
    return url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_migrated() -> str:
    url = pg_url()
    with get_engine(url).begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(url)
    return url


def _truncate_pg(url: str) -> None:
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    with get_engine(url).begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path, sqlite_template) -> str:
    """A migrated, empty database on each backend (SQLite file; PostgreSQL truncated per test)."""
    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("pg_migrated")
    _truncate_pg(url)
    return url


@pytest.fixture
def factory(db_url):
    return get_sessionmaker(db_url)


@pytest.fixture(scope="session")
def catalog_frame():
    """The shared catalogue (read once per session)."""
    import pandas as pd

    return pd.read_parquet(CATALOG / "products.parquet")


@pytest.fixture
def slice_file(tmp_path, catalog_frame):
    """Write a slice of the shared catalogue as Parquet; returns a function(n, with_images=True) -> path."""

    def make(n: int = 60, *, with_images: bool = True, seed: int = 0, name: str = "slice.parquet") -> Path:
        df = catalog_frame[catalog_frame.image != ""] if with_images else catalog_frame
        df = df.sample(n=n, random_state=seed).sort_values("id")
        path = tmp_path / name
        df.to_parquet(path)
        return path

    return make


@pytest.fixture(autouse=True)
def quick_password_hashes(monkeypatch):
    """argon2 with one pass over 1 MiB instead of the defaults' three over 64 MiB (~0.4 s a hash on a busy CI machine):
    the same code path, a cheaper cost. The app's server processes (tests/e2e) keep the defaults."""
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
