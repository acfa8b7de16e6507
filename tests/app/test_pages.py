"""Streamlit AppTest for every page, on a database holding a real catalogue slice."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from streamlit.testing.v1 import AppTest

from core import config
from core.ingest import ingest
from db import repo
from db.models import AuditEvent, TaxonomyNode
from db.session import get_sessionmaker, upgrade

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def app_env(tmp_path, monkeypatch, slice_file):
    """DATABASE_URL pointing at a fresh SQLite database with 80 real products; returns the URL."""
    url = f"sqlite:///{tmp_path / 'app.db'}"
    upgrade(url)
    ingest(slice_file(80), platform="myntra", db_url=url, images_root=config.catalog_dir())
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    return url


def node_id(url: str, path: str) -> int:
    with get_sessionmaker(url)() as s:
        return repo.node_by_path(s, path).id


def first_leaf(url: str) -> dict:
    with get_sessionmaker(url)() as s:
        return next(r for r in repo.taxonomy_rows(s) if r["children"] == 0)


def run_page(name: str) -> AppTest:
    at = AppTest.from_file(ROOT / "pages" / f"{name}.py", default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def test_main_builds_navigation_and_renders_overview(app_env):
    at = AppTest.from_file(ROOT / "app" / "main.py", default_timeout=60).run()
    assert not at.exception, at.exception
    assert at.title[0].value == "Overview"
    assert at.sidebar.text_input(key="actor").label.startswith("Your name")


def test_overview_counts_and_tree(app_env):
    at = run_page("overview")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Products"] == "80" and metrics["Labelled"] == "100.0%" and metrics["With photo"] == "80"
    with get_sessionmaker(app_env)() as s:
        rows = repo.taxonomy_rows(s)
    roots = [r for r in rows if r["parent_id"] is None]
    assert sorted(e.label for e in at.expander) == sorted(f"{r['name']} · {r['products']:,} products" for r in roots)
    tree_text = "\n".join(m.value for m in at.markdown)
    for row in (r for r in rows if r["parent_id"] is not None):
        assert f"**{row['name']}** · {row['products']:,}" in tree_text


def test_overview_on_an_empty_database_explains_what_to_do(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    at = run_page("overview")
    assert "catalogue is empty" in at.info[0].value


def test_rename_with_confirmation_then_undo(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.text_input(key=f"rename_name_{leaf['id']}").input("Renamed Leaf").run()
    at.button(key="rename_btn").click().run()
    assert "Rename" in at.warning[0].value and node_id(app_env, leaf["path"]) == leaf["id"]  # not yet renamed
    at.button(key="confirm_action").click().run()
    assert not at.exception, at.exception
    new_path = leaf["path"].rsplit(" > ", 1)[0] + " > Renamed Leaf"
    assert node_id(app_env, new_path) == leaf["id"]
    assert "Done" in at.success[0].value
    with get_sessionmaker(app_env)() as s:
        event = s.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()))
    assert event.action == "rename_node"
    at.button(key=f"undo_{event.id}").click().run()
    assert node_id(app_env, leaf["path"]) == leaf["id"]
    assert "Undid" in at.success[0].value


def test_cancel_leaves_everything_as_it_was(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.text_input(key="add_name").input("New child").run()
    at.button(key="add_btn").click().run()
    at.button(key="cancel_action").click().run()
    assert not at.warning
    with get_sessionmaker(app_env)() as s:
        assert repo.node_by_path(s, leaf["path"] + " > New child") is None


def test_refused_action_shows_the_reason_and_changes_nothing(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    at.button(key="retire_btn").click().run()  # no target while it holds products
    at.button(key="confirm_action").click().run()
    assert "choose where they go" in at.error[0].value
    with get_sessionmaker(app_env)() as s:
        assert s.get(TaxonomyNode, leaf["id"]).status == "active"


def test_merge_moves_the_products(app_env):
    with get_sessionmaker(app_env)() as s:
        leaves = [r for r in repo.taxonomy_rows(s) if r["children"] == 0][:2]
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaves[0]["id"]).run()
    at.selectbox(key="merge_target").set_value(leaves[1]["id"]).run()
    at.button(key="merge_btn").click().run()
    at.button(key="confirm_action").click().run()
    with get_sessionmaker(app_env)() as s:
        counts = repo.node_counts(s)
    assert counts[leaves[1]["id"]][0] == leaves[0]["products"] + leaves[1]["products"]
    assert counts[leaves[0]["id"]] == (0, 0)


def test_product_grid_shows_the_node_products(app_env):
    leaf = first_leaf(app_env)
    at = run_page("taxonomy")
    at.selectbox(key="tax_node").set_value(leaf["id"]).run()
    captions = [c.value for c in at.caption]
    assert sum(leaf["path"] in c for c in captions) == min(leaf["products"], 18)
