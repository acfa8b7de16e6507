"""Settings: each is read from the environment at call time, with defaults that work from a fresh clone."""

from __future__ import annotations

from pathlib import Path

from core import config

REPO = Path(__file__).resolve().parents[2]  # tests/core/test_config.py -> the repository


def test_repo_root_is_the_checkout():
    assert config.REPO_ROOT == REPO
    assert (config.REPO_ROOT / "core" / "config.py").is_file()


def test_data_dir_from_the_environment_is_created(monkeypatch, tmp_path):
    wanted = tmp_path / "deep" / "data"
    monkeypatch.setenv("DATA_DIR", str(wanted))
    assert config.data_dir() == wanted
    assert wanted.is_dir()


def test_data_dir_defaults_to_data_in_the_repository(monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    assert config.data_dir() == REPO / "data"


def test_catalog_dir_from_the_environment_or_beside_the_repository(monkeypatch, tmp_path):
    monkeypatch.setenv("CATALOG_DIR", str(tmp_path / "catalogue"))
    assert config.catalog_dir() == tmp_path / "catalogue"
    assert not (tmp_path / "catalogue").exists()  # only named, never created
    monkeypatch.delenv("CATALOG_DIR")
    assert config.catalog_dir() == REPO.parent / "shared" / "data" / "fashion-catalog"


def test_database_url_from_the_environment(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://ann@db.example/curator")
    assert config.database_url() == "postgresql+psycopg://ann@db.example/curator"


def test_database_url_defaults_to_sqlite_in_the_data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert config.database_url() == f"sqlite:///{tmp_path}/curator.db"
    monkeypatch.setenv("DATABASE_URL", "")  # the Dockerfile's `DATABASE_URL=`: empty counts as unset
    assert config.database_url() == f"sqlite:///{tmp_path}/curator.db"


def test_default_platform(monkeypatch):
    monkeypatch.delenv("CATALOG_PLATFORM", raising=False)
    assert config.default_platform() == "myntra"
    monkeypatch.setenv("CATALOG_PLATFORM", "shop2")
    assert config.default_platform() == "shop2"


def test_settings_follow_the_environment_between_calls(monkeypatch, tmp_path):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "one"))
    first = config.data_dir()
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "two"))
    assert (first, config.data_dir()) == (tmp_path / "one", tmp_path / "two")
