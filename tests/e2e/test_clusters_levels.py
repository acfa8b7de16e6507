"""Real browser: on the Clusters page change the granularity of a node's discovery tree, show that level's proposals,
expand one into its sub-groups, accept it with them, and find the new categories on the Taxonomy page.

The tree is fitted over the chosen text encoder's features of the slice's Footwear products with one leaf cluster per
hidden article type (tests/app/test_clusters_levels.py `fit_tree`), so at any level below the number of types some
proposal groups two or more types and has sub-groups.
"""

from __future__ import annotations

import os

import pytest
from playwright.sync_api import expect

from db import proposals as props
from db import repo
from db.session import get_sessionmaker
from tests.app.helpers import slice_paths
from tests.app.test_clusters_levels import GOOGLE, fit_tree
from tests.e2e.conftest import ADMIN, screenshot, start_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NODE = "Footwear"


@pytest.fixture(scope="module")
def google_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("google") / "google.txt"
    path.write_text(GOOGLE)
    return path


@pytest.fixture(scope="module")
def app_url(app_db, app_data_dir, google_file):
    """The harness's app (tests/e2e/conftest.py `app_url`) with a four-line Google taxonomy (the name alternatives)."""
    env = {"DATABASE_URL": app_db, "DATA_DIR": str(app_data_dir), "GOOGLE_TAXONOMY_FILE": str(google_file)}
    app = start_app({**os.environ, **env, "CURATOR_ADMIN_USER": ADMIN[0], "CURATOR_ADMIN_PASSWORD": ADMIN[1]})
    try:
        yield app.url
    finally:
        app.stop()


@pytest.fixture
def footwear_tree(app_db, app_frame, app_data_dir, google_file, monkeypatch):
    """The Footwear tree and its default-level proposals, made in the app's DATA_DIR (its map and embedding cache)."""
    monkeypatch.setenv("DATA_DIR", str(app_data_dir))
    monkeypatch.setenv("GOOGLE_TAXONOMY_FILE", str(google_file))
    return fit_tree(app_db, slice_paths(app_frame), node_path=NODE)


def test_change_the_granularity_accept_a_proposal_with_its_sub_groups_and_see_them_on_taxonomy(app_page, app_db, footwear_tree):
    page, tree = app_page.page, footwear_tree["tree"]
    levels = sorted(int(k) for k in tree["levels"] if int(k) >= 4 or int(k) >= tree["default_k"])
    default = tree["default_k"]
    target = default - 1 if default - 1 in levels else default + 1  # a neighbour level below the number of types
    app_page.open("clusters")
    slider = page.get_by_role("slider")
    expect(slider).to_have_attribute("aria-valuetext", str(default))
    expect(page.get_by_text(f"default {default}, chosen without labels", exact=False)).to_be_visible()
    with app_page.rerun():
        slider.press("ArrowLeft" if target < default else "ArrowRight")
    n_groups = len(tree["levels"][str(target)])
    expect(page.get_by_text(f"The map shows level {target}: {n_groups} groups")).to_be_visible()
    screenshot(page, "clusters_level_changed")
    with app_page.rerun(timeout=120_000):  # builds the level's names and explanations (cached afterwards)
        page.get_by_role("button", name=f"Show these {n_groups} proposals").click()
    expect(page.get_by_text(f"Showing the {n_groups} proposals of level {target}")).to_be_visible()

    with get_sessionmaker(app_db)() as s:
        node = repo.node_by_path(s, NODE)
        chosen = next(p for p in props.list_proposals(s, parent_node_id=node.id, status="open") if p.scores["subgroups"])
        subs = [(sub["name"], sub["size"]) for sub in chosen.scores["subgroups"]]
    choose = page.get_by_role("combobox", name="Proposal")
    if not choose.input_value().startswith(f"#{chosen.id} "):  # the largest proposal is selected first
        with app_page.rerun():
            choose.click()
            page.get_by_role("option", name=f"#{chosen.id} ").click()
    page.get_by_role("combobox", name="Proposal").scroll_into_view_if_needed()
    screenshot(page, "clusters_proposal_controls")
    with app_page.rerun():
        page.get_by_text("Why this group").click()  # opens the explanation (drawn only when open: a rerun)
    page.get_by_text("Most typical").scroll_into_view_if_needed()
    screenshot(page, "clusters_proposal_explained")
    expander = page.get_by_text(f"Sub-groups ({len(subs)})")
    with app_page.rerun():
        expander.click()  # opens the expander (a rerun, as above)
    expect(page.get_by_label(f"Sub-group 1 ({subs[0][1]} products)")).to_have_value(subs[0][0])
    expander.scroll_into_view_if_needed()
    screenshot(page, "clusters_proposal_expanded")
    with app_page.rerun():
        page.get_by_text(f"Also create its {len(subs)} sub-groups as child categories").click()
    with app_page.rerun():
        page.get_by_role("button", name="Accept…").click()
    expect(page.get_by_text(f"and its {len(subs)} sub-groups as child categories")).to_be_visible()
    with app_page.rerun():
        page.get_by_role("button", name="Confirm").click()
    expect(page.get_by_text("Done: Create")).to_be_visible()
    created = f"{NODE} > {chosen.name}"
    with get_sessionmaker(app_db)() as s:
        made = repo.node_by_path(s, created)
        assert made is not None and sorted(c.name for c in props.child_names(s, node_id=made.id)) == sorted(n for n, _ in subs)

    with app_page.rerun():
        page.get_by_role("link", name="Taxonomy").click()
    search = page.get_by_label("Search categories")
    search.fill(created)
    with app_page.rerun():
        search.press("Enter")
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{created} ({len(chosen.members)})")
    expect(page.get_by_test_id("stMetric").filter(has_text="Sub-categories")).to_contain_text(str(len(subs)))
    screenshot(page, "taxonomy_with_sub_groups")
    name, size = subs[0]
    search.fill(f"{created} > {name}")
    with app_page.rerun():
        search.press("Enter")
    expect(page.get_by_role("combobox", name="Category")).to_have_value(f"{created} > {name} ({size})")
