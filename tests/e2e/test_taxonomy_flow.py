"""Real browser: rename a category on the Taxonomy page and see the new name on the Overview page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from db import repo
from db.session import get_sessionmaker
from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def test_rename_on_taxonomy_page_shows_on_overview(app_page, app_db, app_tree):
    page = app_page.page
    leaf = max(app_tree.leaves(), key=app_tree.products)  # the biggest leaf of the test's own slice
    parent, name = leaf.rsplit(" > ", 1)
    root, new_name = leaf.split(" > ")[0], f"Curated {name}"
    with get_sessionmaker(app_db)() as s:
        leaf_id = repo.node_by_path(s, leaf).id

    app_page.open("taxonomy")
    expect(page.get_by_role("heading", name="Taxonomy")).to_be_visible()
    page.get_by_label("Search categories").fill(leaf)
    with app_page.rerun():
        page.get_by_label("Search categories").press("Enter")
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{leaf} ({app_tree.products(leaf)})")
    rename_box = page.get_by_label("New name")
    rename_box.fill(new_name)
    with app_page.rerun():
        rename_box.press("Enter")
    with app_page.rerun():
        page.get_by_role("button", name="Rename…").click()
    expect(page.get_by_text(f"Rename '{leaf}' to '{new_name}'?")).to_be_visible()
    with app_page.rerun():
        page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Rename")).to_be_visible()
    screenshot(page, "taxonomy_after_rename")
    with get_sessionmaker(app_db)() as s:
        assert repo.node_by_path(s, f"{parent} > {new_name}").id == leaf_id and repo.node_by_path(s, leaf) is None

    with app_page.rerun():
        page.get_by_role("link", name="Overview").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.get_by_text(f"{root} ·").first.click()  # opens the root's expander (no rerun)
    tree = page.get_by_role("tabpanel", name="Tree")
    expect(tree.get_by_text(new_name, exact=True)).to_be_visible()
    listed = tree.get_by_role("listitem").filter(has_text=new_name).last  # the innermost item: the leaf itself
    expect(listed).to_have_text(f"{new_name} · {app_tree.products(leaf)}")
    screenshot(page, "overview_after_rename")
