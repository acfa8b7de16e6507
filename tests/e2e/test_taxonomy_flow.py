"""Real browser: rename a category on the Taxonomy page and see the new name on the Overview page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from db import repo
from db.session import get_sessionmaker
from tests.e2e.conftest import screenshot

pytestmark = pytest.mark.e2e


def busy_done(page) -> None:
    """Wait until Streamlit has finished the current run."""
    page.wait_for_timeout(300)
    expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=30_000)


def test_rename_on_taxonomy_page_shows_on_overview(page, app_url, app_db):
    with get_sessionmaker(app_db)() as s:
        leaf = max((r for r in repo.taxonomy_rows(s) if r["children"] == 0), key=lambda r: r["products"])
    root = leaf["path"].split(" > ")[0]
    new_name = f"Curated {leaf['name']}"

    page.goto(f"{app_url}/taxonomy")
    expect(page.get_by_role("heading", name="Taxonomy")).to_be_visible()
    page.get_by_label("Search categories").fill(leaf["path"])
    page.get_by_label("Search categories").press("Enter")
    busy_done(page)
    expect(page.get_by_role("combobox", name="Category")).to_have_value(re.compile(re.escape(leaf["path"])))
    rename_box = page.get_by_label("New name")
    rename_box.fill(new_name)
    rename_box.press("Enter")
    busy_done(page)
    page.get_by_role("button", name="Rename…").click()
    expect(page.get_by_text(f"Rename '{leaf['path']}' to '{new_name}'?")).to_be_visible()
    page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Rename")).to_be_visible()
    screenshot(page, "taxonomy_after_rename")

    page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    busy_done(page)
    page.get_by_text(f"{root} ·").first.click()
    expect(page.get_by_role("tabpanel", name="Tree").get_by_text(new_name)).to_be_visible()  # the treemap names it too
    busy_done(page)
    shot = screenshot(page, "overview_after_rename")
    assert shot.stat().st_size > 10_000
    with get_sessionmaker(app_db)() as s:
        assert repo.node_by_path(s, leaf["path"].rsplit(" > ", 1)[0] + " > " + new_name).id == leaf["id"]
